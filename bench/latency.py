"""End-to-end sync latency in both directions, through a running `vikunja-direct serve`.

Set-up: the bundled Vikunja emulator in this process, a Taskwarrior data dir with the hooks
installed, `serve` as a subprocess, webhooks provisioned by `provision-webhooks`.

Taskwarrior -> Vikunja: the clock starts when `task add` / `task modify` is started and stops
when the emulator's in-memory store holds the change (polled in process every 0.5 ms: a task
count or one task read under the store's lock, which costs microseconds). The hook writes one
file per change into `<state_dir>/spool/` and wakes `serve`, whose drain moves it into the
sqlite outbox (`Store.ingest_spool`) and pushes it. The loop waits on an inotify watch of the
spool directory instead of sleeping, so it wakes when the hook's file is renamed into place
and when the ingest unlinks it (after its sqlite commit). That splits the latency into:
the hook starting its spool write (the file name's `time.time_ns()`, the hook's own clock,
so exact), the file in place (data fsync'd, renamed), the file ingested, and the push. The
two "seen" marks are when this process noticed the event: upper bounds, late by its wake-up
(and by the GIL when an emulator thread holds it); a mark read only after the change had
arrived leaves that sample out of that row.

Vikunja -> Taskwarrior: the clock starts just before `emu.update_task` / `emu.create_task`
(the "web UI" edit, which queues the signed webhook) and stops when the sync's `links` row for
that task carries the new fingerprint (or appears). `apply` writes that row right after
`task import` returned, so it marks the moment Taskwarrior holds the change; reading it from
a read-only sqlite connection every 0.5 ms does not block the daemon (WAL). The same loop
notes when `serve` stored the webhook (its inbox row's `received_at`), splitting the latency
into delivery and apply. Polling `task export` instead would start a `task` process every
poll and compete with the daemon's own. Each sample is then verified with one `task _get`
outside the clock.

Between samples the system is left to settle (spool, outbox and inbox empty, echo webhooks
delivered), so every sample starts from idle.

Run: .venv/bin/python bench/latency.py [--quick] [--runs N]
"""

from __future__ import annotations

import ctypes
import os
import select
import sqlite3
import statistics
import struct
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import benchlib as bl

from vikunja_sync import spool
from vikunja_sync.emulator import Emulator

POLL = 0.0005
BUDGET_TW_TO_VIKUNJA_MS = 100.0
BUDGET_VIKUNJA_TO_TW_MS = 50.0
WARMUP = 2
IN_MOVED_TO, IN_DELETE, IN_NONBLOCK, IN_CLOEXEC = 0x80, 0x200, 0o4000, 0o2000000
EVENT = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len; then the name


@dataclass(frozen=True)
class SpoolEvent:
    seen: float  # time.perf_counter() when this process read the event
    mask: int
    name: str

    @property
    def written_at(self) -> float:
        """The hook's `time.time_ns()` when it began writing the file, from the name."""
        return int(self.name.split("-", 1)[0]) / 1e9


class SpoolWatch:
    """inotify on the spool dir: a file renamed into place (the hook) or unlinked (the ingest)."""

    def __init__(self, directory: str) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self.fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if self.fd < 0:
            raise bl.BenchError(f"inotify_init1 failed: {os.strerror(ctypes.get_errno())}")
        if libc.inotify_add_watch(self.fd, os.fsencode(directory), IN_MOVED_TO | IN_DELETE) < 0:
            os.close(self.fd)
            raise bl.BenchError(f"inotify_add_watch({directory}) failed: {os.strerror(ctypes.get_errno())}")

    def wait(self, timeout: float) -> list[SpoolEvent]:
        """Events on completed spool files, waiting at most `timeout` for the first."""
        if not select.select([self.fd], [], [], timeout)[0]:
            return []
        seen = time.perf_counter()
        events = []
        try:
            while data := os.read(self.fd, 65536):
                for offset in self._offsets(data):
                    _, mask, _, size = EVENT.unpack_from(data, offset)
                    name = data[offset + EVENT.size : offset + EVENT.size + size].rstrip(b"\0").decode()
                    if name.endswith(spool.SUFFIX) and not name.startswith("."):
                        events.append(SpoolEvent(seen, mask, name))
        except BlockingIOError:
            pass
        return events

    @staticmethod
    def _offsets(data: bytes) -> list[int]:
        offsets, offset = [], 0
        while offset < len(data):
            offsets.append(offset)
            offset += EVENT.size + EVENT.unpack_from(data, offset)[3]
        return offsets

    def close(self) -> None:
        os.close(self.fd)


@dataclass(frozen=True)
class TwSample:
    latency: float  # start of `task` -> Vikunja holds the change
    command: float  # start of `task` -> it returned
    writing: float  # start of `task` -> the hook began its spool write (the file name's clock)
    placed: float | None  # start -> the spool file seen renamed into place (None: seen only after arrival)
    ingested: float | None  # start -> the spool file seen unlinked by the ingest (None: likewise)

    @property
    def push(self) -> float | None:
        return None if self.ingested is None else self.latency - self.ingested


@dataclass
class RemoteSample:
    wall_start: float  # time.time(): `serve` stamps its inbox rows with it
    start: float
    stored: float | None = None  # start -> the webhook's inbox row (None: applied before a poll saw it)
    latency: float = 0.0  # start -> TW holds the change

    @property
    def applied(self) -> float | None:
        return None if self.stored is None else self.latency - self.stored


class Bench:
    def __init__(self, world: bl.World, emu: Emulator, serve: bl.Serve) -> None:
        self.world = world
        self.emu = emu
        self.serve = serve
        self.db = sqlite3.connect(f"file:{world.database}?mode=ro", uri=True, isolation_level=None)
        self.inbox_project = next(p["id"] for p in emu.projects() if p["title"].lower() == "inbox")
        self.spool_dir = spool.spool_path(str(world.state_dir))
        os.makedirs(self.spool_dir, mode=0o700, exist_ok=True)  # the hook's first write would create it
        self.watch = SpoolWatch(self.spool_dir)

    def close(self) -> None:
        self.watch.close()
        self.db.close()

    # --- state probes ----------------------------------------------------------
    def scalar(self, sql: str, *params: Any) -> Any:
        row = self.db.execute(sql, params).fetchone()
        return row[0] if row else None

    def link_uuid(self, vikunja_id: int) -> str | None:
        return self.scalar("SELECT tw_uuid FROM links WHERE vikunja_id = ?", vikunja_id)

    def fingerprint(self, vikunja_id: int) -> str | None:
        return self.scalar("SELECT fingerprint FROM links WHERE vikunja_id = ?", vikunja_id)

    def settle(self) -> None:
        """Wait until nothing is in flight: webhooks delivered, inbox and outbox empty."""
        for _ in range(2):  # an apply or push can queue one more echo; look twice
            if not self.emu.wait_for_webhooks(bl.WAIT):
                raise bl.BenchError("the emulator's webhooks were not delivered")
            bl.wait_until(
                "spool, inbox and outbox to empty",
                lambda: (
                    not spool.pending_files(str(self.world.state_dir))
                    and self.scalar("SELECT (SELECT COUNT(*) FROM inbox) + (SELECT COUNT(*) FROM outbox)") == 0
                ),
            )
            time.sleep(0.05)
        self.serve.health()  # raises if serve died
        strays = [e.name for e in self.watch.wait(0) if e.mask & IN_MOVED_TO]
        if strays:  # the daemon's own `task` calls must not run the hook's spooling (loop guard)
            raise bl.BenchError(f"changes were spooled that no `task` command of ours made: {strays}")

    def get_description(self, uuid: str) -> str:
        return self.world.task("rc.hooks=off", "_get", f"{uuid}.description").stdout.strip()

    # --- one sample each -----------------------------------------------------------
    def tw_command(self, args: list[str], arrived: Callable[[], bool]) -> TwSample:
        """Start `task`, wait until Vikunja holds the change; note the hook's spool file on the way."""
        cmd = ["task", "rc.confirmation=off", "rc.verbose=nothing", *args]
        wall_start = time.time()  # the hook names its spool file with time.time_ns()
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=self.world.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        returned = None
        events: list[SpoolEvent] = []
        deadline = start + bl.WAIT
        while not arrived():
            now = time.perf_counter()
            if returned is None and proc.poll() is not None:
                returned = now - start
            if now > deadline:
                raise bl.BenchError(
                    f"`task {' '.join(args)}` did not reach Vikunja; serve log:\n{self.serve.log_tail()}"
                )
            events += self.watch.wait(POLL)  # returns early when the spool changes
        latency = time.perf_counter() - start
        if proc.wait(bl.WAIT) != 0:
            raise bl.BenchError(f"`task {' '.join(args)}` failed: {proc.stderr.read().decode()}")
        proc.stderr.close()
        late = self.watch.wait(0)  # already queued when the change arrived: no "seen" time for these
        placed = [e for e in events + late if e.mask & IN_MOVED_TO]
        if len(placed) != 1:
            raise bl.BenchError(f"`task {' '.join(args)}` spooled {len(placed)} files, expected 1")
        name = placed[0].name

        def seen(mask: int) -> float | None:
            return next((e.seen - start for e in events if e.mask & mask and e.name == name), None)

        return TwSample(
            latency,
            returned if returned is not None else time.perf_counter() - start,
            placed[0].written_at - wall_start,
            seen(IN_MOVED_TO),
            seen(IN_DELETE),
        )

    def add(self, i: int) -> tuple[TwSample, int]:
        before = self.emu.store.task_count()
        title = f"tw add {i}"
        sample = self.tw_command(["add", title], lambda: self.emu.store.task_count() > before)
        vikunja_id = max(t["id"] for t in self.emu.tasks() if t["title"] == title)
        self.settle()
        if self.link_uuid(vikunja_id) is None:
            raise bl.BenchError(f"{title!r} reached Vikunja but was not linked")
        return sample, vikunja_id

    def modify(self, i: int, vikunja_id: int) -> TwSample:
        uuid = self.link_uuid(vikunja_id)
        title = f"tw modify {i}"
        sample = self.tw_command(
            [uuid, "modify", title], lambda: (self.emu.get_task(vikunja_id) or {}).get("title") == title
        )
        self.settle()
        return sample

    def remote_update(self, i: int, vikunja_id: int) -> RemoteSample:
        old = self.fingerprint(vikunja_id)
        title = f"vikunja update {i}"
        sample = self._remote(lambda: self.emu.update_task(vikunja_id, title=title))
        self._until(lambda: self.fingerprint(vikunja_id) != old, sample, title)
        self.settle()
        if self.get_description(self.link_uuid(vikunja_id)) != title:
            raise bl.BenchError(f"the link changed but Taskwarrior does not hold {title!r}")
        return sample

    def remote_create(self, i: int) -> RemoteSample:
        title = f"vikunja create {i}"
        created: dict[str, Any] = {}
        sample = self._remote(lambda: created.update(self.emu.create_task(self.inbox_project, title=title)))
        self._until(lambda: self.link_uuid(created["id"]) is not None, sample, title)
        self.settle()
        if self.get_description(self.link_uuid(created["id"])) != title:
            raise bl.BenchError(f"the link appeared but Taskwarrior does not hold {title!r}")
        return sample

    def _remote(self, edit: Callable[[], Any]) -> RemoteSample:
        sample = RemoteSample(time.time(), time.perf_counter())
        edit()
        return sample

    def _until(self, check: Callable[[], bool], sample: RemoteSample, what: str) -> None:
        """Poll until TW holds the change; note when `serve` stored the webhook (its inbox row)."""
        while not check():
            if sample.stored is None:
                stamp = self.scalar("SELECT MAX(received_at) FROM inbox")
                sample.stored = stamp - sample.wall_start if stamp and stamp >= sample.wall_start else None
            if time.perf_counter() - sample.start > bl.WAIT:
                raise bl.BenchError(f"{what!r} did not reach Taskwarrior; serve log:\n{self.serve.log_tail()}")
            time.sleep(POLL)
        sample.latency = time.perf_counter() - sample.start


def run(args, bench: Bench) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {}

    def record_tw(kind: str, sample: TwSample) -> None:
        samples.setdefault(f"TW->Vikunja task {kind}", []).append(sample.latency)
        samples.setdefault(f"  {kind}: hook begins its spool write", []).append(sample.writing)
        samples.setdefault(f"  {kind}: spool file in place (seen)", []).append(sample.placed)
        samples.setdefault(f"  {kind}: spool file ingested (seen)", []).append(sample.ingested)
        samples.setdefault(f"  {kind}: then push until Vikunja holds it", []).append(sample.push)
        samples.setdefault(f"  {kind}: `task` returned", []).append(sample.command)

    def record_remote(kind: str, sample: RemoteSample) -> None:
        samples.setdefault(f"Vikunja->TW {kind}", []).append(sample.latency)
        samples.setdefault(f"  {kind}: webhook stored in the inbox", []).append(sample.stored)
        samples.setdefault(f"  {kind}: then applied to TW", []).append(sample.applied)

    for i in range(-WARMUP, args.runs):
        add, vikunja_id = bench.add(i)
        modify = bench.modify(i, vikunja_id)
        update = bench.remote_update(i, vikunja_id)
        create = bench.remote_create(i)
        if i < 0:
            continue
        record_tw("add", add)
        record_tw("modify", modify)
        record_remote("update (title)", update)
        record_remote("create", create)
    return {name: [v for v in values if v is not None] for name, values in samples.items()}


def main(args) -> int:
    bl.print_header("sync latency through `vikunja-direct serve`", args)
    with bl.temp_root("latency") as root, Emulator(token=bl.TOKEN) as emu:
        world = bl.make_world(root, emu.url)
        world.install_hooks()
        with bl.Serve(world) as serve:
            world.cli("provision-webhooks", "--target-url", f"{serve.base}/webhook")
            bench = Bench(world, emu, serve)
            try:
                samples = run(args, bench)
            finally:
                bench.close()
            rss = serve.peak_rss_kib()

    print(bl.table(bl.SUMMARY_HEADERS, [bl.summary_row(name, values) for name, values in samples.items()]))
    print(f"\npeak RSS of serve: {rss / 1024:.1f} MiB; poll period {bl.ms(POLL):.1f} ms")

    def p50(name: str) -> float:
        return bl.ms(statistics.median(samples[name]))

    budgets = [
        bl.Budget("TW->Vikunja task add p50", p50("TW->Vikunja task add"), BUDGET_TW_TO_VIKUNJA_MS, "ms"),
        bl.Budget("TW->Vikunja task modify p50", p50("TW->Vikunja task modify"), BUDGET_TW_TO_VIKUNJA_MS, "ms"),
        bl.Budget("Vikunja->TW update p50", p50("Vikunja->TW update (title)"), BUDGET_VIKUNJA_TO_TW_MS, "ms"),
        bl.Budget("Vikunja->TW create p50", p50("Vikunja->TW create"), BUDGET_VIKUNJA_TO_TW_MS, "ms"),
    ]
    return bl.finish(budgets, args)


if __name__ == "__main__":
    p = bl.parser(__doc__.split("\n", 1)[0])
    p.add_argument("--runs", type=int, help="samples per direction (default 30, --quick 10)")
    parsed = p.parse_args()
    parsed.runs = parsed.runs or (10 if parsed.quick else 30)
    bl.run_main(main, parsed)
