"""`vikunja-direct serve`: the webhook HTTP endpoint, and the daemon composing it with the workers.

Routes (paths are compared exactly as sent: no percent-decoding, no dot-segment
folding, so `/`, `/webhook/` and `/webhook/../x` are 404; a query string is ignored,
so `/webhook?x=1` is the webhook):

* ``POST <webhook_path>``: a Vikunja webhook. Checks run cheapest-first and nothing
  is stored unless all pass: Content-Length present (411) and at most 1 MiB (413,
  decided before reading a byte); signature (401); Content-Type application/json
  (415); a JSON object with ``event_name`` and ``data`` (400). ``task.created`` /
  ``task.updated`` / ``task.deleted`` are committed to the inbox, *then* answered 202;
  other events are answered 202 and dropped.
* ``GET /healthz``: breaker state and inbox/outbox depths as JSON.

Vikunja keeps an undelivered webhook only in memory for seconds, so the answer must
mean "on disk". Applying is left to the apply worker (`vikunja_sync.daemon`).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import re
import signal
import socket
import socketserver
import sqlite3
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from vikunja_sync.breaker import CircuitBreaker, state_as_dict
from vikunja_sync.config import ConfigError, Settings
from vikunja_sync.daemon import (
    ApplyWorker,
    DrainWorker,
    Engine,
    EngineFactory,
    Waker,
    bind_wake_socket,
    sd_notify,
    systemd_listen_socket,
    unlink_if_ours,
)
from vikunja_sync.store import Store

log = logging.getLogger(__name__)

MAX_BODY = 1 << 20
HEALTH_PATH = "/healthz"
SIGNATURE_HEADER = "X-Vikunja-Signature"
STORED_EVENTS = ("task.created", "task.updated", "task.deleted")
REQUEST_TIMEOUT = 10.0
LINGER_SECONDS = 2.0
LINGER_BYTES = 8 << 20
_LISTEN = re.compile(r"(?:\[(?P<v6>[^\]]+)\]|(?P<host>[^:\[\]]+)):(?P<port>[0-9]{1,5})")
_CONTENT_LENGTH = re.compile(r"[0-9]{1,19}")


class BadPayload(Exception):
    """The body is not a webhook envelope we accept (answered 400)."""


class HTTPError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


# --- pure checks ----------------------------------------------------------------


def parse_listen(text: str) -> tuple[str, int]:
    """HOST:PORT or [IPv6]:PORT with an IP literal (or `localhost`); ConfigError otherwise."""
    match = _LISTEN.fullmatch(text.strip())
    if not match or int(match["port"]) > 65535:
        raise ConfigError(f"listen address {text!r} is not HOST:PORT or [IPv6]:PORT; write e.g. 127.0.0.1:8765")
    host = match["v6"] or match["host"]
    if host == "localhost":
        return "127.0.0.1", int(match["port"])
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(f"listen host {host!r} is not an IP address; write e.g. 127.0.0.1:8765") from None
    if (ip.version == 6) != bool(match["v6"]):
        raise ConfigError(f"listen address {text!r}: write IPv6 addresses in brackets, e.g. [::1]:8765")
    return host, int(match["port"])


def is_loopback(host: str) -> bool:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


def check_exposure(host: str, secret: str | None, insecure: bool) -> None:
    """Without a secret anyone who reaches the port can rewrite tasks: allow that only on loopback."""
    if secret is not None:
        return
    if not is_loopback(host) and not insecure:
        raise ConfigError(
            f"no webhook secret configured, so refusing to listen on non-loopback {host}: set "
            "VIKUNJA_WEBHOOK_SECRET_FILE or webhook.secret_file (or pass --insecure to accept unsigned webhooks)"
        )
    log.warning("no webhook secret configured: webhook signatures are NOT checked")


def signature(secret: bytes, body: bytes) -> str:
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def parse_payload(body: bytes) -> str:
    """The event name of a well-formed webhook envelope; BadPayload says what is wrong."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        raise BadPayload("body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise BadPayload("body must be a JSON object")
    event = payload.get("event_name")
    if not isinstance(event, str) or not event:
        raise BadPayload("event_name must be a non-empty string")
    data = payload.get("data")
    if not isinstance(data, dict):
        raise BadPayload("data must be an object")
    if event.startswith("task."):
        task = data.get("task")
        if not isinstance(task, dict):
            raise BadPayload("data.task must be an object")
        task_id = task.get("id")
        if not isinstance(task_id, int) or isinstance(task_id, bool) or task_id < 1:
            raise BadPayload("data.task.id must be a positive integer")
    return event


# --- HTTP ---------------------------------------------------------------------


class WebhookHandler(BaseHTTPRequestHandler):
    server: WebhookServer
    timeout = REQUEST_TIMEOUT
    server_version = "vikunja-sync"
    sys_version = ""

    def __getattr__(self, name: str) -> Any:
        # Every method reaches the router, so unknown ones get 404/405 rather than 501.
        if name.startswith("do_"):
            return self._dispatch
        raise AttributeError(name)

    def _dispatch(self) -> None:
        self._body_read = False
        path = self.path.partition("?")[0]
        headers: dict[str, str] = {}
        try:
            status, payload = self._route(path)
        except HTTPError as exc:
            status, payload, headers = exc.status, {"error": exc.message}, exc.headers
            if path == self.server.webhook_path:
                log.warning("webhook from %s rejected: %d %s", self.client_address[0], status, exc.message)
        except Exception:
            log.exception("%s %s failed", self.command, path)
            status, payload = 500, {"error": "internal error"}
        self._reply(status, payload, headers)

    def _route(self, path: str) -> tuple[int, dict[str, Any]]:
        if path == self.server.webhook_path:
            if self.command != "POST":
                raise HTTPError(405, "use POST", {"Allow": "POST"})
            return self._webhook()
        if path == HEALTH_PATH:
            if self.command != "GET":
                raise HTTPError(405, "use GET", {"Allow": "GET"})
            return 200, self.server.health()
        raise HTTPError(404, "not found")

    def _webhook(self) -> tuple[int, dict[str, Any]]:
        body = self._read_body()
        self._check_signature(body)
        self._check_content_type()
        try:
            event = parse_payload(body)
        except BadPayload as exc:
            raise HTTPError(400, str(exc)) from None
        if event not in STORED_EVENTS:
            log.debug("webhook event %r is not synced; ignored", event)
            return 202, {"accepted": False, "ignored": event}
        try:
            inbox_id = self.server.store.receive(body)
        except (sqlite3.Error, OSError) as exc:
            log.error("cannot store a webhook in the inbox: %s: %s", type(exc).__name__, exc)
            raise HTTPError(503, "inbox unavailable; retry later") from None
        self.server.notify_stored()
        log.info("webhook %s stored as inbox #%d", event, inbox_id)
        return 202, {"accepted": True, "inbox_id": inbox_id}

    def _read_body(self) -> bytes:
        if "Transfer-Encoding" in self.headers:
            raise HTTPError(411, "send the body with a Content-Length, not chunked")
        values = {v.strip() for v in self.headers.get_all("Content-Length") or []}
        if not values:
            raise HTTPError(411, "Content-Length required")
        value = values.pop()
        if values or not _CONTENT_LENGTH.fullmatch(value):
            raise HTTPError(400, "bad Content-Length")
        length = int(value)
        if length > MAX_BODY:
            raise HTTPError(413, f"body larger than {MAX_BODY} bytes")
        body = self.rfile.read(length)
        if len(body) < length:
            raise HTTPError(400, "body shorter than its Content-Length")
        self._body_read = True
        return body

    def _check_signature(self, body: bytes) -> None:
        secret = self.server.secret
        if secret is None:
            return
        given = self.headers.get_all(SIGNATURE_HEADER) or []
        expected = signature(secret, body).encode()
        if len(given) != 1 or not hmac.compare_digest(expected, given[0].strip().lower().encode("latin-1", "replace")):
            raise HTTPError(401, f"missing or wrong {SIGNATURE_HEADER}")

    def _check_content_type(self) -> None:
        if "Content-Type" not in self.headers or self.headers.get_content_type() != "application/json":
            raise HTTPError(415, "Content-Type must be application/json")
        if self.headers.get_content_charset() not in (None, "utf-8", "utf8"):
            raise HTTPError(415, "JSON must be UTF-8")

    def _reply(self, status: int, payload: dict[str, Any], headers: dict[str, str]) -> None:
        data = json.dumps(payload).encode()
        unread = not self._body_read and (
            "Transfer-Encoding" in self.headers or self.headers.get("Content-Length", "0").strip() != "0"
        )
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Connection", "close")
        self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        if unread:
            self._linger()

    def _linger(self) -> None:
        """Discard (never keep) a body we refused, so the client reads our answer instead of a reset."""
        deadline = time.monotonic() + LINGER_SECONDS
        left = LINGER_BYTES
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            while left > 0 and (remaining := deadline - time.monotonic()) > 0:
                self.connection.settimeout(remaining)
                chunk = self.rfile.read1(min(left, 1 << 16))
                if not chunk:
                    return
                left -= len(chunk)
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)


class WebhookServer(ThreadingHTTPServer):
    """The HTTP side alone: stores accepted webhooks and calls `on_stored`; applies nothing."""

    daemon_threads = True
    request_queue_size = 64

    def __init__(
        self,
        address: tuple[str, int],
        store: Store,
        breaker: CircuitBreaker,
        secret: str | None = None,
        webhook_path: str = "/webhook",
        on_stored: Callable[[], None] | None = None,
        sock: socket.socket | None = None,
    ) -> None:
        if not webhook_path.startswith("/") or webhook_path == HEALTH_PATH or "?" in webhook_path:
            raise ConfigError(f"webhook path {webhook_path!r} must start with / and differ from {HEALTH_PATH}")
        self.store = store
        self.breaker = breaker
        self.secret = secret.encode() if secret is not None else None
        self.webhook_path = webhook_path
        self._on_stored = on_stored
        if sock is None:
            self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
            super().__init__(address, WebhookHandler)
            return
        self.address_family = sock.family
        super().__init__(sock.getsockname()[:2], WebhookHandler, bind_and_activate=False)
        self.socket.close()
        self.socket = sock
        self.server_address = sock.getsockname()
        self.server_name, self.server_port = self.server_address[:2]
        sock.listen(self.request_queue_size)

    def server_bind(self) -> None:
        # HTTPServer.server_bind would resolve our own name (getfqdn): a DNS wait for nothing.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def notify_stored(self) -> None:
        if self._on_stored is not None:
            self._on_stored()

    def health(self) -> dict[str, Any]:
        return {
            "status": "ok",
            "breaker": state_as_dict(self.breaker.snapshot()),
            "inbox": self.store.inbox_depth(),
            "outbox": self.store.outbox_depth(),
        }


# --- the daemon ---------------------------------------------------------------


def sync_engine_factory(settings: Settings) -> EngineFactory:
    """Engines from the real sync module, imported only when the first engine is made.

    It pulls in `requests`, and the daemon's own checks (listen address, secret) should
    answer before that.
    """

    def make() -> Engine:
        from vikunja_sync.sync import engine_from_settings

        return engine_from_settings(settings)

    return make


class Daemon:
    """HTTP server + apply worker + drain worker + wake socket, until SIGTERM/SIGINT.

    With ``engine_factory=None`` only the HTTP side runs (webhooks are stored, not
    applied, and no wake socket is bound, so hooks fall back to their own drain).
    Each worker gets its own engine from the factory, used by that thread alone.
    """

    def __init__(
        self,
        settings: Settings,
        listen: str | None = None,
        insecure: bool = False,
        engine_factory: EngineFactory | None = None,
        stop_grace: float = 10.0,
    ) -> None:
        self.settings = settings
        self._listen = parse_listen(listen or settings.webhook_listen)
        self._insecure = insecure
        self._factory = engine_factory
        self._stop_grace = stop_grace
        self._stop = Waker()
        self._crashed = False
        self._activated: socket.socket | None = None
        self._wake: tuple[socket.socket, Path, int] | None = None
        self._workers: list[tuple[ApplyWorker | DrainWorker, Engine]] = []
        self.httpd: WebhookServer | None = None

    @property
    def address(self) -> tuple[str, int]:
        if self.httpd is None:
            raise RuntimeError("the daemon is not listening")
        return self.httpd.server_address[:2]

    def start(self) -> None:
        """Bind, start the threads, tell systemd READY=1; raises (and releases everything) on failure."""
        try:
            self._start()
        except BaseException:
            self._release()
            self._stop.close()
            raise
        host, port = self.address
        where = f"http://{f'[{host}]' if ':' in host else host}:{port}{self.settings.webhook_path}"
        log.info("listening on %s%s", where, "" if self._workers else " (HTTP only: nothing is applied)")
        sd_notify(f"READY=1\nSTATUS=listening on {where}")

    def _start(self) -> None:
        secret = self.settings.read_webhook_secret()
        self._activated = systemd_listen_socket()
        if self._activated is not None:
            log.info("using the listening socket passed by systemd (fd 3); --listen is ignored")
        check_exposure(self._activated.getsockname()[0] if self._activated else self._listen[0], secret, self._insecure)
        store = Store(self.settings.database)
        breaker = CircuitBreaker(
            self.settings.state_dir, self.settings.failure_threshold, self.settings.recovery_timeout
        )
        apply_worker = self._make_workers(store)
        self.httpd = WebhookServer(
            self._listen,
            store,
            breaker,
            secret=secret,
            webhook_path=self.settings.webhook_path,
            on_stored=apply_worker.wake if apply_worker else None,
            sock=self._activated,
        )
        for worker, _ in self._workers:
            worker.start()
        threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2}, name="vikunja-http", daemon=True
        ).start()

    def _make_workers(self, store: Store) -> ApplyWorker | None:
        if self._factory is None:
            return None
        path = self.settings.outbox_wake_socket
        wake_sock = bind_wake_socket(path)
        self._wake = (wake_sock, path, path.stat().st_ino)
        apply_engine = self._factory()
        apply_worker = ApplyWorker(store, apply_engine, self._on_crash)
        self._workers.append((apply_worker, apply_engine))
        drain_engine = self._factory()
        retry = max(1.0, self.settings.recovery_timeout)
        drain_worker = DrainWorker(drain_engine, wake_sock, self.settings.drain_interval, retry, self._on_crash)
        self._workers.append((drain_worker, drain_engine))
        return apply_worker

    def _release(self) -> None:
        """Close what the daemon holds; an engine only once its worker has returned."""
        if self.httpd is not None:
            self.httpd.server_close()
        elif self._activated is not None:
            self._activated.close()
        for worker, engine in self._workers:
            if not worker.alive:
                engine.close()
        if self._wake is not None:
            sock, path, inode = self._wake
            unlink_if_ours(path, inode)  # first: from now on hooks see no daemon and drain themselves
            sock.close()

    def stop(self) -> None:
        """Request shutdown; safe from a signal handler or any thread."""
        self._stop.wake()

    def _on_crash(self) -> None:
        self._crashed = True
        self._stop.wake()

    def wait(self) -> None:
        self._stop.wait()

    def shutdown(self) -> int:
        """Stop accepting, let the entries in hand finish (within the grace), release everything."""
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
        sd_notify("STOPPING=1")
        for worker, _ in self._workers:
            worker.stop()
        deadline = time.monotonic() + self._stop_grace
        for worker, _ in self._workers:
            if not worker.join(max(0.0, deadline - time.monotonic())):
                log.warning(
                    "%s still busy after %.0f s; exiting anyway (its work is redone on restart)",
                    worker.name,
                    self._stop_grace,
                )
        self._release()
        self._stop.close()
        log.info("stopped")
        return 1 if self._crashed else 0

    def run(self) -> int:
        """Start, block until SIGTERM/SIGINT (or a worker crash), shut down; the exit code."""
        previous = {sig: signal.signal(sig, lambda *_: self.stop()) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            self.start()
            try:
                self.wait()
            finally:
                log.info("shutting down")
                code = self.shutdown()
            return code
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def serve(settings: Settings, listen: str | None, insecure: bool, engine_factory: EngineFactory | None = None) -> int:
    """`vikunja-direct serve`: run the daemon until SIGTERM; ConfigError for a bad or unsafe listen address."""
    daemon = Daemon(settings, listen, insecure, engine_factory or sync_engine_factory(settings))
    return daemon.run()
