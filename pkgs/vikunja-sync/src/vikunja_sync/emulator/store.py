"""Vikunja's data and business rules: projects, tasks, labels, webhooks, events.

Everything runs under one lock, and events are handed to the dispatcher while the lock
is held, so webhook order always matches write order. Methods take decoded-JSON
bodies and return the exact JSON the API would send, raising ApiError otherwise.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from . import filters
from .clock import add_months, format_datetime, now_utc, parse_offset
from .model import (
    ERR_LABEL_ALREADY_ON_TASK,
    ERR_LABEL_MISSING,
    ERR_PROJECT_ARCHIVED,
    ERR_PROJECT_CYCLE,
    ERR_PROJECT_IDENTIFIER_TAKEN,
    ERR_PROJECT_MISSING,
    ERR_TASK_MISSING,
    ERR_USER_MISSING,
    ERR_WEBHOOK_MISSING,
    LABEL_BODY,
    PROJECT_BODY,
    TASK_BODY,
    WEBHOOK_BODY,
    ApiError,
    Label,
    Project,
    Reminder,
    Task,
    User,
    Webhook,
    check_title,
    decode,
    decode_reminders,
    invalid,
    normalize_hex,
)
from .webhooks import WEBHOOK_EVENTS, Delivery

JSON = dict[str, Any]
FAVORITES_ID = -1
SAVED_FILTER_ID = -2
VIEW_KINDS = ("list", "gantt", "table", "kanban")
POSITION_STEP = 65536.0
_PLAIN_TASK_FIELDS = (
    "description",
    "done",
    "due_date",
    "start_date",
    "end_date",
    "is_favorite",
    "repeat_after",
    "priority",
    "percent_done",
    "cover_image_attachment_id",
)


class Store:
    """The emulated database plus the rules Vikunja applies when writing to it."""

    def __init__(self, tz: timezone, deliver: Callable[[Delivery], None]) -> None:
        self.tz = tz
        self.lock = threading.RLock()
        self._deliver = deliver
        self._started = now_utc()
        self.user = User(1, "emulator", "Emulated User", "emulator@example.invalid", self._started)
        self._projects: dict[int, Project] = {}
        self._tasks: dict[int, Task] = {}
        self._labels: dict[int, Label] = {}
        self._webhooks: dict[int, Webhook] = {}
        self._last_index: dict[int, int] = {}
        self._next = {"project": 1, "task": 1, "label": 1, "webhook": 1, "view": 1}
        self.create_project({"title": "Inbox"})

    def _new_id(self, kind: str) -> int:
        value = self._next[kind]
        self._next[kind] = value + 1
        return value

    # ---------------------------------------------------------------- rendering

    def _date(self, value: datetime | None) -> str:
        return format_datetime(value, self.tz)

    def render_user(self) -> JSON:
        return {
            "id": self.user.id,
            "name": self.user.name,
            "username": self.user.username,
            "created": self._date(self.user.created),
            "updated": self._date(self.user.created),
        }

    def render_user_settings(self) -> JSON:
        """GET /user: the token's owner with settings (v1.UserWithSettings)."""
        return self.render_user() | {
            "email": self.user.email,
            "is_local_user": True,
            "auth_provider": "local",
            "settings": {
                "name": self.user.name,
                "default_project_id": 1,
                "timezone": "",
                "language": "en",
                "week_start": 1,
                "email_reminders_enabled": False,
                "overdue_tasks_reminders_enabled": False,
                "discoverable_by_name": False,
                "discoverable_by_email": False,
            },
        }

    def render_project(self, project: Project) -> JSON:
        views = [
            {
                "id": view_id,
                "project_id": project.id,
                "title": kind.capitalize(),
                "view_kind": kind,
                "position": POSITION_STEP * (i + 1),
                "filter": None,
                "bucket_configuration_mode": "manual" if kind == "kanban" else "none",
                "bucket_configuration": None,
                "default_bucket_id": 0,
                "done_bucket_id": 0,
                "created": self._date(project.created),
                "updated": self._date(project.created),
            }
            for i, (kind, view_id) in enumerate(zip(VIEW_KINDS, project.view_ids, strict=False))
        ]
        return {
            "id": project.id,
            "title": project.title,
            "description": project.description,
            "identifier": project.identifier,
            "hex_color": project.hex_color,
            "parent_project_id": project.parent_project_id,
            "owner": self.render_user(),
            "is_archived": project.is_archived,
            "background_information": None,
            "background_blur_hash": "",
            "is_favorite": project.is_favorite,
            "position": project.position,
            "views": views or None,
            "created": self._date(project.created),
            "updated": self._date(project.updated),
        }

    def render_label(self, label: Label) -> JSON:
        return {
            "id": label.id,
            "title": label.title,
            "description": label.description,
            "hex_color": label.hex_color,
            "created_by": self.render_user(),
            "created": self._date(label.created),
            "updated": self._date(label.updated),
        }

    def render_task(self, task: Task) -> JSON:
        labels = [self.render_label(self._labels[i]) for i in task.label_ids]
        assignees = [self.render_user() for _ in task.assignee_ids]
        reminders = [
            {
                "reminder": self._date(self._reminder_time(task, r)),
                "relative_period": r.relative_period,
                "relative_to": r.relative_to,
            }
            for r in task.reminders
        ]
        return {
            "id": task.id,
            "title": task.title,
            "description": task.description,
            "done": task.done,
            "done_at": self._date(task.done_at),
            "due_date": self._date(task.due_date),
            "reminders": reminders or None,
            "project_id": task.project_id,
            "repeat_after": task.repeat_after,
            "repeat_mode": task.repeat_mode,
            "priority": task.priority,
            "start_date": self._date(task.start_date),
            "end_date": self._date(task.end_date),
            "assignees": assignees or None,
            "labels": labels or None,
            "hex_color": task.hex_color,
            "percent_done": task.percent_done,
            "identifier": self._identifier(task),
            "index": task.index,
            "related_tasks": {},
            "attachments": None,
            "cover_image_attachment_id": task.cover_image_attachment_id,
            "is_favorite": task.is_favorite,
            "is_unread": False,
            "created": self._date(task.created),
            "updated": self._date(task.updated),
            "bucket_id": task.bucket_id,
            "position": task.position,
            "reactions": None,
            "created_by": self.render_user(),
        }

    def _identifier(self, task: Task) -> str:
        project = self._projects[task.project_id]
        return f"{project.identifier}-{task.index}" if project.identifier else f"#{task.index}"

    def render_webhook(self, hook: Webhook) -> JSON:
        """The secret and the basic-auth password are never sent back."""
        return {
            "id": hook.id,
            "target_url": hook.target_url,
            "events": list(hook.events),
            "project_id": hook.project_id,
            "user_id": 0,
            "basic_auth_user": hook.basic_auth_user,
            "created_by": self.render_user(),
            "created": self._date(hook.created),
            "updated": self._date(hook.updated),
        }

    @staticmethod
    def _reminder_time(task: Task, reminder: Reminder) -> datetime | None:
        if not reminder.relative_to:
            return reminder.reminder
        base: datetime | None = getattr(task, reminder.relative_to)
        return None if base is None else base + timedelta(seconds=reminder.relative_period)

    # ---------------------------------------------------------------- events

    def _ancestors(self, project_id: int) -> list[Project]:
        chain: list[Project] = []
        current = self._projects.get(project_id)
        while current is not None and all(p.id != current.id for p in chain):
            chain.append(current)
            current = self._projects.get(current.parent_project_id)
        return chain

    def _fire(self, event: str, project_id: int, data: JSON, task_id: int | None) -> None:
        """Queue one envelope per subscribed webhook on the project or any ancestor."""
        stamp = self._date(now_utc())
        for project in self._ancestors(project_id):
            for hook in self._webhooks.values():
                if hook.project_id != project.id or event not in hook.events:
                    continue
                payload = {"project": self.render_project(project)} | data
                envelope = {"event_name": event, "time": stamp, "data": payload}
                auth = (hook.basic_auth_user, hook.basic_auth_password)
                self._deliver(
                    Delivery(
                        url=hook.target_url,
                        body=json.dumps(envelope).encode(),
                        secret=hook.secret,
                        event=event,
                        task_id=task_id,
                        basic_auth=auth if hook.basic_auth_user else None,
                    )
                )

    def _fire_task(self, event: str, task: Task) -> None:
        data = {"task": self.render_task(task), "doer": self.render_user()}
        self._fire(event, task.project_id, data, task.id)

    # ---------------------------------------------------------------- projects

    def _project(self, project_id: int, writable: bool = False) -> Project:
        project = self._projects.get(project_id)
        if project is None:
            raise ApiError(404, ERR_PROJECT_MISSING, "The project does not exist.")
        if writable and project.is_archived:
            raise ApiError(412, ERR_PROJECT_ARCHIVED, "This project is archived.")
        return project

    def _pseudo_projects(self) -> list[JSON]:
        result = []
        any_favorite = any(t.is_favorite for t in self._tasks.values()) or any(
            p.is_favorite for p in self._projects.values()
        )
        if any_favorite:
            result.append(self._pseudo(FAVORITES_ID, "Favorites", "Your favorite tasks."))
        result.append(self._pseudo(SAVED_FILTER_ID, "Open tasks", "Saved filter: done = false"))
        return result

    def _pseudo(self, project_id: int, title: str, description: str) -> JSON:
        fake = Project(project_id, title, self._started, self._started, description=description)
        return self.render_project(fake) | {"position": float(project_id)}

    def list_projects(self, include_archived: bool, search: str = "") -> list[JSON]:
        with self.lock:
            real = [
                self.render_project(p)
                for p in sorted(self._projects.values(), key=lambda p: p.id)
                if include_archived or not p.is_archived
            ]
            rows = self._pseudo_projects() + real
            return [p for p in rows if search.lower() in p["title"].lower()]

    def get_project(self, project_id: int) -> JSON:
        with self.lock:
            for pseudo in self._pseudo_projects():
                if pseudo["id"] == project_id:
                    return pseudo
            return self.render_project(self._project(project_id))

    def create_project(self, body: object) -> JSON:
        with self.lock:
            fields = decode(body, PROJECT_BODY)
            now = now_utc()
            project = Project(self._new_id("project"), "", now, now)
            project.view_ids = [self._new_id("view") for _ in VIEW_KINDS]
            project.position = project.id * POSITION_STEP
            self._apply_project_fields(project, fields)
            self._projects[project.id] = project
            return self.render_project(project)

    def update_project(self, project_id: int, body: object) -> JSON:
        """POST /projects/{id}: replaces the writable fields; an archived project may
        only be unarchived."""
        with self.lock:
            old = self._project(project_id)
            fields = decode(body, PROJECT_BODY)
            if old.is_archived and fields.get("is_archived", False):
                raise ApiError(412, ERR_PROJECT_ARCHIVED, "This project is archived.")
            fields.setdefault("title", old.title)
            new = replace(old, view_ids=list(old.view_ids))
            self._apply_project_fields(new, fields)
            new.updated = max(now_utc(), old.updated + timedelta(seconds=1))
            self._projects[project_id] = new
            data = {"project": self.render_project(new), "doer": self.render_user()}
            self._fire("project.updated", project_id, data, None)
            return self.render_project(new)

    def _apply_project_fields(self, project: Project, fields: dict[str, Any]) -> None:
        project.title = check_title(fields.get("title", ""))
        project.description = fields.get("description", "")
        project.hex_color = normalize_hex(fields.get("hex_color", ""))
        project.is_archived = fields.get("is_archived", False)
        project.is_favorite = fields.get("is_favorite", False)
        project.position = fields.get("position") or project.position
        identifier = fields.get("identifier", "")
        if len(identifier) > 10:
            raise invalid("identifier", "must be at most 10 characters")
        if identifier and any(p.identifier == identifier and p.id != project.id for p in self._projects.values()):
            raise ApiError(400, ERR_PROJECT_IDENTIFIER_TAKEN, "The identifier is not unique.")
        project.identifier = identifier
        parent_id = fields.get("parent_project_id", 0)
        if parent_id:
            self._project(parent_id)
            if project.id in (p.id for p in self._ancestors(parent_id)):
                raise ApiError(400, ERR_PROJECT_CYCLE, "Projects cannot be nested in a cycle.")
        project.parent_project_id = parent_id

    # ---------------------------------------------------------------- tasks

    def _task(self, task_id: int) -> Task:
        task = self._tasks.get(task_id)
        if task is None:
            raise ApiError(404, ERR_TASK_MISSING, "This task does not exist")
        return task

    def _next_index(self, project_id: int) -> int:
        """Per-project task numbers (a counter: unlike Vikunja's max + 1, never reused)."""
        self._last_index[project_id] = self._last_index.get(project_id, 0) + 1
        return self._last_index[project_id]

    def get_task(self, task_id: int) -> JSON:
        with self.lock:
            return self.render_task(self._task(task_id))

    def task_count(self) -> int:
        with self.lock:
            return len(self._tasks)

    def create_task(self, project_id: int, body: object, label_titles: Iterable[str] = ()) -> JSON:
        """PUT /projects/{id}/tasks: labels in the body are ignored, as in Vikunja."""
        with self.lock:
            self._project(project_id, writable=True)
            fields = decode(body, TASK_BODY)
            now = now_utc()
            task = Task(
                id=0,
                project_id=project_id,
                title="",
                index=0,
                created=now,
                updated=now,
                created_by_id=self.user.id,
            )
            self._apply_task_fields(task, fields)
            task.index = self._next_index(project_id)
            task.id = self._new_id("task")
            task.position = task.id * POSITION_STEP
            task.done_at = now if task.done else None
            self._tasks[task.id] = task
            for title in label_titles:
                label = self._label_by_title(title, create=True)
                if label.id not in task.label_ids:
                    task.label_ids.append(label.id)
            self._fire_task("task.created", task)
            return self.render_task(task)

    def update_task(self, task_id: int, body: object) -> JSON:
        """POST /tasks/{id}: the task is rebuilt from zero values plus the body.

        Only ``title`` and ``project_id`` survive being omitted; labels are ignored.
        Marking a repeating task done moves its dates on and leaves it undone.
        """
        with self.lock:
            old = self._task(task_id)
            fields = decode(body, TASK_BODY)
            self._project(old.project_id, writable=True)
            target = fields.get("project_id") or old.project_id
            if target != old.project_id:
                self._project(target, writable=True)
            fields.setdefault("title", old.title)
            new = Task(
                id=old.id,
                project_id=target,
                title=old.title,
                index=old.index,
                created=old.created,
                updated=max(now_utc(), old.updated + timedelta(seconds=1)),
                created_by_id=old.created_by_id,
                position=old.position,
                bucket_id=old.bucket_id,
                label_ids=list(old.label_ids),
            )
            self._apply_task_fields(new, fields)
            if target != old.project_id:
                new.index = self._next_index(target)
            self._update_done(old, new)
            self._tasks[task_id] = new
            self._fire_task("task.updated", new)
            return self.render_task(new)

    def _apply_task_fields(self, task: Task, fields: dict[str, Any]) -> None:
        task.title = check_title(fields.get("title", ""))
        for name in _PLAIN_TASK_FIELDS:
            if name in fields:
                setattr(task, name, fields[name])
        task.repeat_mode = fields.get("repeat_mode", 0)
        if task.repeat_mode not in (0, 1, 2):
            raise invalid("repeat_mode", "must be 0, 1 or 2")
        task.hex_color = normalize_hex(fields.get("hex_color", ""))
        task.reminders = decode_reminders(fields.get("reminders", []))
        task.assignee_ids = self._assignee_ids(fields.get("assignees", []))

    def _assignee_ids(self, items: list[Any]) -> list[int]:
        result: list[int] = []
        for item in items:
            fields = decode(item, {"id": "int", "username": "str"})
            if fields.get("id") != self.user.id and fields.get("username") != self.user.username:
                raise ApiError(404, ERR_USER_MISSING, "The user does not exist.")
            if self.user.id not in result:
                result.append(self.user.id)
        return result

    def _update_done(self, old: Task, new: Task) -> None:
        """Vikunja's updateDone: repeat on the old dates, stamp or clear done_at."""
        if new.done and not old.done:
            now = now_utc()
            if new.repeat_mode == 1:
                self._repeat(old, new, lambda d: add_months(d, 1), now)
            elif new.repeat_mode == 2 and new.repeat_after > 0:
                self._repeat_from_now(old, new, timedelta(seconds=new.repeat_after), now)
            elif new.repeat_mode == 0 and new.repeat_after > 0:
                step = timedelta(seconds=new.repeat_after)
                self._repeat(old, new, lambda d: d + step, now)
            new.done_at = now if new.done else None
        elif new.done:
            new.done_at = old.done_at
        else:
            new.done_at = None

    @staticmethod
    def _repeat(old: Task, new: Task, step: Callable[[datetime], datetime], now: datetime) -> None:
        def advance(value: datetime) -> datetime:
            value = step(value)
            while value <= now:
                value = step(value)
            return value

        new.due_date = advance(old.due_date) if old.due_date else None
        if old.start_date and old.end_date:
            new.start_date = advance(old.start_date)
            new.end_date = new.start_date + (old.end_date - old.start_date)
        else:
            new.start_date = advance(old.start_date) if old.start_date else None
            new.end_date = advance(old.end_date) if old.end_date else None
        new.reminders = [
            r if r.relative_to or r.reminder is None else replace(r, reminder=advance(r.reminder))
            for r in old.reminders
        ]
        new.done = False

    @staticmethod
    def _repeat_from_now(old: Task, new: Task, step: timedelta, now: datetime) -> None:
        base = old.due_date or old.start_date or old.end_date
        new.due_date = now + step if old.due_date else None
        for name in ("start_date", "end_date"):
            value: datetime | None = getattr(old, name)
            shifted = None if value is None or base is None else now + step + (value - base)
            setattr(new, name, shifted)
        new.reminders = list(old.reminders)
        new.done = False

    def delete_task(self, task_id: int) -> None:
        """Soft delete: the task vanishes from every read; the webhook carries the last copy."""
        with self.lock:
            task = self._task(task_id)
            self._fire_task("task.deleted", task)
            del self._tasks[task_id]

    def list_tasks(self, query: dict[str, list[str]]) -> list[JSON]:
        """GET /tasks with ``filter``, ``s``, ``sort_by``/``order_by``; paginated by the caller."""

        def first(name: str, default: str = "") -> str:
            return (query.get(name) or [default])[0]

        with self.lock:
            try:
                tz = self.tz
                if first("filter_timezone"):
                    tz = _zone_from_query(first("filter_timezone"))
                include_nulls = first("filter_include_nulls").lower() == "true"
                predicate = filters.compile_filter(first("filter"), tz, include_nulls)
                search = first("s").lower()
                rows = [
                    self._filter_row(t)
                    for t in self._tasks.values()
                    if search in t.title.lower() or search in t.description.lower()
                ]
                rows = [r for r in rows if predicate(r)]
                rows = filters.sort_rows(rows, query.get("sort_by", []), query.get("order_by", []))
            except filters.FilterError as exc:
                raise ApiError(400, exc.code, exc.message) from exc
            return [self.render_task(self._tasks[r["id"]]) for r in rows]  # type: ignore[index]

    def _filter_row(self, task: Task) -> dict[str, object]:
        row: dict[str, object] = {
            name: getattr(task, name)
            for name in (
                "id",
                "title",
                "description",
                "done",
                "done_at",
                "due_date",
                "start_date",
                "end_date",
                "created",
                "updated",
                "priority",
                "project_id",
                "repeat_after",
                "repeat_mode",
                "index",
                "percent_done",
                "position",
                "hex_color",
                "is_favorite",
            )
        }
        row["identifier"] = self._identifier(task)
        row["labels"] = [(i, self._labels[i].title) for i in task.label_ids]
        return row

    # ---------------------------------------------------------------- labels

    def _label(self, label_id: int) -> Label:
        label = self._labels.get(label_id)
        if label is None:
            raise ApiError(404, ERR_LABEL_MISSING, "The label does not exist.")
        return label

    def _label_by_title(self, title: str, create: bool) -> Label:
        for label in self._labels.values():
            if label.title == title:
                return label
        if not create:
            raise ApiError(404, ERR_LABEL_MISSING, "The label does not exist.")
        now = now_utc()
        label = Label(self._new_id("label"), check_title(title), now, now)
        self._labels[label.id] = label
        return label

    def list_labels(self, search: str = "") -> list[JSON]:
        with self.lock:
            return [
                self.render_label(label)
                for label in sorted(self._labels.values(), key=lambda x: x.id)
                if search.lower() in label.title.lower()
            ]

    def get_label(self, label_id: int) -> JSON:
        with self.lock:
            return self.render_label(self._label(label_id))

    def create_label(self, body: object) -> JSON:
        with self.lock:
            fields = decode(body, LABEL_BODY)
            now = now_utc()
            label = Label(0, check_title(fields.get("title", "")), now, now)
            label.description = fields.get("description", "")
            label.hex_color = normalize_hex(fields.get("hex_color", ""))
            label.id = self._new_id("label")
            self._labels[label.id] = label
            return self.render_label(label)

    def update_label(self, label_id: int, body: object) -> JSON:
        with self.lock:
            label = self._label(label_id)
            fields = decode(body, LABEL_BODY)
            title = check_title(fields.get("title", label.title))
            hex_color = normalize_hex(fields.get("hex_color", ""))
            label.title, label.hex_color = title, hex_color
            label.description = fields.get("description", "")
            label.updated = max(now_utc(), label.updated + timedelta(seconds=1))
            return self.render_label(label)

    def task_labels(self, task_id: int) -> list[JSON]:
        with self.lock:
            return [self.render_label(self._labels[i]) for i in self._task(task_id).label_ids]

    def add_label(self, task_id: int, body: object) -> JSON:
        """PUT /tasks/{id}/labels: 400 code 8001 when the label is already there."""
        with self.lock:
            task = self._task(task_id)
            label_id = decode(body, {"label_id": "int"}).get("label_id", 0)
            label = self._label(label_id)
            if label.id in task.label_ids:
                raise ApiError(400, ERR_LABEL_ALREADY_ON_TASK, "This label already exists on the task.")
            task.label_ids.append(label.id)
            self._touch(task)
            return {"label_id": label.id, "created": self._date(task.updated)}

    def add_label_by_title(self, task_id: int, title: str) -> None:
        with self.lock:
            label = self._label_by_title(title, create=True)
            self.add_label(task_id, {"label_id": label.id})

    def remove_label(self, task_id: int, label_id: int) -> JSON:
        with self.lock:
            task = self._task(task_id)
            label = self._label(label_id)
            if label.id in task.label_ids:
                task.label_ids.remove(label.id)
                self._touch(task)
            return {"message": "The label was successfully removed."}

    def remove_label_by_title(self, task_id: int, title: str) -> None:
        with self.lock:
            self.remove_label(task_id, self._label_by_title(title, create=False).id)

    def bulk_labels(self, task_id: int, body: object) -> JSON:
        """POST /tasks/{id}/labels/bulk: the task ends up with exactly these labels."""
        with self.lock:
            task = self._task(task_id)
            items = decode(body, {"labels": "list"}).get("labels", [])
            wanted: list[int] = []
            for item in items:
                fields = decode(item, {"id": "int", "title": "str"})
                if fields.get("id"):
                    label = self._label(fields["id"])
                elif fields.get("title"):
                    label = self._label_by_title(fields["title"], create=True)
                else:
                    raise invalid("labels", "each label needs an id or a title")
                if label.id not in wanted:
                    wanted.append(label.id)
            task.label_ids = wanted
            self._touch(task)
            return {"labels": [self.render_label(self._labels[i]) for i in wanted]}

    def _touch(self, task: Task) -> None:
        task.updated = max(now_utc(), task.updated + timedelta(seconds=1))
        self._fire_task("task.updated", task)

    # ---------------------------------------------------------------- webhooks

    def list_webhooks(self, project_id: int) -> list[JSON]:
        with self.lock:
            self._project(project_id)
            hooks = sorted(self._webhooks.values(), key=lambda h: h.id)
            return [self.render_webhook(h) for h in hooks if h.project_id == project_id]

    def create_webhook(self, project_id: int, body: object) -> JSON:
        with self.lock:
            self._project(project_id)
            fields = decode(body, WEBHOOK_BODY)
            url = fields.get("target_url", "")
            if not url.startswith(("http://", "https://")):
                raise invalid("target_url", "must be an http(s) URL")
            now = now_utc()
            hook = Webhook(
                id=0,
                project_id=project_id,
                target_url=url,
                events=_check_events(fields.get("events", [])),
                secret=fields.get("secret", ""),
                created=now,
                updated=now,
                basic_auth_user=fields.get("basic_auth_user", ""),
                basic_auth_password=fields.get("basic_auth_password", ""),
            )
            hook.id = self._new_id("webhook")
            self._webhooks[hook.id] = hook
            return self.render_webhook(hook)

    def _webhook(self, project_id: int, hook_id: int) -> Webhook:
        hook = self._webhooks.get(hook_id)
        if hook is None or hook.project_id != project_id:
            raise ApiError(404, ERR_WEBHOOK_MISSING, "The webhook target does not exist.")
        return hook

    def update_webhook(self, project_id: int, hook_id: int, body: object) -> JSON:
        """Only the events of a webhook can change, as in Vikunja."""
        with self.lock:
            hook = self._webhook(project_id, hook_id)
            hook.events = _check_events(decode(body, {"events": "list"}).get("events", []))
            hook.updated = now_utc()
            return self.render_webhook(hook)

    def delete_webhook(self, project_id: int, hook_id: int) -> JSON:
        with self.lock:
            del self._webhooks[self._webhook(project_id, hook_id).id]
            return {"message": "Successfully deleted."}


def _check_events(events: list[Any]) -> list[str]:
    if not events:
        raise invalid("events", "at least one event is required")
    for event in events:
        if event not in WEBHOOK_EVENTS:
            raise invalid("events", f"unknown event {event!r}")
    return list(dict.fromkeys(events))


def _zone_from_query(name: str) -> timezone:
    """filter_timezone is an IANA name in Vikunja; fixed offsets are accepted too."""
    try:
        return parse_offset(name)
    except ValueError:
        pass
    try:
        offset = datetime.now(ZoneInfo(name)).utcoffset()
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ApiError(400, 4019, f"invalid filter time zone {name!r}") from exc
    return timezone(offset) if offset else UTC
