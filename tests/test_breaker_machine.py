"""Hypothesis state machine: several breakers sharing one state file and one clock.

Random admissions, outcomes (reported by any instance), time steps, resets and
trips are checked against a small reference model written from the contract.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from vikunja_sync.breaker import (
    Admission,
    BreakerState,
    CircuitBreaker,
    CircuitBreakerOpen,
)

# Thousands of small fsync'd writes: use RAM-backed /dev/shm when there is one.
FAST_TMP = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
THRESHOLD = 3
RECOVERY = 60.0
LEASE = 10.0
INSTANCES = 3
T0 = 1_700_000_000.0
# Multiples of 0.5 keep every sum exact, so boundaries are hit exactly.
SEEDS = [
    None,
    ("closed", 2, T0 - 5.0),
    ("open", 3, T0 - RECOVERY),
    ("open", 4, T0 - 30.0),
    ("half-open", 3, T0 - 100.0),
    ("half-open", 0, T0 - 100.0),
    ("open", 1, T0 - 50.0),  # written by an instance with a lower threshold
]
STEPS = [0.5, 1.0, 4.5, 9.5, 10.0, 10.5, 30.0, 59.5, 60.0, 60.5, 120.0]


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@dataclass
class Model:
    """The contract, stated plainly: the stored record plus who holds the trial lease."""

    state: str = "closed"
    failures: int = 0
    last_failure_time: float = 0.0
    forced: bool = False
    lease_owner: str | None = None
    lease_until: float | None = None

    def effective(self, now: float) -> str:
        if self.forced:
            return "open"
        if self.state == "open" and now >= self.last_failure_time + RECOVERY:
            return "half-open"
        return self.state

    def lease_live(self, now: float) -> bool:
        return self.lease_until is not None and now < self.lease_until

    def view(self, now: float) -> BreakerState:
        state, trial = self.effective(now), self.lease_live(now)
        retry_after = 0.0
        if self.forced:
            retry_after = RECOVERY
        elif state == "open":
            retry_after = self.last_failure_time + RECOVERY - now
        elif state == "half-open" and trial:
            retry_after = self.lease_until - now
        return BreakerState(
            state,
            self.failures,
            self.last_failure_time,
            retry_after,
            self.forced,
            trial,
        )

    def clear_lease(self) -> None:
        self.lease_owner = self.lease_until = None

    def success(self) -> None:
        if not self.forced:
            self.state, self.failures = "closed", 0
            self.clear_lease()

    def failure(self, trial_id: str | None, now: float) -> None:
        if self.forced:
            return
        was = self.effective(now)
        self.failures += 1
        self.last_failure_time = now
        if trial_id is not None and trial_id == self.lease_owner:
            self.clear_lease()
        if was != "closed" or self.failures >= THRESHOLD:
            self.state = "open"

    def neutral(self, trial_id: str | None) -> None:
        if not self.forced and trial_id is not None and trial_id == self.lease_owner:
            self.clear_lease()


@dataclass
class Pending:
    admission: Admission
    admitted_at: float


class SharedBreakerMachine(RuleBasedStateMachine):
    @initialize(seed=st.sampled_from(SEEDS))
    def setup(self, seed: tuple[str, int, float] | None) -> None:
        """Start empty, or from a file the earlier system wrote (reaches half-open sooner)."""
        self.dir = Path(tempfile.mkdtemp(prefix="breaker-machine-", dir=FAST_TMP)) / "state"
        self.clock = Clock()
        self.breakers = [
            CircuitBreaker(self.dir, THRESHOLD, RECOVERY, LEASE, clock=self.clock) for _ in range(INSTANCES)
        ]
        self.model = Model()
        self.pending: list[Pending] = []
        event(f"seed: {seed}")
        if seed is not None:
            state, failures, last = seed
            self.dir.mkdir(mode=0o700)
            self.breakers[0].path.write_text(
                json.dumps({"failures": failures, "last_failure_time": last, "state": state})
            )
            self.model = Model(state, failures, last)

    def teardown(self) -> None:
        if hasattr(self, "dir"):
            shutil.rmtree(self.dir.parent, ignore_errors=True)

    @property
    def now(self) -> float:
        return self.clock.now

    @rule(i=st.integers(0, INSTANCES - 1))
    def admit(self, i: int) -> None:
        expected = self.model.view(self.now)
        try:
            admission = self.breakers[i].admit()
        except CircuitBreakerOpen as exc:
            event(f"admit refused: {expected.state}, trial={expected.trial_in_progress}")
            assert expected.state != "closed"
            assert expected.state == "open" or expected.trial_in_progress
            assert exc.retry_after == expected.retry_after
            assert exc.forced == expected.forced
            return
        # Open fails fast: nothing is admitted before recovery (or while forced).
        assert expected.state != "open"
        assert not expected.trial_in_progress
        assert admission.trial == (expected.state == "half-open")
        event(f"admitted: trial={admission.trial}")
        if admission.trial:
            if any(p.admission.trial for p in self.pending):
                event("trial admitted after an earlier trial's lease expired")
            self.model.state = "half-open"
            self.model.lease_owner = admission.trial_id
            self.model.lease_until = self.now + LEASE
        self.pending.append(Pending(admission, self.now))

    @rule(
        i=st.integers(0, INSTANCES - 1),
        outcome=st.sampled_from(["failure"] * 2 + ["success", "neutral"]),
    )
    def call(self, i: int, outcome: str) -> None:
        """A whole logical call: admit, then report at once (if admitted)."""
        before = len(self.pending)
        self.admit(i)
        if len(self.pending) > before:
            self.report(before, i, outcome)

    @precondition(lambda self: self.pending)
    @rule(
        pick=st.integers(0, 1_000),
        reporter=st.integers(0, INSTANCES - 1),
        outcome=st.sampled_from(["success", "failure", "neutral"]),
    )
    def report(self, pick: int, reporter: int, outcome: str) -> None:
        """Report some in-flight call, possibly late and from another instance."""
        admission = self.pending.pop(pick % len(self.pending)).admission
        event(f"{outcome} reported by trial={admission.trial}")
        breaker = self.breakers[reporter]
        if outcome == "success":
            breaker.record_success(admission)
            self.model.success()
        elif outcome == "failure":
            breaker.record_failure(admission)
            self.model.failure(admission.trial_id, self.now)
        else:
            breaker.record_neutral(admission)
            self.model.neutral(admission.trial_id)

    @rule(seconds=st.sampled_from(STEPS))
    def advance(self, seconds: float) -> None:
        self.clock.now += seconds

    @rule(
        i=st.integers(0, INSTANCES - 1),
        action=st.sampled_from(["reset"] * 2 + ["trip"]),
    )
    def manual(self, i: int, action: str) -> None:
        """``breaker reset`` / ``breaker trip`` (trip drawn less often: it blocks all else)."""
        if action == "reset":
            self.breakers[i].reset()
            self.model.state, self.model.failures, self.model.forced = (
                "closed",
                0,
                False,
            )
        else:
            self.breakers[i].trip()
            self.model.state, self.model.forced = "open", True
        self.model.clear_lease()

    @invariant()
    def every_instance_sees_the_model(self) -> None:
        expected = self.model.view(self.now)
        for breaker in self.breakers:
            assert breaker.snapshot() == expected

    @invariant()
    def state_is_sane(self) -> None:
        snap = self.breakers[0].snapshot()
        assert snap.state in ("closed", "open", "half-open")
        if snap.state == "closed":
            assert snap.failures < THRESHOLD
            assert not snap.forced

    @invariant()
    def at_most_one_live_trial(self) -> None:
        live = [p for p in self.pending if p.admission.trial and self.now < p.admitted_at + LEASE]
        assert len(live) <= 1

    @invariant()
    def file_is_valid_seed_json_matching_the_model(self) -> None:
        path = self.breakers[0].path
        if not path.exists():
            assert self.model == Model()
            return
        data = json.loads(path.read_text())
        assert isinstance(data["failures"], int)
        assert isinstance(data["last_failure_time"], float)
        assert data["state"] in ("closed", "open", "half-open")
        m = self.model
        assert (data["state"], data["failures"], data["last_failure_time"]) == (
            m.state,
            m.failures,
            m.last_failure_time,
        )
        assert data.get("forced", False) == m.forced
        assert data.get("trial_id") == m.lease_owner
        assert data.get("trial_lease_until") == m.lease_until

    @invariant()
    def a_fresh_instance_reads_the_same(self) -> None:
        fresh = CircuitBreaker(self.dir, THRESHOLD, RECOVERY, LEASE, clock=self.clock)
        assert fresh.snapshot() == self.breakers[0].snapshot()


SharedBreakerMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=50,
    deadline=None,
    derandomize=True,
)
test_shared_breaker_machine = SharedBreakerMachine.TestCase
