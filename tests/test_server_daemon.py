"""`serve` as a real subprocess: sd_notify, socket activation, signals, the wake socket and the workers.

The daemon runs with `RecordingEngine` (below) in place of the sync engine, so
these tests pin the daemon's own contract (when it drains, how it applies and
retries, how it stops) independently of what a drain or an apply does. The
engine is imported by the daemon process from this very file.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from vikunja_sync.daemon import retry_delay
from vikunja_sync.store import InboxEntry, Store

SECRET = "daemon-test-secret"
TESTS_DIR = Path(__file__).resolve().parent
WAIT = 30.0  # generous upper bound for anything to happen; never asserted as a duration

LAUNCHER = r"""
import logging, os, sys
sys.path.insert(0, os.environ["TESTS_DIR"])
logging.basicConfig(level=logging.DEBUG, stream=sys.stderr,
                    format="%(asctime)s %(threadName)s %(levelname)s %(name)s: %(message)s")
from test_server_daemon import RecordingEngine
from vikunja_sync.config import load_settings
from vikunja_sync.server import serve
sys.exit(serve(load_settings(), os.environ.get("SERVE_LISTEN") or None, False, RecordingEngine.from_environment))
"""

# Puts the socket on fd 3 and sets LISTEN_PID to the pid that will run the daemon: exec keeps the pid.
ACTIVATOR = r"""
import os, sys
fd, pid = int(sys.argv[1]), sys.argv[2]
if fd != 3:
    os.dup2(fd, 3)
    os.close(fd)
os.environ["LISTEN_FDS"] = "1"
os.environ["LISTEN_PID"] = str(os.getpid()) if pid == "self" else pid
os.execv(sys.executable, [sys.executable, "-c", sys.argv[3]])
"""


# --- the engine the daemon process runs -------------------------------------------


@dataclass
class _Report:
    pushed: int = 0
    remaining: int = 0


@dataclass
class _Outcome:
    success: bool
    action: str

    def as_dict(self) -> dict[str, Any]:
        return {"success": self.success, "action": self.action}


class RecordingEngine:
    """Writes every call as a JSON line to $RECORD_FILE.

    While `$CONTROL_DIR/hold-drain` (or `hold-apply`) exists, a drain (an apply) waits
    after recording its start. A task whose `fail_attempts` is N fails its first N tries,
    and any try while `$CONTROL_DIR/fail-<task id>` exists.
    """

    _lock = threading.Lock()

    def __init__(self, record_file: Path, control: Path) -> None:
        self.record_file = record_file
        self.control = control
        self._record("engine", env={k: os.environ.get(k) for k in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")})

    @classmethod
    def from_environment(cls) -> RecordingEngine:
        return cls(Path(os.environ["RECORD_FILE"]), Path(os.environ["CONTROL_DIR"]))

    def _record(self, event: str, **fields: Any) -> None:
        line = json.dumps(
            {"event": event, "t": time.time(), "pid": os.getpid(), "thread": threading.current_thread().name, **fields}
        )
        with self._lock, self.record_file.open("a") as fh:
            fh.write(line + "\n")

    def _hold(self, kind: str) -> None:
        while (self.control / f"hold-{kind}").exists():
            time.sleep(0.01)

    def drain(self, wait: bool = True) -> _Report:
        self._record("drain-start", wait=wait)
        self._hold("drain")
        self._record("drain-end")
        return _Report()

    def apply_inbox_entry(self, entry: InboxEntry) -> _Outcome:
        task = json.loads(entry.body)["data"]["task"]
        self._record("apply-start", inbox=entry.id, task=task["id"], attempts=entry.attempts)
        self._hold("apply")
        if entry.attempts < task.get("fail_attempts", 0) or (self.control / f"fail-{task['id']}").exists():
            self._record("apply-fail", inbox=entry.id, task=task["id"])
            raise RuntimeError("simulated failure")
        self._record("apply-end", inbox=entry.id, task=task["id"])
        return _Outcome(True, "updated")

    def close(self) -> None:
        self._record("close")


# --- driving the daemon process -----------------------------------------------------


def envelope(task_id: int, **task: Any) -> bytes:
    return json.dumps({"event_name": "task.updated", "data": {"task": {"id": task_id, **task}}}).encode()


class NotifyListener:
    """Plays systemd's side of sd_notify on a datagram socket (a path, or abstract)."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.sock.settimeout(WAIT)
        self.messages: list[str] = []

    def wait_for(self, key: str) -> dict[str, str]:
        """Fields of the first message (in arrival order) carrying `key`."""
        while True:
            for message in self.messages:
                fields = dict(line.split("=", 1) for line in message.splitlines() if "=" in line)
                if key in fields:
                    return fields
            self.messages.append(self.sock.recv(4096).decode())


@dataclass
class DaemonProcess:
    proc: subprocess.Popen
    root: Path
    notify: NotifyListener
    port: int = 0

    @property
    def record_file(self) -> Path:
        return self.root / "records.jsonl"

    @property
    def wake_path(self) -> Path:
        return self.root / "state" / "wake.sock"

    @property
    def store(self) -> Store:
        return Store(self.root / "state" / "sync.sqlite3")

    def hold(self, kind: str) -> None:
        (self.root / "control" / f"hold-{kind}").touch()

    def release(self, kind: str) -> None:
        (self.root / "control" / f"hold-{kind}").unlink()

    def wait_ready(self) -> None:
        status = self.notify.wait_for("READY")["STATUS"]
        self.port = int(status.rsplit(":", 1)[1].split("/")[0])

    def records(self, event: str | None = None) -> list[dict[str, Any]]:
        if not self.record_file.exists():
            return []
        lines = [json.loads(line) for line in self.record_file.read_text().splitlines()]
        return [r for r in lines if event is None or r["event"] == event]

    def wait_until(self, condition: Callable[[], Any], what: str) -> Any:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if value := condition():
                return value
            assert self.proc.poll() is None, f"daemon exited ({self.proc.returncode}) waiting for {what}"
            time.sleep(0.02)
        raise AssertionError(f"timed out waiting for {what}; records: {self.records()}")

    def wait_records(self, event: str, count: int) -> list[dict[str, Any]]:
        return self.wait_until(lambda: (r := self.records(event)) and len(r) >= count and r, f"{count} × {event}")

    def wake(self) -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(b"wake", str(self.wake_path))

    def post(self, body: bytes) -> int:
        digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        with socket.create_connection(("127.0.0.1", self.port), timeout=WAIT) as sock:
            sock.sendall(
                b"POST /webhook HTTP/1.0\r\nContent-Type: application/json\r\n"
                + f"X-Vikunja-Signature: {digest}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            return int(sock.makefile("rb").readline().split()[1])

    def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=WAIT)


@pytest.fixture
def root() -> Iterator[Path]:
    """A short directory: UNIX socket paths must stay under 108 bytes."""
    with tempfile.TemporaryDirectory(prefix="vsd-", dir="/tmp") as directory:
        path = Path(directory)
        (path / "control").mkdir()
        (path / "secret").write_text(SECRET)
        yield path


def daemon_env(root: Path, drain_interval: float = 3600, **extra: str) -> dict[str, str]:
    config = root / "config.toml"
    config.write_text(f"[push]\ndrain_interval = {drain_interval}\n")
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(root),
        "VIKUNJA_SYNC_CONFIG": str(config),
        "VIKUNJA_SYNC_STATE_DIR": str(root / "state"),
        "VIKUNJA_WEBHOOK_SECRET_FILE": str(root / "secret"),
        "NOTIFY_SOCKET": str(root / "notify.sock"),
        "RECORD_FILE": str(root / "records.jsonl"),
        "CONTROL_DIR": str(root / "control"),
        "TESTS_DIR": str(TESTS_DIR),
        "SERVE_LISTEN": "127.0.0.1:0",
        **extra,
    }


@pytest.fixture
def start(root) -> Iterator[Callable[..., DaemonProcess]]:
    started: list[DaemonProcess] = []

    def launch(argv: list[str] | None = None, pass_fds: tuple[int, ...] = (), ready: bool = True, **env_args: Any):
        env = daemon_env(root, **env_args)
        notify = NotifyListener(env["NOTIFY_SOCKET"])
        stderr = (root / f"daemon{len(started)}.log").open("wb")
        proc = subprocess.Popen(
            argv or [sys.executable, "-c", LAUNCHER],
            env=env,
            pass_fds=pass_fds,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
        )
        stderr.close()
        daemon = DaemonProcess(proc, root, notify)
        started.append(daemon)
        if ready:
            daemon.wait_ready()
        return daemon

    yield launch
    for daemon in started:
        if daemon.proc.poll() is None:
            daemon.proc.kill()
            daemon.proc.wait()
        daemon.notify.sock.close()
        sys.stderr.write((root / f"daemon{started.index(daemon)}.log").read_text(errors="replace")[-4000:])


def health(port: int) -> dict[str, Any]:
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
        sock.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
        data = b"".join(iter(lambda: sock.recv(65536), b""))
    return json.loads(data.partition(b"\r\n\r\n")[2])


# --- lifecycle ----------------------------------------------------------------------


def test_ready_then_sigterm_stops_cleanly(start):
    daemon = start()
    assert daemon.notify.wait_for("READY") == {
        "READY": "1",
        "STATUS": f"listening on http://127.0.0.1:{daemon.port}/webhook",
    }
    assert health(daemon.port)["status"] == "ok"
    assert stat.S_ISSOCK(daemon.wake_path.stat().st_mode)
    assert stat.S_IMODE(daemon.wake_path.stat().st_mode) == 0o600
    assert daemon.terminate() == 0
    assert daemon.notify.wait_for("STOPPING") == {"STOPPING": "1"}
    assert not daemon.wake_path.exists()  # hooks now see no daemon and fall back to their own drain
    assert len(daemon.records("close")) == 2  # one engine per worker, both closed
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", daemon.port), timeout=WAIT)


def test_sigint_stops_cleanly_too(start):
    daemon = start()
    daemon.proc.send_signal(signal.SIGINT)
    assert daemon.proc.wait(timeout=WAIT) == 0
    assert daemon.notify.wait_for("STOPPING") == {"STOPPING": "1"}


def test_notify_socket_in_the_abstract_namespace(start):
    daemon = start(NOTIFY_SOCKET=f"@vikunja-sync-test-{os.getpid()}-{time.monotonic_ns()}")
    assert daemon.notify.wait_for("READY")["READY"] == "1"
    assert daemon.terminate() == 0


def test_stale_wake_socket_is_replaced_and_a_live_one_refused(start, root):
    (root / "state").mkdir(mode=0o700)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    stale.bind(str(root / "state" / "wake.sock"))
    stale.close()  # the file stays behind, as after a crash
    first = start()
    first.wake()  # the new socket is live
    second = start(ready=False, NOTIFY_SOCKET=str(root / "notify2.sock"))
    assert second.proc.wait(timeout=WAIT) == 1
    assert "another daemon" in (root / "daemon1.log").read_text()
    assert first.proc.poll() is None and first.wake_path.exists()
    assert first.terminate() == 0


# --- socket activation --------------------------------------------------------------


def _listening_socket() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def test_socket_activation_uses_fd_3_and_ignores_listen(start):
    activated, occupied = _listening_socket(), _listening_socket()
    port = activated.getsockname()[1]
    with activated, occupied:
        # --listen names a port that is taken: starting at all proves it was not used.
        daemon = start(
            [sys.executable, "-c", ACTIVATOR, str(activated.fileno()), "self", LAUNCHER],
            pass_fds=(activated.fileno(),),
            SERVE_LISTEN=f"127.0.0.1:{occupied.getsockname()[1]}",
        )
    assert daemon.port == port
    assert health(port)["status"] == "ok"
    assert daemon.post(envelope(5)) == 202
    engines = daemon.records("engine")
    assert [e["env"] for e in engines] == [{"LISTEN_PID": None, "LISTEN_FDS": None, "LISTEN_FDNAMES": None}] * 2
    assert daemon.terminate() == 0


def test_socket_activation_for_another_pid_is_ignored(start):
    activated = _listening_socket()
    port = activated.getsockname()[1]
    with activated:
        daemon = start(
            [sys.executable, "-c", ACTIVATOR, str(activated.fileno()), "1", LAUNCHER],
            pass_fds=(activated.fileno(),),
        )
    assert daemon.port != port  # bound SERVE_LISTEN (an ephemeral port) instead
    assert health(daemon.port)["status"] == "ok"
    assert daemon.records("engine")[0]["env"]["LISTEN_PID"] is None
    assert daemon.terminate() == 0


# --- drain worker -------------------------------------------------------------------


def test_drains_at_start_and_on_each_wake_datagram(start):
    daemon = start()
    daemon.wait_records("drain-end", 1)
    daemon.wake()
    daemon.wait_records("drain-end", 2)
    daemon.wake()
    daemon.wait_records("drain-end", 3)
    assert all(r["wait"] is True for r in daemon.records("drain-start"))
    assert daemon.terminate() == 0


def test_wakes_during_a_drain_cause_exactly_one_more_drain(start):
    daemon = start()
    daemon.wait_records("drain-end", 1)
    daemon.hold("drain")
    daemon.wake()
    daemon.wait_records("drain-start", 2)  # drain 2 is now held
    for _ in range(5):
        daemon.wake()
    daemon.release("drain")
    daemon.wait_records("drain-end", 3)
    daemon.wake()  # a marker: its drain must be number 4, so no fifth or sixth drain came between
    daemon.wait_records("drain-end", 4)
    assert daemon.terminate() == 0
    events = [r["event"] for r in daemon.records() if r["event"].startswith("drain")]
    assert events == ["drain-start", "drain-end"] * 4


def test_drains_every_interval_without_wakes(start):
    daemon = start(drain_interval=1)
    daemon.wait_records("drain-end", 3)
    assert daemon.terminate() == 0


# --- apply worker -------------------------------------------------------------------


def test_webhooks_are_applied_in_order_and_leave_the_inbox(start):
    daemon = start()
    for task_id in (1, 2, 3):
        assert daemon.post(envelope(task_id)) == 202
    ends = daemon.wait_records("apply-end", 3)
    assert [r["task"] for r in ends] == [1, 2, 3]
    daemon.wait_until(lambda: daemon.store.inbox_depth() == 0, "an empty inbox")
    assert {r["thread"] for r in daemon.records("apply-start")} == {"vikunja-apply"}
    assert daemon.terminate() == 0


def test_entries_stored_before_start_are_applied(start, root):
    store = Store(root / "state" / "sync.sqlite3")
    store.receive(envelope(9))
    daemon = start()
    assert [r["task"] for r in daemon.wait_records("apply-end", 1)] == [9]
    daemon.wait_until(lambda: daemon.store.inbox_depth() == 0, "an empty inbox")
    assert daemon.terminate() == 0


def test_a_failing_entry_is_retried_with_backoff_and_keeps_its_place(start):
    daemon = start()
    assert daemon.post(envelope(10, fail_attempts=2)) == 202
    assert daemon.post(envelope(11)) == 202
    daemon.wait_until(lambda: _applied(daemon, 11), "task 11 applied")
    applies = [r for r in daemon.records() if r["event"].startswith("apply")]
    assert [(r["event"], r["task"], r.get("attempts")) for r in applies] == [
        ("apply-start", 10, 0),
        ("apply-fail", 10, None),
        ("apply-start", 10, 1),
        ("apply-fail", 10, None),
        ("apply-start", 10, 2),
        ("apply-end", 10, None),
        ("apply-start", 11, 0),  # strictly in order: 11 waited for 10
        ("apply-end", 11, None),
    ]
    # Backoff lower bounds (the retry is scheduled after the failure was recorded): 1 s, then 2 s.
    assert applies[2]["t"] - applies[1]["t"] >= retry_delay(0) == 1
    assert applies[4]["t"] - applies[3]["t"] >= retry_delay(1) == 2
    daemon.wait_until(lambda: daemon.store.inbox_depth() == 0, "an empty inbox")
    assert daemon.terminate() == 0


def test_a_failed_entry_keeps_its_attempts_across_a_restart(start, root):
    (root / "control" / "fail-12").touch()
    daemon = start()
    assert daemon.post(envelope(12)) == 202
    daemon.wait_records("apply-fail", 1)
    assert daemon.terminate() == 0
    failures = len(daemon.records("apply-fail"))
    assert daemon.store.next_inbox(now=float("inf")).attempts == failures
    (root / "control" / "fail-12").unlink()
    restarted = start(NOTIFY_SOCKET=str(root / "notify2.sock"))
    [end] = restarted.wait_records("apply-end", 1)
    last_start = restarted.records("apply-start")[-1]
    assert (end["task"], end["pid"]) == (12, restarted.proc.pid)
    assert (last_start["pid"], last_start["attempts"]) == (restarted.proc.pid, failures)
    assert restarted.terminate() == 0


def _applied(daemon: DaemonProcess, task_id: int) -> list[dict[str, Any]] | None:
    records = daemon.records()
    done = any(r["event"] == "apply-end" and r["task"] == task_id for r in records)
    return [r for r in records if r["event"].startswith("apply")] if done else None


def test_sigterm_lets_the_entry_in_hand_finish(start):
    daemon = start()
    daemon.hold("apply")
    assert daemon.post(envelope(20)) == 202
    assert daemon.post(envelope(21)) == 202
    daemon.wait_records("apply-start", 1)
    daemon.proc.send_signal(signal.SIGTERM)
    daemon.notify.wait_for("STOPPING")
    with pytest.raises(ConnectionRefusedError):  # no longer accepting
        socket.create_connection(("127.0.0.1", daemon.port), timeout=WAIT)
    daemon.release("apply")
    assert daemon.proc.wait(timeout=WAIT) == 0
    assert [(r["event"], r["task"]) for r in daemon.records() if r["event"].startswith("apply")] == [
        ("apply-start", 20),
        ("apply-end", 20),
    ]
    bodies = [json.loads(e.body) for e in [daemon.store.next_inbox(now=float("inf"))]]
    assert [b["data"]["task"]["id"] for b in bodies] == [21]  # still queued for the next start
    assert daemon.store.inbox_depth() == 1


def test_retry_delay_doubles_up_to_five_minutes():
    assert [retry_delay(n) for n in range(10)] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300]
    assert retry_delay(10_000) == 300


# --- through the real command line ---------------------------------------------------


def test_cli_refuses_a_public_address_without_a_secret(root):
    env = daemon_env(root)
    del env["VIKUNJA_WEBHOOK_SECRET_FILE"]
    env["VIKUNJA_URL"] = "http://127.0.0.1:9"
    result = subprocess.run(
        [sys.executable, "-m", "vikunja_sync", "serve", "--listen", "0.0.0.0:0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "--insecure" in result.stderr
    assert not (root / "state" / "wake.sock").exists()


def test_cli_rejects_a_malformed_listen_address(root):
    result = subprocess.run(
        [sys.executable, "-m", "vikunja_sync", "serve", "--listen", "::1:8765"],
        env=daemon_env(root),
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )
    assert result.returncode == 2
    assert "[IPv6]:PORT" in result.stderr or "brackets" in result.stderr
