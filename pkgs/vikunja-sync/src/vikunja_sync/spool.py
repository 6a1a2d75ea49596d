"""The hook's side of the outbox: one durable file per Taskwarrior change.

Writing a file (temp, fsync, rename, fsync the directory) needs nothing but `os`,
where opening sqlite would cost the hook most of its time budget. Whoever drains
the outbox first moves the spool into sqlite (`Store.ingest_spool`), in the order
the changes were made: file names start with the nanosecond clock.
"""

from __future__ import annotations

import os
import time

SPOOL_DIR = "spool"
SUFFIX = ".json"


def spool_path(state_dir: str) -> str:
    return os.path.join(state_dir, SPOOL_DIR)


def write_change(state_dir: str, line: str) -> str:
    directory = spool_path(state_dir)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    name = f"{time.time_ns():020d}-{os.getpid()}{SUFFIX}"
    tmp = os.path.join(directory, "." + name)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, line.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    final = os.path.join(directory, name)
    os.rename(tmp, final)
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return final


def pending_files(state_dir: str) -> list[str]:
    """Completed spool files, oldest first (a leading dot marks one still being written)."""
    try:
        names = os.listdir(spool_path(state_dir))
    except FileNotFoundError:
        return []
    return [os.path.join(spool_path(state_dir), n) for n in sorted(names) if n.endswith(SUFFIX) and n[0] != "."]
