"""Route actions: turn a parsed request into a response using the Store.

Kept apart from the socket handling so the HTTP layer stays about connections,
faults and auth, and this module stays about what Vikunja answers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .model import ApiError
from .store import Store
from .webhooks import WEBHOOK_EVENTS


@dataclass
class Request:
    ids: tuple[int, ...]
    query: dict[str, list[str]]
    body: Any


@dataclass
class Response:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


def error_response(error: ApiError, headers: dict[str, str] | None = None) -> Response:
    return Response(error.status, error.body(), headers or {})


def _first(query: dict[str, list[str]], name: str, default: str = "") -> str:
    return (query.get(name) or [default])[0]


def _int_param(query: dict[str, list[str]], name: str) -> int:
    try:
        return int(_first(query, name, "0"))
    except ValueError:
        return 0


@dataclass
class Actions:
    """One method per ``Route.action``; each takes a Request and returns a Response."""

    store: Store
    info_fields: dict[str, Any]
    max_items_per_page: int

    def resolve(self, action: str) -> Callable[[Request], Response]:
        return getattr(self, action)  # type: ignore[no-any-return]

    def paginate(self, items: list[Any], query: dict[str, list[str]]) -> Response:
        """Vikunja's pagination: per_page silently capped, page count and size in headers."""
        per_page = _int_param(query, "per_page")
        if per_page <= 0 or per_page > self.max_items_per_page:
            per_page = self.max_items_per_page
        page = max(1, _int_param(query, "page"))
        chunk = items[(page - 1) * per_page : page * per_page]
        headers = {
            "x-pagination-total-pages": str(math.ceil(len(items) / per_page)),
            "x-pagination-result-count": str(len(chunk)),
        }
        return Response(200, chunk, headers)

    @staticmethod
    def one(body: Any, status: int = 200) -> Response:
        """Single items carry x-max-permission (2 = admin: the token owns everything)."""
        return Response(status, body, {"x-max-permission": "2"})

    def info(self, request: Request) -> Response:
        return Response(200, self.info_fields)

    def user(self, request: Request) -> Response:
        return Response(200, self.store.render_user_settings())

    def list_projects(self, request: Request) -> Response:
        archived = _first(request.query, "is_archived").lower() == "true"
        items = self.store.list_projects(archived, _first(request.query, "s"))
        return self.paginate(items, request.query)

    def create_project(self, request: Request) -> Response:
        return self.one(self.store.create_project(request.body), 201)

    def get_project(self, request: Request) -> Response:
        return self.one(self.store.get_project(request.ids[0]))

    def update_project(self, request: Request) -> Response:
        return self.one(self.store.update_project(request.ids[0], request.body))

    def create_task(self, request: Request) -> Response:
        return self.one(self.store.create_task(request.ids[0], request.body), 201)

    def list_tasks(self, request: Request) -> Response:
        return self.paginate(self.store.list_tasks(request.query), request.query)

    def get_task(self, request: Request) -> Response:
        return self.one(self.store.get_task(request.ids[0]))

    def update_task(self, request: Request) -> Response:
        return self.one(self.store.update_task(request.ids[0], request.body))

    def delete_task(self, request: Request) -> Response:
        self.store.delete_task(request.ids[0])
        return Response(200, {"message": "Successfully deleted."})

    def list_labels(self, request: Request) -> Response:
        items = self.store.list_labels(_first(request.query, "s"))
        return self.paginate(items, request.query)

    def create_label(self, request: Request) -> Response:
        return self.one(self.store.create_label(request.body), 201)

    def get_label(self, request: Request) -> Response:
        return self.one(self.store.get_label(request.ids[0]))

    def update_label(self, request: Request) -> Response:
        return self.one(self.store.update_label(request.ids[0], request.body))

    def task_labels(self, request: Request) -> Response:
        return self.paginate(self.store.task_labels(request.ids[0]), request.query)

    def add_label(self, request: Request) -> Response:
        return Response(201, self.store.add_label(request.ids[0], request.body))

    def remove_label(self, request: Request) -> Response:
        return Response(200, self.store.remove_label(*request.ids))

    def bulk_labels(self, request: Request) -> Response:
        return Response(201, self.store.bulk_labels(request.ids[0], request.body))

    def list_webhooks(self, request: Request) -> Response:
        return self.paginate(self.store.list_webhooks(request.ids[0]), request.query)

    def create_webhook(self, request: Request) -> Response:
        return self.one(self.store.create_webhook(request.ids[0], request.body), 201)

    def update_webhook(self, request: Request) -> Response:
        return self.one(self.store.update_webhook(*request.ids, request.body))

    def delete_webhook(self, request: Request) -> Response:
        return Response(200, self.store.delete_webhook(*request.ids))

    def webhook_events(self, request: Request) -> Response:
        return Response(200, list(WEBHOOK_EVENTS))
