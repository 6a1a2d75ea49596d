"""Runs the real `task` binary (2.6 and 3.x) on behalf of the sync.

Every call sets the loop guard and turns hooks off, so nothing the sync writes into
Taskwarrior is pushed back to Vikunja. The `vikunjaid` UDA is declared with `rc.`
overrides, so the user's taskrc need not know about it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vikunja_sync.twgate import WriteGate

log = logging.getLogger(__name__)

LOOP_GUARD = "VIKUNJA_SYNC_RUNNING"
UDA = "vikunjaid"
BASE_OVERRIDES = (
    "rc.hooks=off",
    "rc.confirmation=off",
    "rc.verbose=nothing",
    "rc.json.array=on",
    "rc.recurrence.confirmation=no",
    f"rc.uda.{UDA}.type=numeric",
    f"rc.uda.{UDA}.label=Vikunja",
)
# Attributes `task import` may keep when the JSON omits them (Taskwarrior 3 merges);
# clearing them explicitly makes both versions agree.
CLEARABLE = ("due", "scheduled", "until", "recur", "priority", "project", "end", "wait")
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


class TaskwarriorError(Exception):
    """`task` failed; the message carries its stderr."""


@dataclass(frozen=True)
class Taskwarrior:
    binary: str = "task"
    env: Mapping[str, str] | None = None
    gate: WriteGate | None = None  # takes turns with the user's commands for every write

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ if self.env is None else self.env)
        env[LOOP_GUARD] = "1"
        # The token must never reach child processes.
        for secret in ("VIKUNJA_API_TOKEN", "VIKUNJA_TOKEN"):
            env.pop(secret, None)
        return env

    def write(self, args: Iterable[str], stdin: str | None = None) -> str:
        if self.gate is None:
            return self.run(args, stdin)
        with self.gate.hold():
            return self.run(args, stdin)

    def run(self, args: Iterable[str], stdin: str | None = None) -> str:
        cmd = [self.binary, *BASE_OVERRIDES, *args]
        try:
            proc = subprocess.run(
                cmd,
                check=False,
                input=stdin,
                capture_output=True,
                text=True,
                env=self._environment(),
                timeout=120,
            )
        except FileNotFoundError:
            raise TaskwarriorError(
                f"Taskwarrior binary {self.binary!r} not found; install taskwarrior or put `task` on PATH"
            ) from None
        if proc.returncode != 0:
            raise TaskwarriorError(f"`task {' '.join(args)}` failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc.stdout

    def version(self) -> str:
        return self.run(["_version"]).strip()

    def export(self, *filters: str) -> list[dict[str, Any]]:
        out = self.run([*filters, "export"])
        return json.loads(out) if out.strip() else []

    def get(self, uuid: str) -> dict[str, Any] | None:
        """The task with this uuid, deleted or not."""
        if not UUID_RE.match(uuid):
            raise TaskwarriorError(f"{uuid!r} is not a task UUID; pass the task's full uuid")
        tasks = self.export(f"uuid:{uuid}")
        return tasks[0] if tasks else None

    def find_by_vikunja_id(self, vikunja_id: int) -> dict[str, Any] | None:
        live = [t for t in self.export(f"{UDA}:{int(vikunja_id)}") if t.get("status") != "deleted"]
        return live[0] if live else None

    def import_task(self, task: dict[str, Any], previous: dict[str, Any] | None = None) -> None:
        self.import_tasks([task], [previous])

    def import_tasks(self, tasks: list[dict[str, Any]], previous: list[dict[str, Any] | None]) -> None:
        """Create or replace tasks in one process; attributes dropped since `previous` are cleared."""
        if not tasks:
            return
        self.write(["import", "-"], stdin=json.dumps(tasks))
        for task, prev in zip(tasks, previous):
            dropped = [k for k in CLEARABLE if prev and k in prev and k not in task]
            if dropped:
                current = self.get(task["uuid"]) or {}
                still = [k for k in dropped if k in current]
                if still:
                    self.write([f"uuid:{task['uuid']}", "modify", *(f"{k}:" for k in still)])

    def delete(self, uuid: str) -> None:
        self.write([f"uuid:{uuid}", "delete"])

    def setting(self, name: str) -> str:
        return self.run(["_get", f"rc.{name}"]).strip()

    def hooks_dir(self) -> Path:
        """Where Taskwarrior looks for hooks: rc.hooks.location, else <data.location>/hooks."""
        location = self.setting("hooks.location")
        if location:
            return Path(location).expanduser()
        data = self.setting("data.location") or "~/.task"
        return Path(data).expanduser() / "hooks"


def find_binary(name: str = "task") -> str | None:
    return shutil.which(name)
