"""With the circuit breaker open: how fast a push is refused and kept queued, and that no
connection is made.

In process: the emulator on loopback and a real sync engine (sqlite outbox, breaker file,
`requests` client) in a temporary state dir. One push succeeds first (so the client, its
session and the project cache are warm, as in a running daemon); then the emulator answers
500 to everything until three pushes have failed and the breaker is open (opened by failures,
not forced). Recovery is set to an hour, so no trial is due during the run. Then, with the
fault cleared:

* `breaker.admit()` alone: the lock-free read of the state file that refuses a call;
* `spool.write_change()`: what the hook does to queue a change (one fsync'd file in
  `<state_dir>/spool/`); the files stay there, since a drain refused by the breaker does not
  ingest them;
* `store.enqueue()`: one sqlite outbox row, as `Store.ingest_spool()` writes it per change
  once the breaker lets a drain through (here it gives `push_entry` an entry to refuse);
* `engine.push_entry(entry)`: refused with `circuit_breaker_open` before any sqlite write (no
  attempt recorded), the entry still queued;
* `engine.drain()` with every refused entry queued and spooled: refused up front;
* `vikunja-direct process-queue` as a process (the hook's fallback when no daemon runs).

Connections are counted where they would arrive (the emulator's accepted TCP connections
and requests) and where they would leave (the client's `calls` counter). Writes are checked
with `PRAGMA data_version` on a connection of our own, read before and after each refused
call: it changes when any other connection committed to the database.

Run: .venv/bin/python bench/breaker_open.py [--quick] [--runs N]
"""

from __future__ import annotations

import json
import os
import sqlite3
import statistics
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import benchlib as bl

from vikunja_sync import spool
from vikunja_sync.breaker import CircuitBreakerOpen
from vikunja_sync.config import load_settings
from vikunja_sync.emulator import Emulator
from vikunja_sync.store import OutboxEntry
from vikunja_sync.sync import SyncEngine, engine_from_settings

BUDGET_MS = 5.0
BUDGET_CONNECTIONS = 0
EX_TEMPFAIL = 75
FAILURES = 3  # the pushes that opened the breaker stay queued


class Commits:
    """Counts the calls during which some other connection committed to the sqlite database."""

    def __init__(self, database: Path) -> None:
        self.conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, isolation_level=None)
        self.calls: dict[str, int] = {}
        self.writing: dict[str, int] = {}

    def version(self) -> int:
        return self.conn.execute("PRAGMA data_version").fetchone()[0]

    def watch(self, name: str, fn: Callable[[], object]) -> tuple[float, object]:
        before = self.version()
        seconds, result = timed(fn)
        self.calls[name] = self.calls.get(name, 0) + 1
        self.writing[name] = self.writing.get(name, 0) + (self.version() != before)
        return seconds, result

    def close(self) -> None:
        self.conn.close()


def tw_task(i: int) -> dict[str, str]:
    return {
        "uuid": str(uuid.UUID(int=(bl.SEED << 32) + i)),
        "description": f"queued while Vikunja is down {i}",
        "status": "pending",
        "entry": "20260101T000000Z",
        "modified": "20260101T000000Z",
    }


def queue(engine: SyncEngine, i: int) -> OutboxEntry:
    task = tw_task(i)
    engine.store.enqueue(task["uuid"], "upsert", task)
    return engine.store.pending_for(task["uuid"])


def open_by_failures(engine: SyncEngine, emu: Emulator, world: bl.World) -> None:
    world.task("add", "warm-up push")
    [task] = world.export("description:warm-up push")
    engine.store.enqueue(task["uuid"], "upsert", task)
    warm = engine.push_entry(engine.store.pending_for(task["uuid"]))
    if warm.action != "created":
        raise bl.BenchError(f"the warm-up push did not create the task: {warm.as_dict()}")
    emu.set_fault("error500")
    if engine.settings.failure_threshold != FAILURES:
        raise bl.BenchError(f"the world's breaker threshold is {engine.settings.failure_threshold}, not {FAILURES}")
    for i in range(1, 1 + FAILURES):
        outcome = engine.push_entry(queue(engine, i))
        if outcome.success:
            raise bl.BenchError("a push succeeded against a failing Vikunja")
    emu.set_fault("none")
    state = engine.breaker.snapshot()
    if state.state != "open":
        raise bl.BenchError(f"the breaker is {state.state} after {engine.settings.failure_threshold} failures")


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def admit_refused(engine: SyncEngine) -> bool:
    try:
        engine.breaker.admit()
    except CircuitBreakerOpen:
        return True
    return False


def measure(args, engine: SyncEngine, world: bl.World, commits: Commits) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {
        "breaker.admit() refuses": [],
        "spool.write_change() (the hook's write)": [],
        "store.enqueue() (an outbox row, as ingested)": [],
        "engine.push_entry() refused, stays queued": [],
        "engine.drain() refused": [],
        "process-queue as a process": [],
    }
    state_dir = str(world.state_dir)
    base = 100
    for i in range(args.runs):
        seconds, refused = timed(lambda: admit_refused(engine))
        if not refused:
            raise bl.BenchError("breaker.admit() let a call through while open")
        samples["breaker.admit() refuses"].append(seconds)
        line = json.dumps(tw_task(base + 2 * i))
        seconds, _ = timed(lambda x=line: spool.write_change(state_dir, x))
        samples["spool.write_change() (the hook's write)"].append(seconds)
        task = tw_task(base + 2 * i + 1)
        seconds, _ = timed(lambda t=task: engine.store.enqueue(t["uuid"], "upsert", t))
        samples["store.enqueue() (an outbox row, as ingested)"].append(seconds)
        entry = engine.store.pending_for(task["uuid"])
        seconds, outcome = commits.watch("push_entry", lambda e=entry: engine.push_entry(e))
        if outcome.action != "circuit_breaker_open" or engine.store.pending_for(task["uuid"]) != entry:
            raise bl.BenchError(f"push_entry did not refuse and keep the entry untouched: {outcome.as_dict()}")
        samples["engine.push_entry() refused, stays queued"].append(seconds)
        seconds, report = commits.watch("drain", engine.drain)
        queued = FAILURES + 2 * (i + 1)  # outbox rows + spool files
        if report.stopped_by != "circuit_breaker_open" or report.pushed or report.remaining != queued:
            raise bl.BenchError(f"drain did not stop at the open breaker with everything queued: {report}")
        if len(spool.pending_files(state_dir)) != i + 1:
            raise bl.BenchError("the refused drain touched the spool")
        samples["engine.drain() refused"].append(seconds)
    for _ in range(args.cli_runs):
        seconds, proc = commits.watch("process-queue", lambda: world.cli("process-queue", "--quiet", check=False))
        if proc.returncode != EX_TEMPFAIL:
            raise bl.BenchError(f"process-queue exited {proc.returncode}, expected 75: {proc.stderr}")
        samples["process-queue as a process"].append(seconds)
    return samples


def main(args) -> int:
    bl.print_header("circuit breaker open: refuse, queue, no connections", args)
    with bl.temp_root("breaker") as root, Emulator(token=bl.TOKEN) as emu:
        world = bl.make_world(root, emu.url, recovery=3600)
        os.environ.update(world.env)  # the engine's Taskwarrior and any child use this temp world only
        engine = engine_from_settings(load_settings(world.env))
        try:
            open_by_failures(engine, emu, world)
            commits = Commits(world.database)
            connections, requests, calls = emu.connections, len(emu.requests), engine.client.calls
            try:
                samples = measure(args, engine, world, commits)
            finally:
                commits.close()
            made = emu.connections - connections
            sent = len(emu.requests) - requests
            client_calls = engine.client.calls - calls
            depth = engine.store.outbox_depth()
            spooled = len(spool.pending_files(str(world.state_dir)))
            state = engine.breaker.snapshot()
        finally:
            engine.close()

    print(bl.table(bl.SUMMARY_HEADERS, [bl.summary_row(name, values) for name, values in samples.items()]))
    print(
        f"\nwhile open: {made} TCP connections accepted by the emulator, {sent} API requests received, "
        f"{client_calls} client calls; {depth} changes queued ({spooled} of them spooled); breaker {state.state} "
        f"after {state.failures} failures"
    )
    if depth != FAILURES + 2 * args.runs or spooled != args.runs:
        raise bl.BenchError(f"expected {FAILURES + 2 * args.runs} queued changes ({args.runs} spooled), found {depth}")
    writes = ", ".join(f"{commits.writing[n]} of {commits.calls[n]} {n}" for n in commits.calls)
    print(f"refused calls that committed to sqlite: {writes}")

    def median_ms(name: str) -> float:
        return bl.ms(statistics.median(samples[name]))

    budgets = [
        bl.Budget("connections while open", made, BUDGET_CONNECTIONS, "connections"),
        bl.Budget("client calls while open", client_calls, BUDGET_CONNECTIONS, "calls"),
        bl.Budget(
            "push_entry refused and queued (median)",
            median_ms("engine.push_entry() refused, stays queued"),
            BUDGET_MS,
            "ms",
        ),
        bl.Budget("drain refused (median)", median_ms("engine.drain() refused"), BUDGET_MS, "ms"),
    ]
    code = bl.finish(budgets, args)
    wrote = sum(commits.writing.values())
    print(f"  {'PASS' if not wrote else 'FAIL'}  no sqlite commit by a refused push_entry, drain or process-queue")
    return 3 if wrote and args.strict else code


if __name__ == "__main__":
    p = bl.parser(__doc__.split("\n", 1)[0])
    p.add_argument("--runs", type=int, help="in-process samples per row (default 200, --quick 50)")
    parsed = p.parse_args()
    parsed.runs = parsed.runs or (50 if parsed.quick else 200)
    parsed.cli_runs = 10 if parsed.quick else 30
    bl.run_main(main, parsed)
