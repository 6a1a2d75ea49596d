"""vikunja_sync.mapping: unit tests per field, Hypothesis properties, and the real `task` binary."""

from __future__ import annotations

import dataclasses
import html
import json
import os
import shutil
import subprocess
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vikunja_sync.mapping import (
    FIELD_NAMES,
    SyncedFields,
    changed_fields,
    fields_from_tw,
    fields_from_vikunja,
    fingerprint,
    format_tw_date,
    format_tw_duration,
    format_vikunja_date,
    html_to_text,
    parse_tw_date,
    parse_tw_duration,
    parse_vikunja_date,
    text_to_html,
    tw_task_updated,
    vikunja_create_body,
    vikunja_update_body,
)

PROPS = settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
NOW = datetime(2026, 12, 4, 20, 0, 0, tzinfo=UTC)
DAY = 86400


def fields(**overrides) -> SyncedFields:
    base = SyncedFields(
        title="buy milk",
        notes=(),
        done=False,
        due=None,
        start=None,
        end=None,
        repeat_after=0,
        repeat_mode=0,
        priority=None,
        tags=frozenset(),
        project="inbox",
    )
    return dataclasses.replace(base, **overrides)


def vikunja_task(**overrides) -> dict:
    """A task as GET /tasks/{id} returns it, with fields the sync does not own."""
    task = {
        "id": 42,
        "project_id": 7,
        "title": "buy milk",
        "description": "",
        "done": False,
        "done_at": "0001-01-01T00:00:00Z",
        "due_date": "0001-01-01T00:00:00Z",
        "start_date": "0001-01-01T00:00:00Z",
        "end_date": "0001-01-01T00:00:00Z",
        "repeat_after": 0,
        "repeat_mode": 0,
        "priority": 0,
        "percent_done": 0.5,
        "hex_color": "e8e8e8",
        "labels": None,
        "assignees": [{"id": 3, "username": "ann"}],
        "reminders": [{"reminder": "2027-01-01T09:00:00+01:00", "relative_period": 0, "relative_to": ""}],
        "is_favorite": True,
        "identifier": "#4",
        "index": 4,
        "position": 65536.5,
        "bucket_id": 12,
        "attachments": None,
        "related_tasks": {},
        "created": "2026-11-01T10:00:00+01:00",
        "updated": "2026-11-02T10:00:00+01:00",
    }
    task.update(overrides)
    return task


# --- title, notes, HTML ---------------------------------------------------------------


def test_title_maps_to_description_both_ways():
    assert fields_from_tw({"description": "call Bob"}, "inbox").title == "call Bob"
    assert fields_from_vikunja(vikunja_task(title="call Bob"), "inbox").title == "call Bob"
    assert tw_task_updated(None, fields(title="call Bob"), "inbox")["description"] == "call Bob"
    assert vikunja_create_body(fields(title="call Bob"))["title"] == "call Bob"


def test_notes_are_note_annotations_and_other_annotations_are_not_notes():
    task = {
        "description": "x",
        "annotations": [
            {"entry": "20261201T000002Z", "description": "note:   second  "},
            {"entry": "20261201T000000Z", "description": "vikunja_id:12"},
            {"entry": "20261201T000001Z", "description": "note: first"},
            {"entry": "20261201T000003Z", "description": "called, no answer"},
            {"entry": "20261201T000004Z", "description": "note:"},
        ],
    }
    assert fields_from_tw(task, "inbox").notes == ("first", "second")


@pytest.mark.parametrize(
    ("markup", "text"),
    [
        ("<p>Hello</p><p>World</p>", "Hello\nWorld"),
        ("<p>Tom &amp; Jerry &lt;3 &quot;q&quot; &#39;s&#x27; &eacute;&nbsp;</p>", "Tom & Jerry <3 \"q\" 's' é"),
        (
            "<div><ul><li><strong>bold <em>nested</em></strong> text</li><li>two</li></ul></div>",
            "bold nested text\ntwo",
        ),
        ("one<br>two<br/>three<br />four", "one\ntwo\nthree\nfour"),
        ("<p>before</p><script>alert('<p>x</p>')</script><style>p{color:red}</style><p>after</p>", "before\nafter"),
        ("<p>a < b and c > d</p>", "a < b and c > d"),
        ("<h1>Title</h1>plain tail", "Title\nplain tail"),
        ('<p><a href="https://example.org/?a=1&amp;b=2">link</a> <img src="x.png"></p>', "link"),
        ("plain text\nwith a newline", "plain text\nwith a newline"),
        ("<p>unclosed <b>bold", "unclosed bold"),
        ("<p>x</p><script>never closed", "x"),
        ("<!-- comment --><p>kept</p><![CDATA[cdata]]>", "kept"),
        ("", ""),
    ],
)
def test_html_to_text(markup, text):
    assert html_to_text(markup) == text


def test_text_to_html_escapes_every_line():
    assert (
        text_to_html("a < b & c\n\n  <script>x</script>  \n")
        == "<p>a &lt; b &amp; c</p><p>&lt;script&gt;x&lt;/script&gt;</p>"
    )
    assert text_to_html("") == ""


def test_vikunja_description_becomes_notes():
    task = vikunja_task(description="<p>first &amp; more</p><p></p><p>  second </p><script>evil()</script>")
    assert fields_from_vikunja(task, "inbox").notes == ("first & more", "second")
    assert fields_from_vikunja(vikunja_task(description=None), "inbox").notes == ()


# --- dates ------------------------------------------------------------------------------


def test_tw_dates_parse_and_format():
    dt = parse_tw_date("20261204T140000Z")
    assert dt == datetime(2026, 12, 4, 14, tzinfo=UTC) and dt.tzinfo is UTC
    assert (
        format_tw_date(datetime(2026, 12, 4, 16, 0, 5, 999, tzinfo=timezone(timedelta(hours=2)))) == "20261204T140005Z"
    )
    for junk in ("2026-12-04", "20261204T140000", "20261304T140000Z", "", "tomorrow"):
        with pytest.raises(ValueError):
            parse_tw_date(junk)


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("2026-12-04T14:00:00+02:00", datetime(2026, 12, 4, 12, tzinfo=UTC)),
        ("2026-12-04T14:00:00Z", datetime(2026, 12, 4, 14, tzinfo=UTC)),
        ("2026-12-04T14:00:00.987654321-05:30", datetime(2026, 12, 4, 19, 30, tzinfo=UTC)),
        ("2026-12-04T00:30:00+14:00", datetime(2026, 12, 3, 10, 30, tzinfo=UTC)),
        ("2026-12-04T23:30:00-12:00", datetime(2026, 12, 5, 11, 30, tzinfo=UTC)),
        # Berlin the night clocks go forward (CET +01:00 -> CEST +02:00) and back.
        ("2026-03-29T01:59:59+01:00", datetime(2026, 3, 29, 0, 59, 59, tzinfo=UTC)),
        ("2026-03-29T03:00:00+02:00", datetime(2026, 3, 29, 1, tzinfo=UTC)),
        ("2026-10-25T02:30:00+02:00", datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),
        ("2026-10-25T02:30:00+01:00", datetime(2026, 10, 25, 1, 30, tzinfo=UTC)),
    ],
)
def test_vikunja_dates_normalise_to_utc_seconds(text, utc):
    parsed = parse_vikunja_date(text)
    assert parsed == utc and parsed.utcoffset() == timedelta(0) and parsed.microsecond == 0


@pytest.mark.parametrize(
    "zero",
    [None, "", "0001-01-01T00:00:00Z", "0001-01-01T00:00:00+00:00", "0001-01-01T00:00:00+02:00"]
    + ["0001-01-01T01:00:00+01:00", "0000-12-31T19:00:00-05:00", "0001-01-01T00:17:30.000+00:17"],
)
def test_vikunja_zero_dates_are_unset(zero):
    assert parse_vikunja_date(zero) is None
    assert fields_from_vikunja(vikunja_task(due_date=zero), "inbox").due is None


def test_vikunja_date_junk_raises_and_reads_as_unset():
    for junk in (
        "2026-12-04",
        "2026-12-04T25:00:00Z",
        "2026-12-04T10:00:00+25:00",
        "soon",
        "9999-12-31T23:00:00-05:00",
    ):
        with pytest.raises(ValueError):
            parse_vikunja_date(junk)
        assert fields_from_vikunja(vikunja_task(due_date=junk), "inbox").due is None


def test_vikunja_dates_are_written_as_utc():
    cest = timezone(timedelta(hours=2))
    assert format_vikunja_date(datetime(2026, 12, 4, 14, 0, 0, 500, tzinfo=cest)) == "2026-12-04T12:00:00Z"
    assert format_vikunja_date(None) is None


def test_date_fields_map_both_ways():
    due, start, end = (datetime(2027, 1, d, 9, tzinfo=UTC) for d in (3, 1, 5))
    tw = {"description": "x", "due": "20270103T090000Z", "scheduled": "20270101T090000Z", "until": "20270105T090000Z"}
    got = fields_from_tw(tw, "inbox")
    assert (got.due, got.start, got.end) == (due, start, end)
    body = vikunja_create_body(got)
    assert (body["due_date"], body["start_date"], body["end_date"]) == (
        "2027-01-03T09:00:00Z",
        "2027-01-01T09:00:00Z",
        "2027-01-05T09:00:00Z",
    )
    cleared = tw_task_updated(tw, fields(due=due), "inbox")
    assert cleared["due"] == "20270103T090000Z" and "scheduled" not in cleared and "until" not in cleared


# --- recurrence ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("recur", "expected"),
    [
        ("daily", (DAY, 0)),
        ("weekly", (7 * DAY, 0)),
        ("biweekly", (14 * DAY, 0)),
        ("fortnight", (14 * DAY, 0)),
        ("weekdays", (DAY, 0)),
        ("quarterly", (91 * DAY, 0)),
        ("semiannual", (183 * DAY, 0)),
        ("yearly", (365 * DAY, 0)),
        ("annual", (365 * DAY, 0)),
        ("3d", (3 * DAY, 0)),
        ("2w", (14 * DAY, 0)),
        ("5h", (5 * 3600, 0)),
        ("90min", (5400, 0)),
        ("45s", (45, 0)),
        ("90061s", (90061, 0)),
        ("1.5d", (129600, 0)),
        ("3 days", (3 * DAY, 0)),
        ("2weeks", (14 * DAY, 0)),
        ("1mo", (30 * DAY, 0)),  # TW 2.6 steps "mo"/"month" by 30 days, not by calendar month
        ("2m", (60 * DAY, 0)),
        ("10000d", (10000 * DAY, 0)),
        ("P1D", (DAY, 0)),
        ("PT2H", (7200, 0)),
        ("P1DT2H3M4S", (DAY + 7384, 0)),
        ("P2W", (14 * DAY, 0)),
        ("monthly", (0, 1)),
        ("1m", (0, 1)),
        ("P1M", (0, 1)),
    ],
)
def test_parse_tw_duration(recur, expected):
    assert parse_tw_duration(recur) == expected


@pytest.mark.parametrize(
    "junk", ["", "soon", "1d2h", "10001d", "0d", "PT0S", "P", "PT", "d", "days", "86400", "Weekly"]
)
def test_parse_tw_duration_rejects_junk(junk):
    with pytest.raises(ValueError):
        parse_tw_duration(junk)


@pytest.mark.parametrize(
    ("after", "mode", "recur"),
    [
        (DAY, 0, "1d"),
        (7 * DAY, 0, "1w"),
        (14 * DAY, 2, "2w"),
        (3 * DAY, 0, "3d"),
        (5 * 3600, 0, "5h"),
        (90061, 0, "90061s"),
        (5400, 0, "5400s"),
        (10001 * DAY, 0, "240024h"),  # TW refuses more than 10000d
        (0, 1, "monthly"),
        (12345, 1, "monthly"),
        (0, 0, None),
        (0, 2, None),
    ],
)
def test_format_tw_duration(after, mode, recur):
    assert format_tw_duration(after, mode) == recur


@given(after=st.integers(1, 20 * 365 * DAY))
@PROPS
def test_formatted_durations_parse_back(after):
    assert parse_tw_duration(format_tw_duration(after, 0)) == (after, 0)


def test_recur_maps_to_repeat_both_ways():
    tw = {"description": "x", "due": "20270101T000000Z", "recur": "weekly"}
    assert (fields_from_tw(tw, "inbox").repeat_after, fields_from_tw(tw, "inbox").repeat_mode) == (7 * DAY, 0)
    monthly = vikunja_task(due_date="2027-01-01T00:00:00Z", repeat_after=0, repeat_mode=1)
    assert tw_task_updated(None, fields_from_vikunja(monthly, "inbox"), "inbox")["recur"] == "monthly"
    from_current = vikunja_task(due_date="2027-01-01T00:00:00Z", repeat_after=2 * DAY, repeat_mode=2)
    read = fields_from_vikunja(from_current, "inbox")
    assert (read.repeat_after, read.repeat_mode) == (2 * DAY, 2)
    assert tw_task_updated(None, read, "inbox")["recur"] == "2d"


def test_repeat_mode_two_means_the_same_as_zero():
    due = datetime(2027, 1, 1, tzinfo=UTC)
    a, b = fields(due=due, repeat_after=DAY, repeat_mode=0), fields(due=due, repeat_after=DAY, repeat_mode=2)
    assert a == b and hash(a) == hash(b) and fingerprint(a) == fingerprint(b) and changed_fields(a, b) == ()


def test_repeat_without_due_is_not_written_to_taskwarrior():
    unsyncable = fields(repeat_after=DAY)
    assert unsyncable == fields()
    assert "recur" not in tw_task_updated(None, unsyncable, "inbox")
    # ... and a Vikunja repeat without due date is left alone by a TW push that has none either.
    current = vikunja_task(repeat_after=DAY, repeat_mode=0)
    body = vikunja_update_body(current, fields(), 7)
    assert (body["repeat_after"], body["repeat_mode"]) == (DAY, 0)


def test_junk_recur_reads_as_none():
    for junk in ("sometimes", 5, ["weekly"], None):
        got = fields_from_tw({"description": "x", "due": "20270101T000000Z", "recur": junk}, "inbox")
        assert (got.repeat_after, got.repeat_mode) == (0, 0)


# --- priority, tags, project, status --------------------------------------------------------


@pytest.mark.parametrize(("vikunja", "tw"), [(0, None), (1, "L"), (2, "M"), (3, "H"), (4, "H"), (5, "H"), (9, "H")])
def test_priority_from_vikunja(vikunja, tw):
    assert fields_from_vikunja(vikunja_task(priority=vikunja), "inbox").priority == tw


@pytest.mark.parametrize(("tw", "vikunja"), [(None, 0), ("L", 1), ("M", 2), ("H", 3)])
def test_priority_to_vikunja(tw, vikunja):
    assert fields_from_tw({"description": "x", **({"priority": tw} if tw else {})}, "inbox").priority == tw
    assert vikunja_create_body(fields(priority=tw))["priority"] == vikunja


def test_priority_junk_reads_as_unset():
    for junk in (-1, "high", True, 2.5, None):
        assert fields_from_vikunja(vikunja_task(priority=junk), "inbox").priority is None
    for junk in ("X", "h", 3, ""):
        assert fields_from_tw({"description": "x", "priority": junk}, "inbox").priority is None


def test_tags_are_label_titles_kept_whole():
    labels = [{"id": 1, "title": "follow-up"}, {"id": 2, "title": "home.garden"}, {"id": 3}, "junk"]
    assert fields_from_vikunja(vikunja_task(labels=labels), "inbox").tags == {"follow-up", "home.garden"}
    assert fields_from_vikunja(vikunja_task(labels=None), "inbox").tags == frozenset()
    assert fields_from_tw({"description": "x", "tags": ["follow-up", "a-b-c", 3, ""]}, "inbox").tags == {
        "follow-up",
        "a-b-c",
    }
    assert fields_from_tw({"description": "x", "tags": "a,b"}, "inbox").tags == frozenset()


def test_tags_keep_their_order_and_new_ones_follow_sorted():
    task = {"description": "x", "tags": ["zeta", "alpha", "mid"]}
    assert tw_task_updated(task, fields(tags=frozenset({"mid", "zeta", "new-b", "new-a"})), "inbox")["tags"] == [
        "zeta",
        "mid",
        "new-a",
        "new-b",
    ]
    assert "tags" not in tw_task_updated(task, fields(), "inbox")


def test_project_defaults_and_is_only_written_when_needed():
    assert fields_from_tw({"description": "x"}, "inbox").project == "inbox"
    assert fields_from_tw({"description": "x", "project": ""}, "inbox").project == "inbox"
    assert fields_from_tw({"description": "x", "project": "Home.Garden"}, "inbox").project == "Home.Garden"
    assert fields_from_vikunja(vikunja_task(), "Work").project == "Work"
    assert "project" not in tw_task_updated(None, fields(project="inbox"), "inbox")
    assert "project" not in tw_task_updated({"description": "buy milk"}, fields(project="inbox"), "inbox")
    assert tw_task_updated(None, fields(project="Work"), "inbox")["project"] == "Work"
    assert tw_task_updated({"description": "buy milk", "project": "Work"}, fields(), "inbox")["project"] == "inbox"


def test_status_completed_is_done():
    for status, done in (("completed", True), ("pending", False), ("waiting", False), ("recurring", False)):
        assert fields_from_tw({"description": "x", "status": status}, "inbox").done is done
    assert fields_from_vikunja(vikunja_task(done=True), "inbox").done is True
    assert fields_from_vikunja(vikunja_task(done="yes"), "inbox").done is False


def test_completing_sets_end_and_reopening_removes_it():
    pending = {"uuid": "u", "description": "buy milk", "status": "pending", "entry": "20261201T000000Z"}
    done = tw_task_updated(pending, fields(done=True), "inbox", now=NOW)
    assert done["status"] == "completed" and done["end"] == "20261204T200000Z"
    reopened = tw_task_updated(done, fields(done=False), "inbox", now=NOW)
    assert reopened["status"] == "pending" and "end" not in reopened


# --- writers ------------------------------------------------------------------------------


def test_update_body_keeps_unowned_fields_and_drops_labels():
    current = vikunja_task(labels=[{"id": 1, "title": "a"}])
    desired = fields(title="buy oat milk", notes=("2 litres",), priority="M", done=True)
    body = vikunja_update_body(current, desired, 9)
    assert "labels" not in body
    for key in ("assignees", "reminders", "hex_color", "percent_done", "is_favorite", "bucket_id", "position", "id"):
        assert body[key] == current[key]
    assert (body["title"], body["description"], body["priority"], body["done"], body["project_id"]) == (
        "buy oat milk",
        "<p>2 litres</p>",
        2,
        True,
        9,
    )
    assert current["labels"] == [{"id": 1, "title": "a"}] and current["title"] == "buy milk"  # input untouched


def test_update_body_keeps_precision_the_other_side_cannot_see():
    current = vikunja_task(
        title="t",
        description="<p><strong>Rich</strong> text</p><ul><li>item</li></ul>",
        priority=5,
        due_date="2027-01-01T10:00:00.250+01:00",
        repeat_after=90061,
        repeat_mode=0,
    )
    tw = {
        "description": "t",
        "priority": "H",
        "due": "20270101T090000Z",
        "recur": "90061s",
        "annotations": [
            {"entry": "20261201T000000Z", "description": "note: Rich text"},
            {"entry": "20261201T000001Z", "description": "note: item"},
        ],
    }
    body = vikunja_update_body(current, fields_from_tw(tw, "inbox"), 7)
    assert body == {k: v for k, v in current.items() if k != "labels"}


def test_update_body_changes_repeat_but_keeps_mode_two():
    due = datetime(2027, 1, 1, tzinfo=UTC)
    current = vikunja_task(due_date="2027-01-01T00:00:00Z", repeat_after=DAY, repeat_mode=2)
    body = vikunja_update_body(current, fields(due=due, repeat_after=2 * DAY), 7)
    assert (body["repeat_after"], body["repeat_mode"]) == (2 * DAY, 2)
    body = vikunja_update_body(current, fields(due=due, repeat_mode=1), 7)
    assert (body["repeat_after"], body["repeat_mode"]) == (0, 1)
    body = vikunja_update_body(current, fields(due=due), 7)
    assert (body["repeat_after"], body["repeat_mode"]) == (0, 0)


def test_update_body_clears_a_dateless_repeat_once_a_due_date_arrives():
    current = vikunja_task(repeat_after=DAY)
    body = vikunja_update_body(current, fields(due=datetime(2027, 1, 1, tzinfo=UTC)), 7)
    assert (body["due_date"], body["repeat_after"], body["repeat_mode"]) == ("2027-01-01T00:00:00Z", 0, 0)


def test_update_body_writes_and_clears_dates_in_utc():
    current = vikunja_task(due_date="2027-01-01T10:00:00+01:00", start_date="2026-12-30T08:00:00-03:00")
    desired = fields(due=datetime(2027, 1, 2, 9, tzinfo=UTC), start=None, end=datetime(2027, 1, 3, tzinfo=UTC))
    body = vikunja_update_body(current, desired, 7)
    assert (body["due_date"], body["start_date"], body["end_date"]) == (
        "2027-01-02T09:00:00Z",
        None,
        "2027-01-03T00:00:00Z",
    )


def test_create_body():
    desired = fields(
        title="t",
        notes=("a & b", "c"),
        done=True,
        due=datetime(2027, 1, 1, tzinfo=UTC),
        repeat_after=DAY,
        repeat_mode=2,
        priority="L",
        tags=frozenset({"x"}),
    )
    assert vikunja_create_body(desired) == {
        "title": "t",
        "description": "<p>a &amp; b</p><p>c</p>",
        "done": True,
        "due_date": "2027-01-01T00:00:00Z",
        "start_date": None,
        "end_date": None,
        "repeat_after": DAY,
        "repeat_mode": 2,
        "priority": 1,
    }


def test_tw_update_replaces_notes_and_keeps_other_annotations():
    current = {
        "uuid": "u",
        "description": "buy milk",
        "status": "pending",
        "entry": "20261201T000000Z",
        "vikunja_id": "12.000000",
        "urgency": 1.5,
        "annotations": [
            {"entry": "20261204T200000Z", "description": "vikunja_id:12"},
            {"entry": "20261204T200001Z", "description": "note: old"},
            {"entry": "20261204T200002Z", "description": "asked Bob"},
        ],
    }
    new = tw_task_updated(current, fields(notes=("one", "two <b>")), "inbox", now=NOW)
    assert new["annotations"] == [
        {"entry": "20261204T200000Z", "description": "vikunja_id:12"},
        {"entry": "20261204T200002Z", "description": "asked Bob"},
        {"entry": "20261204T200001Z", "description": "note: one"},  # the seconds the kept ones do not use
        {"entry": "20261204T200003Z", "description": "note: two <b>"},
    ]
    assert (new["uuid"], new["vikunja_id"], new["urgency"]) == ("u", "12.000000", 1.5)
    assert fields_from_tw(new, "inbox").notes == ("one", "two <b>")
    assert "annotations" not in tw_task_updated(
        {"description": "buy milk", "annotations": current["annotations"][1:2]}, fields(), "inbox"
    )


def test_tw_update_keeps_an_equivalent_recur_and_changes_a_different_one():
    for recur in ("daily", "P1D", "1d", "24h"):
        task = {"description": "buy milk", "due": "20270101T000000Z", "recur": recur}
        wanted = fields(due=datetime(2027, 1, 1, tzinfo=UTC), repeat_after=DAY, repeat_mode=2)
        assert tw_task_updated(task, wanted, "inbox")["recur"] == recur
    monthly = {"description": "buy milk", "due": "20270101T000000Z", "recur": "P1M"}
    assert (
        tw_task_updated(monthly, fields(due=datetime(2027, 1, 1, tzinfo=UTC), repeat_mode=1), "inbox")["recur"] == "P1M"
    )
    weekly = tw_task_updated(monthly, fields(due=datetime(2027, 1, 1, tzinfo=UTC), repeat_after=7 * DAY), "inbox")
    assert weekly["recur"] == "1w"


def test_tw_update_keeps_recur_and_due_that_taskwarrior_refuses_to_remove():
    recurring = {"uuid": "u", "description": "buy milk", "due": "20270101T000000Z", "recur": "weekly"}
    kept = tw_task_updated(recurring, fields(), "inbox")
    assert (kept["recur"], kept["due"]) == ("weekly", "20270101T000000Z")
    assert changed_fields(fields_from_tw(kept, "inbox"), fields()) == ("due", "repeat_after")
    plain = {"uuid": "u", "description": "buy milk", "due": "20270101T000000Z"}
    assert "due" not in tw_task_updated(plain, fields(), "inbox")


def test_new_tw_task_has_no_uuid():
    new = tw_task_updated(None, fields(), "inbox", now=NOW)
    assert new == {"status": "pending", "entry": "20261204T200000Z", "description": "buy milk"}


def test_changed_fields_and_fingerprint():
    a = fields(due=datetime(2027, 1, 1, 12, tzinfo=UTC), priority="H", tags=frozenset({"x"}))
    same_instant = dataclasses.replace(
        a, due=datetime(2027, 1, 1, 14, 0, 0, 700000, tzinfo=timezone(timedelta(hours=2)))
    )
    assert changed_fields(a, same_instant) == () and fingerprint(a) == fingerprint(same_instant)
    b = dataclasses.replace(a, title="other", priority="L", tags=frozenset())
    assert changed_fields(a, b) == ("title", "priority", "tags")
    assert fingerprint(a) != fingerprint(b) and len(fingerprint(a)) == 16
    assert set(fingerprint(a)) <= set("0123456789abcdef")
    assert FIELD_NAMES == tuple(f.name for f in dataclasses.fields(SyncedFields))


# --- Hypothesis properties ----------------------------------------------------------------

LINES = (
    st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), min_size=1, max_size=25)
    .map(str.strip)
    .filter(bool)
)
DATES = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)).map(
    lambda d: d.replace(microsecond=0)
)
REPEATS = st.one_of(
    st.just((0, 0)), st.just((0, 1)), st.tuples(st.integers(1, 10 * 365 * DAY), st.sampled_from([0, 2]))
)
WORDS = st.text(st.characters(blacklist_categories=("Cs", "Zs", "Cc")), min_size=1, max_size=12)


@st.composite
def synced(draw) -> SyncedFields:
    after, mode = draw(REPEATS)
    return SyncedFields(
        title=draw(st.text(min_size=1, max_size=40)),
        notes=tuple(draw(st.lists(LINES, max_size=4))),
        done=draw(st.booleans()),
        due=draw(st.none() | DATES),
        start=draw(st.none() | DATES),
        end=draw(st.none() | DATES),
        repeat_after=after,
        repeat_mode=mode,
        priority=draw(st.sampled_from([None, "H", "M", "L"])),
        tags=draw(st.frozensets(WORDS.filter(lambda t: "," not in t), max_size=4)),
        project=draw(WORDS),
    )


OFFSETS = st.integers(-14 * 60, 14 * 60)
ZERO_DATES = st.sampled_from(
    ["0001-01-01T00:00:00Z", "0001-01-01T00:00:00+00:00", "0001-01-01T01:00:00+01:00", "0000-12-31T19:00:00-05:00"]
)


def render(dt: datetime, offset_minutes: int, fraction: str = "", zulu: bool = False) -> str:
    """An instant as Vikunja may print it: any offset, maybe fractional seconds."""
    text = dt.astimezone(timezone(timedelta(minutes=offset_minutes))).isoformat(timespec="seconds")
    stamp, zone = text[:19], text[19:]
    return stamp + (f".{fraction}" if fraction else "") + ("Z" if zulu and zone == "+00:00" else zone)


@st.composite
def vikunja_dates(draw) -> str | None:
    dt = draw(st.none() | DATES)
    if dt is None:
        return draw(st.none() | ZERO_DATES)
    return render(
        dt, draw(OFFSETS), draw(st.sampled_from(["", "0", "123", "999999", "123456789"])), draw(st.booleans())
    )


def as_served(body: dict, tags: frozenset[str], draw) -> dict:
    """What GET returns after a create: server fields added, zero dates, labels attached separately."""
    task = vikunja_task(**body)
    task["labels"] = [{"id": i, "title": t} for i, t in enumerate(sorted(tags), 1)] or None
    for key in ("due_date", "start_date", "end_date"):
        dt = parse_vikunja_date(task[key])
        task[key] = draw(ZERO_DATES) if dt is None else render(dt, draw(OFFSETS))
    return task


@given(f=synced(), data=st.data())
@PROPS
def test_property_tw_to_vikunja_to_tw_is_identity(f, data):
    served = as_served(vikunja_create_body(f), f.tags, data.draw)
    from_vikunja = fields_from_vikunja(served, f.project)
    assert dataclasses.astuple(from_vikunja) == dataclasses.astuple(f)  # Vikunja keeps every value exactly
    tw = tw_task_updated(None, from_vikunja, "default-project")
    tw["uuid"] = str(uuid.UUID(int=1))
    back = fields_from_tw(tw, "default-project")
    assert back == f and changed_fields(back, f) == () and fingerprint(back) == fingerprint(f)


def assert_reads_back(new: dict, current: dict, desired: SyncedFields) -> None:
    """`new` means `desired`, except that TW keeps recur and due on a task that has recur."""
    back = fields_from_tw(new, "inbox")
    stops_repeating = dataclasses.replace(desired, repeat_after=0, repeat_mode=0) == desired
    if current.get("recur") and stops_repeating:
        assert set(changed_fields(back, desired)) <= {"due", "repeat_after", "repeat_mode"}
    else:
        assert back == desired


@given(f=synced(), g=synced())
@PROPS
def test_property_tw_update_of_an_existing_task_reads_back_as_desired(f, g):
    current = tw_task_updated(None, g, "inbox", now=NOW)
    current.update(uuid="u", urgency=3.2, vikunja_id="5.000000", wait="20300101T000000Z")
    comment = {"entry": "20261101T000000Z", "description": "user comment"}
    current.setdefault("annotations", []).insert(0, comment)
    new = tw_task_updated(current, f, "inbox", now=NOW)
    assert_reads_back(new, current, f)
    assert (new["uuid"], new["urgency"], new["vikunja_id"], new["wait"]) == ("u", 3.2, "5.000000", "20300101T000000Z")
    assert comment in new["annotations"]
    entries = [a["entry"] for a in new["annotations"]]
    assert len(entries) == len(set(entries))


@given(dt=DATES, offset=OFFSETS, fraction=st.sampled_from(["", "5", "000001", "999999999"]))
@PROPS
def test_property_dates_survive_any_offset(dt, offset, fraction):
    assert parse_vikunja_date(render(dt, offset, fraction)) == dt
    assert parse_tw_date(format_tw_date(dt)) == dt
    assert parse_vikunja_date(format_vikunja_date(dt)) == dt


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=5,
)
TW_KEYS = ("description", "status", "due", "scheduled", "until", "recur", "priority", "tags", "project", "annotations")
VIKUNJA_KEYS = ("title", "description", "done", "due_date", "start_date", "end_date", "repeat_after", "repeat_mode")
VIKUNJA_KEYS += ("priority", "labels", "project_id")
NOTE_TEXT = st.sampled_from(["note: x", "note:", "other"]) | JSONISH
NEAR_MISS = st.sampled_from(
    ["20261204T140000Z", "2026-12-04T14:00:00+02:00", "0001-01-01T00:00:00Z", "note: x", "monthly", "H", "completed"]
) | st.lists(
    st.fixed_dictionaries({}, optional={"title": JSONISH, "description": NOTE_TEXT, "entry": JSONISH}), max_size=3
)


def junk_dicts(keys):
    return st.fixed_dictionaries({}, optional={k: JSONISH | NEAR_MISS for k in keys}) | st.dictionaries(
        st.text(max_size=10), JSONISH, max_size=6
    )


@given(tw=junk_dicts(TW_KEYS), vik=junk_dicts(VIKUNJA_KEYS), f=synced())
@PROPS
def test_property_junk_never_raises_and_writers_repair_it(tw, vik, f):
    for read in (fields_from_tw(tw, "inbox"), fields_from_vikunja(vik, "inbox")):
        assert isinstance(read, SyncedFields) and len(fingerprint(read)) == 16
    assert_reads_back(tw_task_updated(tw, f, "inbox"), tw, f)
    body = vikunja_update_body(vik, f, 3)
    served = {**body, "labels": [{"title": t} for t in f.tags]}
    assert fields_from_vikunja(served, f.project) == f and body["project_id"] == 3


@st.composite
def realistic_vikunja(draw) -> dict:
    lines = draw(st.lists(LINES, max_size=3))
    description = draw(
        st.sampled_from(
            [
                text_to_html("\n".join(lines)),
                "\n".join(lines),
                "".join(f"<ul><li><strong>{t}</strong></li></ul>" for t in lines),
                None,
            ]
        )
    )
    labels = draw(st.lists(st.builds(lambda i, t: {"id": i, "title": t}, st.integers(1, 99), WORDS), max_size=3))
    return vikunja_task(
        id=draw(st.integers(1, 10**6)),
        project_id=draw(st.integers(1, 60)),
        title=draw(st.text(min_size=1, max_size=30)),
        description=description,
        done=draw(st.booleans()),
        due_date=draw(vikunja_dates()),
        start_date=draw(vikunja_dates()),
        end_date=draw(vikunja_dates()),
        repeat_after=draw(st.sampled_from([0, 3600, DAY, 90061, 7 * DAY]) | st.integers(0, 10**8)),
        repeat_mode=draw(st.sampled_from([0, 1, 2])),
        priority=draw(st.integers(0, 5)),
        labels=labels or None,
        hex_color=draw(st.sampled_from(["", "1973ff"])),
    )


@given(current=realistic_vikunja(), title=WORDS)
@PROPS
def test_property_update_body_with_unchanged_meaning_is_a_no_op(current, title):
    desired = fields_from_vikunja(current, title)
    body = vikunja_update_body(current, desired, current["project_id"])
    assert body == {k: v for k, v in current.items() if k != "labels"}
    assert vikunja_update_body(current, desired, current["project_id"] + 1)["project_id"] == current["project_id"] + 1


TW_DATES = DATES.map(format_tw_date)
REALISTIC_TW = st.fixed_dictionaries(
    {
        "uuid": st.uuids().map(str),
        "description": st.text(min_size=1, max_size=30),
        "status": st.sampled_from(["pending", "completed", "waiting", "recurring"]),
        "entry": TW_DATES,
        "urgency": st.floats(0, 20),
    },
    optional={
        "due": TW_DATES,
        "scheduled": TW_DATES,
        "until": TW_DATES,
        "end": TW_DATES,
        "recur": st.sampled_from(["daily", "weekly", "monthly", "P1M", "1m", "quarterly", "90min", "P1DT2H", "junk"]),
        "priority": st.sampled_from(["H", "M", "L", "X"]),
        "tags": st.lists(WORDS, max_size=3),
        "project": WORDS,
        "annotations": st.lists(
            st.builds(
                lambda e, d: {"entry": e, "description": d},
                TW_DATES,
                st.sampled_from(["note:", "note: ", "vikunja_id:", ""]).flatmap(lambda p: LINES.map(lambda t: p + t)),
            ),
            max_size=4,
        ),
    },
)


@given(task=REALISTIC_TW)
@PROPS
def test_property_tw_update_with_unchanged_meaning_is_a_no_op(task):
    assert tw_task_updated(task, fields_from_tw(task, "inbox"), "inbox") == task


@given(a=synced(), b=synced())
@PROPS
def test_property_equality_changed_fields_and_fingerprint_agree(a, b):
    assert (a == b) == (changed_fields(a, b) == ()) == (fingerprint(a) == fingerprint(b))
    assert changed_fields(a, a) == () and set(changed_fields(a, b)) <= set(FIELD_NAMES)


@given(text=st.text(max_size=60))
@PROPS
def test_property_text_survives_html(text):
    lines = [line.strip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n") if line.strip()]
    assert html_to_text(text_to_html(text)) == "\n".join(lines)


@given(markup=st.text(st.sampled_from("<>/&;#x1pbrscriptyle =\"'!-[]ab\n"), max_size=80) | st.text(max_size=80))
@PROPS
def test_property_html_to_text_never_raises_and_gives_canonical_lines(markup):
    text = html_to_text(markup)
    assert all(line and line == line.strip() for line in text.split("\n")) if text else text == ""


TEXT_NODES = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12)
SCRIPT = "<script>if (a < b) { SECRET('</p>') }</script>"


def element(tag: str, children: list[tuple[str, str]]) -> tuple[str, str]:
    """(markup, the text a reader sees) of one element."""
    markup = f"<{tag}>{''.join(m for m, _ in children)}</{tag}>"
    return markup, "" if tag == "style" else "".join(v for _, v in children)


ELEMENTS = st.recursive(
    TEXT_NODES.map(lambda t: (html.escape(t), t)) | st.sampled_from([("<br>", ""), (SCRIPT, "")]),
    lambda inner: st.builds(
        element,
        st.sampled_from(["p", "div", "b", "em", "ul", "li", "span", "style", "h2"]),
        st.lists(inner, max_size=3),
    ),
    max_leaves=10,
)


@given(parts=st.lists(ELEMENTS, max_size=5))
@PROPS
def test_property_well_formed_html_keeps_text_and_drops_script_and_style(parts):
    text = html_to_text("".join(m for m, _ in parts))
    assert "SECRET" not in text
    assert "".join(text.split()) == "".join("".join(v for _, v in parts).split())


# --- the real Taskwarrior -----------------------------------------------------------------

TASK = shutil.which("task") or "task"


class TW:
    """A throwaway Taskwarrior: own TASKDATA and empty TASKRC, hooks and confirmation off."""

    def __init__(self, root) -> None:
        (root / "data").mkdir()
        (root / "taskrc").write_text("")
        self.env = {**os.environ, "TASKDATA": str(root / "data"), "TASKRC": str(root / "taskrc")}

    def run(self, *args: str, stdin: str | None = None) -> str:
        cmd = [TASK, "rc.confirmation=off", "rc.hooks=off", "rc.verbose=nothing", *args]
        proc = subprocess.run(cmd, check=False, input=stdin, env=self.env, capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    def import_task(self, task: dict) -> None:
        self.run("import", stdin=json.dumps(task) + "\n")

    def export(self, task_uuid: str) -> dict:
        [task] = json.loads(self.run(task_uuid, "export"))
        return task


FUTURE = datetime(2030, 5, 17, 8, 30, tzinfo=UTC)
REAL_EXAMPLES = [
    fields(title="plain"),
    fields(
        title='notes: <b>bold</b> & "quotes"',
        notes=("first line", "Grüße ✓ <script>x</script> & more", "third"),
        priority="M",
        tags=frozenset({"follow-up", "home.garden"}),
        project="Home",
    ),
    fields(title="dates", due=FUTURE, start=FUTURE - timedelta(days=3), end=FUTURE + timedelta(days=30)),
    fields(title="weekly", due=FUTURE, repeat_after=7 * DAY, priority="H"),
    fields(title="odd seconds", due=FUTURE, repeat_after=90061, repeat_mode=2),
    fields(title="monthly", due=FUTURE, repeat_mode=1, tags=frozenset({"bills"})),
    fields(title="done", done=True, notes=("finished it",), project="Work.Sub"),
]


@pytest.mark.parametrize("desired", REAL_EXAMPLES, ids=lambda f: f.title.split()[0].strip(":"))
def test_real_task_imports_what_we_write_and_exports_the_same_meaning(tmp_path, desired):
    tw = TW(tmp_path)
    new = tw_task_updated(None, desired, "inbox")
    new["uuid"] = task_uuid = str(uuid.uuid4())
    tw.import_task(new)
    exported = tw.export(task_uuid)
    assert fields_from_tw(exported, "inbox") == desired

    # Change everything, write it over the exported task, and read it back again.
    changed = dataclasses.replace(
        desired,
        title=desired.title + " v2",
        notes=(*desired.notes[1:], "added"),
        done=not desired.done,
        due=FUTURE + timedelta(days=1),
        start=None,
        end=None if desired.end else FUTURE + timedelta(days=60),
        repeat_after=2 * DAY,  # Taskwarrior refuses to drop a recurrence (see the next test)
        repeat_mode=0,
        priority="L",
        tags=desired.tags ^ {"new-tag"},
        project="inbox" if desired.project != "inbox" else "Elsewhere",
    )
    exported["annotations"] = [
        {"entry": "20261201T000000Z", "description": "vikunja_id:12"},
        *exported.get("annotations", []),
    ]
    tw.import_task(exported)
    tw.import_task(tw_task_updated(tw.export(task_uuid), changed, "inbox"))
    again = tw.export(task_uuid)
    assert fields_from_tw(again, "inbox") == changed
    assert {"entry": "20261201T000000Z", "description": "vikunja_id:12"} in again["annotations"]


def test_real_task_import_replaces_the_whole_task(tmp_path):
    """Documents what the sync relies on: attributes missing from an imported task are removed."""
    tw = TW(tmp_path)
    task_uuid = str(uuid.uuid4())
    full = tw_task_updated(
        None, fields(due=FUTURE, priority="H", tags=frozenset({"a"}), project="P", notes=("n",)), "inbox"
    )
    tw.import_task({**full, "uuid": task_uuid})
    tw.import_task({"uuid": task_uuid, "description": "buy milk", "status": "pending", "entry": full["entry"]})
    left = tw.export(task_uuid)
    assert not {"due", "priority", "tags", "project", "annotations"} & set(left)


def test_real_task_refuses_to_drop_a_recurrence_so_we_keep_it(tmp_path):
    tw = TW(tmp_path)
    recurring = tw_task_updated(None, fields(due=FUTURE, repeat_after=7 * DAY), "inbox")
    recurring["uuid"] = task_uuid = str(uuid.uuid4())
    tw.import_task(recurring)
    exported = tw.export(task_uuid)
    refused = {k: v for k, v in exported.items() if k != "recur"}
    proc = subprocess.run(
        [TASK, "rc.confirmation=off", "rc.hooks=off", "import"],
        check=False,
        input=json.dumps(refused),
        env=tw.env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode != 0 and "cannot remove the recurrence" in proc.stderr
    tw.import_task(tw_task_updated(exported, fields(title="no longer repeating"), "inbox"))
    again = fields_from_tw(tw.export(task_uuid), "inbox")
    assert changed_fields(again, fields(title="no longer repeating")) == ("due", "repeat_after")
