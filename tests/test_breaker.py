"""Unit tests for vikunja_sync.breaker with an injected clock and a real state dir."""

from __future__ import annotations

import json
import logging
import math
import os
import stat
from pathlib import Path

import pytest

from vikunja_sync.breaker import (
    BreakerState,
    CircuitBreaker,
    CircuitBreakerOpen,
    Outcome,
    classify_status,
    format_status,
    state_as_dict,
)

T0 = 1_733_300_000.0


class Clock:
    """A settable wall clock shared by breakers in one test."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


def make(state_dir: Path, clock: Clock, **kwargs: float) -> CircuitBreaker:
    return CircuitBreaker(state_dir, clock=clock, **kwargs)  # type: ignore[arg-type]


def stored(breaker: CircuitBreaker) -> dict:
    return json.loads(breaker.path.read_text())


def fail(breaker: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        breaker.record_failure(breaker.admit())


def file_fingerprint(path: Path) -> tuple[bytes, int] | None:
    if not path.exists():
        return None
    return path.read_bytes(), path.stat().st_mtime_ns


# ----- closed / open ----------------------------------------------------------


def test_fresh_breaker_is_closed_and_reading_creates_nothing(state_dir, clock):
    breaker = make(state_dir, clock)
    assert breaker.path == state_dir / "circuit_breaker.json"
    assert breaker.snapshot() == BreakerState("closed", 0, 0.0, 0.0, False, False)
    admission = breaker.admit()
    assert admission.trial is False
    assert not state_dir.exists()


def test_opens_after_threshold_consecutive_failures(state_dir, clock):
    breaker = make(state_dir, clock)
    fail(breaker, 2)
    assert breaker.snapshot().state == "closed"
    assert breaker.snapshot().failures == 2
    clock.advance(1)
    fail(breaker)
    assert stored(breaker) == {
        "failures": 3,
        "last_failure_time": T0 + 1,
        "state": "open",
    }
    snap = breaker.snapshot()
    assert (snap.state, snap.failures, snap.retry_after) == ("open", 3, 60.0)


def test_success_resets_consecutive_failures(state_dir, clock):
    breaker = make(state_dir, clock)
    fail(breaker, 2)
    breaker.record_success(breaker.admit())
    assert stored(breaker)["failures"] == 0
    fail(breaker, 2)
    assert breaker.snapshot().state == "closed"


def test_open_fails_fast_until_recovery_timeout(state_dir, clock):
    breaker = make(state_dir, clock, recovery_timeout=60)
    fail(breaker, 3)
    clock.advance(15)
    with pytest.raises(CircuitBreakerOpen) as info:
        breaker.admit()
    assert info.value.retry_after == 45.0
    assert info.value.forced is False
    assert "3 consecutive failures" in str(info.value)
    assert "45.0s" in str(info.value)
    clock.advance(44.5)
    with pytest.raises(CircuitBreakerOpen) as info:
        breaker.admit()
    assert info.value.retry_after == 0.5
    clock.advance(0.5)
    assert breaker.snapshot().state == "half-open"
    assert breaker.admit().trial is True


def test_neutral_is_neither_failure_nor_reset(state_dir, clock):
    breaker = make(state_dir, clock)
    fail(breaker, 2)
    before = file_fingerprint(breaker.path)
    breaker.record_neutral(breaker.admit())
    assert file_fingerprint(breaker.path) == before
    fail(breaker)
    assert breaker.snapshot().state == "open"


def test_lowered_threshold_reads_stored_failures_as_open(state_dir, clock):
    fail(make(state_dir, clock, failure_threshold=10), 5)
    lowered = make(state_dir, clock, failure_threshold=3)
    assert lowered.snapshot().state == "open"
    with pytest.raises(CircuitBreakerOpen):
        lowered.admit()


# ----- half-open and the single trial ------------------------------------------


def open_and_wait(breaker: CircuitBreaker, clock: Clock) -> None:
    fail(breaker, breaker.failure_threshold)
    clock.advance(breaker.recovery_timeout)


def test_half_open_admits_exactly_one_trial_across_instances(state_dir, clock):
    first, second = make(state_dir, clock), make(state_dir, clock)
    open_and_wait(first, clock)
    trial = first.admit()
    assert trial.trial is True
    data = stored(first)
    assert data["state"] == "half-open"
    assert data["trial_lease_until"] == clock.now + 10.0
    clock.advance(4)
    for breaker in (first, second):
        with pytest.raises(CircuitBreakerOpen) as info:
            breaker.admit()
        assert info.value.retry_after == 6.0
        assert "trial request is in flight" in str(info.value)
    snap = second.snapshot()
    assert (snap.state, snap.trial_in_progress, snap.retry_after) == (
        "half-open",
        True,
        6.0,
    )


def test_trial_success_closes(state_dir, clock):
    first, second = make(state_dir, clock), make(state_dir, clock)
    open_and_wait(first, clock)
    trial = first.admit()
    second.record_success(trial)  # any instance may report for the admission
    assert stored(first) == {
        "failures": 0,
        "last_failure_time": T0,
        "state": "closed",
    }
    assert second.admit().trial is False


def test_trial_failure_reopens_from_now(state_dir, clock):
    breaker = make(state_dir, clock)
    open_and_wait(breaker, clock)
    trial = breaker.admit()
    clock.advance(2)
    breaker.record_failure(trial)
    assert stored(breaker) == {
        "failures": 4,
        "last_failure_time": clock.now,
        "state": "open",
    }
    with pytest.raises(CircuitBreakerOpen) as info:
        breaker.admit()
    assert info.value.retry_after == 60.0


def test_neutral_trial_releases_lease_and_stays_half_open(state_dir, clock):
    first, second = make(state_dir, clock), make(state_dir, clock)
    open_and_wait(first, clock)
    trial = first.admit()
    first.record_neutral(trial)
    data = stored(first)
    assert data == {"failures": 3, "last_failure_time": T0, "state": "half-open"}
    snap = second.snapshot()
    assert (snap.state, snap.failures, snap.trial_in_progress) == (
        "half-open",
        3,
        False,
    )
    assert second.admit().trial is True


def test_crashed_trial_lease_expires_and_next_caller_becomes_trial(state_dir, clock):
    first, second = make(state_dir, clock), make(state_dir, clock)
    open_and_wait(first, clock)
    crashed = first.admit()
    clock.advance(9.5)
    with pytest.raises(CircuitBreakerOpen):
        second.admit()
    clock.advance(0.5)
    assert second.snapshot().trial_in_progress is False
    successor = second.admit()
    assert successor.trial is True
    assert successor.trial_id != crashed.trial_id
    # The crashed trial's late neutral must not release its successor's lease.
    first.record_neutral(crashed)
    assert second.snapshot().trial_in_progress is True
    with pytest.raises(CircuitBreakerOpen):
        first.admit()
    second.record_success(successor)
    assert second.snapshot().state == "closed"


def test_stale_failure_during_trial_reopens_but_keeps_the_lease(state_dir, clock):
    breaker = make(state_dir, clock, failure_threshold=2, recovery_timeout=5, trial_lease=10)
    stale = breaker.admit()  # admitted while closed, reports late
    fail(breaker, 2)
    clock.advance(5)
    trial = breaker.admit()
    breaker.record_failure(stale)
    snap = breaker.snapshot()
    assert (snap.state, snap.failures, snap.trial_in_progress) == ("open", 3, True)
    clock.advance(5)
    with pytest.raises(CircuitBreakerOpen):  # recovered, but the trial is still live
        breaker.admit()
    breaker.record_success(trial)
    assert breaker.snapshot().state == "closed"


def test_clock_stepped_back_restarts_recovery_instead_of_waiting(state_dir, clock):
    breaker = make(state_dir, clock)
    fail(breaker, 3)
    clock.advance(-3600)
    assert breaker.snapshot().retry_after == 60.0
    with pytest.raises(CircuitBreakerOpen) as info:
        breaker.admit()
    assert info.value.retry_after == 60.0
    assert stored(breaker)["last_failure_time"] == clock.now
    clock.advance(60)
    assert breaker.admit().trial is True


def test_lease_reaching_beyond_one_lease_is_ignored(state_dir, clock):
    breaker = make(state_dir, clock)
    open_and_wait(breaker, clock)
    breaker.admit()
    clock.advance(-100)  # lease now ends 110 s away, more than a lease can
    assert breaker.snapshot().trial_in_progress is False


# ----- forced trip and reset ---------------------------------------------------


def test_trip_forces_open_until_reset(state_dir, clock):
    breaker = make(state_dir, clock, recovery_timeout=60)
    in_flight = breaker.admit()
    breaker.trip()
    assert stored(breaker) == {
        "failures": 0,
        "last_failure_time": 0.0,
        "state": "open",
        "forced": True,
    }
    clock.advance(10_000)
    with pytest.raises(CircuitBreakerOpen) as info:
        breaker.admit()
    assert info.value.forced is True
    assert info.value.retry_after == 60.0
    assert "reset" in str(info.value)
    before = file_fingerprint(breaker.path)
    breaker.record_success(in_flight)  # calls still in flight change nothing
    assert file_fingerprint(breaker.path) == before
    snap = breaker.snapshot()
    assert (snap.state, snap.forced, snap.trial_in_progress) == ("open", True, False)
    breaker.reset()
    assert stored(breaker) == {
        "failures": 0,
        "last_failure_time": 0.0,
        "state": "closed",
    }
    assert breaker.admit().trial is False


def test_trip_during_trial_cancels_it_and_reset_closes(state_dir, clock):
    breaker = make(state_dir, clock)
    open_and_wait(breaker, clock)
    trial = breaker.admit()
    breaker.trip()
    assert "trial_id" not in stored(breaker)
    breaker.record_failure(trial)
    assert stored(breaker)["failures"] == 3
    breaker.reset()
    snap = breaker.snapshot()
    assert (snap.state, snap.failures, snap.forced) == ("closed", 0, False)


# ----- one logical call, one outcome --------------------------------------------


def test_an_admission_records_once(state_dir, clock):
    breaker = make(state_dir, clock)
    admission = breaker.admit()
    breaker.record_failure(admission)
    with pytest.raises(RuntimeError):
        breaker.record_failure(admission)
    assert breaker.snapshot().failures == 1


def test_record_accepts_outcome_names(state_dir, clock):
    breaker = make(state_dir, clock)
    breaker.record(breaker.admit(), "failure")
    breaker.record(breaker.admit(), Outcome.NEUTRAL)
    assert breaker.snapshot().failures == 1
    with pytest.raises(ValueError):
        breaker.record(breaker.admit(), "timeout")


def test_guard_counts_one_failure_for_a_call_with_retries(state_dir, clock):
    breaker = make(state_dir, clock)
    attempts = 0
    with pytest.raises(ConnectionError), breaker.guard():
        for _ in range(3):
            attempts += 1
        raise ConnectionError("refused three times")
    assert attempts == 3
    assert breaker.snapshot().failures == 1


@pytest.mark.parametrize(
    ("mark", "failures"),
    [("success", 0), ("failure", 3), ("neutral", 2), (None, 0)],
)
def test_guard_marks_and_clean_exit(state_dir, clock, mark, failures):
    breaker = make(state_dir, clock, failure_threshold=5)
    fail(breaker, 2)
    with breaker.guard() as g:
        assert g.trial is False
        if mark:
            getattr(g, mark)()
    assert breaker.snapshot().failures == failures


def test_guard_marked_outcome_wins_over_escaping_exception(state_dir, clock):
    breaker = make(state_dir, clock)
    with pytest.raises(KeyError), breaker.guard() as g:
        g.neutral()
        raise KeyError("parsing the 404 body failed")
    assert breaker.snapshot() == BreakerState("closed", 0, 0.0, 0.0, False, False)


@pytest.mark.parametrize(
    ("status", "outcome", "failures"),
    [(200, Outcome.SUCCESS, 0), (204, Outcome.SUCCESS, 0), (404, Outcome.NEUTRAL, 1),
     (400, Outcome.NEUTRAL, 1), (429, Outcome.FAILURE, 2), (503, Outcome.FAILURE, 2)],
)  # fmt: skip
def test_guard_status_classification(state_dir, clock, status, outcome, failures):
    breaker = make(state_dir, clock)
    fail(breaker)
    with breaker.guard() as g:
        assert g.status(status) is outcome
    assert classify_status(status) is outcome
    assert breaker.snapshot().failures == failures


def test_guard_rejects_a_second_mark(state_dir, clock):
    breaker = make(state_dir, clock)
    with pytest.raises(RuntimeError), breaker.guard() as g:
        g.success()
        g.failure()
    assert breaker.snapshot().failures == 0


def test_guard_interrupt_releases_the_trial_as_neutral(state_dir, clock):
    breaker = make(state_dir, clock)
    open_and_wait(breaker, clock)
    with pytest.raises(KeyboardInterrupt), breaker.guard() as g:
        assert g.trial is True
        raise KeyboardInterrupt
    snap = breaker.snapshot()
    assert (snap.state, snap.failures, snap.trial_in_progress) == (
        "half-open",
        3,
        False,
    )


def test_guard_when_open_never_runs_the_body(state_dir, clock):
    breaker = make(state_dir, clock)
    fail(breaker, 3)
    ran = False
    with pytest.raises(CircuitBreakerOpen), breaker.guard():
        ran = True
    assert ran is False
    assert breaker.snapshot().failures == 3


# ----- the file: legacy, corrupt, permissions ------------------------------------


def write_raw(state_dir: Path, text: str) -> Path:
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = state_dir / "circuit_breaker.json"
    path.write_text(text)
    return path


def test_legacy_seed_file_is_read_as_is(state_dir, clock):
    write_raw(state_dir, '{"failures": 3, "last_failure_time": 1733300000.0, "state": "open"}')
    clock.now = 1733300015.0
    breaker = make(state_dir, clock)
    assert breaker.snapshot() == BreakerState("open", 3, 1733300000.0, 45.0, False, False)
    clock.now = 1733300060.0
    assert breaker.snapshot().state == "half-open"


@pytest.mark.parametrize(
    ("text", "state", "failures"),
    [
        ('{"failures": 0, "last_failure_time": 0.0, "state": "closed"}', "closed", 0),
        ('{"failures": 2, "last_failure_time": 5, "state": "closed"}', "closed", 2),
        (
            '{"failures": 3, "last_failure_time": 1.0, "state": "half-open"}',
            "half-open",
            3,
        ),
        (
            '{"state": "closed", "failures": 1, "last_failure_time": 1.5, "x": []}',
            "closed",
            1,
        ),
    ],
)
def test_other_valid_files(state_dir, clock, text, state, failures):
    write_raw(state_dir, text)
    snap = make(state_dir, clock).snapshot()
    assert (snap.state, snap.failures) == (state, failures)


CORRUPT = [
    "",
    "{",
    '{"failures": 3, "last_fa',
    "not json",
    "null",
    "[]",
    '{"failures": 3, "state": "open"}',
    '{"failures": "3", "last_failure_time": 1.0, "state": "open"}',
    '{"failures": true, "last_failure_time": 1.0, "state": "open"}',
    '{"failures": -1, "last_failure_time": 1.0, "state": "open"}',
    '{"failures": 3.0, "last_failure_time": 1.0, "state": "open"}',
    '{"failures": 3, "last_failure_time": NaN, "state": "open"}',
    '{"failures": 3, "last_failure_time": 1e999, "state": "open"}',
    '{"failures": 3, "last_failure_time": "1.0", "state": "open"}',
    '{"failures": 3, "last_failure_time": 1.0, "state": "OPEN"}',
    '{"failures": 3, "last_failure_time": 1.0, "state": "open", "forced": "yes"}',
    ('{"failures": 3, "last_failure_time": 1.0, "state": "half-open", "trial_id": 7, "trial_lease_until": 2.0}'),
    "\x00\x00\x00\x00",
]


@pytest.mark.parametrize("text", CORRUPT)
def test_corrupt_file_reads_closed_warns_and_is_repaired_on_write(state_dir, clock, caplog, text):
    path = write_raw(state_dir, text)
    breaker = make(state_dir, clock)
    before = file_fingerprint(path)
    with caplog.at_level(logging.WARNING, logger="vikunja_sync.breaker"):
        snap = breaker.snapshot()
        admission = breaker.admit()
    assert (snap.state, snap.failures) == ("closed", 0)
    assert admission.trial is False
    assert any("corrupt" in r.getMessage() for r in caplog.records)
    assert file_fingerprint(path) == before  # pure reads never write
    breaker.record_neutral(admission)  # the first write path repairs it
    assert stored(breaker) == {
        "failures": 0,
        "last_failure_time": 0.0,
        "state": "closed",
    }


def test_missing_file_warns_once_and_first_write_creates_seed_file(state_dir, clock, caplog):
    breaker = make(state_dir, clock)
    with caplog.at_level(logging.WARNING, logger="vikunja_sync.breaker"):
        breaker.snapshot()
        breaker.snapshot()
        breaker.record_success(breaker.admit())
        breaker.snapshot()
    warnings = [r for r in caplog.records if "missing" in r.getMessage()]
    assert len(warnings) == 1
    assert breaker.path.read_text() == ('{"failures": 0, "last_failure_time": 0.0, "state": "closed"}')


def test_pure_reads_never_touch_the_file_in_any_state(state_dir, clock):
    breaker = make(state_dir, clock)
    fail(breaker, 3)
    clock.advance(70)
    trial = breaker.admit()
    before = file_fingerprint(breaker.path)
    for _ in range(3):
        breaker.snapshot()
        with pytest.raises(CircuitBreakerOpen):
            breaker.admit()
    assert file_fingerprint(breaker.path) == before
    breaker.record_success(trial)
    before = file_fingerprint(breaker.path)
    breaker.record_success(breaker.admit())  # closed and clean: nothing to write
    assert file_fingerprint(breaker.path) == before


def test_modes_dir_0700_files_0600_and_no_temp_left(tmp_path, clock):
    state_dir = tmp_path / "deep" / "er" / "state"
    old = os.umask(0)
    try:
        breaker = make(state_dir, clock)
        fail(breaker)
    finally:
        os.umask(old)
    assert stat.S_IMODE(state_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(breaker.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(breaker.lock_path.stat().st_mode) == 0o600
    assert breaker.lock_path.name == "circuit_breaker.json.lock"
    assert sorted(p.name for p in state_dir.iterdir()) == [
        "circuit_breaker.json",
        "circuit_breaker.json.lock",
    ]


def test_existing_dir_mode_is_left_alone_and_repair_replaces_loose_file(tmp_path, clock):
    state_dir = tmp_path / "state"
    state_dir.mkdir(mode=0o750)
    os.chmod(state_dir, 0o750)
    path = write_raw(state_dir, "garbage")
    os.chmod(path, 0o644)
    breaker = make(state_dir, clock)
    fail(breaker)
    assert stat.S_IMODE(state_dir.stat().st_mode) == 0o750
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stored(breaker)["failures"] == 1


def test_invalid_parameters_are_rejected(state_dir):
    for kwargs in (
        {"failure_threshold": 0},
        {"recovery_timeout": -1},
        {"trial_lease": 0},
    ):
        with pytest.raises(ValueError):
            CircuitBreaker(state_dir, **kwargs)


# ----- reporting --------------------------------------------------------------


def test_format_status_closed():
    state = BreakerState("closed", 0, 0.0, 0.0, False, False)
    assert format_status(state) == [
        "=== Circuit Breaker ===",
        "  State: CLOSED (normal)",
        "  Consecutive failures: 0",
    ]


def test_format_status_open_rounds_recovery_up(state_dir, clock):
    breaker = make(state_dir, clock)
    fail(breaker, 3)
    clock.advance(14.2)
    assert format_status(breaker.snapshot()) == [
        "=== Circuit Breaker ===",
        "  State: OPEN (failing fast)",
        "  Failures: 3",
        "  Recovery in: 46s",
    ]
    clock.advance(0.8)
    assert format_status(breaker.snapshot())[-1] == "  Recovery in: 45s"


def test_format_status_half_open_and_forced(state_dir, clock):
    breaker = make(state_dir, clock)
    open_and_wait(breaker, clock)
    assert format_status(breaker.snapshot()) == [
        "=== Circuit Breaker ===",
        "  State: HALF-OPEN (testing recovery)",
        "  Failures: 3",
    ]
    breaker.trip()
    assert format_status(breaker.snapshot()) == [
        "=== Circuit Breaker ===",
        "  State: OPEN (failing fast)",
        "  Failures: 3",
        "  Recovery in: manual reset required",
    ]


def test_state_as_dict_is_strict_json(state_dir, clock):
    breaker = make(state_dir, clock)
    breaker.trip()
    data = state_as_dict(breaker.snapshot())
    assert json.loads(json.dumps(data, allow_nan=False)) == {
        "state": "open",
        "failures": 0,
        "last_failure_time": 0.0,
        "retry_after": 60.0,
        "forced": True,
        "trial_in_progress": False,
    }
    assert all(math.isfinite(v) for v in data.values() if isinstance(v, float))
