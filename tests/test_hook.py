"""The Taskwarrior hook: echo at once, durable outbox, wake-up, and nothing heavy imported."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from vikunja_sync.hook import HOOK_NAMES, LAUNCH_HOOK, install_hooks
from vikunja_sync.store import Store

TASK = {
    "uuid": "5778b795-2a62-4c92-8405-8831fa7ea3dc",
    "description": "buy milk",
    "status": "pending",
}


def run_hook(env: dict[str, str], stdin: str) -> subprocess.CompletedProcess:
    code = (
        "import sys\n"
        "from vikunja_sync.cli import main\n"
        "sys.argv = ['vikunja-direct', 'hook']\n"
        "rc = main()\n"
        "sys.stderr.write('MODULES=' + ','.join(sorted(sys.modules)) + '\\n')\n"
        "sys.exit(rc)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


def hook_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "VIKUNJA_SYNC_STATE_DIR": str(tmp_path / "state"),
        "VIKUNJA_SYNC_CONFIG": str(_config(tmp_path)),
        **extra,
    }


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text('[push]\nfallback = "none"\n')
    return path


LIGHT_MODULES = {"vikunja_sync.cli", "vikunja_sync.hook", "vikunja_sync.locations", "vikunja_sync.spool"}


def queued(tmp_path: Path) -> list:
    """What the hooks spooled, as the daemon's outbox will hold it."""
    store = Store(tmp_path / "state" / "sync.sqlite3")
    store.ingest_spool()
    return store.pending()


def modules(proc: subprocess.CompletedProcess) -> set[str]:
    line = [x for x in proc.stderr.splitlines() if x.startswith("MODULES=")][-1]
    return set(line.removeprefix("MODULES=").split(","))


def test_on_add_echoes_and_queues_without_heavy_imports(tmp_path):
    proc = run_hook(hook_env(tmp_path), json.dumps(TASK) + "\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == json.dumps(TASK) + "\n"
    loaded = modules(proc)
    heavy = {"requests", "urllib3", "json", "re", "sqlite3", "socket", "logging", "tomllib", "pathlib", "subprocess"}
    assert heavy & loaded == set()
    assert not {m for m in loaded if m.startswith("vikunja_sync.") and m not in LIGHT_MODULES}
    [entry] = queued(tmp_path)
    assert (entry.uuid, entry.kind, entry.task["description"]) == (
        TASK["uuid"],
        "upsert",
        "buy milk",
    )


def test_on_modify_uses_the_new_task_and_a_newer_change_supersedes(tmp_path):
    env = hook_env(tmp_path)
    modified = {**TASK, "description": "buy oat milk"}
    proc = run_hook(env, json.dumps(TASK) + "\n" + json.dumps(modified) + "\n")
    assert proc.returncode == 0 and proc.stdout == json.dumps(modified) + "\n"
    deleted = {**modified, "status": "deleted"}
    assert run_hook(env, json.dumps(modified) + "\n" + json.dumps(deleted) + "\n").returncode == 0
    [entry] = queued(tmp_path)
    assert entry.kind == "delete" and entry.task["status"] == "deleted"


def test_loop_guard_only_echoes(tmp_path):
    proc = run_hook(hook_env(tmp_path, VIKUNJA_SYNC_RUNNING="1"), json.dumps(TASK) + "\n")
    assert proc.returncode == 0 and proc.stdout == json.dumps(TASK) + "\n"
    assert not (tmp_path / "state" / "sync.sqlite3").exists()


def test_bad_stdin_is_rejected_with_one_line(tmp_path):
    for stdin in ("", "not json\n", "[1, 2]\n", '{"description": "no uuid"}\n'):
        proc = run_hook(hook_env(tmp_path), stdin)
        assert proc.returncode == 1
        assert proc.stdout == ""
        errors = [x for x in proc.stderr.splitlines() if not x.startswith("MODULES=")]
        assert len(errors) == 1 and "vikunja-sync hook" in errors[0]
    assert not (tmp_path / "state" / "sync.sqlite3").exists()


def test_an_unusable_config_never_blocks_the_user(tmp_path):
    env = hook_env(tmp_path)
    Path(env["VIKUNJA_SYNC_CONFIG"]).unlink()
    proc = run_hook(env, json.dumps(TASK) + "\n")
    assert proc.returncode == 0
    lines = proc.stdout.splitlines()
    assert lines[0] == json.dumps(TASK) and "not queued" in lines[1] and "does not exist" in lines[1]


def test_the_hook_reads_only_the_keys_it_needs(tmp_path):
    env = hook_env(tmp_path)
    del env["VIKUNJA_SYNC_STATE_DIR"]
    Path(env["VIKUNJA_SYNC_CONFIG"]).write_text(
        f'state_dir = "{tmp_path}/from-toml"  # comment\n[vikunja]\nurl = "x"\n[push]\nfallback = "none"\n'
    )
    assert "tomllib" not in modules(run_hook(env, json.dumps(TASK) + "\n"))
    assert len(list((tmp_path / "from-toml" / "spool").iterdir())) == 1
    Path(env["VIKUNJA_SYNC_CONFIG"]).write_text(f"state_dir = '{tmp_path}/literal'\n[push]\nfallback = 'none'\n")
    assert "tomllib" in modules(run_hook(env, json.dumps(TASK) + "\n"))  # not a plain string: full parser
    assert len(list((tmp_path / "literal" / "spool").iterdir())) == 1


def test_wakes_a_listening_daemon(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(state / "wake.sock"))
    listener.settimeout(10)
    try:
        assert run_hook(hook_env(tmp_path), json.dumps(TASK) + "\n").returncode == 0
        assert listener.recv(64) == b"wake"
    finally:
        listener.close()


def test_install_hooks_is_idempotent_and_leaves_other_hooks(tmp_path):
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "on-exit.other").write_text("#!/bin/sh\nexit 0\n")
    first = [Path(p) for p in install_hooks(hooks)]
    content = {p: p.read_text() for p in first}
    second = [Path(p) for p in install_hooks(hooks)]
    assert first == second and {p.name for p in first} == {*HOOK_NAMES, LAUNCH_HOOK}
    assert all(os.access(p, os.X_OK) and p.read_text() == content[p] for p in second)
    assert (hooks / "on-exit.other").read_text() == "#!/bin/sh\nexit 0\n"
    assert sorted(p.name for p in hooks.iterdir()) == sorted([*HOOK_NAMES, LAUNCH_HOOK, "on-exit.other"])


def test_real_taskwarrior_runs_the_installed_hooks(tmp_path):
    env = hook_env(tmp_path, TASKRC=str(tmp_path / "taskrc"), TASKDATA=str(tmp_path / "data"))
    (tmp_path / "taskrc").write_text(f"data.location={tmp_path / 'data'}\n")
    cli = subprocess.run(
        [sys.executable, "-m", "vikunja_sync", "install-hooks"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert str(tmp_path / "data" / "hooks") in cli.stdout

    def add(i: int) -> int:
        cmd = ["task", "rc.confirmation=off", "add", f"concurrent {i}"]
        return subprocess.run(cmd, env=env, capture_output=True, check=False, timeout=60).returncode

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(add, range(8))) == [0] * 8
    pending = queued(tmp_path)
    assert sorted(e.task["description"] for e in pending) == sorted(f"concurrent {i}" for i in range(8))
    assert len({e.uuid for e in pending}) == 8
