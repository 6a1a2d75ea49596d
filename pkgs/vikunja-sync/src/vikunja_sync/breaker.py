"""Persistent circuit breaker shared by every process that talks to Vikunja.

Hooks, the daemon, timers and CLI commands all consult one state file,
``<state_dir>/circuit_breaker.json``, so a Vikunja outage noticed by one process
makes all of them fail fast, and a recovery noticed by one closes it for all.

Why it is built this way (see prior-art.md, failures 1-2):

* Every read-modify-write happens under an exclusive ``flock`` on a separate lock
  file, so concurrent processes never lose counts.
* The data file is only ever replaced atomically (temp file, fsync, ``os.replace``,
  directory fsync), so a lock-free reader sees the old or the new file, never half
  of one.  Reads therefore take no lock and never block writers.
* HALF-OPEN admits exactly one trial across all processes: the admitting process
  writes a lease (``trial_id`` + ``trial_lease_until``) under the lock; everybody
  else fails fast until the trial reports or its lease expires (a crashed trial).
* One logical call is one :class:`Admission`, and an admission can be recorded
  once, so low-level retries cannot count as several failures.

Outcomes: success closes (failures 0); failure counts and (re)opens at the
threshold; neutral (the server answered but the request was wrong, e.g. 404) does
neither, and a neutral trial just releases its lease.  ``trip()`` forces the
breaker open until ``reset()``; while forced, no trial runs and outcomes of calls
still in flight are ignored.

The file keeps the seed format ``{"failures", "last_failure_time", "state"}`` of
the earlier system, which is read as is; extra keys ``forced``, ``trial_id`` and
``trial_lease_until`` appear only when set.  A missing, corrupt or wrong-typed file
reads as closed with a warning and is rewritten by the next write path; pure reads
(``snapshot()``, a closed ``admit()``) never write.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half-open"
STATES = (CLOSED, OPEN, HALF_OPEN)

STATE_FILE = "circuit_breaker.json"


class Outcome(str, Enum):
    """What one logical call tells the breaker about the server."""

    SUCCESS = "success"
    FAILURE = "failure"
    NEUTRAL = "neutral"


def classify_status(status_code: int) -> Outcome:
    """Map an HTTP status to an outcome: 5xx and 429 fail, other 4xx are neutral."""
    if status_code == 429 or status_code >= 500:
        return Outcome.FAILURE
    if status_code >= 400:
        return Outcome.NEUTRAL
    return Outcome.SUCCESS


@dataclass(frozen=True)
class BreakerState:
    """The effective breaker state at one instant, as callers and ``diagnose`` see it.

    ``state`` is effective: a stored "open" whose recovery time has passed reads as
    "half-open".  ``retry_after`` is the number of seconds until a trial may run:
    0 when closed or half-open with no trial in flight; the remaining lease while a
    trial is in flight; for a forced trip it is ``recovery_timeout``, a finite
    "check again later" hint (JSON-safe), since only ``reset()`` ends a trip.
    """

    state: str
    failures: int
    last_failure_time: float
    retry_after: float
    forced: bool
    trial_in_progress: bool


class CircuitBreakerOpen(Exception):
    """Raised instead of making a request; callers queue the change and retry later.

    ``retry_after`` is the seconds until a trial may be admitted (recovery time left,
    or the in-flight trial's remaining lease); after a manual ``trip()`` it is
    ``recovery_timeout`` (a finite re-check hint) and ``forced`` is True.
    """

    def __init__(self, state: BreakerState) -> None:
        self.retry_after: float = state.retry_after
        self.forced: bool = state.forced
        self.state: BreakerState = state
        super().__init__(_open_message(state))


def _open_message(state: BreakerState) -> str:
    if state.forced:
        return "circuit breaker tripped manually; 'vikunja-direct breaker reset' resumes"
    if state.trial_in_progress:
        return f"circuit breaker half-open: a trial request is in flight; retry in {state.retry_after:.1f}s"
    return f"circuit breaker open after {state.failures} consecutive failures; next trial in {state.retry_after:.1f}s"


@dataclass
class Admission:
    """Permission for one logical call; record its outcome exactly once."""

    trial: bool
    trial_id: str | None = None
    recorded: bool = False


@dataclass(frozen=True)
class _Record:
    """The stored (not effective) state, one-to-one with the JSON file."""

    state: str = CLOSED
    failures: int = 0
    last_failure_time: float = 0.0
    forced: bool = False
    trial_id: str | None = None
    trial_lease_until: float | None = None

    def to_json(self) -> str:
        data: dict[str, Any] = {
            "failures": self.failures,
            "last_failure_time": float(self.last_failure_time),
            "state": self.state,
        }
        if self.forced:
            data["forced"] = True
        if self.trial_id is not None:
            data["trial_id"] = self.trial_id
            data["trial_lease_until"] = float(self.trial_lease_until or 0.0)
        return json.dumps(data)

    def without_trial(self) -> _Record:
        return replace(self, trial_id=None, trial_lease_until=None)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _parse(text: str) -> _Record:
    """Parse and validate the file; ValueError or TypeError on anything off."""
    data = json.loads(text, parse_constant=_reject_constant)
    if not isinstance(data, dict):
        raise TypeError("not a JSON object")
    failures, last, state = (
        data.get("failures"),
        data.get("last_failure_time"),
        data.get("state"),
    )
    if not isinstance(failures, int) or isinstance(failures, bool) or failures < 0:
        raise ValueError(f"bad 'failures': {failures!r}")
    if not _is_number(last):
        raise ValueError(f"bad 'last_failure_time': {last!r}")
    if state not in STATES:
        raise ValueError(f"bad 'state': {state!r}")
    forced = data.get("forced", False)
    if not isinstance(forced, bool):
        raise TypeError(f"bad 'forced': {forced!r}")
    trial_id, lease = data.get("trial_id"), data.get("trial_lease_until")
    if trial_id is None or lease is None:
        trial_id, lease = None, None
    elif not isinstance(trial_id, str) or not _is_number(lease):
        raise ValueError(f"bad trial lease: {trial_id!r} until {lease!r}")
    return _Record(
        state,
        failures,
        float(last),
        forced,
        trial_id,
        None if lease is None else float(lease),
    )


def _reject_constant(name: str) -> float:
    raise ValueError(f"non-finite number {name}")


class CircuitBreaker:
    """Circuit breaker whose state lives in ``<state_dir>/circuit_breaker.json``."""

    def __init__(
        self,
        state_dir: str | os.PathLike[str],
        failure_threshold: int = 3,
        recovery_timeout: float = 60.0,
        trial_lease: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if failure_threshold < 1 or recovery_timeout < 0 or trial_lease <= 0:
            raise ValueError("need failure_threshold >= 1, recovery_timeout >= 0, trial_lease > 0")
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / STATE_FILE
        self.lock_path = self.state_dir / (STATE_FILE + ".lock")
        self._tmp_path = self.state_dir / (STATE_FILE + ".tmp")
        self.failure_threshold = failure_threshold
        self.recovery_timeout = float(recovery_timeout)
        self.trial_lease = float(trial_lease)
        self._clock = clock
        self._last_problem: str | None = None

    # ----- reading -------------------------------------------------------------

    def _load(self) -> tuple[_Record, bool]:
        """Read the stored record without locking; (record, file_is_valid)."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return self._problem("missing")
        except OSError as exc:
            return self._problem(f"unreadable ({exc.strerror})")
        try:
            record = _parse(text)
        except (ValueError, TypeError) as exc:  # JSONDecodeError is a ValueError
            return self._problem(f"corrupt ({exc})")
        self._last_problem = None
        return record, True

    def _problem(self, what: str) -> tuple[_Record, bool]:
        """Warn (once per distinct problem) and fall back to closed."""
        if what != self._last_problem:
            log.warning(
                "circuit breaker state file %s is %s; treating as closed",
                self.path,
                what,
            )
            self._last_problem = what
        return _Record(), False

    def _lease_live(self, record: _Record, now: float) -> bool:
        """Live until its end; an end beyond one lease away means the clock went back."""
        until = record.trial_lease_until
        return until is not None and now < until <= now + self.trial_lease

    def _view(self, record: _Record, now: float) -> BreakerState:
        """The effective state of a stored record at ``now``."""
        trial = self._lease_live(record, now)
        state, retry_after = record.state, 0.0
        if record.forced:
            state, retry_after = OPEN, self.recovery_timeout
        elif state == CLOSED and record.failures >= self.failure_threshold:
            state = OPEN  # e.g. the threshold was lowered: that many failures open it
        if state == OPEN and not record.forced:
            remaining = record.last_failure_time + self.recovery_timeout - now
            if remaining > 0:
                retry_after = min(remaining, self.recovery_timeout)
            else:
                state = HALF_OPEN
        if state == HALF_OPEN and trial:
            retry_after = record.trial_lease_until - now  # type: ignore[operator]
        return BreakerState(
            state=state,
            failures=record.failures,
            last_failure_time=record.last_failure_time,
            retry_after=retry_after,
            forced=record.forced,
            trial_in_progress=trial,
        )

    def snapshot(self) -> BreakerState:
        """Effective state now; lock-free and read-only (never creates or repairs)."""
        record, _ = self._load()
        return self._view(record, self._clock())

    # ----- writing -------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self._ensure_dir()
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the flock

    def _ensure_dir(self) -> None:
        if self.state_dir.is_dir():
            return
        os.makedirs(self.state_dir.parent, exist_ok=True)
        try:
            os.mkdir(self.state_dir, 0o700)
        except FileExistsError:
            return
        os.chmod(self.state_dir, 0o700)  # mkdir's mode is filtered by the umask

    def _write(self, record: _Record) -> None:
        """Replace the file atomically; the lock is held, so one temp name suffices."""
        data = record.to_json().encode()
        fd = os.open(
            self._tmp_path,
            os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o600,
        )
        try:
            os.fchmod(fd, 0o600)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(self._tmp_path, self.path)
        dir_fd = os.open(self.state_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dir_fd)
        except OSError as exc:  # some filesystems cannot fsync directories
            if exc.errno not in (errno.EINVAL, errno.ENOTSUP):
                raise
        finally:
            os.close(dir_fd)

    def _update(self, change: Callable[[_Record, float], _Record]) -> _Record:
        """Read-modify-write under the lock; writes on change or to repair the file."""
        with self._locked():
            old, valid = self._load()
            new = change(old, self._clock())
            if new != old or not valid:
                self._write(new)
                self._last_problem = None
            return new

    # ----- admission -----------------------------------------------------------

    def admit(self) -> Admission:
        """Permission for one logical call, or CircuitBreakerOpen (no network then).

        Closed and plainly-open answers come from a lock-free read; only the
        half-open trial admission takes the lock, so exactly one process wins it.
        """
        record, _ = self._load()
        now = self._clock()
        view = self._view(record, now)
        if view.state == CLOSED:
            return Admission(trial=False)
        if view.state == OPEN and not self._clock_stepped_back(record, now):
            raise CircuitBreakerOpen(view)
        if view.state == HALF_OPEN and view.trial_in_progress:
            raise CircuitBreakerOpen(view)
        return self._admit_locked()

    def _clock_stepped_back(self, record: _Record, now: float) -> bool:
        """A future last failure would hold it open until the clock caught up."""
        return not record.forced and record.last_failure_time > now

    def _admit_locked(self) -> Admission:
        result: list[Admission | BreakerState] = []

        def change(record: _Record, now: float) -> _Record:
            view = self._view(record, now)
            if view.state == OPEN and self._clock_stepped_back(record, now):
                log.warning(
                    "circuit breaker: last failure lies in the future (clock stepped back); restarting recovery"
                )
                record = replace(record, last_failure_time=now)
                view = self._view(record, now)
            if view.state == CLOSED:
                result.append(Admission(trial=False))
            elif view.state == OPEN or view.trial_in_progress:
                result.append(view)
            else:
                trial_id = os.urandom(16).hex()
                result.append(Admission(trial=True, trial_id=trial_id))
                log.info("circuit breaker half-open: admitting one trial request")
                record = replace(
                    record,
                    state=HALF_OPEN,
                    trial_id=trial_id,
                    trial_lease_until=now + self.trial_lease,
                )
            return record

        self._update(change)
        if isinstance(result[0], BreakerState):
            raise CircuitBreakerOpen(result[0])
        return result[0]

    # ----- outcomes ------------------------------------------------------------

    def record(self, admission: Admission, outcome: Outcome | str) -> None:
        """Record the outcome of one admitted logical call (once per admission)."""
        outcome = Outcome(outcome)
        if admission.recorded:
            raise RuntimeError("this admission's outcome was already recorded")
        admission.recorded = True
        if outcome is Outcome.FAILURE:
            self._update(lambda record, now: self._after_failure(record, admission, now))
            return
        record, valid = self._load()
        if valid and self._is_noop(record, admission, outcome):
            return  # linearises at the read above: nothing to change, nothing to lock
        apply = self._after_success if outcome is Outcome.SUCCESS else self._after_neutral
        self._update(lambda rec, now: apply(rec, admission, now))

    def record_success(self, admission: Admission) -> None:
        self.record(admission, Outcome.SUCCESS)

    def record_failure(self, admission: Admission) -> None:
        self.record(admission, Outcome.FAILURE)

    def record_neutral(self, admission: Admission) -> None:
        self.record(admission, Outcome.NEUTRAL)

    @staticmethod
    def _owns_lease(record: _Record, admission: Admission) -> bool:
        return admission.trial_id is not None and admission.trial_id == record.trial_id

    def _is_noop(self, record: _Record, admission: Admission, outcome: Outcome) -> bool:
        if record.forced:
            return True
        if outcome is Outcome.SUCCESS:
            return record == _Record(last_failure_time=record.last_failure_time)
        return not self._owns_lease(record, admission)

    def _after_success(self, record: _Record, admission: Admission, now: float) -> _Record:
        if record.forced:
            return record
        if self._view(record, now).state != CLOSED:
            log.info("circuit breaker closed: Vikunja answered again")
        return _Record(last_failure_time=record.last_failure_time)

    def _after_neutral(self, record: _Record, admission: Admission, now: float) -> _Record:
        if record.forced or not self._owns_lease(record, admission):
            return record
        return record.without_trial()  # stays half-open; the next caller may try

    def _after_failure(self, record: _Record, admission: Admission, now: float) -> _Record:
        if record.forced:
            return record
        was = self._view(record, now).state
        failures = record.failures + 1
        new = replace(record, failures=failures, last_failure_time=now)
        if self._owns_lease(record, admission):
            new = new.without_trial()
        if was != CLOSED or failures >= self.failure_threshold:
            if was != OPEN:
                log.warning("circuit breaker opened after %d consecutive failures", failures)
            return replace(new, state=OPEN)
        return new

    # ----- convenience and manual control --------------------------------------

    @contextmanager
    def guard(self) -> Iterator[Guard]:
        """Admit one logical call and record its outcome.

        Mark the outcome with ``g.success()``, ``g.failure()``, ``g.neutral()`` or
        ``g.status(code)``.  An ``Exception`` escaping the block unmarked counts as a
        failure; a ``BaseException`` such as KeyboardInterrupt says nothing about the
        server and counts as neutral (a trial's lease is released); a clean exit
        without a mark counts as success.  Raises CircuitBreakerOpen before the block.
        """
        guard = Guard(self, self.admit())
        try:
            yield guard
        except Exception:
            guard._finish(Outcome.FAILURE)
            raise
        except BaseException:
            guard._finish(Outcome.NEUTRAL)
            raise
        guard._finish(Outcome.SUCCESS)

    def reset(self) -> None:
        """Force closed with zero failures (``breaker reset``)."""
        log.info("circuit breaker reset to closed")
        self._update(lambda record, now: _Record(last_failure_time=record.last_failure_time))

    def trip(self) -> None:
        """Force open until ``reset()`` (``breaker trip``): isolation, no trials."""
        log.warning("circuit breaker tripped manually")
        self._update(lambda record, now: replace(record.without_trial(), state=OPEN, forced=True))


class Guard:
    """Handle yielded by :meth:`CircuitBreaker.guard`; mark at most one outcome."""

    def __init__(self, breaker: CircuitBreaker, admission: Admission) -> None:
        self.breaker = breaker
        self.admission = admission
        self._outcome: Outcome | None = None

    @property
    def trial(self) -> bool:
        return self.admission.trial

    def success(self) -> None:
        self._mark(Outcome.SUCCESS)

    def failure(self) -> None:
        self._mark(Outcome.FAILURE)

    def neutral(self) -> None:
        self._mark(Outcome.NEUTRAL)

    def status(self, status_code: int) -> Outcome:
        """Mark the outcome an HTTP status implies (see :func:`classify_status`)."""
        outcome = classify_status(status_code)
        self._mark(outcome)
        return outcome

    def _mark(self, outcome: Outcome) -> None:
        if self._outcome is not None:
            raise RuntimeError(f"outcome already marked as {self._outcome.value}")
        self._outcome = outcome

    def _finish(self, default: Outcome) -> None:
        self.breaker.record(self.admission, self._outcome or default)


def format_status(state: BreakerState) -> list[str]:
    """The ``=== Circuit Breaker ===`` section of ``diagnose`` (contract wording)."""
    lines = ["=== Circuit Breaker ==="]
    if state.state == CLOSED:
        return lines + [
            "  State: CLOSED (normal)",
            f"  Consecutive failures: {state.failures}",
        ]
    if state.state == HALF_OPEN:
        return lines + [
            "  State: HALF-OPEN (testing recovery)",
            f"  Failures: {state.failures}",
        ]
    recovery = "manual reset required" if state.forced else f"{math.ceil(state.retry_after)}s"
    return lines + [
        "  State: OPEN (failing fast)",
        f"  Failures: {state.failures}",
        f"  Recovery in: {recovery}",
    ]


def state_as_dict(state: BreakerState) -> dict[str, Any]:
    """JSON-ready form for ``diagnose --json`` and health checks (all values finite)."""
    return {
        "state": state.state,
        "failures": state.failures,
        "last_failure_time": state.last_failure_time,
        "retry_after": state.retry_after,
        "forced": state.forced,
        "trial_in_progress": state.trial_in_progress,
    }
