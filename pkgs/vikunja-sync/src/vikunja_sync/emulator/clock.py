"""Date handling the way Vikunja's Go backend does it.

Vikunja renders times as RFC 3339 with second precision in the server's time zone
and uses Go's zero time for "unset". Clients must compare instants, so the emulator
deliberately renders in a non-UTC offset by default to catch string comparisons.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

ZERO_DATE = "0001-01-01T00:00:00Z"

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
    r"(?:([Zz])|([+-])(\d{2}):?(\d{2}))?$"
)
_DATE_ONLY = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_OFFSET = re.compile(r"^([+-])(\d{2}):(\d{2})$")


def parse_offset(text: str) -> timezone:
    """Parse "+02:00" / "-05:30" / "Z" into a fixed-offset tzinfo."""
    if text in ("Z", "z", "UTC", "+00:00", "-00:00"):
        return UTC
    match = _OFFSET.match(text)
    if not match:
        raise ValueError(f"bad UTC offset {text!r}, expected like +02:00")
    sign = -1 if match.group(1) == "-" else 1
    delta = timedelta(hours=int(match.group(2)), minutes=int(match.group(3)))
    return timezone(sign * delta)


def parse_datetime(text: str, naive_tz: timezone | None = None) -> datetime | None:
    """Parse a timestamp into aware UTC; None for Go's zero time.

    With ``naive_tz`` None this is strict RFC 3339 as Go's JSON decoder wants it ("T",
    an offset or "Z", any fraction). With a zone it is the filter syntax's leniency:
    "YYYY-MM-DD HH:MM:SS" and "YYYY-MM-DD" are accepted and read in that zone.
    Raises ValueError on anything else.
    """
    text = text.strip()
    match = _RFC3339.match(text)
    if match and (naive_tz is not None or (text[10] in "Tt" and _has_offset(match))):
        year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
        fraction = match.group(7) or ""
        micros = int((fraction + "000000")[:6])
        value = datetime(year, month, day, hour, minute, second, micros, tzinfo=_zone(match, naive_tz))
    elif naive_tz is not None and (date_match := _DATE_ONLY.match(text)):
        year, month, day = (int(g) for g in date_match.groups())
        value = datetime(year, month, day, tzinfo=naive_tz)
    else:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    if (value.year, value.month, value.day, value.hour) == (1, 1, 1, 0):
        return None
    return value.astimezone(UTC)


def _has_offset(match: re.Match[str]) -> bool:
    return bool(match.group(8) or match.group(9))


def _zone(match: re.Match[str], naive_tz: timezone | None) -> timezone:
    if match.group(8):
        return UTC
    if match.group(9):
        sign = -1 if match.group(9) == "-" else 1
        hours, minutes = int(match.group(10)), int(match.group(11))
        return timezone(sign * timedelta(hours=hours, minutes=minutes))
    return naive_tz or UTC


def coerce_datetime(value: object) -> datetime | None:
    """Turn a JSON date value (str, None) or a Python datetime into aware UTC or None."""
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime: attach a time zone")
        return value.astimezone(UTC)
    if isinstance(value, str):
        return parse_datetime(value) if value else None
    raise TypeError(f"expected an RFC 3339 string, got {type(value).__name__}")


def format_datetime(value: datetime | None, tz: timezone) -> str:
    """Render like Go's time.RFC3339 in the server zone: seconds only, "Z" for UTC."""
    if value is None:
        return ZERO_DATE
    local = value.astimezone(tz).replace(microsecond=0)
    text = local.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def now_utc() -> datetime:
    """Current time truncated to whole seconds, as Vikunja stores it."""
    return datetime.now(UTC).replace(microsecond=0)


def add_months(value: datetime, months: int) -> datetime:
    """Go's AddDate(0, months, 0): overflowing days roll into the next month."""
    month_index = value.month - 1 + months
    year = value.year + month_index // 12
    month = month_index % 12 + 1
    first = value.replace(year=year, month=month, day=1)
    return first + timedelta(days=value.day - 1)
