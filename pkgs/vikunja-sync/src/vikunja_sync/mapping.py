"""Pure Taskwarrior ⇄ Vikunja field mapping: no I/O, standard library only.

Both sides are read into `SyncedFields`, the synced *meaning* of a task, so the sync can
compare them, fingerprint them and write back only what really differs. Writers start
from a copy of the other side's current object and change only fields whose meaning
differs, so precision the other side keeps (priority 5, a monthly TW recurrence, rich
HTML, fractional seconds) survives a round trip.

Equivalences folded into the meaning (see `SyncedFields`):
- Vikunja repeat mode 2 ("from current date") has no TW counterpart; it means the same
  as mode 0 with the same seconds, and writers keep the mode already on the Vikunja side.
- A repeat without a due date means "no repeat": Taskwarrior refuses `recur` without
  `due`, so such a Vikunja setting cannot be synced and is left alone.
"""

from __future__ import annotations

import copy
import hashlib
import html
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta, timezone
from html.parser import HTMLParser
from typing import Any

log = logging.getLogger(__name__)

NOTE_PREFIX = "note:"
_MONTHLY = 1
_FROM_CURRENT_DATE = 2
_TW_PRIORITY = {3: "H", 2: "M", 1: "L"}
_VIKUNJA_PRIORITY = {"H": 3, "M": 2, "L": 1}
_DATE_FIELDS = (("due", "due", "due_date"), ("start", "scheduled", "start_date"), ("end", "until", "end_date"))


@dataclass(frozen=True, eq=False)
class SyncedFields:
    """The synced meaning of a task, comparable across both sides.

    Equality, hashing, `changed_fields` and `fingerprint` all compare the meaning
    (repeat mode 2 equals mode 0; a repeat without due date equals none), so a task
    read from TW equals the same task read from Vikunja.
    """

    title: str
    notes: tuple[str, ...]  # description lines (canonical: stripped, non-empty)
    done: bool
    due: datetime | None  # aware UTC, second precision
    start: datetime | None  # TW scheduled
    end: datetime | None  # TW until
    repeat_after: int  # seconds, 0 = none
    repeat_mode: int  # 0 every repeat_after, 1 monthly, 2 from current date
    priority: str | None  # "H" | "M" | "L" | None
    tags: frozenset[str]
    project: str  # project title

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SyncedFields):
            return NotImplemented
        return _meaning(self) == _meaning(other)

    def __hash__(self) -> int:
        return hash(tuple(_meaning(self).values()))


FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in fields(SyncedFields))


# --- meaning ---------------------------------------------------------------------


def _repeat_meaning(f: SyncedFields) -> tuple[int, int]:
    """(seconds, mode) as both sides can express it: mode 0 or 1, nothing without a due date."""
    if f.due is None:
        return 0, 0
    if f.repeat_mode == _MONTHLY:
        return 0, _MONTHLY
    return (f.repeat_after, 0) if f.repeat_after > 0 else (0, 0)


def _meaning(f: SyncedFields) -> dict[str, Any]:
    after, mode = _repeat_meaning(f)
    return {
        "title": f.title,
        "notes": tuple(_lines("\n".join(f.notes))),
        "done": bool(f.done),
        "due": _second(f.due),
        "start": _second(f.start),
        "end": _second(f.end),
        "repeat_after": after,
        "repeat_mode": mode,
        "priority": f.priority,
        "tags": frozenset(f.tags),
        "project": f.project,
    }


def changed_fields(old: SyncedFields, new: SyncedFields) -> tuple[str, ...]:
    """Names of the fields whose meaning differs, in `FIELD_NAMES` order."""
    a, b = _meaning(old), _meaning(new)
    return tuple(name for name in FIELD_NAMES if a[name] != b[name])


def fingerprint(f: SyncedFields) -> str:
    """Stable short hex hash of the meaning, for echo suppression across processes."""
    m = _meaning(f)
    for name in ("due", "start", "end"):
        m[name] = None if m[name] is None else int(m[name].timestamp())
    m["notes"] = list(m["notes"])
    m["tags"] = sorted(m["tags"])
    blob = json.dumps(m, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()[:16]


# --- text and HTML ---------------------------------------------------------------


def _lines(text: str) -> list[str]:
    """Canonical note lines: split on any newline, stripped, empty ones dropped."""
    return [stripped for line in re.split(r"\r\n|\r|\n", text) if (stripped := line.strip())]


class _TextExtractor(HTMLParser):
    """Collects text; block tags and <br> become line breaks, script/style content is dropped."""

    BLOCK = frozenset({"p", "div", "br", "hr", "li", "ul", "ol", "dl", "dt", "dd", "pre", "blockquote", "figure"})
    BLOCK |= {"table", "tr", "td", "th", "h1", "h2", "h3", "h4", "h5", "h6", "details", "summary", "figcaption"}
    BLOCK |= {"address", "article", "aside", "footer", "header", "main", "nav", "section"}
    HIDDEN = frozenset({"script", "style", "template"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.HIDDEN:
            self.hidden += 1
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.parts.append(data)


def html_to_text(markup: str) -> str:
    """Vikunja's HTML description as plain lines (stripped, non-empty, joined by newlines)."""
    parser = _TextExtractor()
    try:
        parser.feed(markup)
        parser.close()
    except (AssertionError, ValueError) as exc:  # malformed markup: keep the text read so far
        log.debug("malformed HTML description (%s); using the text before the error", exc)
    return "\n".join(_lines("".join(parser.parts)))


def text_to_html(text: str) -> str:
    """One `<p>` per non-empty line, escaped, as Vikunja's editor stores it."""
    return "".join(f"<p>{html.escape(line, quote=False)}</p>" for line in _lines(text))


# --- dates -----------------------------------------------------------------------

_TW_DATE = re.compile(r"(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z")
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(?:([Zz])|([+-])(\d{2}):?(\d{2}))",
    re.ASCII,
)


def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _second(dt: datetime | None) -> datetime | None:
    return None if dt is None else _utc(dt).replace(microsecond=0)


def parse_tw_date(s: str) -> datetime:
    """`YYYYMMDDTHHMMSSZ` (what `task export` prints) as an aware UTC datetime."""
    match = _TW_DATE.fullmatch(s) if isinstance(s, str) else None
    if not match:
        raise ValueError(f"not a Taskwarrior date: {s!r}")
    return datetime(*map(int, match.groups()), tzinfo=UTC)


def format_tw_date(dt: datetime) -> str:
    d = _utc(dt)
    return f"{d.year:04d}{d.month:02d}{d.day:02d}T{d.hour:02d}{d.minute:02d}{d.second:02d}Z"


def parse_vikunja_date(s: str | None) -> datetime | None:
    """RFC 3339 with any offset as aware UTC at second precision; None, "" and the zero date are unset."""
    if s is None or s == "":
        return None
    match = _RFC3339.fullmatch(s) if isinstance(s, str) else None
    if not match:
        raise ValueError(f"not an RFC 3339 date: {s!r}")
    year, month, day, hour, minute, second = map(int, match.groups()[:6])
    if year <= 1:  # Go's zero time, whatever offset it was rendered in
        return None
    sign, off_h, off_m = match.group(8), match.group(9), match.group(10)
    offset = timedelta(0) if match.group(7) else timedelta(hours=int(off_h), minutes=int(off_m))
    try:
        tz = timezone(-offset if sign == "-" else offset)
        return datetime(year, month, day, hour, minute, second, tzinfo=tz).astimezone(UTC)
    except OverflowError as exc:
        raise ValueError(f"date out of range: {s!r}") from exc


def format_vikunja_date(dt: datetime | None) -> str | None:
    """RFC 3339 UTC (`YYYY-MM-DDTHH:MM:SSZ`); None (which clears the date in Vikunja) when unset."""
    if dt is None:
        return None
    d = _utc(dt)
    return f"{d.year:04d}-{d.month:02d}-{d.day:02d}T{d.hour:02d}:{d.minute:02d}:{d.second:02d}Z"


# --- durations -------------------------------------------------------------------

_DAY, _HOUR, _WEEK = 86400, 3600, 7 * 86400
# Taskwarrior's duration units (libshared Duration.cpp): unit -> (seconds, usable without a number).
_UNITS: dict[str, tuple[int, bool]] = {
    **dict.fromkeys(("annual", "yearly", "year", "yr"), (365 * _DAY, True)),
    **dict.fromkeys(("years", "yrs", "y"), (365 * _DAY, False)),
    **dict.fromkeys(("biannual", "biyearly"), (730 * _DAY, True)),
    "bimonthly": (61 * _DAY, True),
    **dict.fromkeys(("biweekly", "fortnight"), (14 * _DAY, True)),
    "sennight": (14 * _DAY, False),
    **dict.fromkeys(("daily", "day", "weekdays"), (_DAY, True)),
    **dict.fromkeys(("days", "d"), (_DAY, False)),
    **dict.fromkeys(("hour", "hr"), (_HOUR, True)),
    **dict.fromkeys(("hours", "hrs", "h"), (_HOUR, False)),
    **dict.fromkeys(("minute", "min"), (60, True)),
    **dict.fromkeys(("minutes", "mins"), (60, False)),
    **dict.fromkeys(("monthly", "month", "mth", "mo"), (30 * _DAY, True)),
    **dict.fromkeys(("months", "mnths", "mths", "mos", "m"), (30 * _DAY, False)),
    **dict.fromkeys(("quarterly", "quarter", "qrtr", "qtr"), (91 * _DAY, True)),
    **dict.fromkeys(("quarters", "qrtrs", "qtrs", "q"), (91 * _DAY, False)),
    "semiannual": (183 * _DAY, True),
    **dict.fromkeys(("second", "sec"), (1, True)),
    **dict.fromkeys(("seconds", "secs", "s"), (1, False)),
    **dict.fromkeys(("weekly", "week", "wk"), (_WEEK, True)),
    **dict.fromkeys(("weeks", "wks", "w"), (_WEEK, False)),
}
# Periods Taskwarrior's recurrence steps by calendar month (recur.cpp), i.e. Vikunja's monthly mode.
_TW_MONTHLY = re.compile(r"monthly|P1M|0*1m")
_NUMBER_UNIT = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]+)")
_DESIGNATED = re.compile(r"P(?!$)(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)D)?(?:T(?=\d)(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?")
_DESIGNATED_SECONDS = (365 * _DAY, 30 * _DAY, _DAY, _HOUR, 60, 1)


def _duration_seconds(s: str) -> int | None:
    """Seconds of a TW duration, as libshared's Duration parses it; None when not one."""
    if s in _UNITS:
        seconds, standalone = _UNITS[s]
        return seconds if standalone else None
    if match := _NUMBER_UNIT.fullmatch(s):
        number, unit = float(match.group(1)), match.group(2)
        if unit not in _UNITS or (unit == "d" and number > 10000):  # TW rejects >10000d (UUID ambiguity)
            return None
        return int(number * _UNITS[unit][0])
    if match := re.fullmatch(r"P(\d+)W", s):
        return int(match.group(1)) * _WEEK
    if match := _DESIGNATED.fullmatch(s):
        return sum(int(n or 0) * unit for n, unit in zip(match.groups(), _DESIGNATED_SECONDS, strict=True))
    return None


def parse_tw_duration(s: str) -> tuple[int, int]:
    """A TW `recur` value as (repeat_after seconds, repeat_mode); calendar-monthly ones are (0, 1)."""
    if _TW_MONTHLY.fullmatch(s):
        return 0, _MONTHLY
    seconds = _duration_seconds(s)
    if seconds is None or seconds <= 0:
        raise ValueError(f"not a usable Taskwarrior duration: {s!r}")
    return seconds, 0


def format_tw_duration(repeat_after: int, repeat_mode: int) -> str | None:
    """Canonical `recur` accepted by TW 2.6 and 3.x (same libshared parser): monthly, Nw, Nd, Nh or Ns."""
    if repeat_mode == _MONTHLY:
        return "monthly"
    if repeat_after <= 0:
        return None
    if repeat_after % _WEEK == 0:
        return f"{repeat_after // _WEEK}w"
    if repeat_after % _DAY == 0 and repeat_after // _DAY <= 10000:
        return f"{repeat_after // _DAY}d"
    if repeat_after % _HOUR == 0:
        return f"{repeat_after // _HOUR}h"
    return f"{repeat_after}s"


# --- reading either side -----------------------------------------------------------


def _text(value: Any, what: str) -> str:
    if isinstance(value, str):
        return value
    if value is not None:
        log.debug("ignoring non-text %s: %r", what, value)
    return ""


def _date(parse: Callable[[Any], datetime | None], value: Any, what: str) -> datetime | None:
    if value is None:
        return None
    try:
        return parse(value)
    except ValueError:
        log.debug("ignoring unparseable %s: %r", what, value)
        return None


def _int(value: Any, what: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if value is not None:
        log.debug("ignoring non-integer %s: %r", what, value)
    return 0


def _is_note(annotation: Any) -> bool:
    return isinstance(annotation, dict) and str(annotation.get("description", "")).startswith(NOTE_PREFIX)


def _note_annotations(task: dict[str, Any]) -> list[dict[str, Any]]:
    """Note annotations in entry order, the order Taskwarrior exports them in."""
    annotations = task.get("annotations")
    if not isinstance(annotations, list):
        return []
    return sorted(filter(_is_note, annotations), key=lambda a: str(a.get("entry", "")))


def _tw_notes(task: dict[str, Any]) -> tuple[str, ...]:
    return tuple(line for a in _note_annotations(task) for line in _lines(str(a["description"])[len(NOTE_PREFIX) :]))


def _tw_repeat(task: dict[str, Any]) -> tuple[int, int]:
    recur = task.get("recur")
    if recur is None:
        return 0, 0
    try:
        return parse_tw_duration(recur)
    except (TypeError, ValueError):
        log.debug("ignoring unusable recur: %r", recur)
        return 0, 0


def _tw_tags(task: dict[str, Any]) -> frozenset[str]:
    tags = task.get("tags")
    if tags is None:
        return frozenset()
    if not isinstance(tags, list):
        log.debug("ignoring non-list tags: %r", tags)
        return frozenset()
    return frozenset(t for t in tags if isinstance(t, str) and t)


def fields_from_tw(task: dict, default_project: str) -> SyncedFields:
    """The meaning of a task as `task export` prints it; junk values read as unset."""
    if not isinstance(task, dict):
        log.debug("ignoring non-object Taskwarrior task: %r", task)
        task = {}
    priority = task.get("priority")
    if priority is not None and not (isinstance(priority, str) and priority in _VIKUNJA_PRIORITY):
        log.debug("ignoring unknown priority: %r", priority)
        priority = None
    after, mode = _tw_repeat(task)
    return SyncedFields(
        title=_text(task.get("description"), "description"),
        notes=_tw_notes(task),
        done=task.get("status") == "completed",
        due=_date(parse_tw_date, task.get("due"), "due"),
        start=_date(parse_tw_date, task.get("scheduled"), "scheduled"),
        end=_date(parse_tw_date, task.get("until"), "until"),
        repeat_after=after,
        repeat_mode=mode,
        priority=priority,
        tags=_tw_tags(task),
        project=_text(task.get("project"), "project") or default_project,
    )


def _vikunja_repeat(task: dict[str, Any]) -> tuple[int, int]:
    after, mode = _int(task.get("repeat_after"), "repeat_after"), _int(task.get("repeat_mode"), "repeat_mode")
    if mode == _MONTHLY:
        return 0, _MONTHLY
    if mode not in (0, _FROM_CURRENT_DATE):
        log.debug("ignoring unknown repeat_mode: %r", mode)
        return 0, 0
    return (after, mode) if after > 0 else (0, 0)


def _vikunja_priority(task: dict[str, Any]) -> str | None:
    value = _int(task.get("priority"), "priority")
    if value >= 4:
        return "H"
    if value < 0:
        log.debug("ignoring negative priority: %r", value)
    return _TW_PRIORITY.get(value)


def _vikunja_labels(task: dict[str, Any]) -> frozenset[str]:
    labels = task.get("labels")
    if labels is None:
        return frozenset()
    if not isinstance(labels, list):
        log.debug("ignoring non-list labels: %r", labels)
        return frozenset()
    return frozenset(t for lab in labels if isinstance(lab, dict) and isinstance(t := lab.get("title"), str) and t)


def _vikunja_notes(task: dict[str, Any]) -> tuple[str, ...]:
    return tuple(_lines(html_to_text(_text(task.get("description"), "description"))))


def fields_from_vikunja(task: dict, project_title: str) -> SyncedFields:
    """The meaning of a task as GET /tasks/{id} returns it; junk values read as unset."""
    if not isinstance(task, dict):
        log.debug("ignoring non-object Vikunja task: %r", task)
        task = {}
    after, mode = _vikunja_repeat(task)
    return SyncedFields(
        title=_text(task.get("title"), "title"),
        notes=_vikunja_notes(task),
        done=task.get("done") is True,
        due=_date(parse_vikunja_date, task.get("due_date"), "due_date"),
        start=_date(parse_vikunja_date, task.get("start_date"), "start_date"),
        end=_date(parse_vikunja_date, task.get("end_date"), "end_date"),
        repeat_after=after,
        repeat_mode=mode,
        priority=_vikunja_priority(task),
        tags=_vikunja_labels(task),
        project=project_title,
    )


# --- writing Vikunja ---------------------------------------------------------------


def _vikunja_repeat_values(desired: SyncedFields, current_mode: int) -> tuple[int, int]:
    """(repeat_after, repeat_mode) to send; an existing mode 2 stays, TW cannot tell 0 from 2."""
    if desired.repeat_mode == _MONTHLY:
        return 0, _MONTHLY
    if desired.repeat_after <= 0:
        return 0, 0
    keep_from_current = _FROM_CURRENT_DATE in (desired.repeat_mode, current_mode)
    return desired.repeat_after, _FROM_CURRENT_DATE if keep_from_current else 0


def vikunja_update_body(current: dict, desired: SyncedFields, project_id: int) -> dict:
    """Full-object body for POST /tasks/{id}: `current` with only the differing synced fields changed.

    Vikunja's update replaces the whole task, so everything we do not own (assignees,
    reminders, colours, ...) is carried over; labels are left out (they go via label routes).
    """
    body = {key: copy.deepcopy(value) for key, value in current.items() if key != "labels"}
    have = fields_from_vikunja(current, desired.project)
    if have.title != desired.title:
        body["title"] = desired.title
    if _lines("\n".join(have.notes)) != _lines("\n".join(desired.notes)):
        body["description"] = text_to_html("\n".join(desired.notes))
    if have.done != desired.done:
        body["done"] = desired.done
    for attr, _, key in _DATE_FIELDS:
        if _second(getattr(have, attr)) != _second(getattr(desired, attr)):
            body[key] = format_vikunja_date(getattr(desired, attr))
    # Compare repeats as they will read once the new due date is in place.
    if _repeat_meaning(replace(have, due=desired.due)) != _repeat_meaning(desired):
        current_mode = _int(current.get("repeat_mode"), "repeat_mode")
        body["repeat_after"], body["repeat_mode"] = _vikunja_repeat_values(desired, current_mode)
    if have.priority != desired.priority:
        body["priority"] = _VIKUNJA_PRIORITY.get(desired.priority, 0)
    body["project_id"] = project_id
    return body


def vikunja_create_body(desired: SyncedFields) -> dict:
    """Body for PUT /projects/{id}/tasks (the project is in the URL, labels go via label routes)."""
    after, mode = _vikunja_repeat_values(desired, 0)
    return {
        "title": desired.title,
        "description": text_to_html("\n".join(desired.notes)),
        "done": desired.done,
        "due_date": format_vikunja_date(desired.due),
        "start_date": format_vikunja_date(desired.start),
        "end_date": format_vikunja_date(desired.end),
        "repeat_after": after,
        "repeat_mode": mode,
        "priority": _VIKUNJA_PRIORITY.get(desired.priority, 0),
    }


# --- writing Taskwarrior -----------------------------------------------------------


def _set_or_remove(task: dict[str, Any], key: str, value: Any) -> None:
    if value is None:
        task.pop(key, None)
    else:
        task[key] = value


def _replace_notes(task: dict[str, Any], notes: tuple[str, ...], now: datetime) -> None:
    """Swap the note annotations for `notes`, one per line; other annotations stay as they are.

    Taskwarrior keys annotations by their entry second and exports them in entry order,
    so new ones get distinct, increasing seconds that no kept annotation uses.
    """
    annotations = task.get("annotations")
    kept = [a for a in annotations if not _is_note(a)] if isinstance(annotations, list) else []
    used = {str(a.get("entry")) for a in kept if isinstance(a, dict)}
    stamp = _second(now)
    for line in _lines("\n".join(notes)):
        while format_tw_date(stamp) in used:
            stamp += timedelta(seconds=1)
        kept.append({"entry": format_tw_date(stamp), "description": f"{NOTE_PREFIX} {line}"})
        used.add(format_tw_date(stamp))
    _set_or_remove(task, "annotations", kept or None)


def _set_done(task: dict[str, Any], done: bool, now: datetime) -> None:
    if done:
        task["status"] = "completed"
        task["end"] = format_tw_date(now)
    else:
        task["status"] = "pending"
        task.pop("end", None)


def _set_tags(task: dict[str, Any], tags: frozenset[str]) -> None:
    """Existing tags keep their order, new ones follow sorted."""
    old = task.get("tags") if isinstance(task.get("tags"), list) else []
    kept = [t for t in old if isinstance(t, str) and t in tags]
    _set_or_remove(task, "tags", kept + sorted(tags - set(kept)) or None)


def _set_dates_and_recur(task: dict[str, Any], have: SyncedFields, desired: SyncedFields) -> None:
    """Dates and recur; what Taskwarrior refuses is left as it is.

    TW rejects `recur` without `due`, so a due-less repeat is not written (it means "no
    repeat"). TW also rejects removing `recur`, or `due`, from a task that has `recur`
    (2.6 and 3.x, import and modify alike): those stay, and the result then still differs
    from `desired`, which the caller can see with `changed_fields`.
    """
    recurring = bool(task.get("recur"))
    for attr, key, _ in _DATE_FIELDS:
        dt = getattr(desired, attr)
        if _second(getattr(have, attr)) == _second(dt):
            continue
        if dt is None and key == "due" and recurring:
            log.debug("keeping due of recurring task %s: Taskwarrior refuses to remove it", task.get("uuid"))
            continue
        _set_or_remove(task, key, None if dt is None else format_tw_date(dt))
    if _repeat_meaning(replace(have, due=desired.due)) != _repeat_meaning(desired):
        recur = format_tw_duration(*_repeat_meaning(desired))
        if recur is None and recurring:
            log.debug("keeping recur of task %s: Taskwarrior refuses to remove it", task.get("uuid"))
        else:
            _set_or_remove(task, "recur", recur)


def tw_task_updated(
    current: dict | None, desired: SyncedFields, default_project: str, *, now: datetime | None = None
) -> dict:
    """The task JSON for `task import`: `current` (or a new task, without uuid) changed only where meaning differs.

    `task import` replaces the whole task (attributes absent from the JSON are removed),
    so the result is a full copy of `current`. `now` stamps new annotations and `end`.
    A recurring task keeps `recur` and `due` even when `desired` drops them (TW refuses that).
    """
    now = now or datetime.now(UTC)
    task = copy.deepcopy(current) if current is not None else {"status": "pending", "entry": format_tw_date(now)}
    have = fields_from_tw(task, default_project)
    if have.title != desired.title:
        task["description"] = desired.title
    if _lines("\n".join(have.notes)) != _lines("\n".join(desired.notes)):
        _replace_notes(task, desired.notes, now)
    if have.done != desired.done:
        _set_done(task, desired.done, now)
    _set_dates_and_recur(task, have, desired)
    if have.priority != desired.priority:
        _set_or_remove(task, "priority", desired.priority)
    if have.tags != desired.tags:
        _set_tags(task, desired.tags)
    if have.project != desired.project:
        task["project"] = desired.project
    return task
