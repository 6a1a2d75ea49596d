"""Durable sync state in one sqlite database (WAL): outbox, inbox, id map, metadata.

Every process (hooks, daemon, timers) opens its own short-lived connection; sqlite's
own locking serialises writers, so a hook appending during a drain is never lost.
The outbox keeps one entry per task: a newer change replaces an older one and gets a
new sequence number, and a drain removes an entry only if its sequence number is still
the one it pushed.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vikunja_sync import spool

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    uuid TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('upsert', 'delete')),
    task TEXT NOT NULL,
    enqueued_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS outbox_seq ON outbox (seq);
CREATE TABLE IF NOT EXISTS inbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at REAL NOT NULL,
    body BLOB NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE TABLE IF NOT EXISTS links (
    tw_uuid TEXT PRIMARY KEY,
    vikunja_id INTEGER NOT NULL UNIQUE,
    fingerprint TEXT NOT NULL,
    vikunja_updated REAL NOT NULL DEFAULT 0,
    recent_pushes TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""
RECENT_PUSHES_KEPT = 32
CREATE_INTENT_PREFIX = "create-intent:"  # meta key of a create not yet linked


@dataclass(frozen=True)
class OutboxEntry:
    uuid: str
    seq: int
    kind: str
    task: dict[str, Any]
    enqueued_at: float
    attempts: int
    last_error: str | None


@dataclass(frozen=True)
class InboxEntry:
    id: int
    received_at: float
    body: bytes
    attempts: int


@dataclass(frozen=True)
class Link:
    """What the sync last agreed with Vikunja about one task."""

    tw_uuid: str
    vikunja_id: int
    fingerprint: str
    vikunja_updated: float
    recent_pushes: tuple[str, ...]


class Store:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fresh = not self.path.exists()
        conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        try:
            if fresh:
                os.chmod(self.path, 0o600)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            if conn.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
                conn.executescript(SCHEMA + f"PRAGMA user_version={SCHEMA_VERSION};")
            yield conn
        finally:
            conn.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # --- outbox -------------------------------------------------------------
    def enqueue(self, uuid: str, kind: str, task: dict[str, Any]) -> int:
        """Record a TW change; it supersedes any pending change of the same task."""
        with self._transaction() as conn:
            return self._enqueue(conn, uuid, kind, task)

    @staticmethod
    def _enqueue(conn: sqlite3.Connection, uuid: str, kind: str, task: dict[str, Any]) -> int:
        seq = conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM outbox").fetchone()[0]
        conn.execute(
            "INSERT INTO outbox (uuid, seq, kind, task, enqueued_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (uuid) DO UPDATE SET seq = excluded.seq, kind = excluded.kind, "
            "task = excluded.task, enqueued_at = excluded.enqueued_at, attempts = 0, last_error = NULL",
            (uuid, seq, kind, json.dumps(task, separators=(",", ":")), time.time()),
        )
        return seq

    def ingest_spool(self) -> int:
        """Move the hooks' spooled changes into the outbox, oldest first.

        Files are removed only after the transaction committed; a crash in between
        ingests them again, which is harmless: a change supersedes its own copy.
        """
        files = spool.pending_files(str(self.path.parent))
        if not files:
            return 0
        changes = []
        for path in files:
            try:
                with open(path, encoding="utf-8") as fh:
                    task = json.loads(fh.read())
                uuid = task["uuid"]
                if not isinstance(uuid, str):
                    raise TypeError("uuid is not a string")
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.error("spooled change %s is unreadable (%s); kept as %s.bad", path, exc, path)
                os.replace(path, path + ".bad")
                continue
            changes.append((path, uuid, task))
        with self._transaction() as conn:  # one fsync for the lot
            for _, uuid, task in changes:
                self._enqueue(conn, uuid, "delete" if task.get("status") == "deleted" else "upsert", task)
        for path, _, _ in changes:
            os.unlink(path)
        return len(changes)

    def pending(self) -> list[OutboxEntry]:
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT uuid, seq, kind, task, enqueued_at, attempts, last_error FROM outbox ORDER BY seq"
            ).fetchall()
        return [OutboxEntry(r[0], r[1], r[2], json.loads(r[3]), r[4], r[5], r[6]) for r in rows]

    def pending_for(self, uuid: str) -> OutboxEntry | None:
        with self._connect() as conn:
            r = conn.execute(
                "SELECT uuid, seq, kind, task, enqueued_at, attempts, last_error FROM outbox WHERE uuid = ?",
                (uuid,),
            ).fetchone()
        return OutboxEntry(r[0], r[1], r[2], json.loads(r[3]), r[4], r[5], r[6]) if r else None

    def complete(self, entry: OutboxEntry) -> bool:
        """Remove the entry unless a newer change of the task arrived meanwhile."""
        with self._transaction() as conn:
            cur = conn.execute("DELETE FROM outbox WHERE uuid = ? AND seq = ?", (entry.uuid, entry.seq))
            return cur.rowcount == 1

    def record_attempt(self, entry: OutboxEntry, error: str) -> None:
        with self._transaction() as conn:
            conn.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE uuid = ? AND seq = ?",
                (error[:500], entry.uuid, entry.seq),
            )

    def outbox_depth(self) -> int:
        """Changes waiting for Vikunja: in the outbox, or still in the hooks' spool."""
        with self._connect() as conn:
            queued = conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        return queued + len(spool.pending_files(str(self.path.parent)))

    # --- inbox --------------------------------------------------------------
    def receive(self, body: bytes) -> int:
        """Commit a webhook body durably; only then may the server answer 2xx."""
        with self._transaction() as conn:
            cur = conn.execute("INSERT INTO inbox (received_at, body) VALUES (?, ?)", (time.time(), body))
            return int(cur.lastrowid)

    def next_inbox(self, now: float | None = None) -> InboxEntry | None:
        now = time.time() if now is None else now
        with self._connect() as conn:
            r = conn.execute(
                "SELECT id, received_at, body, attempts FROM inbox WHERE next_attempt_at <= ? ORDER BY id LIMIT 1",
                (now,),
            ).fetchone()
        return InboxEntry(r[0], r[1], bytes(r[2]), r[3]) if r else None

    def inbox_done(self, entry_id: int) -> None:
        with self._transaction() as conn:
            conn.execute("DELETE FROM inbox WHERE id = ?", (entry_id,))

    def inbox_retry(self, entry_id: int, error: str, delay: float) -> None:
        with self._transaction() as conn:
            conn.execute(
                "UPDATE inbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ? WHERE id = ?",
                (error[:500], time.time() + delay, entry_id),
            )

    def inbox_depth(self) -> int:
        with self._connect() as conn:
            return conn.execute("SELECT COUNT(*) FROM inbox").fetchone()[0]

    # --- links (TW uuid <-> Vikunja id) --------------------------------------
    def _link(self, row: tuple | None) -> Link | None:
        if row is None:
            return None
        return Link(row[0], row[1], row[2], row[3], tuple(json.loads(row[4])))

    def link_for_uuid(self, tw_uuid: str) -> Link | None:
        with self._connect() as conn:
            return self._link(conn.execute("SELECT * FROM links WHERE tw_uuid = ?", (tw_uuid,)).fetchone())

    def link_for_vikunja(self, vikunja_id: int) -> Link | None:
        with self._connect() as conn:
            return self._link(conn.execute("SELECT * FROM links WHERE vikunja_id = ?", (vikunja_id,)).fetchone())

    def links(self) -> list[Link]:
        with self._connect() as conn:
            return [self._link(r) for r in conn.execute("SELECT * FROM links").fetchall()]

    def save_link(
        self, tw_uuid: str, vikunja_id: int, fingerprint: str, vikunja_updated: float, pushed: Sequence[str] = ()
    ) -> None:
        """Record agreement on a task; `pushed` are the states our writes left, to recognise their echoes."""
        with self._transaction() as conn:
            row = conn.execute("SELECT recent_pushes FROM links WHERE tw_uuid = ?", (tw_uuid,)).fetchone()
            recent = json.loads(row[0]) if row else []
            fresh = list(dict.fromkeys(reversed(pushed)))
            recent = (fresh + [f for f in recent if f not in fresh])[:RECENT_PUSHES_KEPT]
            # One Vikunja id belongs to one TW task: a stale link of another uuid is replaced.
            conn.execute("DELETE FROM links WHERE vikunja_id = ? AND tw_uuid != ?", (vikunja_id, tw_uuid))
            conn.execute("DELETE FROM meta WHERE key = ?", (CREATE_INTENT_PREFIX + tw_uuid,))
            conn.execute(
                "INSERT INTO links (tw_uuid, vikunja_id, fingerprint, vikunja_updated, recent_pushes) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (tw_uuid) DO UPDATE SET vikunja_id = excluded.vikunja_id, "
                "fingerprint = excluded.fingerprint, vikunja_updated = excluded.vikunja_updated, "
                "recent_pushes = excluded.recent_pushes",
                (tw_uuid, vikunja_id, fingerprint, vikunja_updated, json.dumps(recent)),
            )

    def drop_link(self, tw_uuid: str) -> None:
        with self._transaction() as conn:
            conn.execute("DELETE FROM links WHERE tw_uuid = ?", (tw_uuid,))

    # --- metadata -----------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        with self._connect() as conn:
            r = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return r[0] if r else None

    def set_meta(self, key: str, value: str) -> None:
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )
