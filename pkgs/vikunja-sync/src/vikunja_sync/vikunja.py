"""Vikunja REST client: one session, a timeout on every call, the breaker around each
logical call, pagination to the last page, and full-object updates.

Vikunja's `POST /tasks/{id}` replaces the whole task (omitted fields are wiped), so
updates always start from a fresh GET of the task.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import requests

from vikunja_sync.breaker import CircuitBreaker

log = logging.getLogger(__name__)

ZERO_DATE_PREFIX = "0001-01-01"
DATE_FIELDS = ("due_date", "start_date", "end_date", "done_at")
LIST_FIELDS = ("labels", "assignees", "reminders", "attachments")
RETRY_STATUSES = (502, 503, 504)
RETRY_PAUSE = 0.2
LABEL_ALREADY_ON_TASK = 8001


class VikunjaError(Exception):
    """An API call failed; carries Vikunja's own code and message when it sent one."""

    def __init__(self, message: str, status: int | None = None, code: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class NotFound(VikunjaError):
    pass


class Unauthorized(VikunjaError):
    pass


class ValidationFailed(VikunjaError):
    pass


class ServerError(VikunjaError):
    pass


class Unreachable(VikunjaError):
    """Connection refused, DNS failure or timeout: nothing reached or came back from Vikunja."""


class RateLimited(ServerError):
    def __init__(self, message: str, reset_at: float | None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.reset_at = reset_at


# Errors after which a change must stay queued: Vikunja may accept it later.
TEMPORARY_ERRORS = (Unreachable, ServerError)


def normalize_task(task: dict[str, Any]) -> dict[str, Any]:
    """Vikunja sends `null` for empty lists and year 1 for unset dates; use [] and None."""
    task = dict(task)
    for name in LIST_FIELDS:
        if task.get(name) is None and name in task:
            task[name] = []
    for name in DATE_FIELDS:
        value = task.get(name)
        if isinstance(value, str) and value.startswith(ZERO_DATE_PREFIX):
            task[name] = None
    return task


def _error_from(resp: requests.Response) -> VikunjaError:
    try:
        body = resp.json()
    except ValueError:
        body = {}
    code = body.get("code") if isinstance(body, dict) else None
    message = (body.get("message") if isinstance(body, dict) else None) or resp.reason or "error"
    text = f"{resp.request.method} {resp.url.split('?')[0]} -> {resp.status_code}: {message}"
    kw: dict[str, Any] = {"status": resp.status_code, "code": code}
    if resp.status_code == 429:
        reset = resp.headers.get("X-RateLimit-Reset")
        return RateLimited(text, reset_at=float(reset) if reset and reset.isdigit() else None, **kw)
    if resp.status_code >= 500:
        return ServerError(text, **kw)
    if resp.status_code == 401:
        return Unauthorized(text + " (check the API token and its permissions)", **kw)
    if resp.status_code == 404:
        return NotFound(text, **kw)
    return ValidationFailed(text, **kw)


class VikunjaClient:
    def __init__(
        self,
        base_url: str,
        token: str,
        breaker: CircuitBreaker,
        timeout: float = 10.0,
        session: requests.Session | None = None,
    ) -> None:
        self.api = base_url.rstrip("/") + "/api/v1"
        self.breaker = breaker
        self.timeout = timeout
        self.session = session or requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"
        self.session.headers["Accept"] = "application/json"
        self._info: dict[str, Any] | None = None
        self.calls = 0

    def close(self) -> None:
        self.session.close()

    # --- the one place HTTP happens ----------------------------------------------
    def request(
        self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None
    ) -> requests.Response:
        """One logical call: counted once by the breaker, however many attempts it takes.

        Only reads are retried (once, on a refused connection or a gateway error): a
        retried write could apply twice.
        """
        attempts = 2 if method == "GET" else 1
        with self.breaker.guard() as guard:
            for attempt in range(attempts):
                last = attempt == attempts - 1
                self.calls += 1
                try:
                    resp = self.session.request(method, self.api + path, json=json, params=params, timeout=self.timeout)
                except requests.Timeout:
                    guard.failure()
                    raise Unreachable(f"{method} {path}: no answer within {self.timeout}s") from None
                except requests.ConnectionError as exc:
                    if not last:
                        time.sleep(RETRY_PAUSE)
                        continue
                    guard.failure()
                    raise Unreachable(f"{method} {path}: cannot connect ({type(exc).__name__})") from None
                if resp.status_code in RETRY_STATUSES and not last:
                    time.sleep(RETRY_PAUSE)
                    continue
                break
            if resp.status_code >= 500 or resp.status_code == 429:
                guard.failure()
                raise _error_from(resp)
            if resp.status_code >= 400:
                guard.neutral()
                raise _error_from(resp)
            guard.success()
            return resp

    def _json(self, method: str, path: str, **kw: Any) -> Any:
        return self.request(method, path, **kw).json()

    def paginate(self, path: str, params: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Every item of a list endpoint, page by page until the last one."""
        page = 1
        while True:
            resp = self.request("GET", path, params={**(params or {}), "page": page, "per_page": self.page_size})
            yield from resp.json() or []
            total = int(resp.headers.get("x-pagination-total-pages", "1") or 1)
            if page >= total:
                return
            page += 1

    # --- server -------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """`/info` needs no auth and is read once per client."""
        if self._info is None:
            self._info = self._json("GET", "/info")
        return self._info

    @property
    def page_size(self) -> int:
        return int((self._info or {}).get("max_items_per_page") or 50)

    @property
    def tasks_path(self) -> str:
        """`/tasks/all` before Vikunja 1.0, `/tasks` since."""
        version = str(self.info().get("version", "")).lstrip("v")
        major = version.split(".")[0]
        return "/tasks/all" if major.isdigit() and int(major) < 1 else "/tasks"

    # --- tasks --------------------------------------------------------------
    def get_task(self, task_id: int) -> dict[str, Any]:
        return normalize_task(self._json("GET", f"/tasks/{int(task_id)}"))

    def create_task(self, project_id: int, body: dict[str, Any]) -> dict[str, Any]:
        return normalize_task(self._json("PUT", f"/projects/{int(project_id)}/tasks", json=body))

    def replace_task(self, task_id: int, body: dict[str, Any]) -> dict[str, Any]:
        """POST the whole task; only for bodies built from a fresh GET (see update_task)."""
        return normalize_task(self._json("POST", f"/tasks/{int(task_id)}", json=body))

    def update_task(self, task_id: int, change: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
        """GET, let `change` alter only the fields it owns, POST the whole object back."""
        current = self.get_task(task_id)
        body = change(current)
        if body == current:
            return current
        return self.replace_task(task_id, body)

    def delete_task(self, task_id: int) -> bool:
        """True if deleted now, False if it was already gone."""
        try:
            self.request("DELETE", f"/tasks/{int(task_id)}")
        except NotFound:
            return False
        return True

    def list_tasks(self, updated_since: str | None = None) -> list[dict[str, Any]]:
        params = {"filter": f"updated > {updated_since}"} if updated_since else {}
        self.info()
        return [normalize_task(t) for t in self.paginate(self.tasks_path, params)]

    # --- projects -----------------------------------------------------------
    def projects(self) -> list[dict[str, Any]]:
        """Real projects only: favourites and saved filters have negative ids."""
        return [p for p in self.paginate("/projects") if int(p.get("id", 0)) > 0]

    def create_project(self, title: str, parent_project_id: int = 0) -> dict[str, Any]:
        return self._json("PUT", "/projects", json={"title": title, "parent_project_id": parent_project_id})

    # --- labels -------------------------------------------------------------
    def labels(self) -> list[dict[str, Any]]:
        return list(self.paginate("/labels"))

    def create_label(self, title: str) -> dict[str, Any]:
        return self._json("PUT", "/labels", json={"title": title})

    def add_label(self, task_id: int, label_id: int) -> None:
        try:
            self.request("PUT", f"/tasks/{int(task_id)}/labels", json={"label_id": int(label_id)})
        except ValidationFailed as exc:
            if exc.code != LABEL_ALREADY_ON_TASK:
                raise

    def remove_label(self, task_id: int, label_id: int) -> None:
        try:
            self.request("DELETE", f"/tasks/{int(task_id)}/labels/{int(label_id)}")
        except NotFound:
            pass

    # --- webhooks -----------------------------------------------------------
    def webhooks(self, project_id: int) -> list[dict[str, Any]]:
        return list(self.paginate(f"/projects/{int(project_id)}/webhooks"))

    def create_webhook(self, project_id: int, target_url: str, events: list[str], secret: str) -> dict[str, Any]:
        body = {"target_url": target_url, "events": events, "secret": secret}
        return self._json("PUT", f"/projects/{int(project_id)}/webhooks", json=body)

    def delete_webhook(self, project_id: int, webhook_id: int) -> None:
        self.request("DELETE", f"/projects/{int(project_id)}/webhooks/{int(webhook_id)}")
