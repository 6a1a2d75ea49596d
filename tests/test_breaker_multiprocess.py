"""Real processes hammering one breaker file: no lost counts, no torn reads, one trial.

Workers are started with the "spawn" context, so each is a fresh interpreter with
its own CircuitBreaker, exactly as hooks, timers and the daemon would be.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import time
from pathlib import Path

import pytest

from vikunja_sync.breaker import CircuitBreaker, CircuitBreakerOpen

CTX = mp.get_context("spawn")
WRITERS = 4
OUTCOMES_EACH = 200
RACERS = 8
ROUNDS = 15
TIMEOUT = 60.0
HUGE = 10**9  # a threshold that is never reached: the count stays closed and exact


def record_failures(state_dir: str, count: int, start: mp.synchronize.Event) -> None:
    """One logical failed call at a time, interleaved with neutral calls that must not count."""
    breaker = CircuitBreaker(state_dir, failure_threshold=HUGE)
    start.wait(TIMEOUT)
    for i in range(count):
        breaker.record_failure(breaker.admit())
        if i % 10 == 0:
            breaker.record_neutral(breaker.admit())


def read_continuously(state_dir: str, stop: mp.synchronize.Event, results: mp.Queue) -> None:
    """Read raw bytes and snapshots until told to stop; report anything torn or going backwards."""
    warnings: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: warnings.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("vikunja_sync.breaker").addHandler(handler)
    breaker = CircuitBreaker(state_dir, failure_threshold=HUGE)
    problems: list[str] = []
    reads, highest = 0, 0
    while not stop.is_set():
        raw = breaker.path.read_bytes()
        try:
            data = json.loads(raw)
            failures = data["failures"]
            assert isinstance(failures, int) and data["state"] == "closed"
            assert isinstance(data["last_failure_time"], float)
        except (ValueError, KeyError, AssertionError) as exc:
            problems.append(f"{exc!r}: {raw!r}")
            continue
        snap = breaker.snapshot()
        if failures < highest or snap.failures < failures or snap.state != "closed":
            problems.append(f"went backwards: {highest} -> {failures} / {snap}")
        highest = max(highest, snap.failures)
        reads += 1
    results.put({"reads": reads, "problems": problems + warnings, "highest": highest})


def race_for_the_trial(state_dir: str, rounds: int, barrier: mp.synchronize.Barrier, results: mp.Queue) -> None:
    """Each round: wait for the parent to set up half-open, then all call admit() at once."""
    breaker = CircuitBreaker(state_dir, failure_threshold=1, recovery_timeout=0.0, trial_lease=TIMEOUT)
    for _ in range(rounds):
        barrier.wait(TIMEOUT)
        try:
            admission = breaker.admit()
        except CircuitBreakerOpen as exc:
            results.put(("refused", exc.state.trial_in_progress))
        else:
            results.put(("trial" if admission.trial else "closed", admission.trial))


def start_all(processes: list[mp.Process]) -> None:
    for process in processes:
        process.start()


def join_all(processes: list[mp.Process]) -> None:
    for process in processes:
        process.join(TIMEOUT)
    for process in processes:
        if process.is_alive():
            process.kill()
            process.join()
    assert [p.exitcode for p in processes] == [0] * len(processes)


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "state"
    CircuitBreaker(directory).reset()  # the file exists from the start: readers never see "missing"
    return directory


def test_concurrent_failures_are_all_counted(state_dir):
    start = CTX.Event()
    writers = [CTX.Process(target=record_failures, args=(str(state_dir), OUTCOMES_EACH, start)) for _ in range(WRITERS)]
    start_all(writers)
    began = time.perf_counter()
    start.set()
    join_all(writers)
    elapsed = time.perf_counter() - began
    snap = CircuitBreaker(state_dir, failure_threshold=HUGE).snapshot()
    writes = WRITERS * OUTCOMES_EACH
    print(f"{writes} locked writes from {WRITERS} processes in {elapsed:.2f}s ({elapsed / writes * 1e3:.2f} ms each)")
    assert snap.failures == writes
    assert snap.state == "closed"
    assert sorted(p.name for p in state_dir.iterdir()) == ["circuit_breaker.json", "circuit_breaker.json.lock"]


def test_readers_never_see_a_torn_or_stale_file(state_dir):
    start, stop, results = CTX.Event(), CTX.Event(), CTX.Queue()
    writers = [CTX.Process(target=record_failures, args=(str(state_dir), OUTCOMES_EACH, start)) for _ in range(WRITERS)]
    readers = [CTX.Process(target=read_continuously, args=(str(state_dir), stop, results)) for _ in range(2)]
    start_all(readers + writers)
    start.set()
    join_all(writers)
    stop.set()
    reports = [results.get(timeout=TIMEOUT) for _ in readers]
    join_all(readers)
    print("reads per reader:", [r["reads"] for r in reports])
    assert [r["problems"] for r in reports] == [[], []]
    assert all(r["reads"] > 0 for r in reports)
    assert CircuitBreaker(state_dir, failure_threshold=HUGE).snapshot().failures == WRITERS * OUTCOMES_EACH


def test_half_open_admits_exactly_one_of_many_racing_processes(state_dir):
    barrier, results = CTX.Barrier(RACERS + 1), CTX.Queue()
    racers = [
        CTX.Process(target=race_for_the_trial, args=(str(state_dir), ROUNDS, barrier, results)) for _ in range(RACERS)
    ]
    start_all(racers)
    parent = CircuitBreaker(state_dir, failure_threshold=1, recovery_timeout=0.0, trial_lease=TIMEOUT)
    for _ in range(ROUNDS):
        parent.reset()
        parent.record_failure(parent.admit())  # open, and at once due for a trial
        assert parent.snapshot().state == "half-open"
        barrier.wait(TIMEOUT)
        outcomes = sorted(results.get(timeout=TIMEOUT) for _ in racers)
        assert outcomes == [("refused", True)] * (RACERS - 1) + [("trial", True)]
    join_all(racers)
