"""The webhook HTTP endpoint over real loopback HTTP, with a real sqlite inbox.

Decisions pinned here: paths match exactly as sent (no decoding or dot-segment
folding), a query string is ignored (`/webhook?x=1` is the webhook), the signature
is compared case-insensitively as hex, and an accepted webhook is on disk before
its 202 leaves the server.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from vikunja_sync.breaker import CircuitBreaker
from vikunja_sync.config import ConfigError, load_settings
from vikunja_sync.server import MAX_BODY, Daemon, WebhookServer, is_loopback, parse_listen
from vikunja_sync.store import Store

SECRET = "s3cret-for-http-tests"


def sign(body: bytes, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def envelope(event: str = "task.updated", task_id: object = 7, **extra: object) -> bytes:
    data = {"task": {"id": task_id, "title": "t", "project_id": 1}, "doer": {"id": 1}, **extra}
    return json.dumps({"event_name": event, "time": "2026-01-01T00:00:00Z", "data": data}).encode()


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


def raw_request(
    port: int,
    method: str = "POST",
    path: str = "/webhook",
    body: bytes = b"",
    headers: dict[str, str] | list[tuple[str, str]] | None = None,
    content_length: bool = True,
    version: str = "HTTP/1.1",
    send_body: bool = True,
) -> Response:
    """One request on a fresh connection, bytes exactly as given; reads the answer to EOF."""
    items = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    if content_length:
        items.append(("Content-Length", str(len(body))))
    head = f"{method} {path} {version}\r\nHost: 127.0.0.1\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in items) + "\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(head.encode("latin-1") + (body if send_body else b""))
        if send_body:
            sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return parse_response(data)


def parse_response(data: bytes) -> Response:
    while True:
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        if status >= 200:
            break
        data = rest  # an interim 100 Continue
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Response(status, headers, rest)


def signed(body: bytes, **extra: str) -> dict[str, str]:
    return {"Content-Type": "application/json", "X-Vikunja-Signature": sign(body), **extra}


class Running:
    """A WebhookServer on an ephemeral loopback port, serving from a thread."""

    def __init__(self, root: Path, secret: str | None = SECRET) -> None:
        self.store = Store(root / "sync.sqlite3")
        self.breaker = CircuitBreaker(root, 3, 60)
        self.stored = threading.Event()
        self.httpd = WebhookServer(("127.0.0.1", 0), self.store, self.breaker, secret=secret, on_stored=self.stored.set)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def healthy(self) -> bool:
        return raw_request(self.port, "GET", "/healthz").status == 200


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory) -> Iterator[Running]:
    """One server for all Hypothesis examples (function fixtures are not reset between examples)."""
    running = Running(tmp_path_factory.mktemp("hypothesis"))
    yield running
    running.close()


@pytest.fixture
def server(tmp_path) -> Iterator[Running]:
    running = Running(tmp_path)
    yield running
    running.close()


# --- accepted -------------------------------------------------------------------


def test_signed_webhook_is_in_the_inbox_when_the_answer_arrives(server):
    body = envelope("task.updated", 42)
    resp = raw_request(server.port, body=body, headers=signed(body))
    assert resp.status == 202
    assert resp.headers["content-type"] == "application/json"
    depth = server.store.inbox_depth()  # read right after the answer, before anything else
    assert depth == 1
    assert resp.json() == {"accepted": True, "inbox_id": server.store.next_inbox().id}
    assert server.store.next_inbox().body == body
    assert server.stored.is_set()


@pytest.mark.parametrize("event", ["task.created", "task.updated", "task.deleted"])
def test_each_synced_event_is_stored_in_order(server, event):
    first, second = envelope(event, 1), envelope(event, 2)
    ids = [raw_request(server.port, body=b, headers=signed(b)).json()["inbox_id"] for b in (first, second)]
    assert ids[0] < ids[1]
    assert server.store.next_inbox().body == first


def test_exactly_one_mebibyte_is_accepted(server):
    base = envelope(pad="")
    body = envelope(pad="x" * (MAX_BODY - len(base)))
    assert len(body) == MAX_BODY
    assert raw_request(server.port, body=body, headers=signed(body)).status == 202
    assert server.store.inbox_depth() == 1


def test_charset_parameter_and_uppercase_hex_signature_are_accepted(server):
    body = envelope()
    headers = {"Content-Type": "Application/JSON; charset=UTF-8", "X-Vikunja-Signature": sign(body).upper()}
    assert raw_request(server.port, body=body, headers=headers).status == 202


def test_query_string_is_ignored(server):
    body = envelope()
    assert raw_request(server.port, path="/webhook?x=1", body=body, headers=signed(body)).status == 202
    assert server.store.inbox_depth() == 1


@pytest.mark.parametrize("event", ["project.updated", "task.comment.created", "tasks.overdue", "made.up"])
def test_unknown_or_unsynced_events_are_answered_202_and_not_stored(server, event):
    body = json.dumps({"event_name": event, "data": {"task": {"id": 3}, "tasks": []}}).encode()
    resp = raw_request(server.port, body=body, headers=signed(body))
    assert resp.status == 202
    assert resp.json()["accepted"] is False
    assert server.store.inbox_depth() == 0
    assert not server.stored.is_set()


# --- refused ----------------------------------------------------------------------

VALID = envelope()


def _cases() -> list[tuple[str, dict]]:
    """(name, request kwargs, expected status); every one must leave the inbox empty."""
    array = b"[1, 2, 3]"
    no_task = json.dumps({"event_name": "task.updated", "data": {"project": {"id": 1}}}).encode()
    no_data = json.dumps({"event_name": "task.updated"}).encode()
    no_event = json.dumps({"data": {"task": {"id": 1}}}).encode()
    event_not_str = json.dumps({"event_name": 5, "data": {"task": {"id": 1}}}).encode()
    task_list = json.dumps({"event_name": "task.updated", "data": {"task": [1]}}).encode()
    bad = b"{not json"
    latin = envelope()
    two_mib = b'{"event_name": "task.updated", "data": {"task": {"id": 1}}, "pad": "' + b"x" * (2 << 20) + b'"}'
    return [
        ("no signature", {"body": VALID, "headers": {"Content-Type": "application/json"}}, 401),
        ("wrong signature", {"body": VALID, "headers": signed(VALID, **{"X-Vikunja-Signature": "0" * 64})}, 401),
        (
            "signature with the wrong secret",
            {"body": VALID, "headers": signed(VALID, **{"X-Vikunja-Signature": sign(VALID, "other")})},
            401,
        ),
        ("signature of another body", {"body": VALID, "headers": signed(envelope(task_id=8))}, 401),
        (
            "two signature headers",
            {
                "body": VALID,
                "headers": [
                    ("Content-Type", "application/json"),
                    ("X-Vikunja-Signature", sign(VALID)),
                    ("X-Vikunja-Signature", sign(VALID)),
                ],
            },
            401,
        ),
        ("non-ASCII signature", {"body": VALID, "headers": signed(VALID, **{"X-Vikunja-Signature": "é" * 64})}, 401),
        ("empty body, unsigned", {"body": b"", "headers": {"Content-Type": "application/json"}}, 401),
        ("empty body, signed", {"body": b"", "headers": signed(b"")}, 400),
        ("2 MiB body", {"body": two_mib, "headers": signed(two_mib)}, 413),
        ("1 MiB + 1", {"body": b" " * (MAX_BODY + 1), "headers": signed(b" " * (MAX_BODY + 1))}, 413),
        ("invalid JSON", {"body": bad, "headers": signed(bad)}, 400),
        ("JSON array", {"body": array, "headers": signed(array)}, 400),
        ("missing task", {"body": no_task, "headers": signed(no_task)}, 400),
        ("task is a list", {"body": task_list, "headers": signed(task_list)}, 400),
        ("missing data", {"body": no_data, "headers": signed(no_data)}, 400),
        ("missing event_name", {"body": no_event, "headers": signed(no_event)}, 400),
        ("event_name not a string", {"body": event_not_str, "headers": signed(event_not_str)}, 400),
        ("task id a string", {"body": envelope(task_id="7"), "headers": signed(envelope(task_id="7"))}, 400),
        ("task id a bool", {"body": envelope(task_id=True), "headers": signed(envelope(task_id=True))}, 400),
        ("task id zero", {"body": envelope(task_id=0), "headers": signed(envelope(task_id=0))}, 400),
        ("task id a float", {"body": envelope(task_id=7.0), "headers": signed(envelope(task_id=7.0))}, 400),
        ("text/plain", {"body": VALID, "headers": signed(VALID, **{"Content-Type": "text/plain"})}, 415),
        (
            "no Content-Type",
            {"body": VALID, "headers": {"X-Vikunja-Signature": sign(VALID)}},
            415,
        ),
        (
            "latin-1 charset",
            {"body": latin, "headers": signed(latin, **{"Content-Type": "application/json; charset=latin-1"})},
            415,
        ),
        ("no Content-Length", {"body": b"", "headers": signed(VALID), "content_length": False}, 411),
        (
            "chunked",
            {
                "body": b"0\r\n\r\n",
                "headers": signed(VALID, **{"Transfer-Encoding": "chunked"}),
                "content_length": False,
            },
            411,
        ),
        (
            "Content-Length not a number",
            {"body": b"", "headers": signed(VALID, **{"Content-Length": "+5"}), "content_length": False},
            400,
        ),
        ("GET on the webhook", {"method": "GET", "body": b""}, 405),
        ("PUT on the webhook", {"method": "PUT", "body": VALID, "headers": signed(VALID)}, 405),
        ("DELETE on the webhook", {"method": "DELETE"}, 405),
        ("made-up method", {"method": "BREW", "body": VALID, "headers": signed(VALID)}, 405),
        ("root", {"path": "/", "body": VALID, "headers": signed(VALID)}, 404),
        ("dot segments", {"path": "/webhook/../x", "body": VALID, "headers": signed(VALID)}, 404),
        ("dot segments back to the webhook", {"path": "/x/../webhook", "body": VALID, "headers": signed(VALID)}, 404),
        ("trailing slash", {"path": "/webhook/", "body": VALID, "headers": signed(VALID)}, 404),
        ("percent-encoded", {"path": "/web%68ook", "body": VALID, "headers": signed(VALID)}, 404),
        ("other case", {"path": "/WEBHOOK", "body": VALID, "headers": signed(VALID)}, 404),
        ("POST on /healthz", {"path": "/healthz", "body": VALID, "headers": signed(VALID)}, 405),
    ]


CASES = _cases()


@pytest.mark.parametrize(("kwargs", "status"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_refused_requests_store_nothing_and_the_server_keeps_answering(server, kwargs, status):
    resp = raw_request(server.port, **kwargs)
    assert resp.status == status, resp.body
    assert "error" in resp.json()
    assert server.store.inbox_depth() == 0
    assert not server.stored.is_set()
    assert server.healthy()


def test_405_names_the_allowed_method(server):
    assert raw_request(server.port, "GET").headers["allow"] == "POST"
    assert raw_request(server.port, "POST", "/healthz").headers["allow"] == "GET"


def test_oversized_body_is_refused_before_it_is_sent(server):
    """The 413 comes from Content-Length alone: the server does not wait for (or read) the body."""
    resp = raw_request(server.port, body=b"x" * (2 << 20), headers=signed(b""), send_body=False)
    assert resp.status == 413
    assert server.store.inbox_depth() == 0


# --- health ---------------------------------------------------------------------


def test_healthz_reports_breaker_and_depths(server, tmp_path):
    body = envelope()
    raw_request(server.port, body=body, headers=signed(body))
    server.store.enqueue("3f0c1d3e-0000-4000-8000-000000000001", "upsert", {"description": "x"})
    health = raw_request(server.port, "GET", "/healthz").json()
    assert health["status"] == "ok"
    assert (health["inbox"], health["outbox"]) == (1, 1)
    assert health["breaker"]["state"] == "closed"
    server.breaker.trip()
    assert raw_request(server.port, "GET", "/healthz?verbose").json()["breaker"]["state"] == "open"


# --- secrets and bodies stay out of the logs --------------------------------------


def test_neither_secret_nor_body_is_logged(server, caplog):
    caplog.set_level(logging.DEBUG)
    marker = "BODY-MARKER-31337"
    body = envelope(note=marker)
    raw_request(server.port, body=body, headers=signed(body))
    bad = envelope(note=marker + "-bad")
    raw_request(server.port, body=bad, headers={"Content-Type": "application/json", "X-Vikunja-Signature": "ab"})
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "stored as inbox" in text and "rejected" in text
    assert marker not in text and SECRET not in text and sign(body) not in text


# --- arbitrary input ----------------------------------------------------------------


def _is_storable(body: bytes) -> bool:
    """Independent statement of what may enter the inbox."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        return False
    if not isinstance(payload, dict) or payload.get("event_name") not in (
        "task.created",
        "task.updated",
        "task.deleted",
    ):
        return False
    data = payload.get("data")
    task = data.get("task") if isinstance(data, dict) else None
    return isinstance(task, dict) and type(task.get("id")) is int and task["id"] > 0


token = st.text(
    st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_!#$%&'*+.^`|~"),
    min_size=1,
    max_size=20,
)
header_value = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=60)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 2**70) | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def mostly(usual: st.SearchStrategy, unusual: st.SearchStrategy, weight: int = 4) -> st.SearchStrategy:
    """`usual` weight times as often as `unusual`, so valid requests are common enough to matter."""
    return st.sampled_from([True] * weight + [False]).flatmap(lambda pick: usual if pick else unusual)


task_ids = mostly(st.integers(-2, 10**6), json_values)
tasks = mostly(st.fixed_dictionaries({"id": task_ids}, optional={"title": json_values}), json_values)
datas = mostly(st.fixed_dictionaries({"task": tasks}, optional={"project": json_values}), json_values)
event_names = mostly(
    st.sampled_from(["task.created", "task.updated", "task.deleted"]),
    st.sampled_from(["task.comment.created", "project.updated", ""]) | json_values,
)
envelopes = mostly(
    st.fixed_dictionaries({"event_name": event_names, "data": datas}),
    st.fixed_dictionaries({}, optional={"event_name": event_names, "data": datas}),
).map(lambda d: json.dumps(d).encode())
bodies = mostly(envelopes, st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()), 3)


@settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    method=mostly(st.just("POST"), st.sampled_from(["GET", "PUT", "DELETE", "HEAD", "OPTIONS"]) | token),
    path=mostly(
        st.just("/webhook"),
        st.sampled_from(["/healthz", "/webhook?a=b", "/", "/webhook/"])
        | st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=30).map(lambda p: "/" + p),
    ),
    body=bodies,
    sign_it=mostly(st.just("right"), st.sampled_from(["wrong", "none"]), 3),
    content_type=mostly(
        st.sampled_from(["application/json", "application/json; charset=utf-8"]), st.just("text/plain") | header_value
    ),
    extra=st.lists(
        st.tuples(
            token.filter(lambda n: n.lower() not in ("content-length", "transfer-encoding", "expect")), header_value
        ),
        max_size=4,
    ),
    with_length=mostly(st.just(True), st.just(False)),
)
def test_arbitrary_requests_never_5xx_and_never_store_junk(
    shared_server, method, path, body, sign_it, content_type, extra, with_length
):
    running = shared_server
    headers = [("Content-Type", content_type), *extra]
    if sign_it != "none":
        headers.append(("X-Vikunja-Signature", sign(body) if sign_it == "right" else sign(body, "wrong")))
    before = running.store.inbox_depth()
    resp = raw_request(running.port, method, path, body if with_length else b"", headers, content_length=with_length)
    after = running.store.inbox_depth()
    assert resp.status < 500
    event(f"status {resp.status}")
    if resp.status == 202 and resp.json().get("accepted"):
        assert after == before + 1
    if after > before:
        assert after == before + 1 and resp.status == 202
        stored = running.store.next_inbox(now=float("inf"))
        running.store.inbox_done(stored.id)
        assert stored.body == body
        assert _is_storable(body) and sign_it == "right" and method == "POST"
    assert running.healthy()


# --- listen addresses and the no-secret guard -----------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:8765", ("127.0.0.1", 8765)),
        ("localhost:1", ("127.0.0.1", 1)),
        ("0.0.0.0:0", ("0.0.0.0", 0)),
        ("[::1]:8765", ("::1", 8765)),
        ("[::]:80", ("::", 80)),
    ],
)
def test_parse_listen_accepts(text, expected):
    assert parse_listen(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "8765",
        "127.0.0.1",
        "127.0.0.1:",
        ":8765",
        "::1:8765",
        "[127.0.0.1]:80",
        "example.org:80",
        "127.0.0.1:65536",
        "127.0.0.1:80x",
        "[::1]8765",
        "1.2.3.4.5:80",
    ],
)
def test_parse_listen_refuses_with_config_error(text):
    with pytest.raises(ConfigError):
        parse_listen(text)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.5.6.7", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.2", False),
        ("localhost", False),
    ],
)
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


def _settings(tmp_path: Path, secret: bool):
    env = {"HOME": str(tmp_path), "VIKUNJA_SYNC_STATE_DIR": str(tmp_path / "state")}
    if secret:
        (tmp_path / "secret").write_text(SECRET)
        env["VIKUNJA_WEBHOOK_SECRET_FILE"] = str(tmp_path / "secret")
    return load_settings(env)


def test_no_secret_refuses_a_non_loopback_address(tmp_path):
    daemon = Daemon(_settings(tmp_path, secret=False), "0.0.0.0:0")
    with pytest.raises(ConfigError, match="--insecure"):
        daemon.start()
    assert daemon.httpd is None


@pytest.mark.parametrize(("listen", "insecure"), [("0.0.0.0:0", True), ("127.0.0.1:0", False), ("[::1]:0", False)])
def test_no_secret_starts_with_a_warning_on_loopback_or_when_insecure(tmp_path, caplog, listen, insecure):
    daemon = Daemon(_settings(tmp_path, secret=False), listen, insecure=insecure)
    daemon.start()
    try:
        assert "signatures are NOT checked" in caplog.text
        host = "::1" if listen.startswith("[") else "127.0.0.1"
        with socket.create_connection((host, daemon.address[1]), timeout=10) as sock:
            body = envelope()
            sock.sendall(
                b"POST /webhook HTTP/1.0\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            assert sock.makefile("rb").readline().split()[1] == b"202"  # unsigned, yet accepted
        assert Store(_settings(tmp_path, secret=False).database).inbox_depth() == 1
    finally:
        daemon.stop()
        assert daemon.shutdown() == 0


def test_with_a_secret_any_address_is_allowed(tmp_path, caplog):
    daemon = Daemon(_settings(tmp_path, secret=True), "0.0.0.0:0")
    daemon.start()
    try:
        assert "NOT checked" not in caplog.text
        assert raw_request(daemon.address[1], body=VALID, headers={"Content-Type": "application/json"}).status == 401
    finally:
        daemon.stop()
        daemon.shutdown()
