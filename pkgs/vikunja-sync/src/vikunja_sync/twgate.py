"""Taking turns with the user's `task` commands.

Taskwarrior 2.6 locks its data files only while reading and while writing, not
across a command, so two commands that overlap can lose one of their writes. The
sync's writes therefore wait until no other `task` process is running and hold an
exclusive lock meanwhile; the user's commands pass through an `on-launch` hook that
takes the same lock shared, so a command that starts during our write waits for it.
(Taskwarrior 3 keeps its data in sqlite transactions; the gate costs it nothing.)
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

GATE_FILE = "taskwarrior.lock"
POLL = 0.005


def other_task_processes() -> list[int]:
    """Pids of this user's live `task` processes (other users' cannot touch our data,
    zombies have finished); the sync's own are never running when this is asked."""
    pids = []
    uid = os.getuid()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            if os.stat(f"/proc/{name}").st_uid != uid:
                continue
            with open(f"/proc/{name}/stat", "rb") as fh:
                head, _, tail = fh.read().rpartition(b")")
        except OSError:
            continue
        if head.partition(b"(")[2] == b"task" and tail.split()[:1] != [b"Z"]:
            pids.append(int(name))
    return pids


class WriteGate:
    def __init__(self, state_dir: Path, patience: float = 30.0) -> None:
        self.path = Path(state_dir) / GATE_FILE
        self.patience = patience

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Exclusive lock, taken when no user command is in flight (or after `patience`)."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + self.patience
        try:
            while True:
                fcntl.flock(fd, fcntl.LOCK_EX)
                busy = other_task_processes()
                if not busy:
                    break
                if time.monotonic() > deadline:
                    log.warning("`task` processes %s kept running for %.0fs; writing anyway", busy, self.patience)
                    break
                fcntl.flock(fd, fcntl.LOCK_UN)  # let their on-launch hooks through
                time.sleep(POLL)
            yield
        finally:
            os.close(fd)


def on_launch_script(state_dir: str, flock: str = "flock") -> str:
    """The user's side of the gate: wait, shared, while the sync writes (never fail the command)."""
    lock = os.path.join(state_dir, GATE_FILE)
    return (
        "#!/bin/sh\n"
        "# vikunja-sync: let a Taskwarrior write of the sync finish before this command reads its data.\n"
        f"[ -e '{lock}' ] && {flock} -s -w 30 '{lock}' true 2>/dev/null\n"
        "exit 0\n"
    )
