"""Records, request-body decoding and errors, shaped after Vikunja's Go models.

Bodies are decoded the way Go's encoding/json fills a fresh struct: unknown and
read-only keys are ignored, ``null`` leaves the zero value, a wrong JSON type is a
400. That zero-value filling is what makes ``POST /tasks/{id}`` a replacement.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .clock import coerce_datetime

ERR_INVALID_MODEL = 2004
ERR_INVALID_DATA = 2002
ERR_TOKEN = 11
ERR_USER_MISSING = 1005
ERR_PROJECT_MISSING = 3001
ERR_PROJECT_IDENTIFIER_TAKEN = 3007
ERR_PROJECT_ARCHIVED = 3008
ERR_PROJECT_CYCLE = 3011
ERR_TASK_MISSING = 4002
ERR_LABEL_ALREADY_ON_TASK = 8001
ERR_LABEL_MISSING = 8002
ERR_WEBHOOK_MISSING = 14001

REMINDER_RELATIONS = ("due_date", "start_date", "end_date")


@dataclass
class ApiError(Exception):
    """An error response: Vikunja's ``{"code", "message"}`` body with an HTTP status.

    ``code`` None gives the bare ``{"message"}`` body the echo framework itself sends
    (unknown route, wrong method, rate limit, internal error).
    """

    status: int
    code: int | None
    message: str
    invalid_fields: list[str] | None = None

    def __str__(self) -> str:
        return f"{self.status} ({self.code}): {self.message}"

    def body(self) -> dict[str, Any]:
        result: dict[str, Any] = {"message": self.message}
        if self.code is not None:
            result["code"] = self.code
        if self.invalid_fields is not None:
            result["invalid_fields"] = self.invalid_fields
        return result


def invalid(field_name: str, reason: str) -> ApiError:
    """Vikunja's validation failure: 412 with ``invalid_fields``."""
    return ApiError(412, ERR_INVALID_DATA, "Invalid Data", [f"{field_name}: {reason}"])


@dataclass
class User:
    id: int
    username: str
    name: str
    email: str
    created: datetime


@dataclass
class Project:
    id: int
    title: str
    created: datetime
    updated: datetime
    description: str = ""
    identifier: str = ""
    hex_color: str = ""
    parent_project_id: int = 0
    is_archived: bool = False
    is_favorite: bool = False
    position: float = 0.0
    view_ids: list[int] = field(default_factory=list)


@dataclass
class Label:
    id: int
    title: str
    created: datetime
    updated: datetime
    description: str = ""
    hex_color: str = ""


@dataclass
class Reminder:
    reminder: datetime | None
    relative_period: int = 0
    relative_to: str = ""


@dataclass
class Task:
    """A task as stored; ``None`` dates are Go's zero time."""

    id: int
    project_id: int
    title: str
    index: int
    created: datetime
    updated: datetime
    created_by_id: int
    description: str = ""
    done: bool = False
    done_at: datetime | None = None
    due_date: datetime | None = None
    start_date: datetime | None = None
    end_date: datetime | None = None
    repeat_after: int = 0
    repeat_mode: int = 0
    priority: int = 0
    percent_done: float = 0.0
    hex_color: str = ""
    is_favorite: bool = False
    cover_image_attachment_id: int = 0
    position: float = 0.0
    bucket_id: int = 0
    label_ids: list[int] = field(default_factory=list)
    assignee_ids: list[int] = field(default_factory=list)
    reminders: list[Reminder] = field(default_factory=list)


@dataclass
class Webhook:
    id: int
    project_id: int
    target_url: str
    events: list[str]
    secret: str
    created: datetime
    updated: datetime
    basic_auth_user: str = ""
    basic_auth_password: str = ""


# JSON kinds Go would accept for each writable field; everything else is ignored.
TASK_BODY = {
    "title": "str",
    "description": "str",
    "done": "bool",
    "due_date": "date",
    "start_date": "date",
    "end_date": "date",
    "repeat_after": "int",
    "repeat_mode": "int",
    "priority": "int",
    "percent_done": "number",
    "hex_color": "str",
    "is_favorite": "bool",
    "project_id": "int",
    "cover_image_attachment_id": "int",
    "assignees": "list",
    "reminders": "list",
}
PROJECT_BODY = {
    "title": "str",
    "description": "str",
    "identifier": "str",
    "hex_color": "str",
    "parent_project_id": "int",
    "is_archived": "bool",
    "is_favorite": "bool",
    "position": "number",
}
LABEL_BODY = {"title": "str", "description": "str", "hex_color": "str"}
WEBHOOK_BODY = {
    "target_url": "str",
    "events": "list",
    "secret": "str",
    "basic_auth_user": "str",
    "basic_auth_password": "str",
}
_ZERO: dict[str, Any] = {
    "str": "",
    "bool": False,
    "int": 0,
    "number": 0.0,
    "date": None,
    "list": [],
    "dict": {},
}


def decode(body: object, schema: Mapping[str, str]) -> dict[str, Any]:
    """Decode the known keys of a JSON object body; ``null`` becomes the zero value."""
    if not isinstance(body, Mapping):
        raise ApiError(400, ERR_INVALID_MODEL, "Invalid model provided: expected a JSON object")
    result: dict[str, Any] = {}
    for key, kind in schema.items():
        if key in body:
            result[key] = _decode_value(key, body[key], kind)
    return result


def _decode_value(key: str, value: object, kind: str) -> Any:
    if value is None:
        return _ZERO[kind]
    ok = {
        "str": isinstance(value, str),
        "bool": isinstance(value, bool),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, int | float) and not isinstance(value, bool),
        "list": isinstance(value, list),
        "dict": isinstance(value, Mapping),
        "date": isinstance(value, str | datetime),
    }[kind]
    if not ok:
        raise ApiError(400, ERR_INVALID_MODEL, f"Invalid model provided: bad type for {key!r}")
    if kind == "date":
        try:
            return coerce_datetime(value)
        except ValueError as exc:
            raise ApiError(400, ERR_INVALID_MODEL, f"Invalid model provided: bad time for {key!r}") from exc
    if kind == "number":
        return float(value)  # type: ignore[arg-type]
    return value


def normalize_hex(value: str, field_name: str = "hex_color") -> str:
    """Vikunja stores colours without the leading '#' and at most 7 runes in."""
    if len(value) > 7:
        raise invalid(field_name, "must be at most 7 characters")
    return value.removeprefix("#")


def check_title(value: str, field_name: str = "title") -> str:
    """Titles are 1..250 runes, as Vikunja's validator demands."""
    if not 1 <= len(value) <= 250:
        raise invalid(field_name, "must be between 1 and 250 characters")
    return value


def decode_reminders(items: list[Any]) -> list[Reminder]:
    """Reminders are absolute times or a period relative to one of the task's dates."""
    result = []
    for item in items:
        fields = decode(item, {"reminder": "date", "relative_period": "int", "relative_to": "str"})
        relative_to = fields.get("relative_to", "")
        if relative_to and relative_to not in REMINDER_RELATIONS:
            raise invalid("reminders", f"relative_to must be one of {REMINDER_RELATIONS}")
        result.append(Reminder(fields.get("reminder"), fields.get("relative_period", 0), relative_to))
    return result
