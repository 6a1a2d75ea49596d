"""The Taskwarrior hook: echo the task, record it in the outbox, wake the daemon.

This runs inside every `task add`/`modify`, so it must stay fast: it never touches
the network and never imports `requests` or the sync engine. Only the standard
library's json, socket and sqlite3 (through `store`) are loaded.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import IO

from vikunja_sync.config import Settings, load_settings
from vikunja_sync.store import Store

LOOP_GUARD = "VIKUNJA_SYNC_RUNNING"
HOOK_NAMES = ("on-add.vikunja-sync", "on-modify.vikunja-sync")
log = logging.getLogger(__name__)


def wake_daemon(settings: Settings) -> bool:
    """Send one datagram to the daemon's wake socket; False when no daemon listens."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        sock.sendto(b"wake", str(settings.outbox_wake_socket))
        return True
    except BlockingIOError:
        return True  # the daemon's queue is full of wakes already: it will drain
    except OSError:
        return False
    finally:
        sock.close()


def spawn_drain(env: Mapping[str, str]) -> None:
    """Start a detached `process-queue` that outlives the hook and holds none of TW's pipes."""
    import subprocess

    subprocess.Popen(
        [sys.executable, "-m", "vikunja_sync", "process-queue", "--no-wait", "--quiet"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
        env={k: v for k, v in env.items() if k != LOOP_GUARD},
    )


def run_hook(stdin: IO[str], stdout: IO[str], stderr: IO[str], env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    lines = [line for line in stdin.read().splitlines() if line.strip()]
    if not lines:
        stderr.write("vikunja-sync hook: no task on stdin; Taskwarrior hooks pass the task as JSON\n")
        return 1
    line = lines[-1]  # on-add: the task; on-modify: original, then the modified task
    try:
        task = json.loads(line)
    except ValueError:
        task = None
    if not isinstance(task, dict) or not isinstance(task.get("uuid"), str):
        stderr.write("vikunja-sync hook: stdin is not a Taskwarrior task (JSON object with a uuid)\n")
        return 1
    stdout.write(line + "\n")
    stdout.flush()
    if env.get(LOOP_GUARD):
        return 0
    try:
        settings = load_settings(env)
        kind = "delete" if task.get("status") == "deleted" else "upsert"
        Store(settings.database).enqueue(task["uuid"], kind, task)
    except Exception as exc:  # noqa: BLE001 - a broken sync must never block the user's task command
        stdout.write(f"vikunja-sync: change not queued ({exc}); `vikunja-direct reconcile` will catch up\n")
        return 0
    if not wake_daemon(settings) and settings.push_fallback == "spawn":
        spawn_drain(env)
    return 0


def hook_script(python: str) -> str:
    return f"#!{python}\nimport sys\nfrom vikunja_sync.hook import main\nsys.exit(main())\n"


def install_hooks(hooks_dir: Path, python: str | None = None) -> list[Path]:
    """Write our two hooks (idempotently), leaving every other hook alone."""
    hooks_dir.mkdir(parents=True, exist_ok=True)
    content = hook_script(python or sys.executable)
    written = []
    for name in HOOK_NAMES:
        path = hooks_dir / name
        tmp = path.with_name(f".{name}.tmp")
        tmp.write_text(content)
        tmp.chmod(0o755)
        os.replace(tmp, path)
        written.append(path)
    return written


def main() -> int:
    return run_hook(sys.stdin, sys.stdout, sys.stderr)
