"""Behaviour of the Vikunja emulator over real loopback HTTP.

Each test pins one quirk of Vikunja v2.5 (docs/vikunja-api.md) or one fault the
emulator must be able to inject, because every other suite trusts both.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vikunja_sync.emulator import ZERO_DATE, Emulator

TOKEN = "tk_" + "0123456789" * 4
SECRET = "s3cr3t-for-signing"
TZ = timezone(timedelta(hours=2))


# ---------------------------------------------------------------- helpers


class Receiver:
    """A webhook target on loopback: records raw bodies and headers, answers ``status``."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.statuses = list(statuses or [])  # consumed in order; 200 once empty
        self.hits: list[tuple[bytes, dict[str, str]]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    receiver.hits.append((body, {k.lower(): v for k, v in self.headers.items()}))
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def envelopes(self) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(body) for body, _ in self.hits]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Api:
    """A requests.Session against the emulator's /api/v1 with the token set."""

    def __init__(self, emu: Emulator, token: str = TOKEN) -> None:
        self.base = emu.url + "/api/v1"
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def __call__(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 10)
        return self.session.request(method, self.base + path, **kwargs)

    def ok(self, method: str, path: str, status: int = 200, **kwargs: Any) -> Any:
        response = self(method, path, **kwargs)
        assert response.status_code == status, response.text
        return response.json()


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def emu():
    emulator = Emulator(token=TOKEN, webhook_timeout=2.0).start()
    yield emulator
    emulator.stop()


@pytest.fixture
def api(emu: Emulator) -> Api:
    return Api(emu)


@pytest.fixture
def receiver():
    target = Receiver()
    yield target
    target.close()


def add_webhook(api: Api, project_id: int, url: str, events: list[str], secret: str = SECRET) -> dict[str, Any]:
    body = {"target_url": url, "events": events, "secret": secret}
    return api.ok("PUT", f"/projects/{project_id}/webhooks", 201, json=body)


# ---------------------------------------------------------------- info and auth


def test_info_needs_no_token_and_reports_server_limits(emu: Emulator) -> None:
    info = requests.get(emu.url + "/api/v1/info", timeout=5).json()
    assert info["version"] == "v2.5.0"
    assert info["webhooks_enabled"] is True
    assert info["max_items_per_page"] == 50
    assert isinstance(info["concurrent_writes"], bool)


@pytest.mark.parametrize(
    "header",
    [None, "Bearer tk_" + "f" * 40, "Basic " + TOKEN, TOKEN, "Bearer " + TOKEN[:-1]],
    ids=["missing", "wrong", "basic-scheme", "no-scheme", "truncated"],
)
def test_bad_or_missing_token_is_401_code_11(emu: Emulator, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    response = requests.get(emu.url + "/api/v1/tasks/1", headers=headers, timeout=5)
    assert response.status_code == 401
    assert response.json()["code"] == 11


def test_token_never_appears_in_logs(emu: Emulator, api: Api, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG", logger="vikunja_sync.emulator")
    api("GET", "/tasks")
    requests.get(emu.url + "/api/v1/tasks", headers={"Authorization": "Bearer wrong"}, timeout=5)
    assert caplog.records, "the request log should have been captured"
    assert TOKEN not in caplog.text and TOKEN not in repr(emu)


# ---------------------------------------------------------------- tasks


def full_task_body() -> dict[str, Any]:
    return {
        "title": "Write report",
        "description": "<p>with <b>HTML</b></p>",
        "done": False,
        "priority": 4,
        "due_date": "2030-01-02T10:00:00Z",
        "start_date": "2030-01-01T08:00:00Z",
        "end_date": "2030-01-03T18:00:00Z",
        "repeat_after": 0,
        "repeat_mode": 0,
        "hex_color": "#ff0000",
        "percent_done": 0.5,
        "is_favorite": True,
        "assignees": [{"id": 1}],
        "reminders": [{"reminder": "2030-01-02T09:00:00Z"}],
        "labels": [{"title": "ignored-on-create"}],
    }


def test_create_returns_201_full_task_and_ignores_labels(api: Api) -> None:
    task = api.ok("PUT", "/projects/1/tasks", 201, json=full_task_body())
    assert task["id"] > 0 and task["project_id"] == 1 and task["title"] == "Write report"
    assert task["labels"] is None
    assert task["hex_color"] == "ff0000"
    assert task["assignees"][0]["id"] == 1
    assert instant(task["reminders"][0]["reminder"]) == datetime(2030, 1, 2, 9, tzinfo=UTC)
    assert task["identifier"] == f"#{task['index']}"
    assert api.ok("GET", f"/tasks/{task['id']}") == task
    assert api.ok("GET", "/labels") == []


def test_update_replaces_the_whole_task(api: Api) -> None:
    task = api.ok("PUT", "/projects/1/tasks", 201, json=full_task_body())
    api.ok(
        "PUT",
        f"/tasks/{task['id']}/labels",
        201,
        json={"label_id": api.ok("PUT", "/labels", 201, json={"title": "keep"})["id"]},
    )

    updated = api.ok("POST", f"/tasks/{task['id']}", json={"priority": 2})

    assert updated["title"] == "Write report" and updated["project_id"] == 1
    assert updated["priority"] == 2
    assert updated["description"] == "" and updated["done"] is False
    for name in ("due_date", "start_date", "end_date", "done_at"):
        assert updated[name] == ZERO_DATE, name
    assert updated["repeat_after"] == 0 and updated["repeat_mode"] == 0
    assert updated["hex_color"] == "" and updated["percent_done"] == 0
    assert updated["assignees"] is None and updated["reminders"] is None
    assert updated["is_favorite"] is False
    assert [label["title"] for label in updated["labels"]] == ["keep"], "labels are not touched by updates"
    assert updated["created"] == task["created"] and updated["index"] == task["index"]
    assert instant(updated["updated"]) > instant(task["updated"])
    assert api.ok("GET", f"/tasks/{task['id']}") == updated


def test_full_object_update_keeps_everything(api: Api) -> None:
    task = api.ok("PUT", "/projects/1/tasks", 201, json=full_task_body())
    body = dict(task, title="Renamed")
    updated = api.ok("POST", f"/tasks/{task['id']}", json=body)
    unchanged = {k: v for k, v in task.items() if k not in ("title", "updated")}
    assert {k: updated[k] for k in unchanged} == unchanged
    assert updated["title"] == "Renamed"


def test_update_labels_in_body_are_ignored(api: Api) -> None:
    task = api.ok("PUT", "/projects/1/tasks", 201, json={"title": "t"})
    updated = api.ok("POST", f"/tasks/{task['id']}", json={"title": "t", "labels": [{"id": 1, "title": "x"}]})
    assert updated["labels"] is None


@pytest.mark.parametrize("title", ["", "x" * 251])
def test_title_must_be_1_to_250_chars(api: Api, title: str) -> None:
    response = api("PUT", "/projects/1/tasks", json={"title": title})
    assert response.status_code == 412
    assert response.json()["invalid_fields"]
    assert api("PUT", "/projects/1/tasks", json={}).status_code == 412


def test_create_in_missing_project_is_404_code_3001(api: Api) -> None:
    response = api("PUT", "/projects/999/tasks", json={"title": "t"})
    assert response.status_code == 404 and response.json()["code"] == 3001


@pytest.mark.parametrize(
    "body",
    [{"title": "t", "priority": "high"}, {"title": "t", "due_date": "tomorrow"}, {"title": "t", "done": 1}],
    ids=["string-priority", "bad-date", "int-done"],
)
def test_wrongly_typed_fields_are_400(api: Api, body: dict[str, Any]) -> None:
    response = api("PUT", "/projects/1/tasks", json=body)
    assert response.status_code == 400 and response.json()["code"] == 2004


def test_non_json_body_is_400(api: Api) -> None:
    response = api("PUT", "/projects/1/tasks", data=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400


def test_moving_a_task_between_projects(api: Api) -> None:
    target = api.ok("PUT", "/projects", 201, json={"title": "Work", "identifier": "WRK"})
    task = api.ok("PUT", "/projects/1/tasks", 201, json={"title": "move me", "priority": 3})
    moved = api.ok("POST", f"/tasks/{task['id']}", json=dict(task, project_id=target["id"]))
    assert moved["project_id"] == target["id"] and moved["priority"] == 3
    assert moved["identifier"] == "WRK-1"
    missing = api("POST", f"/tasks/{task['id']}", json=dict(task, project_id=424242))
    assert missing.status_code == 404 and missing.json()["code"] == 3001


def test_empty_lists_are_null_and_related_tasks_is_an_object(api: Api) -> None:
    task = api.ok("PUT", "/projects/1/tasks", 201, json={"title": "bare"})
    for name in ("labels", "assignees", "reminders", "attachments"):
        assert task[name] is None, name
    assert task["related_tasks"] == {}


def test_unset_dates_are_zero_and_can_be_cleared(api: Api) -> None:
    task = api.ok("PUT", "/projects/1/tasks", 201, json={"title": "dates"})
    assert task["due_date"] == ZERO_DATE and task["done_at"] == ZERO_DATE
    path = f"/tasks/{task['id']}"

    task = api.ok("POST", path, json=dict(task, due_date="2030-05-06T07:08:09Z"))
    assert task["due_date"] == "2030-05-06T09:08:09+02:00", "rendered in the server zone, seconds only"
    assert api.ok("POST", path, json=dict(task, due_date=None))["due_date"] == ZERO_DATE

    task = api.ok("POST", path, json=dict(task, due_date="2030-05-06T07:08:09.987654321-03:00"))
    assert instant(task["due_date"]) == datetime(2030, 5, 6, 10, 8, 9, tzinfo=UTC)
    assert api.ok("POST", path, json=dict(task, due_date=ZERO_DATE))["due_date"] == ZERO_DATE


@settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    moment=st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1)),
    offset_minutes=st.integers(min_value=-14 * 60, max_value=14 * 60),
    fraction=st.sampled_from(["", ".5", ".123", ".123456", ".123456789"]),
)
def test_any_rfc3339_input_is_the_same_instant(api: Api, moment: datetime, offset_minutes: int, fraction: str) -> None:
    zone = timezone(timedelta(minutes=offset_minutes))
    local = moment.replace(microsecond=0, tzinfo=zone)
    text = (
        local.strftime("%Y-%m-%dT%H:%M:%S")
        + fraction
        + ("Z" if offset_minutes == 0 else local.strftime("%z")[:3] + ":" + local.strftime("%z")[3:])
    )
    task = api.ok("PUT", "/projects/1/tasks", 201, json={"title": "tz", "due_date": text})
    assert instant(task["due_date"]) == local
    assert task["due_date"].endswith("+02:00") and "." not in task["due_date"]


def test_delete_is_soft_and_then_404_code_4002(api: Api) -> None:
    task = api.ok("PUT", "/projects/1/tasks", 201, json={"title": "doomed"})
    assert "message" in api.ok("DELETE", f"/tasks/{task['id']}")
    for method in ("GET", "POST", "DELETE"):
        response = api(method, f"/tasks/{task['id']}", json={"title": "x"})
        assert response.status_code == 404 and response.json()["code"] == 4002, method
    assert all(t["id"] != task["id"] for t in api.ok("GET", "/tasks"))


def test_archived_project_refuses_task_writes_with_3008(api: Api) -> None:
    project = api.ok("PUT", "/projects", 201, json={"title": "Old"})
    task = api.ok("PUT", f"/projects/{project['id']}/tasks", 201, json={"title": "t"})
    api.ok("POST", f"/projects/{project['id']}", json=dict(project, is_archived=True))
    for method, path in (("PUT", f"/projects/{project['id']}/tasks"), ("POST", f"/tasks/{task['id']}")):
        response = api(method, path, json={"title": "t"})
        assert response.status_code == 412 and response.json()["code"] == 3008
    assert project["id"] not in [p["id"] for p in api.ok("GET", "/projects")]
    assert project["id"] in [p["id"] for p in api.ok("GET", "/projects", params={"is_archived": "true"})]


# ---------------------------------------------------------------- done and repeating


def test_done_sets_done_at_and_undone_clears_it(api: Api) -> None:
    task = api.ok("PUT", "/projects/1/tasks", 201, json={"title": "once"})
    done = api.ok("POST", f"/tasks/{task['id']}", json=dict(task, done=True))
    assert done["done"] is True and done["done_at"] != ZERO_DATE
    again = api.ok("POST", f"/tasks/{task['id']}", json=dict(done, title="still done"))
    assert again["done_at"] == done["done_at"], "done_at is kept while the task stays done"
    undone = api.ok("POST", f"/tasks/{task['id']}", json=dict(again, done=False))
    assert undone["done"] is False and undone["done_at"] == ZERO_DATE


def test_marking_a_repeating_task_done_moves_its_dates(api: Api) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    due, start = now + timedelta(days=1), now - timedelta(days=10)
    body = {
        "title": "water plants",
        "due_date": due.isoformat(),
        "start_date": start.isoformat(),
        "end_date": (start + timedelta(hours=2)).isoformat(),
        "repeat_after": 7 * 86400,
    }
    task = api.ok("PUT", "/projects/1/tasks", 201, json=body)
    after = api.ok("POST", f"/tasks/{task['id']}", json=dict(task, done=True))
    assert after["done"] is False and after["done_at"] == ZERO_DATE
    assert instant(after["due_date"]) == due + timedelta(days=7)
    assert instant(after["start_date"]) == start + timedelta(days=14), "moved until it lies in the future"
    assert instant(after["end_date"]) - instant(after["start_date"]) == timedelta(hours=2)


def test_monthly_repeat_moves_by_calendar_month(api: Api) -> None:
    due = datetime(datetime.now(UTC).year + 1, 1, 15, 12, tzinfo=UTC)
    task = api.ok(
        "PUT", "/projects/1/tasks", 201, json={"title": "rent", "due_date": due.isoformat(), "repeat_mode": 1}
    )
    after = api.ok("POST", f"/tasks/{task['id']}", json=dict(task, done=True))
    assert after["done"] is False
    assert instant(after["due_date"]) == due.replace(month=2)


# ---------------------------------------------------------------- listing


def test_pagination_caps_per_page_and_sets_headers(emu: Emulator, api: Api) -> None:
    created = [emu.create_task(1, title=f"task {i}")["id"] for i in range(120)]
    seen: list[int] = []
    expected_counts = {1: 50, 2: 50, 3: 20, 4: 0}
    for page, count in expected_counts.items():
        response = api("GET", "/tasks", params={"page": page, "per_page": 100})
        assert response.status_code == 200
        assert response.headers["x-pagination-total-pages"] == "3"
        assert response.headers["x-pagination-result-count"] == str(count)
        assert len(response.json()) == count
        seen += [t["id"] for t in response.json()]
    assert seen == created, "every task once, in id order"
    assert len(api.ok("GET", "/tasks/all", params={"per_page": 7})) == 7


@settings(max_examples=15, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(count=st.integers(min_value=0, max_value=130), per_page=st.integers(min_value=-1, max_value=80))
def test_paging_through_a_project_yields_each_task_once(emu: Emulator, api: Api, count: int, per_page: int) -> None:
    project = emu.create_project(f"paging {count} {per_page}")
    ids = [emu.create_task(project["id"], title=str(i))["id"] for i in range(count)]
    size = per_page if 0 < per_page <= 50 else 50
    pages = -(-count // size)
    seen: list[int] = []
    for page in range(1, pages + 2):
        response = api(
            "GET", "/tasks", params={"page": page, "per_page": per_page, "filter": f"project = {project['id']}"}
        )
        assert response.headers["x-pagination-total-pages"] == str(pages)
        assert int(response.headers["x-pagination-result-count"]) == len(response.json()) <= size
        seen += [t["id"] for t in response.json()]
    assert seen == ids


def test_projects_list_contains_negative_pseudo_projects(emu: Emulator, api: Api) -> None:
    projects = api.ok("GET", "/projects")
    ids = [p["id"] for p in projects]
    assert 1 in ids and "Inbox" in [p["title"] for p in projects]
    assert any(i <= -2 for i in ids), "a saved filter shows up as a project with id <= -2"
    assert -1 not in ids, "no favorites yet"
    emu.create_task(1, title="fav", is_favorite=True)
    assert -1 in [p["id"] for p in api.ok("GET", "/projects")]
    assert api.ok("GET", "/projects/-1")["title"] == "Favorites"


def test_sub_projects_carry_their_parent(api: Api) -> None:
    parent = api.ok("PUT", "/projects", 201, json={"title": "Parent"})
    child = api.ok("PUT", "/projects", 201, json={"title": "Child", "parent_project_id": parent["id"]})
    assert api.ok("GET", f"/projects/{child['id']}")["parent_project_id"] == parent["id"]
    cycle = api("POST", f"/projects/{parent['id']}", json=dict(parent, parent_project_id=child["id"]))
    assert cycle.status_code == 400
    assert api("PUT", "/projects", json={"title": "Orphan", "parent_project_id": 999}).status_code == 404


def test_filter_updated_after_a_timestamp(emu: Emulator, api: Api) -> None:
    old = emu.create_task(1, title="old")
    fresh = emu.create_task(1, title="fresh")
    fresh = emu.update_task(fresh["id"], priority=1)  # `updated` strictly increases on every write
    assert instant(fresh["updated"]) > instant(old["updated"])
    mark = instant(old["updated"])
    forms = [
        old["updated"],
        mark.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        mark.astimezone(timezone(timedelta(hours=-5))).isoformat(),
        mark.astimezone(TZ).strftime("%Y-%m-%d %H:%M:%S"),  # naive: read in the server zone
    ]
    for form in forms:
        found = api.ok("GET", "/tasks", params={"filter": f"updated > {form}"})
        assert [t["id"] for t in found] == [fresh["id"]], form


def test_filter_done_and_combinations(emu: Emulator, api: Api) -> None:
    open_task = emu.create_task(1, title="open", priority=5)
    done_task = emu.create_task(1, title="done", done=True, priority=5)
    low = emu.create_task(1, title="low", priority=1)

    def ids(text: str) -> list[int]:
        return [t["id"] for t in api.ok("GET", "/tasks", params={"filter": text})]

    assert ids("done = false") == [open_task["id"], low["id"]]
    assert ids("done = true") == [done_task["id"]]
    assert ids("done = false && priority >= 3") == [open_task["id"]]
    assert ids("(priority = 1 || done = true) && title like d%") == [done_task["id"]]
    assert ids("due_date > 2000-01-01") == [], "unset dates never match"
    assert len(api.ok("GET", "/tasks", params={"filter": "due_date > 2000-01-01", "filter_include_nulls": "true"})) == 3
    assert api("GET", "/tasks", params={"filter": "nonsense > 3"}).status_code == 400


def test_sort_by_and_order_by(emu: Emulator, api: Api) -> None:
    a = emu.create_task(1, title="a", priority=2)
    b = emu.create_task(1, title="b", priority=5)
    c = emu.create_task(1, title="c", priority=2)
    found = api.ok("GET", "/tasks", params={"sort_by": ["priority", "id"], "order_by": ["desc", "desc"]})
    assert [t["id"] for t in found] == [b["id"], c["id"], a["id"]]


# ---------------------------------------------------------------- labels


def test_task_labels_add_duplicate_remove_and_bulk(api: Api) -> None:
    task = api.ok("PUT", "/projects/1/tasks", 201, json={"title": "labelled"})
    label = api.ok("PUT", "/labels", 201, json={"title": "home", "hex_color": "#00ff00"})
    path = f"/tasks/{task['id']}/labels"

    relation = api.ok("PUT", path, 201, json={"label_id": label["id"]})
    assert relation["label_id"] == label["id"]
    duplicate = api("PUT", path, json={"label_id": label["id"]})
    assert duplicate.status_code == 400 and duplicate.json()["code"] == 8001
    missing = api("PUT", path, json={"label_id": 999})
    assert missing.status_code == 404 and missing.json()["code"] == 8002
    assert [item["title"] for item in api.ok("GET", path)] == ["home"]
    labelled = api.ok("GET", f"/tasks/{task['id']}")
    assert labelled["labels"][0]["hex_color"] == "00ff00"
    assert instant(labelled["updated"]) > instant(task["updated"])

    bulk = api.ok("POST", path + "/bulk", 201, json={"labels": [{"title": "work"}, {"id": label["id"]}]})
    assert [item["title"] for item in bulk["labels"]] == ["work", "home"]
    assert [item["title"] for item in api.ok("GET", f"/tasks/{task['id']}")["labels"]] == ["work", "home"]

    api.ok("DELETE", f"{path}/{label['id']}")
    assert [item["title"] for item in api.ok("GET", f"/tasks/{task['id']}")["labels"]] == ["work"]
    api.ok("POST", path + "/bulk", 201, json={"labels": []})
    assert api.ok("GET", f"/tasks/{task['id']}")["labels"] is None


def test_label_crud_update_is_post(api: Api) -> None:
    label = api.ok("PUT", "/labels", 201, json={"title": "old"})
    updated = api.ok("POST", f"/labels/{label['id']}", json={"title": "new"})
    assert updated["title"] == "new" and api.ok("GET", f"/labels/{label['id']}")["title"] == "new"
    assert api("PUT", f"/labels/{label['id']}", json={"title": "x"}).status_code == 405
    assert [item["title"] for item in api.ok("GET", "/labels")] == ["new"]
    assert api("GET", "/labels/999").json()["code"] == 8002


# ---------------------------------------------------------------- webhooks


def test_webhook_is_delivered_signed_and_secret_never_returned(emu: Emulator, api: Api, receiver: Receiver) -> None:
    hook = add_webhook(api, 1, receiver.url, ["task.created", "task.updated"])
    assert "secret" not in hook and SECRET not in json.dumps(api.ok("GET", "/projects/1/webhooks"))

    task = api.ok("PUT", "/projects/1/tasks", 201, json={"title": "hooked"})
    assert emu.wait_for_webhooks(10)

    [(raw, headers)] = receiver.hits
    expected = hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
    assert headers["x-vikunja-signature"] == expected
    assert headers["content-type"] == "application/json"
    envelope = json.loads(raw)
    assert envelope["event_name"] == "task.created"
    assert envelope["data"]["task"] == task
    assert envelope["data"]["project"]["id"] == 1
    assert envelope["data"]["doer"]["id"] == 1
    assert instant(envelope["time"])
    [record] = emu.webhook_deliveries
    assert record["url"] == receiver.url and record["event"] == "task.created"
    assert record["status"] == 200 and record["attempts"] == 1 and record["task_id"] == task["id"]


def test_webhook_without_secret_is_unsigned_and_filters_events(emu: Emulator, api: Api, receiver: Receiver) -> None:
    add_webhook(api, 1, receiver.url, ["task.deleted"], secret="")
    task = api.ok("PUT", "/projects/1/tasks", 201, json={"title": "short-lived"})
    api.ok("POST", f"/tasks/{task['id']}", json={"title": "renamed"})
    api.ok("DELETE", f"/tasks/{task['id']}")
    assert emu.wait_for_webhooks(10)
    [(raw, headers)] = receiver.hits
    assert "x-vikunja-signature" not in headers
    envelope = json.loads(raw)
    assert envelope["event_name"] == "task.deleted"
    assert envelope["data"]["task"]["title"] == "renamed", "the copy taken just before deletion"


def test_sub_project_task_fires_the_parent_webhook(emu: Emulator, api: Api, receiver: Receiver) -> None:
    parent = api.ok("PUT", "/projects", 201, json={"title": "Parent"})
    child = api.ok("PUT", "/projects", 201, json={"title": "Child", "parent_project_id": parent["id"]})
    add_webhook(api, parent["id"], receiver.url, ["task.created"])
    api.ok("PUT", "/projects/1/tasks", 201, json={"title": "elsewhere"})
    task = api.ok("PUT", f"/projects/{child['id']}/tasks", 201, json={"title": "nested"})
    assert emu.wait_for_webhooks(10)
    [envelope] = receiver.envelopes()
    assert envelope["data"]["task"]["id"] == task["id"]
    assert envelope["data"]["task"]["project_id"] == child["id"]
    assert envelope["data"]["project"]["id"] == parent["id"], "data.project is the webhook's project"


def test_ui_helpers_and_label_changes_fire_task_updated(emu: Emulator, api: Api, receiver: Receiver) -> None:
    add_webhook(api, 1, receiver.url, ["task.created", "task.updated", "task.deleted"])
    task = emu.create_task(1, title="from the UI", description="<p>x</p>", labels=["ui"])
    assert task["labels"][0]["title"] == "ui"
    changed = emu.update_task(task["id"], priority=3)
    assert changed["description"] == "<p>x</p>" and changed["priority"] == 3, "partial UI edit keeps the rest"
    emu.add_label_to_task(task["id"], "extra")
    emu.remove_label_from_task(task["id"], "ui")
    api.ok("PUT", f"/tasks/{task['id']}/labels", 201, json={"label_id": task["labels"][0]["id"]})
    emu.delete_task(task["id"])
    assert emu.get_task(task["id"]) is None
    assert emu.wait_for_webhooks(10)
    events = [
        (e["event_name"], [label["title"] for label in e["data"]["task"]["labels"] or []]) for e in receiver.envelopes()
    ]
    assert events == [
        ("task.created", ["ui"]),
        ("task.updated", ["ui"]),
        ("task.updated", ["ui", "extra"]),
        ("task.updated", ["extra"]),
        ("task.updated", ["extra", "ui"]),
        ("task.deleted", ["extra", "ui"]),
    ]


def test_failed_webhook_is_retried_five_times_then_dropped(emu: Emulator, api: Api) -> None:
    failing = Receiver(statuses=[500] * 10)
    try:
        add_webhook(api, 1, failing.url, ["task.created"])
        api.ok("PUT", "/projects/1/tasks", 201, json={"title": "lost"})
        assert emu.wait_for_webhooks(15)
        [record] = emu.webhook_deliveries
        assert record["attempts"] == 6 and record["status"] == 500 and record["state"] == "dropped"
        assert len(failing.hits) == 6
    finally:
        failing.close()


def test_receiver_down_means_connection_errors_then_drop(emu: Emulator, api: Api) -> None:
    add_webhook(api, 1, f"http://127.0.0.1:{free_port()}/hook", ["task.created"])
    api.ok("PUT", "/projects/1/tasks", 201, json={"title": "nobody listens"})
    assert emu.wait_for_webhooks(15)
    [record] = emu.webhook_deliveries
    assert record["attempts"] == 6 and record["status"] is None and record["state"] == "dropped"


def test_webhook_recovers_within_the_retries(emu: Emulator, api: Api) -> None:
    flaky = Receiver(statuses=[503, 502])
    try:
        add_webhook(api, 1, flaky.url, ["task.created"])
        api.ok("PUT", "/projects/1/tasks", 201, json={"title": "eventually"})
        assert emu.wait_for_webhooks(15)
        [record] = emu.webhook_deliveries
        assert record["attempts"] == 3 and record["status"] == 200 and record["state"] == "delivered"
        bodies = {body for body, _ in flaky.hits}
        assert len(bodies) == 1, "every retry sends the same bytes"
    finally:
        flaky.close()


def test_webhook_validation_listing_and_deletion(api: Api, receiver: Receiver) -> None:
    assert (
        api("PUT", "/projects/1/webhooks", json={"target_url": receiver.url, "events": ["task.nope"]}).status_code
        == 412
    )
    assert (
        api("PUT", "/projects/1/webhooks", json={"target_url": "ftp://x", "events": ["task.created"]}).status_code
        == 412
    )
    assert (
        api("PUT", "/projects/99/webhooks", json={"target_url": receiver.url, "events": ["task.created"]}).status_code
        == 404
    )
    hook = add_webhook(api, 1, receiver.url, ["task.created"])
    changed = api.ok("POST", f"/projects/1/webhooks/{hook['id']}", json={"events": ["task.updated"]})
    assert changed["events"] == ["task.updated"]
    assert [h["id"] for h in api.ok("GET", "/projects/1/webhooks")] == [hook["id"]]
    api.ok("DELETE", f"/projects/1/webhooks/{hook['id']}")
    assert api.ok("GET", "/projects/1/webhooks") == []
    assert "task.updated" in api.ok("GET", "/webhooks/events")


def test_webhooks_disabled_behaves_like_the_missing_feature() -> None:
    with Emulator(token=TOKEN, webhooks_enabled=False) as emu:
        api = Api(emu)
        assert api.ok("GET", "/info")["webhooks_enabled"] is False
        response = api(
            "PUT", "/projects/1/webhooks", json={"target_url": "http://127.0.0.1:1/", "events": ["task.created"]}
        )
        assert response.status_code == 404
        assert api("GET", "/webhooks/events").status_code == 404


# ---------------------------------------------------------------- faults and counters


def test_go_down_refuses_connections_and_come_up_restores_the_port(emu: Emulator, api: Api) -> None:
    port = emu.port
    api.ok("GET", "/tasks")
    emu.go_down()
    before = emu.connections
    with pytest.raises(requests.ConnectionError):
        api("GET", "/tasks", timeout=2)
    with pytest.raises(requests.ConnectionError):
        requests.get(emu.url + "/api/v1/info", timeout=2)
    assert emu.connections == before, "refused connections are never accepted, so never counted"
    emu.come_up()
    assert emu.port == port
    assert api("GET", "/tasks").status_code == 200


def test_connections_count_accepted_sockets_not_requests(emu: Emulator, api: Api) -> None:
    emu.reset_counters()
    for _ in range(5):
        api("GET", "/tasks")
    assert emu.connections == 1, "one keep-alive session is one connection"
    for _ in range(3):
        requests.get(emu.url + "/api/v1/info", timeout=5)
    assert emu.connections == 4
    assert emu.requests == [("GET", "/api/v1/tasks")] * 5 + [("GET", "/api/v1/info")] * 3
    emu.reset_counters()
    assert emu.connections == 0 and emu.requests == []


def test_error500_fault_counts_down(emu: Emulator, api: Api) -> None:
    emu.set_fault("error500", count=2)
    assert [api("GET", "/tasks").status_code for _ in range(3)] == [500, 500, 200]


def test_hang_fault_times_the_client_out(emu: Emulator, api: Api) -> None:
    emu.set_fault("hang", count=1, hang_seconds=1.0)
    with pytest.raises(requests.exceptions.ReadTimeout):
        api("GET", "/tasks", timeout=0.2)
    assert api("GET", "/tasks").status_code == 200
    assert emu.requests.count(("GET", "/api/v1/tasks")) == 2


def test_hang_without_client_timeout_ends_in_a_closed_connection(emu: Emulator, api: Api) -> None:
    emu.set_fault("hang", count=1, hang_seconds=0.2)
    with pytest.raises(requests.ConnectionError):
        api("PUT", "/projects/1/tasks", json={"title": "never stored"}, timeout=5)
    assert emu.tasks() == [], "a hung request is never processed"


def test_ratelimit_fault_sends_429_with_headers(emu: Emulator, api: Api) -> None:
    emu.set_fault("ratelimit")
    response = api("GET", "/tasks")
    assert response.status_code == 429
    assert response.headers["X-RateLimit-Remaining"] == "0"
    assert int(response.headers["X-RateLimit-Limit"]) > 0
    assert int(response.headers["X-RateLimit-Reset"]) >= int(time.time())
    assert "Retry-After" not in response.headers
    emu.set_fault("none")
    assert api("GET", "/tasks").status_code == 200


def test_faults_spare_the_admin_routes(emu: Emulator) -> None:
    emu.set_fault("error500")
    stats = requests.get(emu.url + "/_emulator/stats", timeout=5)
    assert stats.status_code == 200
    assert requests.get(emu.url + "/api/v1/info", timeout=5).status_code == 500


def test_configured_rate_limit_is_per_token() -> None:
    with Emulator(token=TOKEN, rate_limit=(3, 60)) as emu:
        api = Api(emu)
        responses = [api("GET", "/tasks") for _ in range(4)]
        assert [r.status_code for r in responses] == [200, 200, 200, 429]
        assert [r.headers["X-RateLimit-Remaining"] for r in responses] == ["2", "1", "0", "0"]
        assert all(r.headers["X-RateLimit-Limit"] == "3" for r in responses)
        assert len({r.headers["X-RateLimit-Reset"] for r in responses}) == 1
        assert requests.get(emu.url + "/api/v1/info", timeout=5).status_code == 200, "/info is not limited"


def test_go_down_cuts_open_keep_alive_connections(emu: Emulator, api: Api) -> None:
    api("GET", "/tasks")
    emu.go_down()
    try:
        with pytest.raises(requests.ConnectionError):
            api("GET", "/tasks", timeout=2)
    finally:
        emu.come_up()


def test_restart_keeps_data_and_port_but_loses_undelivered_events(emu: Emulator, api: Api) -> None:
    hung = Receiver()
    hung.server.shutdown()  # accepts nothing any more: deliveries stay in their retries
    hung.server.server_close()
    add_webhook(api, 1, hung.url, ["task.created"])
    task = api.ok("PUT", "/projects/1/tasks", 201, json={"title": "survives"})
    port = emu.port
    emu.stop()
    assert emu.wait_for_webhooks(0), "stopping drops what was not delivered"
    assert emu.webhook_deliveries[0]["state"] == "dropped"
    emu.start()
    assert emu.port == port
    assert api.ok("GET", f"/tasks/{task['id']}")["title"] == "survives"


# ---------------------------------------------------------------- admin routes and CLI


def test_admin_routes_drive_the_emulator(emu: Emulator, receiver: Receiver) -> None:
    api = Api(emu)
    add_webhook(api, 1, receiver.url, ["task.created", "task.updated"])
    admin = emu.url + "/_emulator"
    created = requests.post(admin + "/projects/1/tasks", json={"title": "ui task", "priority": 2}, timeout=5)
    assert created.status_code == 201
    task_id = created.json()["id"]
    edited = requests.post(f"{admin}/tasks/{task_id}", json={"done": True}, timeout=5).json()
    assert edited["done"] is True and edited["priority"] == 2
    assert requests.post(f"{admin}/tasks/{task_id}/labels", json={"title": "l"}, timeout=5).status_code == 201
    assert emu.wait_for_webhooks(10)

    assert requests.post(admin + "/fault", json={"kind": "error500", "count": 1}, timeout=5).status_code == 200
    assert api("GET", "/tasks").status_code == 500
    stats = requests.get(admin + "/stats", timeout=5).json()
    assert stats["tasks"] == 1 and stats["requests"] >= 2 and stats["connections"] >= 1
    assert [d["event"] for d in stats["webhook_deliveries"]] == ["task.created", "task.updated", "task.updated"]
    assert requests.post(admin + "/reset-counters", timeout=5).status_code == 200
    assert requests.get(admin + "/stats", timeout=5).json()["requests"] == 0
    assert requests.post(admin + "/fault", json={"kind": "bogus"}, timeout=5).status_code == 400
    assert requests.get(admin + "/nope", timeout=5).status_code == 404


def test_cli_serves_until_sigterm(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    port = free_port()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    cmd = [
        sys.executable,
        "-m",
        "vikunja_sync.emulator",
        "--port",
        str(port),
        "--token-file",
        str(token_file),
        "--log-level",
        "DEBUG",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert line == f"vikunja emulator listening on http://127.0.0.1:{port}\n"
        headers = {"Authorization": f"Bearer {TOKEN}"}
        assert requests.get(f"http://127.0.0.1:{port}/api/v1/tasks", headers=headers, timeout=5).status_code == 200
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    finally:
        proc.kill()
    assert proc.returncode == 0
    assert TOKEN not in out + err and TOKEN not in " ".join(cmd)


def test_cli_refuses_an_empty_token_file(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("\n")
    cmd = [sys.executable, "-m", "vikunja_sync.emulator", "--port", "0", "--token-file", str(token_file)]
    result = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "empty" in result.stderr
