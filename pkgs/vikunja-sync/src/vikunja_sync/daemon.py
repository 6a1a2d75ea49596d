"""The background half of `vikunja-direct serve`: inbox apply, outbox drain, systemd glue.

Two workers run beside the HTTP server, each with its own sync engine (an engine
is not thread-safe; the engine's cross-process sync lock serialises their writes):

* the apply worker is the single Taskwarrior writer for webhooks: it applies inbox
  entries strictly oldest first and retries a failing one with exponential backoff
  before going on;
* the drain worker pushes the outbox once at start, every ``drain_interval``,
  and whenever a datagram arrives on the wake socket. Wakes are left queued in
  the socket while a drain runs, so any number of them cause exactly one more
  drain afterwards.

Wake-ups that must work from a signal handler go through a socket pair, never a
lock: a handler that takes a lock its own thread already holds deadlocks.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import selectors
import socket
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import Any, Protocol

from vikunja_sync.store import InboxEntry, Store

log = logging.getLogger(__name__)

MAX_RETRY_DELAY = 300.0
SD_LISTEN_FDS_START = 3
LISTEN_VARS = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")


class Engine(Protocol):
    """What the daemon needs of `vikunja_sync.sync.SyncEngine`."""

    def drain(self, wait: bool = True) -> Any: ...

    def apply_inbox_entry(self, entry: InboxEntry) -> Any: ...

    def close(self) -> None: ...


EngineFactory = Callable[[], Engine]


def retry_delay(attempts: int) -> float:
    """Backoff before the next try of an entry that already failed `attempts` times: 1, 2, 4 … 300 s."""
    return min(MAX_RETRY_DELAY, float(2 ** min(max(attempts, 0), 16)))


class Waker:
    """A level-triggered wake-up that is safe to fire from a signal handler or any thread."""

    def __init__(self) -> None:
        self._r, self._w = socket.socketpair()
        self._r.setblocking(False)
        self._w.setblocking(False)

    def fileno(self) -> int:
        return self._r.fileno()

    def wake(self) -> None:
        try:
            self._w.send(b"\0")
        except OSError:  # full (already woken) or closed (shutting down): nothing to add
            pass

    def wait(self) -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(self._r, selectors.EVENT_READ)
            sel.select()

    def close(self) -> None:
        self._r.close()
        self._w.close()


# --- systemd ------------------------------------------------------------------


def sd_notify(message: str, environ: MutableMapping[str, str] | None = None) -> bool:
    """Send a state line ("READY=1", "STOPPING=1", "STATUS=…") to systemd if it listens."""
    address = (os.environ if environ is None else environ).get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace
    elif not address.startswith("/"):
        log.warning("NOTIFY_SOCKET %r is not a UNIX socket path; not notifying systemd", address)
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError as exc:
        log.warning("cannot notify systemd (%s): %s", message.split("\n")[0], exc)
        return False
    return True


def systemd_listen_socket(environ: MutableMapping[str, str] | None = None) -> socket.socket | None:
    """The listening socket systemd passed as fd 3, if it was passed to this very process.

    The LISTEN_* variables are removed in any case, so no child mistakes them for its own.
    """
    environ = os.environ if environ is None else environ
    fds, pid = environ.get("LISTEN_FDS"), environ.get("LISTEN_PID")
    for name in LISTEN_VARS:
        environ.pop(name, None)
    if not fds or pid != str(os.getpid()):
        return None
    try:
        count = int(fds)
    except ValueError:
        log.warning("ignoring LISTEN_FDS=%r: not a number", fds)
        return None
    if count < 1:
        return None
    if count > 1:
        log.warning("systemd passed %d sockets; using only the first (fd %d)", count, SD_LISTEN_FDS_START)
    sock = socket.socket(fileno=SD_LISTEN_FDS_START)
    sock.set_inheritable(False)
    if sock.type != socket.SOCK_STREAM or sock.family not in (socket.AF_INET, socket.AF_INET6):
        sock.detach()
        raise RuntimeError("the socket systemd passed (fd 3) is not a TCP stream socket; fix the .socket unit")
    return sock


# --- wake socket --------------------------------------------------------------


def bind_wake_socket(path: Path) -> socket.socket:
    """Bind the datagram socket hooks wake us through; a stale file is replaced, a live one refused."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        probe.setblocking(False)
        probe.sendto(b"probe", str(path))
    except FileNotFoundError:
        pass
    except BlockingIOError:  # a receiver whose queue is full is very much alive
        raise RuntimeError(f"another daemon is draining through {path}; stop it first") from None
    except OSError as exc:
        if exc.errno not in (errno.ECONNREFUSED, errno.ENOTSOCK):
            raise
        path.unlink()  # left behind by a daemon that died
    else:
        raise RuntimeError(f"another daemon is draining through {path}; stop it first")
    finally:
        probe.close()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.bind(str(path))
        os.chmod(path, 0o600)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def unlink_if_ours(path: Path, inode: int) -> None:
    """Remove our socket file, so hooks see no daemon; leave a successor's alone."""
    try:
        if path.stat().st_ino == inode:
            path.unlink()
    except FileNotFoundError:
        pass


# --- workers ------------------------------------------------------------------


class _Worker(ABC):
    """A daemon thread that runs until stopped; an unexpected crash is reported to `on_crash`."""

    name = "worker"

    def __init__(self, on_crash: Callable[[], None]) -> None:
        self._stopping = threading.Event()
        self._on_crash = on_crash
        self._thread = threading.Thread(target=self._guarded_run, name=self.name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Ask the worker to finish what it holds and return."""
        self._stopping.set()

    def join(self, timeout: float) -> bool:
        """True when the worker has returned."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _guarded_run(self) -> None:
        try:
            self._run()
        except Exception:
            log.exception("%s crashed; stopping the daemon so that it is restarted", self.name)
            self._on_crash()

    @abstractmethod
    def _run(self) -> None:
        """The worker's loop; returns once `_stopping` is set."""


class ApplyWorker(_Worker):
    """Applies inbox entries strictly oldest first: the daemon's only Taskwarrior writer for webhooks.

    A failing entry blocks the ones behind it until its retry succeeds: letting a later
    `task.deleted` overtake an earlier `task.updated` would let the retried update
    re-create the deleted task. The engine raises only for failures worth retrying, so
    the wait is for Vikunja or Taskwarrior to recover, not for a bad payload.
    """

    name = "vikunja-apply"

    def __init__(self, store: Store, engine: Engine, on_crash: Callable[[], None]) -> None:
        super().__init__(on_crash)
        self._store = store
        self._engine = engine
        self._wake = threading.Event()
        self._blocked: tuple[int, float] | None = None  # (entry id, monotonic time of its next try)

    def wake(self) -> None:
        """Called by the HTTP handler after it stored an entry."""
        self._wake.set()

    def stop(self) -> None:
        super().stop()
        self._wake.set()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()  # before looking, so an entry stored meanwhile is not slept through
            try:
                entry = self._store.next_inbox(now=math.inf)  # the oldest entry, whether due or not
                if entry is None:
                    self._wake.wait()
                    continue
                pause = self._pause_before(entry)
                if pause > 0:
                    self._wake.wait(pause)
                    continue
                self._apply(entry)
            except Exception:
                log.exception("inbox worker: the state database failed; retrying in 5 s")
                self._wake.wait(5.0)

    def _pause_before(self, entry: InboxEntry) -> float:
        """Seconds until `entry` may be tried; after a restart a failed entry is tried at once."""
        if self._blocked is None or self._blocked[0] != entry.id:
            return 0.0
        return self._blocked[1] - time.monotonic()

    def _apply(self, entry: InboxEntry) -> None:
        try:
            outcome = self._engine.apply_inbox_entry(entry)
        except Exception as exc:  # noqa: BLE001 - the engine raises exactly for failures worth retrying
            delay = retry_delay(entry.attempts)
            log.warning(
                "inbox #%d failed (attempt %d): %s: %s; retrying in %.0f s",
                entry.id,
                entry.attempts + 1,
                type(exc).__name__,
                exc,
                delay,
            )
            self._store.inbox_retry(entry.id, f"{type(exc).__name__}: {exc}", delay)
            self._blocked = (entry.id, time.monotonic() + delay)
            return
        self._blocked = None
        self._store.inbox_done(entry.id)
        if outcome.success:
            log.info("inbox #%d applied: %s", entry.id, outcome.action)
        else:  # the engine judged it not worth retrying
            log.warning("inbox #%d dropped: %s", entry.id, outcome.as_dict())


class DrainWorker(_Worker):
    """Pushes the outbox at start, on every wake datagram and every `interval` seconds."""

    name = "vikunja-drain"

    def __init__(
        self,
        engine: Engine,
        wake_socket: socket.socket,
        interval: float,
        retry_interval: float,
        on_crash: Callable[[], None],
    ) -> None:
        super().__init__(on_crash)
        self._engine = engine
        self._sock = wake_socket
        self._interval = interval
        self._retry_interval = min(interval, retry_interval)

    def stop(self) -> None:
        super().stop()
        # A datagram of our own wakes the select; if the queue is full, it is readable anyway.
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as poke:
            poke.setblocking(False)
            try:
                poke.sendto(b"stop", self._sock.getsockname())
            except OSError:
                pass

    def _run(self) -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(self._sock, selectors.EVENT_READ)
            next_at = time.monotonic()  # one drain at start
            while not self._stopping.is_set():
                ready = sel.select(max(0.0, next_at - time.monotonic()))
                if self._stopping.is_set():
                    return
                if not ready and time.monotonic() < next_at:
                    continue
                self._swallow_wakes()
                next_at = time.monotonic() + self._drain_once()

    def _swallow_wakes(self) -> None:
        """Consume every queued datagram: all of them are answered by the one drain that follows."""
        while True:
            try:
                self._sock.recv(64)
            except (BlockingIOError, InterruptedError):
                return

    def _drain_once(self) -> float:
        """Drain; the seconds until the next periodic drain (sooner when something was left)."""
        try:
            report = self._engine.drain(wait=True)
        except Exception as exc:  # noqa: BLE001 - the outbox keeps the entries; the next drain retries
            log.warning("outbox drain failed: %s: %s", type(exc).__name__, exc)
            return self._retry_interval
        if report.pushed or report.remaining:
            log.info("outbox drain: %d pushed, %d remaining", report.pushed, report.remaining)
        return self._retry_interval if report.remaining else self._interval
