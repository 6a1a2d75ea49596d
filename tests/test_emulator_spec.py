"""The emulator against Vikunja's own Swagger spec (shared/vikunja/swagger.json).

Every route in ``emulator.ROUTES`` must exist in the spec (documented exceptions
aside), every JSON object the emulator sends must use only field names and types the
matching spec definition declares, and a task must carry every field the spec lists
for ``models.Task`` except the ones the spec itself calls conditional. A scenario
drives each route over real HTTP once and all checks read what it recorded.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import requests

from vikunja_sync.emulator import ROUTES, Emulator, Route
from vikunja_sync.emulator.model import LABEL_BODY, PROJECT_BODY, TASK_BODY, WEBHOOK_BODY

# The spec lives beside the repository (shared/vikunja/); VIKUNJA_SWAGGER overrides.
SPEC_PATH = Path(
    os.environ.get("VIKUNJA_SWAGGER") or Path(__file__).resolve().parents[2] / "shared/vikunja/swagger.json"
)
TOKEN = "tk_" + "5" * 40

# models.Task fields the spec itself says are not always present.
CONDITIONAL_TASK_FIELDS = {
    "buckets": "only with expand=buckets",
    "comments": "only with expand=comments",
    "comment_count": "only with expand=comment_count",
    "time_entries_count": "only with expand=time_entries_count",
    "deleted_at": "omitzero: only on soft-deleted tasks",
    "subscription": "only when the user is subscribed",
}
# Vikunja's ValidationHTTPError embeds web.HTTPError and adds this one field.
ERROR_EXTENSIONS = {"invalid_fields"}


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return json.loads(SPEC_PATH.read_text())


# ---------------------------------------------------------------- schema checking


def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """Follow $ref and merge allOf, so callers see one flat schema."""
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/definitions/")
        return resolve(spec, spec["definitions"][name])
    if "allOf" in schema:
        merged = {k: v for k, v in schema.items() if k != "allOf"}
        for part in schema["allOf"]:
            merged = resolve(spec, part) | merged
        return merged
    return schema


_PY_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
}


def violations(spec: dict[str, Any], value: Any, schema: dict[str, Any], where: str) -> list[str]:
    """Every field name, type or enum in ``value`` that ``schema`` does not allow."""
    schema = resolve(spec, schema)
    kind = schema.get("type") or ("object" if "properties" in schema else None)
    if value is None:
        # Go renders nil slices, maps and pointers as null; scalars never are.
        return [f"{where}: null for {kind}"] if kind in ("string", "integer", "number", "boolean") else []
    if kind is None:
        return []
    if not isinstance(value, _PY_TYPES[kind]) or (kind != "boolean" and isinstance(value, bool)):
        return [f"{where}: {type(value).__name__} where the spec says {kind}"]
    if "enum" in schema and value not in schema["enum"] and value != "":
        return [f"{where}: {value!r} not in {schema['enum']}"]  # "" is Go's unset enum string
    if kind == "array":
        return [
            p for i, item in enumerate(value) for p in violations(spec, item, schema.get("items", {}), f"{where}[{i}]")
        ]
    if kind != "object":
        return []
    problems = []
    properties = schema.get("properties", {})
    extra = schema.get("additionalProperties")
    for key, item in value.items():
        if key in properties:
            problems += violations(spec, item, properties[key], f"{where}.{key}")
        elif isinstance(extra, dict):
            problems += violations(spec, item, extra, f"{where}.{key}")
        else:
            problems.append(f"{where}.{key}: not in the spec")
    return problems


def definition(spec: dict[str, Any], name: str) -> dict[str, Any]:
    return {"$ref": f"#/definitions/{name}"}


def test_schema_checker_catches_what_it_must(spec: dict[str, Any]) -> None:
    task = definition(spec, "models.Task")
    assert violations(spec, {"id": 1, "title": "t", "labels": None}, task, "t") == []
    assert violations(spec, {"bogus": 1}, task, "t") == ["t.bogus: not in the spec"]
    assert violations(spec, {"id": "1"}, task, "t") == ["t.id: str where the spec says integer"]
    assert violations(spec, {"done": None}, task, "t") == ["t.done: null for boolean"]
    assert violations(spec, {"labels": [{"nope": 1}]}, task, "t") == ["t.labels[0].nope: not in the spec"]
    assert violations(spec, {"created_by": {"id": True}}, task, "t")
    view = definition(spec, "models.ProjectView")
    assert violations(spec, {"view_kind": "calendar"}, view, "v")


# ---------------------------------------------------------------- the scenario


class _Sink(BaseHTTPRequestHandler):
    bodies: ClassVar[list[bytes]] = []

    def do_POST(self) -> None:
        self.bodies.append(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


class Recorder:
    """Calls the emulator and keeps (route, status, body) for every exchange."""

    def __init__(self, emu: Emulator) -> None:
        self.base = emu.url + "/api/v1"
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {TOKEN}"
        self.samples: list[tuple[Route | None, int, Any]] = []

    def __call__(self, route: Route | None, path: str, body: Any = None, **kwargs: Any) -> Any:
        method = route.method if route else kwargs.pop("method")
        response = self.session.request(method, self.base + path, json=body, timeout=10, **kwargs)
        self.samples.append((route, response.status_code, response.json()))
        return response.json()


def route(method: str, path: str) -> Route:
    return next(r for r in ROUTES if r.method == method and r.path == path)


@pytest.fixture(scope="module")
def scenario() -> Iterator[tuple[Recorder, list[dict[str, Any]]]]:
    """Drive every route once with rich data, plus every kind of error."""
    _Sink.bodies = []
    sink = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=sink.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    emu = Emulator(token=TOKEN, webhook_timeout=5.0).start()
    call = Recorder(emu)
    try:
        call(route("GET", "/info"), "/info")
        call(route("GET", "/user"), "/user")
        parent = call(
            route("PUT", "/projects"), "/projects", {"title": "Parent", "identifier": "PAR", "hex_color": "#123456"}
        )
        child = call(route("PUT", "/projects"), "/projects", {"title": "Child", "parent_project_id": parent["id"]})
        call(route("GET", "/projects/{id}"), f"/projects/{child['id']}")
        call(route("GET", "/projects/{id}"), "/projects/-2")
        hook = call(
            route("PUT", "/projects/{id}/webhooks"),
            f"/projects/{parent['id']}/webhooks",
            {
                "target_url": f"http://127.0.0.1:{sink.server_address[1]}/",
                "events": ["task.created", "task.updated", "task.deleted", "project.updated"],
                "secret": "x",
            },
        )
        call(route("GET", "/projects/{id}/webhooks"), f"/projects/{parent['id']}/webhooks")
        call(route("GET", "/webhooks/events"), "/webhooks/events")
        rich = {
            "title": "Everything set",
            "description": "<p>d</p>",
            "due_date": "2031-02-03T04:05:06Z",
            "start_date": "2031-02-01T00:00:00+01:00",
            "end_date": "2031-02-04T00:00:00-01:00",
            "repeat_after": 86400,
            "priority": 3,
            "percent_done": 0.25,
            "hex_color": "abcdef",
            "is_favorite": True,
            "assignees": [{"id": 1}],
            "reminders": [{"reminder": "2031-02-03T03:00:00Z"}, {"relative_to": "due_date", "relative_period": -3600}],
        }
        task = call(route("PUT", "/projects/{id}/tasks"), f"/projects/{child['id']}/tasks", rich)
        bare = call(route("PUT", "/projects/{id}/tasks"), "/projects/1/tasks", {"title": "bare"})
        call(route("GET", "/projects"), "/projects")
        label = call(route("PUT", "/labels"), "/labels", {"title": "lbl", "hex_color": "#ff00ff"})
        call(route("POST", "/labels/{id}"), f"/labels/{label['id']}", {"title": "lbl2", "description": "x"})
        call(route("GET", "/labels/{id}"), f"/labels/{label['id']}")
        call(route("GET", "/labels"), "/labels")
        call(route("PUT", "/tasks/{task}/labels"), f"/tasks/{task['id']}/labels", {"label_id": label["id"]})
        call(route("GET", "/tasks/{task}/labels"), f"/tasks/{task['id']}/labels")
        call(
            route("POST", "/tasks/{taskID}/labels/bulk"),
            f"/tasks/{task['id']}/labels/bulk",
            {"labels": [{"id": label["id"]}, {"title": "new"}]},
        )
        call(route("DELETE", "/tasks/{task}/labels/{label}"), f"/tasks/{task['id']}/labels/{label['id']}")
        call(route("GET", "/tasks/{id}"), f"/tasks/{task['id']}")
        call(
            route("POST", "/tasks/{id}"),
            f"/tasks/{task['id']}",
            call(route("GET", "/tasks/{id}"), f"/tasks/{task['id']}") | {"done": True},
        )
        call(route("GET", "/tasks"), "/tasks", params={"filter": "done = false", "per_page": 10})
        call(route("GET", "/tasks/all"), "/tasks/all")
        call(
            route("POST", "/projects/{id}"),
            f"/projects/{child['id']}",
            {"title": "Child renamed", "parent_project_id": parent["id"]},
        )
        call(
            route("POST", "/projects/{id}/webhooks/{webhookID}"),
            f"/projects/{parent['id']}/webhooks/{hook['id']}",
            {"events": ["task.deleted"]},
        )
        call(route("DELETE", "/tasks/{id}"), f"/tasks/{bare['id']}")
        call(route("DELETE", "/projects/{id}/webhooks/{webhookID}"), f"/projects/{parent['id']}/webhooks/{hook['id']}")
        # errors of every kind
        call(None, "/tasks/999", method="GET")
        call(None, "/projects/999/tasks", {"title": "x"}, method="PUT")
        call(None, "/projects/1/tasks", {"title": ""}, method="PUT")
        call(None, "/projects/1/tasks", {"title": "x", "priority": "high"}, method="PUT")
        call(None, f"/tasks/{task['id']}/labels", {"label_id": 999}, method="PUT")
        call(None, "/labels/1", {"title": "x"}, method="PUT")
        call(None, "/no/such/route", method="GET")
        call.session.headers["Authorization"] = "Bearer wrong"
        call(None, "/tasks", method="GET")
        call.session.headers["Authorization"] = f"Bearer {TOKEN}"
        for kind in ("error500", "ratelimit"):
            emu.set_fault(kind, count=1)
            call(None, "/tasks", method="GET")
        assert emu.wait_for_webhooks(15)
        envelopes = [json.loads(body) for body in _Sink.bodies]
        yield call, envelopes
    finally:
        emu.stop()
        sink.shutdown()
        sink.server_close()


# ---------------------------------------------------------------- routes


@pytest.mark.parametrize("entry", ROUTES, ids=lambda r: f"{r.method} {r.path}")
def test_route_exists_in_the_spec(spec: dict[str, Any], entry: Route) -> None:
    path, method = entry.spec_key
    assert method in spec["paths"].get(path, {}), f"{method.upper()} {path} is not in swagger.json"
    own = spec["paths"].get(entry.path, {})
    if (entry.spec_path, entry.spec_method) != (None, None):
        assert entry.note, "a route that differs from the spec must say why"
        assert entry.method.lower() not in own, "a documented exception must really differ from the spec"


def test_documented_exceptions_are_exactly_the_known_two() -> None:
    exceptions = {(r.method, r.path) for r in ROUTES if r.spec_path or r.spec_method}
    assert exceptions == {("POST", "/labels/{id}"), ("GET", "/tasks/all")}


def test_every_route_was_exercised(scenario: tuple[Recorder, list[dict[str, Any]]]) -> None:
    recorder, _ = scenario
    hit = {r for r, status, _ in recorder.samples if r is not None and status < 400}
    assert set(ROUTES) - hit == set()


def test_success_statuses_and_bodies_match_the_spec(
    spec: dict[str, Any], scenario: tuple[Recorder, list[dict[str, Any]]]
) -> None:
    recorder, _ = scenario
    problems = []
    for entry, status, body in recorder.samples:
        if entry is None:
            continue
        assert status < 400, (entry, body)
        path, method = entry.spec_key
        responses = spec["paths"][path][method]["responses"]
        assert str(status) in responses, f"{entry.method} {entry.path} answered {status}; spec has {sorted(responses)}"
        problems += violations(spec, body, responses[str(status)].get("schema", {}), f"{entry.method} {entry.path}")
    assert problems == []


def test_error_bodies_are_http_errors(spec: dict[str, Any], scenario: tuple[Recorder, list[dict[str, Any]]]) -> None:
    recorder, _ = scenario
    errors = [(status, body) for entry, status, body in recorder.samples if entry is None]
    assert sorted(status for status, _ in errors) == [400, 401, 404, 404, 404, 404, 405, 412, 429, 500]
    http_error = resolve(spec, definition(spec, "web.HTTPError"))
    for status, body in errors:
        plain = {k: v for k, v in body.items() if k not in ERROR_EXTENSIONS}
        assert violations(spec, plain, http_error, str(status)) == []
        assert isinstance(body["message"], str) and body["message"]
    coded = {status: body.get("code") for status, body in errors if status in (400, 401, 412)}
    assert coded == {400: 2004, 401: 11, 412: 2002}
    assert next(body for status, body in errors if status == 412)["invalid_fields"]


# ---------------------------------------------------------------- objects


def tasks_seen(recorder: Recorder, envelopes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    bodies = [
        body
        for entry, status, body in recorder.samples
        if entry and entry.action in ("create_task", "get_task", "update_task")
    ]
    return bodies + [e["data"]["task"] for e in envelopes if "task" in e["data"]]


def test_tasks_carry_every_unconditional_spec_field(
    spec: dict[str, Any], scenario: tuple[Recorder, list[dict[str, Any]]]
) -> None:
    recorder, envelopes = scenario
    declared = set(spec["definitions"]["models.Task"]["properties"])
    assert set(CONDITIONAL_TASK_FIELDS) <= declared
    required = declared - set(CONDITIONAL_TASK_FIELDS)
    for task in tasks_seen(recorder, envelopes):
        assert required - set(task) == set(), task["title"]
        assert set(task) - declared == set()


def test_rich_task_fills_nested_objects(spec: dict[str, Any], scenario: tuple[Recorder, list[dict[str, Any]]]) -> None:
    recorder, envelopes = scenario
    rich = next(t for t in tasks_seen(recorder, envelopes) if t["title"] == "Everything set" and t["labels"])
    assert rich["assignees"] and rich["reminders"] and rich["created_by"]
    assert {r["relative_to"] for r in rich["reminders"]} == {"", "due_date"}
    assert violations(spec, rich, definition(spec, "models.Task"), "task") == []


def test_webhook_envelopes_match_the_models(
    spec: dict[str, Any], scenario: tuple[Recorder, list[dict[str, Any]]]
) -> None:
    _, envelopes = scenario
    assert {e["event_name"] for e in envelopes} == {"task.created", "task.updated", "project.updated"}
    for envelope in envelopes:
        assert set(envelope) == {"event_name", "time", "data"}
        data = envelope["data"]
        assert violations(spec, data["project"], definition(spec, "models.Project"), "project") == []
        assert violations(spec, data["doer"], definition(spec, "user.User"), "doer") == []
        if "task" in data:
            assert violations(spec, data["task"], definition(spec, "models.Task"), "task") == []


def test_webhook_secret_is_never_sent_back(scenario: tuple[Recorder, list[dict[str, Any]]]) -> None:
    recorder, _ = scenario
    for entry, _, body in recorder.samples:
        if entry is not None and "webhook" in entry.action:
            assert '"secret"' not in json.dumps(body) and "basic_auth_password" not in json.dumps(body)


@pytest.mark.parametrize(
    ("fields", "name"),
    [
        (TASK_BODY, "models.Task"),
        (PROJECT_BODY, "models.Project"),
        (LABEL_BODY, "models.Label"),
        (WEBHOOK_BODY, "models.Webhook"),
    ],
)
def test_accepted_body_fields_are_spec_fields(spec: dict[str, Any], fields: dict[str, str], name: str) -> None:
    assert set(fields) - set(spec["definitions"][name]["properties"]) == set()


def test_info_reports_the_fields_clients_rely_on(scenario: tuple[Recorder, list[dict[str, Any]]]) -> None:
    recorder, _ = scenario
    info = next(body for entry, _, body in recorder.samples if entry and entry.action == "info")
    assert {"version", "webhooks_enabled", "max_items_per_page", "concurrent_writes"} <= set(info)
