"""The Taskwarrior hook: echo the task, spool the change durably, wake the daemon.

It runs inside every `task add`/`modify` and must add only a few milliseconds beyond
the interpreter's start, so it imports nothing but `os`, `sys`, `time` and the C
modules `_json` and `_socket` (the `json` and `socket` packages pull in `re`, `enum`
and more, which costs more than the whole budget on a slow machine). It never
touches the network, sqlite or the sync engine.
"""

from __future__ import annotations

import os
import sys

from vikunja_sync.locations import WAKE_SOCKET, default_state_dir, find_config_file
from vikunja_sync.spool import write_change

LOOP_GUARD = "VIKUNJA_SYNC_RUNNING"
HOOK_NAMES = ("on-add.vikunja-sync", "on-modify.vikunja-sync")
LAUNCH_HOOK = "on-launch.vikunja-sync"  # a shell script: see twgate


class _JSONContext:
    """The attributes `_json.make_scanner` reads: strict JSON, plain dicts."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = float


def parse_task(line: str) -> dict | None:
    """The task object on a hook line, or None if it is not one."""
    try:
        import _json

        value, end = _json.make_scanner(_JSONContext())(line, 0)
        if line[end:].strip():
            return None
    except ImportError:  # an interpreter without the C accelerator
        import json

        try:
            value = json.loads(line)
        except ValueError:
            return None
    except (StopIteration, ValueError):
        return None
    if isinstance(value, dict) and isinstance(value.get("uuid"), str):
        return value
    return None


def _plain_string(raw: str) -> str | None:
    """The text of a `"..."` value (a comment may follow), or None for anything else."""
    raw = raw.strip()
    end = raw.find('"', 1)
    if not raw.startswith('"') or end < 0:
        return None
    text, rest = raw[1:end], raw[end + 1 :].strip()
    if "\\" in text or (rest and not rest.startswith("#")):
        return None
    return text


def hook_settings(env) -> tuple[str, str]:
    """(state_dir, push.fallback), read without tomllib when the file is plain.

    Only the two keys the hook needs are scanned; a value that is not a plain
    double-quoted string sends the whole file through tomllib instead.
    """
    state_dir, fallback = env.get("VIKUNJA_SYNC_STATE_DIR"), "spawn"
    path = find_config_file(env)
    if path is None and env.get("VIKUNJA_SYNC_CONFIG"):
        raise FileNotFoundError(f"config file {env['VIKUNJA_SYNC_CONFIG']} (VIKUNJA_SYNC_CONFIG) does not exist")
    if path:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        found = _scan(text)
        if found is None:
            import tomllib

            data = tomllib.loads(text)
            push = data.get("push")
            found = (data.get("state_dir"), push.get("fallback") if isinstance(push, dict) else None)
        state_dir = state_dir or found[0]
        fallback = found[1] or fallback
    return os.path.expanduser(state_dir or default_state_dir(env)), fallback


def _scan(text: str) -> tuple[str | None, str | None] | None:
    section, state_dir, fallback = "", None, None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("["):
            section = line.strip("[] ")
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or (section, key) not in (("", "state_dir"), ("push", "fallback")):
            continue
        parsed = _plain_string(value)
        if parsed is None:
            return None
        if key == "state_dir":
            state_dir = parsed
        else:
            fallback = parsed
    return state_dir, fallback


def wake_daemon(state_dir: str) -> bool:
    """One datagram to the daemon's wake socket; False when no daemon listens."""
    import _socket

    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        sock.sendto(b"wake", os.path.join(state_dir, WAKE_SOCKET))
        return True
    except BlockingIOError:
        return True  # its queue is full of wakes already: it will drain
    except OSError:
        return False
    finally:
        sock.close()


def spawn_drain(env) -> None:
    """A detached `process-queue` that outlives the hook and holds none of TW's pipes."""
    import subprocess

    subprocess.Popen(
        [sys.executable, "-m", "vikunja_sync", "process-queue", "--no-wait", "--quiet"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env={k: v for k, v in env.items() if k != LOOP_GUARD},
    )


def run_hook(stdin, stdout, stderr, env=None) -> int:
    env = os.environ if env is None else env
    lines = [line for line in stdin.read().splitlines() if line.strip()]
    line = lines[-1] if lines else ""  # on-add: the task; on-modify: original, then modified
    if parse_task(line) is None:
        stderr.write("vikunja-sync hook: stdin is not a Taskwarrior task (a JSON object with a uuid)\n")
        return 1
    stdout.write(line + "\n")
    stdout.flush()
    if env.get(LOOP_GUARD):
        return 0
    try:
        state_dir, fallback = hook_settings(env)
        write_change(state_dir, line)
    except Exception as exc:  # noqa: BLE001 - a broken sync must never block the user's task command
        stdout.write(f"vikunja-sync: change not queued ({exc}); `vikunja-direct reconcile --full` will catch up\n")
        return 0
    if not wake_daemon(state_dir) and fallback == "spawn":
        spawn_drain(env)
    return 0


def hook_script(python: str, package_parent: str) -> str:
    """`-I -S`: no site, no environment: the package's directory is put on the path by hand."""
    return (
        f"#!{python} -IS\n"
        "import sys\n"
        f"sys.path.insert(0, {package_parent!r})\n"
        "from vikunja_sync.hook import main\n"
        "sys.exit(main())\n"
    )


def install_hooks(hooks_dir, state_dir=None, python: str | None = None) -> list:
    """Write our hooks (idempotently), leaving every other hook alone; returns their paths."""
    import shutil
    from pathlib import Path  # neither is needed on the hook's own path

    from vikunja_sync.twgate import on_launch_script

    if state_dir is None:
        from vikunja_sync.config import load_settings

        state_dir = load_settings().state_dir

    hooks_dir = Path(hooks_dir)
    change_hook = hook_script(python or sys.executable, str(Path(__file__).resolve().parent.parent))
    flock = shutil.which("flock") or "flock"
    scripts = {name: change_hook for name in HOOK_NAMES} | {LAUNCH_HOOK: on_launch_script(str(state_dir), flock)}
    hooks_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, content in scripts.items():
        tmp = hooks_dir / f".{name}.tmp"
        tmp.write_text(content, encoding="utf-8")
        tmp.chmod(0o755)
        os.replace(tmp, hooks_dir / name)
        written.append(hooks_dir / name)
    return written


def main() -> int:
    return run_hook(sys.stdin, sys.stdout, sys.stderr)
