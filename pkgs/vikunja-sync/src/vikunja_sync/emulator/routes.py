"""The API surface the emulator serves, in one table the spec-conformance test reads.

Paths are relative to ``/api/v1`` and spell their parameters exactly as
``swagger.json`` does, so each row can be looked up in the spec verbatim. Where the
router and the spec disagree, ``spec_method``/``spec_path`` name the spec's entry and
``note`` says why (see docs/vikunja-api.md: "the router wins").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

API_PREFIX = "/api/v1"


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    action: str
    public: bool = False
    webhooks: bool = False  # only registered when webhooks are enabled, as in Vikunja
    spec_method: str | None = None
    spec_path: str | None = None
    note: str = ""
    pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        regex = re.sub(r"\\\{[A-Za-z]+\\\}", r"(-?\\d+)", re.escape(self.path))
        object.__setattr__(self, "pattern", re.compile(f"^{regex}$"))

    @property
    def spec_key(self) -> tuple[str, str]:
        """(path, lowercase method) of the matching operation in swagger.json."""
        return (self.spec_path or self.path, (self.spec_method or self.method).lower())


ROUTES: tuple[Route, ...] = (
    Route("GET", "/info", "info", public=True),
    Route("GET", "/user", "user"),
    Route("GET", "/projects", "list_projects"),
    Route("PUT", "/projects", "create_project"),
    Route("GET", "/projects/{id}", "get_project"),
    Route("POST", "/projects/{id}", "update_project"),
    Route("PUT", "/projects/{id}/tasks", "create_task"),
    Route("GET", "/tasks", "list_tasks"),
    Route(
        "GET",
        "/tasks/all",
        "list_tasks",
        spec_path="/tasks",
        note="/tasks/all was the name before v1.0; the spec only has /tasks. Kept as an alias.",
    ),
    Route("GET", "/tasks/{id}", "get_task"),
    Route("POST", "/tasks/{id}", "update_task"),
    Route("DELETE", "/tasks/{id}", "delete_task"),
    Route("GET", "/labels", "list_labels"),
    Route("PUT", "/labels", "create_label"),
    Route("GET", "/labels/{id}", "get_label"),
    Route(
        "POST",
        "/labels/{id}",
        "update_label",
        spec_method="PUT",
        note="The router registers label update as POST; the spec's PUT is wrong.",
    ),
    Route("GET", "/tasks/{task}/labels", "task_labels"),
    Route("PUT", "/tasks/{task}/labels", "add_label"),
    Route("DELETE", "/tasks/{task}/labels/{label}", "remove_label"),
    Route("POST", "/tasks/{taskID}/labels/bulk", "bulk_labels"),
    Route("GET", "/projects/{id}/webhooks", "list_webhooks", webhooks=True),
    Route("PUT", "/projects/{id}/webhooks", "create_webhook", webhooks=True),
    Route("POST", "/projects/{id}/webhooks/{webhookID}", "update_webhook", webhooks=True),
    Route("DELETE", "/projects/{id}/webhooks/{webhookID}", "delete_webhook", webhooks=True),
    Route("GET", "/webhooks/events", "webhook_events", webhooks=True),
)


def match(method: str, path: str, webhooks_enabled: bool) -> tuple[Route | None, tuple[int, ...], bool]:
    """Find the route for a request: (route, path ids, path_known_with_other_method)."""
    path_known = False
    for route in ROUTES:
        if route.webhooks and not webhooks_enabled:
            continue
        found = route.pattern.match(path)
        if not found:
            continue
        if route.method == method:
            return route, tuple(int(g) for g in found.groups()), True
        path_known = True
    return None, (), path_known
