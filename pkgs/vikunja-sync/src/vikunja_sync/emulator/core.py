"""The Emulator: a Vikunja v2.5 stand-in with switchable faults, for tests and demos.

One object owns the store, the webhook dispatcher and the HTTP server. Requests go
through the same pipeline as in Vikunja (route, auth, rate limit, action); faults are
injected in front of it so clients can be tested against outages, hangs and 429s.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import threading
import time
from typing import Any, Self
from urllib.parse import parse_qs, unquote, urlsplit

from . import routes
from .api import Actions, Request, Response, error_response
from .clock import parse_offset
from .model import ERR_TOKEN, ApiError
from .server import Server
from .store import Store
from .webhooks import Dispatcher

log = logging.getLogger(__name__)

FAULT_KINDS = ("none", "error500", "hang", "ratelimit")
DEFAULT_RATE_LIMIT = (100, 60)
_ADMIN = re.compile(r"^/_emulator/(.*?)/?$")


class Emulator:
    """A Vikunja server in a thread. See the package docstring for the full API."""

    def __init__(
        self,
        token: str,
        host: str = "127.0.0.1",
        port: int = 0,
        max_items_per_page: int = 50,
        webhooks_enabled: bool = True,
        version: str = "v2.5.0",
        server_tz: str = "+02:00",
        rate_limit: tuple[int, float] | None = None,
        webhook_timeout: float = 30.0,
        concurrent_writes: bool = False,
    ) -> None:
        if not token:
            raise ValueError("the emulator needs an API token")
        self._token = token
        self.host = host
        self.port = port
        self.max_items_per_page = max_items_per_page
        self.webhooks_enabled = webhooks_enabled
        self.version = version
        self.rate_limit = rate_limit
        self._dispatcher = Dispatcher(webhook_timeout)
        self.store = Store(parse_offset(server_tz), self._dispatcher.enqueue)
        self._actions = Actions(self.store, self._info(concurrent_writes), max_items_per_page)
        self._lock = threading.Lock()
        self._fault: tuple[str, int | None, float] = ("none", None, 30.0)
        self._connections = 0
        self._requests: list[tuple[str, str]] = []
        self._windows: dict[str, tuple[float, int]] = {}
        self._stopping = threading.Event()
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._server_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Emulator(url={self.url!r})"

    def _info(self, concurrent_writes: bool) -> dict[str, Any]:
        return {
            "version": self.version,
            "frontend_url": "",
            "motd": "",
            "link_sharing_enabled": True,
            "max_file_size": "20MB",
            "max_items_per_page": self.max_items_per_page,
            "available_migrators": [],
            "task_attachments_enabled": True,
            "enabled_background_providers": [],
            "totp_enabled": False,
            "legal": {"imprint_url": "", "privacy_policy_url": ""},
            "caldav_enabled": False,
            "auth": {
                "local": {"enabled": True, "registration_enabled": False},
                "ldap": {"enabled": False},
                "openid_connect": {"enabled": False, "providers": None},
            },
            "email_reminders_enabled": False,
            "user_deletion_enabled": True,
            "task_comments_enabled": True,
            "demo_mode_enabled": False,
            "webhooks_enabled": self.webhooks_enabled,
            "public_teams_enabled": False,
            "allow_icon_changes": True,
            "enabled_pro_features": [],
            "concurrent_writes": concurrent_writes,
        }

    # ---------------------------------------------------------------- lifecycle

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> Self:
        self._stopping.clear()
        self._dispatcher.start()
        self.come_up()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self.go_down()
        self._dispatcher.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def come_up(self) -> None:
        """Listen (again) on the same port."""
        with self._server_lock:
            if self._server is not None:
                return
            server = Server((self.host, self.port), self._handle, self._count_connection)
            self.port = server.server_address[1]
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"emulator-{self.port}",
                daemon=True,
            )
            thread.start()
            self._server, self._thread = server, thread
        log.info("vikunja emulator up on %s", self.url)

    def go_down(self) -> None:
        """Stop listening (connections are refused) and cut open connections; keep the port."""
        with self._server_lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        server.drop_connections()
        if thread is not None:
            thread.join(timeout=5)
        log.info("vikunja emulator down on %s", self.url)

    # ---------------------------------------------------------------- faults and counters

    def set_fault(self, kind: str, count: int | None = None, hang_seconds: float = 30.0) -> None:
        """Make the next ``count`` API requests (all, if None) fail in the given way."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; expected one of {FAULT_KINDS}")
        if count is not None and count <= 0:
            kind = "none"
        with self._lock:
            self._fault = (kind, count, float(hang_seconds))

    def _take_fault(self) -> tuple[str, float]:
        with self._lock:
            kind, remaining, hang = self._fault
            if kind != "none" and remaining is not None:
                remaining -= 1
                self._fault = (kind if remaining > 0 else "none", remaining, hang)
            return kind, hang

    def _count_connection(self) -> None:
        with self._lock:
            self._connections += 1

    @property
    def connections(self) -> int:
        with self._lock:
            return self._connections

    @property
    def requests(self) -> list[tuple[str, str]]:
        with self._lock:
            return list(self._requests)

    def reset_counters(self) -> None:
        """Zero connections and requests, and forget finished webhook deliveries."""
        with self._lock:
            self._connections = 0
            self._requests = []
        self._dispatcher.clear_records()

    @property
    def webhook_deliveries(self) -> list[dict[str, Any]]:
        return self._dispatcher.records()

    def wait_for_webhooks(self, timeout: float = 5.0) -> bool:
        return self._dispatcher.wait_idle(timeout)

    # ---------------------------------------------------------------- "web UI" helpers

    def create_project(self, title: str, parent_project_id: int = 0) -> dict[str, Any]:
        return self.store.create_project({"title": title, "parent_project_id": parent_project_id})

    def create_task(self, project_id: int, **fields: Any) -> dict[str, Any]:
        """Create as the UI would; ``labels=["a", ...]`` attaches labels (made on demand)."""
        labels = fields.pop("labels", None) or ()
        return self.store.create_task(project_id, fields, label_titles=labels)

    def update_task(self, task_id: int, **fields: Any) -> dict[str, Any]:
        """Change only the given fields (the UI sends the whole task back)."""
        with self.store.lock:
            body = self.store.get_task(task_id) | fields
            return self.store.update_task(task_id, body)

    def delete_task(self, task_id: int) -> None:
        self.store.delete_task(task_id)

    def add_label_to_task(self, task_id: int, title: str) -> None:
        self.store.add_label_by_title(task_id, title)

    def remove_label_from_task(self, task_id: int, title: str) -> None:
        self.store.remove_label_by_title(task_id, title)

    def get_task(self, task_id: int) -> dict[str, Any] | None:
        try:
            return self.store.get_task(task_id)
        except ApiError:
            return None

    def tasks(self) -> list[dict[str, Any]]:
        return self.store.list_tasks({})

    def projects(self) -> list[dict[str, Any]]:
        """Real projects only (no pseudo-projects), archived ones included."""
        return [p for p in self.store.list_projects(True) if p["id"] > 0]

    # ---------------------------------------------------------------- request pipeline

    def _handle(self, method: str, target: str, headers: Any, raw: bytes) -> Response | None:
        parts = urlsplit(target)
        path = parts.path
        if path.startswith("/_emulator/"):
            return self._admin(method, path, raw)
        if path != routes.API_PREFIX and not path.startswith(routes.API_PREFIX + "/"):
            return Response(404, {"message": "Not Found"})
        with self._lock:
            self._requests.append((method, path))
        kind, hang = self._take_fault()
        if kind == "hang":
            self._stopping.wait(hang)
            return None
        if kind == "error500":
            return Response(500, {"message": "Internal Server Error"})
        if kind == "ratelimit":
            limit, window = self.rate_limit or DEFAULT_RATE_LIMIT
            return Response(429, {"message": "Too Many Requests"}, self._rate_headers(limit, 0, time.time() + window))
        query = parse_qs(parts.query, keep_blank_values=True)
        return self._api(method, path.removeprefix(routes.API_PREFIX) or "/", query, headers, raw)

    def _api(self, method: str, path: str, query: dict[str, list[str]], headers: Any, raw: bytes) -> Response:
        route, ids, path_known = routes.match(method, path, self.webhooks_enabled)
        if route is None:
            if path_known:
                return Response(405, {"message": "Method Not Allowed"})
            return Response(404, {"message": "Not Found"})
        extra: dict[str, str] = {}
        if not route.public:
            try:
                token = self._authenticate(headers.get("Authorization", ""))
            except ApiError as exc:
                return error_response(exc)
            extra, limited = self._rate_check(token)
            if limited:
                return Response(429, {"message": "Too Many Requests"}, extra)
        try:
            body = self._parse_body(raw) if method in ("PUT", "POST") else None
            response = self._actions.resolve(route.action)(Request(ids, query, body))
        except ApiError as exc:
            return error_response(exc, extra)
        response.headers.update(extra)
        return response

    def _authenticate(self, header: str) -> str:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), self._token.encode()):
            raise ApiError(401, ERR_TOKEN, "missing, malformed, expired or otherwise invalid token provided")
        return token.strip()

    @staticmethod
    def _parse_body(raw: bytes) -> Any:
        if not raw.strip():
            return {}
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, 2004, "Invalid model provided: body is not JSON") from exc

    @staticmethod
    def _rate_headers(limit: int, remaining: int, reset: float) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(max(0, remaining)),
            "X-RateLimit-Reset": str(int(reset)),
        }

    def _rate_check(self, key: str) -> tuple[dict[str, str], bool]:
        """Fixed-window limit per token: (X-RateLimit headers, over the limit)."""
        if self.rate_limit is None:
            return {}, False
        limit, window = self.rate_limit
        now = time.time()
        with self._lock:
            start, used = self._windows.get(key, (now, 0))
            if now - start >= window:
                start, used = now, 0
            used += 1
            self._windows[key] = (start, used)
        return self._rate_headers(limit, limit - used, start + window), used > limit

    # ---------------------------------------------------------------- admin interface

    def _admin(self, method: str, path: str, raw: bytes) -> Response:
        """Unauthenticated control routes under /_emulator/ (never faulted)."""
        match = _ADMIN.match(path)
        parts = [unquote(p) for p in match.group(1).split("/")] if match else []
        try:
            body = self._parse_body(raw) if method in ("POST", "PUT") else {}
            if not isinstance(body, dict):
                raise TypeError("the body must be a JSON object")
            return self._admin_route(method, parts, body)
        except ApiError as exc:
            return error_response(exc)
        except (ValueError, TypeError) as exc:
            return Response(400, {"message": str(exc)})

    def _admin_route(self, method: str, parts: list[str], body: Any) -> Response:
        match (method, parts):
            case ("POST", ["fault"]):
                self.set_fault(body.get("kind", "none"), body.get("count"), body.get("hang_seconds", 30.0))
                return Response(200, {"fault": body.get("kind", "none")})
            case ("GET", ["stats"]):
                stats = {
                    "connections": self.connections,
                    "requests": len(self.requests),
                    "tasks": self.store.task_count(),
                    "webhook_deliveries": self.webhook_deliveries,
                }
                return Response(200, stats)
            case ("POST", ["reset-counters"]):
                self.reset_counters()
                return Response(200, {"message": "counters reset"})
            case ("GET", ["tasks"]):
                return Response(200, self.tasks())
            case ("POST", ["projects"]):
                return Response(201, self.create_project(body.get("title", ""), body.get("parent_project_id", 0)))
            case ("POST", ["projects", project_id, "tasks"]):
                return Response(201, self.create_task(int(project_id), **body))
            case ("POST", ["tasks", task_id]):
                return Response(200, self.update_task(int(task_id), **body))
            case ("DELETE", ["tasks", task_id]):
                self.delete_task(int(task_id))
                return Response(200, {"message": "Successfully deleted."})
            case ("POST", ["tasks", task_id, "labels"]):
                self.add_label_to_task(int(task_id), body.get("title", ""))
                return Response(201, self.store.get_task(int(task_id)))
            case ("DELETE", ["tasks", task_id, "labels", title]):
                self.remove_label_from_task(int(task_id), title)
                return Response(200, self.store.get_task(int(task_id)))
        return Response(404, {"message": "Not Found"})
