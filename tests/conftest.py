"""Shared fixtures: a real Taskwarrior in a temp dir, the emulator on loopback, settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from vikunja_sync.config import Settings, load_settings
from vikunja_sync.emulator import Emulator
from vikunja_sync.hook import install_hooks
from vikunja_sync.sync import SyncEngine, engine_from_settings

TOKEN = "tk_" + "ab" * 20
SECRET = "webhook-secret-for-tests"


@pytest.fixture
def emulator():
    emu = Emulator(token=TOKEN)
    emu.start()
    yield emu
    emu.stop()


@dataclass
class SyncWorld:
    """One user's machine: a Taskwarrior data dir, a state dir and a config, all under tmp."""

    root: Path
    env: dict[str, str]
    emulator: Emulator

    @property
    def settings(self) -> Settings:
        return load_settings(self.env)

    def engine(self) -> SyncEngine:
        return engine_from_settings(self.settings)

    def task(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run the real `task` as the user would (hooks on)."""
        return subprocess.run(
            ["task", "rc.confirmation=off", "rc.verbose=nothing", *args],
            env=self.env,
            capture_output=True,
            text=True,
            check=check,
            timeout=60,
        )

    def export(self, *filters: str) -> list[dict[str, Any]]:
        out = self.task("rc.json.array=on", *filters, "export").stdout
        return json.loads(out) if out.strip() else []

    def cli(self, *args: str, stdin: str | None = None, check: bool = False) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "vikunja_sync", *args],
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            check=check,
            timeout=120,
        )

    def install_hooks(self) -> None:
        install_hooks(self.root / "taskdata" / "hooks", self.root / "state")

    def last_uuid(self) -> str:
        return self.task("+LATEST", "_uuids").stdout.strip()


def make_world(root: Path, emulator: Emulator, **config: Any) -> SyncWorld:
    taskdata = root / "taskdata"
    taskdata.mkdir(parents=True)
    taskrc = root / "taskrc"
    taskrc.write_text(f"data.location={taskdata}\nhooks=on\nnews.version=99.99.99\n")
    token_file = root / "token"
    token_file.write_text(TOKEN + "\n")
    secret_file = root / "secret"
    secret_file.write_text(SECRET)
    push = config.pop("push", {"fallback": "none"})
    breaker = config.pop("breaker", {"failure_threshold": 3, "recovery_timeout": 60})
    lines = [
        f'state_dir = "{root / "state"}"',
        'default_project = "inbox"',
        "[vikunja]",
        f'url = "{emulator.url}"',
        f'token_file = "{token_file}"',
        f"timeout = {config.pop('timeout', 2.0)}",
        "[webhook]",
        f'secret_file = "{secret_file}"',
        "[push]",
        *(f"{k} = {json.dumps(v)}" for k, v in push.items()),
        "[breaker]",
        *(f"{k} = {json.dumps(v)}" for k, v in breaker.items()),
        "[reconcile]",
        f"max_delete_share = {config.pop('max_delete_share', 0.5)}",
    ]
    assert not config, f"unknown test config keys {config}"
    config_file = root / "config.toml"
    config_file.write_text("\n".join(lines) + "\n")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(root),
        "TASKRC": str(taskrc),
        "TASKDATA": str(taskdata),
        "VIKUNJA_SYNC_CONFIG": str(config_file),
        "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
        "LANG": "C.UTF-8",
    }
    return SyncWorld(root, env, emulator)


@pytest.fixture
def world(tmp_path, emulator, monkeypatch) -> SyncWorld:
    w = make_world(tmp_path, emulator)
    for key, value in w.env.items():
        monkeypatch.setenv(key, value)
    return w
