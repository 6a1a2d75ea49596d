"""The subset of Vikunja's task filter language a sync client needs.

Supports ``field op value`` comparisons joined by ``&&`` / ``||`` with parentheses,
e.g. ``updated > 2026-12-04T14:00:00+02:00 && done = false``. Date values may be
RFC 3339, ``YYYY-MM-DD HH:MM:SS`` or ``YYYY-MM-DD`` (read in the filter time zone)
or ``now`` with offsets such as ``now-1d``. Unset dates never match unless
``filter_include_nulls`` is true, as in Vikunja.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from .clock import now_utc, parse_datetime

Row = Mapping[str, object]
Predicate = Callable[[Row], bool]

DATE_FIELDS = frozenset({"due_date", "start_date", "end_date", "done_at", "created", "updated"})
BOOL_FIELDS = frozenset({"done", "is_favorite"})
INT_FIELDS = frozenset({"id", "priority", "project_id", "repeat_after", "repeat_mode", "index"})
FLOAT_FIELDS = frozenset({"percent_done", "position"})
TEXT_FIELDS = frozenset({"title", "description", "hex_color", "identifier"})
FIELD_ALIASES = {"project": "project_id", "label": "labels", "dueDate": "due_date"}
SORTABLE = DATE_FIELDS | BOOL_FIELDS | INT_FIELDS | FLOAT_FIELDS | TEXT_FIELDS

_COMPARISON = re.compile(r"^\s*([A-Za-z_]+)\s*(not in|>=|<=|!=|like|in|=|>|<)\s*(.*?)\s*$", re.IGNORECASE)
_TOKENS = re.compile(r"(&&|\|\||\(|\))")
_NOW = re.compile(r"^now((?:[+-]\d+[smhdwMy])*)(?:/[dwMy])?$")
_NOW_STEP = re.compile(r"([+-])(\d+)([smhdwMy])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "M": 2592000, "y": 31536000}


@dataclass
class FilterError(Exception):
    """A filter the emulator cannot parse; maps to Vikunja's 400 errors."""

    code: int
    message: str


def compile_filter(text: str, tz: timezone, include_nulls: bool = False) -> Predicate:
    """Parse ``text`` into a predicate over a task's filter row."""
    tokens = [t.strip() for t in _TOKENS.split(text) if t.strip()]
    if not tokens:
        return lambda row: True
    parser = _Parser(tokens, tz, include_nulls)
    predicate = parser.expression()
    if parser.pos != len(tokens):
        raise FilterError(4014, f"unexpected {tokens[parser.pos]!r} in filter")
    return predicate


class _Parser:
    """Recursive descent: expression := term (|| term)*, term := factor (&& factor)*."""

    def __init__(self, tokens: list[str], tz: timezone, include_nulls: bool) -> None:
        self.tokens, self.pos, self.tz, self.include_nulls = tokens, 0, tz, include_nulls

    def _peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def expression(self) -> Predicate:
        parts = [self.term()]
        while self._peek() == "||":
            self.pos += 1
            parts.append(self.term())
        return parts[0] if len(parts) == 1 else lambda row: any(p(row) for p in parts)

    def term(self) -> Predicate:
        parts = [self.factor()]
        while self._peek() == "&&":
            self.pos += 1
            parts.append(self.factor())
        return parts[0] if len(parts) == 1 else lambda row: all(p(row) for p in parts)

    def factor(self) -> Predicate:
        token = self._peek()
        if token is None or token in ("&&", "||", ")"):
            raise FilterError(4014, "filter expression expected")
        self.pos += 1
        if token == "(":
            inner = self.expression()
            if self._peek() != ")":
                raise FilterError(4014, "missing ')' in filter")
            self.pos += 1
            return inner
        return _comparison(token, self.tz, self.include_nulls)


def _comparison(text: str, tz: timezone, include_nulls: bool) -> Predicate:
    match = _COMPARISON.match(text)
    if not match:
        raise FilterError(4015, f"invalid filter comparison {text!r}")
    field = FIELD_ALIASES.get(match.group(1), match.group(1))
    op = match.group(2).lower()
    raw = match.group(3).strip().strip("'\"")
    if field == "labels":
        return _label_predicate(op, raw)
    if field in DATE_FIELDS:
        value: object = _date_value(raw, tz)
    elif field in BOOL_FIELDS:
        value = _bool_value(raw)
    elif field in INT_FIELDS:
        value = _number_value(raw, int)
    elif field in FLOAT_FIELDS:
        value = _number_value(raw, float)
    elif field in TEXT_FIELDS:
        value = raw
    else:
        raise FilterError(4016, f"the task field {field!r} is invalid")
    if op in ("in", "not in"):
        raise FilterError(4015, f"comparator {op!r} is only supported for labels")
    compare = _comparator(op)

    def predicate(row: Row) -> bool:
        actual = row.get(field)
        if actual is None:
            return include_nulls
        return compare(actual, value)

    return predicate


def _comparator(op: str) -> Callable[[object, object], bool]:
    if op == "like":
        return lambda a, b: str(b).strip("%").lower() in str(a).lower()
    table: dict[str, Callable[[object, object], bool]] = {
        "=": lambda a, b: a == b,
        "!=": lambda a, b: a != b,
        ">": lambda a, b: a > b,  # type: ignore[operator]
        ">=": lambda a, b: a >= b,  # type: ignore[operator]
        "<": lambda a, b: a < b,  # type: ignore[operator]
        "<=": lambda a, b: a <= b,  # type: ignore[operator]
    }
    return table[op]


def _label_predicate(op: str, raw: str) -> Predicate:
    wanted = {v.strip().strip("'\"") for v in raw.split(",") if v.strip()}
    if op not in ("=", "!=", "in", "not in"):
        raise FilterError(4015, f"comparator {op!r} is not supported for labels")

    def has_any(row: Row) -> bool:
        labels = row.get("labels") or ()
        return any(str(i) in wanted or t in wanted for i, t in labels)  # type: ignore[union-attr]

    if op in ("=", "in"):
        return has_any
    return lambda row: not has_any(row)


def _date_value(raw: str, tz: timezone) -> datetime:
    now_match = _NOW.match(raw)
    if now_match:
        value = now_utc()
        for sign, amount, unit in _NOW_STEP.findall(now_match.group(1)):
            delta = timedelta(seconds=int(amount) * _UNIT_SECONDS[unit])
            value = value + delta if sign == "+" else value - delta
        return value
    try:
        parsed = parse_datetime(raw, naive_tz=tz)
    except ValueError as exc:
        raise FilterError(4019, f"invalid task filter value {raw!r}") from exc
    if parsed is None:
        raise FilterError(4019, f"invalid task filter value {raw!r}")
    return parsed


def _bool_value(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise FilterError(4019, f"invalid task filter value {raw!r}")


def _number_value(raw: str, kind: type) -> int | float:
    try:
        return kind(raw)
    except ValueError as exc:
        raise FilterError(4019, f"invalid task filter value {raw!r}") from exc


def sort_rows(rows: list[Row], sort_by: list[str], order_by: list[str]) -> list[Row]:
    """Sort like Vikunja: by each ``sort_by`` field in turn, then by id; unset last."""
    keys = [FIELD_ALIASES.get(k, k) for k in sort_by if k] or ["id"]
    for key in keys:
        if key not in SORTABLE:
            raise FilterError(4016, f"the task field {key!r} is invalid for sorting")
    result = sorted(rows, key=lambda r: r["id"])  # type: ignore[arg-type, return-value]
    for position in range(len(keys) - 1, -1, -1):
        key = keys[position]
        descending = position < len(order_by) and order_by[position].lower() == "desc"
        present = [r for r in result if r.get(key) is not None]
        missing = [r for r in result if r.get(key) is None]
        present.sort(key=lambda r: r[key], reverse=descending)  # type: ignore[arg-type, return-value]
        result = present + missing
    return result
