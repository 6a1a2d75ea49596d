"""`vikunja-direct reconcile --full` at 1k / 5k / 10k tasks: time and API calls.

Per size, a fresh emulator and Taskwarrior data dir are seeded with the same N tasks (fixed
seed: titles, four projects, priorities, due dates, a few labels, 10% done): created in the
emulator directly, then imported into Taskwarrior in one `task import` carrying each task's
`vikunjaid`, and the sync's `links` table is filled in one sqlite transaction with what a
sync of each task records (its fingerprint and Vikunja's `updated`). A first `reconcile
--full` would link these matching tasks too (what a user would do); writing the links
directly keeps the seeding fast and independent of the linking code. The first no-op run
then proves both sides and the links agree. Then:

* no-op: `reconcile --full` with both sides in sync, repeated;
* 10% changed: 5% of the tasks retitled in Taskwarrior (one `task import`), another 5%
  retitled in Vikunja (the emulator's UI helper, no webhooks), then `reconcile --full`;
  a no-op run afterwards must find nothing left to do.

Each run is a real `vikunja-direct reconcile --full` process; its JSON summary line gives
`api_calls` and `list_calls` (the task-list pages), and the emulator counts the requests it
received by kind. Expected, and checked for every run:

    list_calls = ceil(N / 50)                 one GET per task page
    api_calls  = 2 + list_calls + pushes      + GET /info + one page of GET /projects

/info is read once per client (page size and version); the project listing maps ids to
titles; each task changed in Taskwarrior is one POST (the listing already holds the current
Vikunja task, so no GET before it); changes coming from Vikunja cost no call at all (they
were in the listing) and go into one `task import`.

The emulator runs in this process; the time it spends answering is measured on its side
and shown separately ("server s"), since it is not the sync's work. The emulator renders all
matching tasks for every page it serves (a real Vikunja reads one page from its index), which
would make its side O(N^2) and swamp the figures, so the pages of one listing are served from
one rendering until the next write (see `TimedEmulator`).

Run: .venv/bin/python bench/reconcile_scale.py [--quick] [--sizes 1000,5000] [--runs N]
"""

from __future__ import annotations

import json
import math
import random
import sqlite3
import statistics
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import benchlib as bl

from vikunja_sync import mapping
from vikunja_sync.emulator import Emulator
from vikunja_sync.store import Store
from vikunja_sync.vikunja import normalize_task

PROJECTS = ("Inbox", "Home", "Work", "Errands")
LABELS = ("urgent", "waiting", "phone", "computer")
BUDGET_SIZE = 5000
BUDGET_NOOP_S = 10.0
CHANGED_SHARE = 0.10
FIXED_CALLS = 2  # GET /info (page size, version) and one page of GET /projects (ids -> titles)
DEFAULT_PROJECT = "inbox"  # as benchlib.make_world configures it
UDA_RC = ("rc.uda.vikunjaid.type=numeric", "rc.uda.vikunjaid.label=Vikunja")


class TimedEmulator(Emulator):
    """The emulator, adding up the seconds it spends on API requests (its side of each call).

    The emulator renders every matching task for each page it serves, so one listing of N
    tasks costs it O(N^2 / page size), where a real Vikunja reads one page from its index.
    Here the pages of one listing are cut from one rendering, kept until the next write.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.server_seconds = 0.0
        self._timing = threading.Lock()
        self._listing: tuple[Any, list[dict[str, Any]]] | None = None
        self._list_tasks = self.store.list_tasks
        self.store.list_tasks = self._cached_list_tasks

    def _cached_list_tasks(self, query: dict[str, list[str]]) -> list[dict[str, Any]]:
        key = sorted((k, tuple(v)) for k, v in query.items() if k not in ("page", "per_page"))
        with self._timing:
            if self._listing is None or self._listing[0] != key:
                self._listing = (key, self._list_tasks(query))
            return self._listing[1]

    def forget_listing(self) -> None:
        with self._timing:
            self._listing = None

    def _handle(self, method: str, target: str, headers: Any, raw: bytes):
        if method != "GET":
            self.forget_listing()
        start = time.perf_counter()
        try:
            return super()._handle(method, target, headers, raw)
        finally:
            with self._timing:
                self.server_seconds += time.perf_counter() - start

    def update_task(self, task_id: int, **fields: Any) -> dict[str, Any]:
        self.forget_listing()
        return super().update_task(task_id, **fields)

    def create_task(self, project_id: int, **fields: Any) -> dict[str, Any]:
        self.forget_listing()
        return super().create_task(project_id, **fields)


@dataclass
class Run:
    kind: str
    wall: float
    server: float
    summary: dict[str, Any]
    requests: Counter = field(default_factory=Counter)

    @property
    def pushes(self) -> int:
        return int(self.summary.get("counts", {}).get("push", 0))


def tw_date(dt: datetime) -> str:
    return dt.strftime("%Y%m%dT%H%M%SZ")


def seed(world: bl.World, emu: TimedEmulator, n: int, rng: random.Random) -> dict[int, str]:
    """N tasks on both sides, identical in every synced field; returns vikunja id -> TW uuid."""
    project_ids = {p["title"]: p["id"] for p in emu.projects()}
    for title in PROJECTS:
        if title not in project_ids:
            project_ids[title] = emu.create_project(title)["id"]
    base = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)
    stamp = tw_date(datetime.now(UTC) - timedelta(days=1))
    tw_tasks, links = [], {}
    for i in range(n):
        project = rng.choice(PROJECTS)
        title = f"seeded task {i:05d} {rng.randrange(10**6):06d}"
        priority = rng.choice((None, None, "L", "M", "H"))
        due = base + timedelta(hours=rng.randrange(24 * 365)) if rng.random() < 0.4 else None
        labels = [rng.choice(LABELS)] if rng.random() < 0.2 else []
        done = rng.random() < 0.1
        fields: dict[str, Any] = {"title": title, "done": done, "labels": labels}
        if priority:
            fields["priority"] = {"L": 1, "M": 2, "H": 3}[priority]
        if due:
            fields["due_date"] = due.strftime("%Y-%m-%dT%H:%M:%SZ")
        vikunja_id = emu.create_task(project_ids[project], **fields)["id"]
        task = {
            "uuid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "description": title,
            "status": "completed" if done else "pending",
            "entry": stamp,
            "modified": stamp,
            "vikunjaid": vikunja_id,
        }
        if project != "Inbox":  # Vikunja's default project is TW's "no project"
            task["project"] = project
        if done:
            task["end"] = stamp
        if priority:
            task["priority"] = priority
        if due:
            task["due"] = tw_date(due)
        if labels:
            task["tags"] = labels
        tw_tasks.append(task)
        links[vikunja_id] = task["uuid"]
    world.task("rc.hooks=off", *UDA_RC, "import", "-", stdin=json.dumps(tw_tasks))
    return links


def synced_project(title: str) -> str:
    """The project as the sync compares it: Vikunja's default project is the configured default."""
    return DEFAULT_PROJECT if title.lower() == DEFAULT_PROJECT else title


def seed_links(world: bl.World, emu: Emulator, links: dict[int, str]) -> None:
    """Record every pair as synced: the row `push`/`apply` would have saved."""
    titles = {p["id"]: synced_project(p["title"]) for p in emu.projects()}
    rows = []
    for vikunja_id, tw_uuid in links.items():
        vtask = normalize_task(emu.get_task(vikunja_id))
        fields = mapping.fields_from_vikunja(vtask, titles[vtask["project_id"]])
        updated = mapping.parse_vikunja_date(vtask["updated"]).timestamp()
        rows.append((tw_uuid, vikunja_id, mapping.fingerprint(fields), updated, "[]"))
    Store(world.database).links()  # creates the schema
    with sqlite3.connect(world.database, isolation_level=None) as db:
        db.execute("BEGIN IMMEDIATE")
        db.executemany(
            "INSERT INTO links (tw_uuid, vikunja_id, fingerprint, vikunja_updated, recent_pushes) VALUES (?, ?, ?, ?, ?)",
            rows,
        )
        db.execute("COMMIT")
    db.close()


def reconcile(world: bl.World, emu: TimedEmulator, kind: str) -> Run:
    emu.reset_counters()
    emu.forget_listing()  # every run pays for one rendering of the listing
    server_before = emu.server_seconds
    start = time.perf_counter()
    proc = world.cli("reconcile", "--full")
    wall = time.perf_counter() - start
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    if not summary.get("success"):
        raise bl.BenchError(f"reconcile failed: {summary}")
    requests = Counter(_kind(method, path) for method, path in emu.requests)
    return Run(kind, wall, emu.server_seconds - server_before, summary, requests)


def _kind(method: str, path: str) -> str:
    parts = path.removeprefix("/api/v1").strip("/").split("/")
    return f"{method} /{parts[0]}" + ("/{id}" if len(parts) > 1 else "")


def change(
    world: bl.World, emu: TimedEmulator, links: dict[int, str], rng: random.Random, round_: int
) -> tuple[int, int]:
    """Retitle 5% of the tasks in Taskwarrior and another 5% in Vikunja."""
    chosen = rng.sample(sorted(links), int(len(links) * CHANGED_SHARE))
    half = len(chosen) // 2
    in_tw, in_vikunja = chosen[:half], chosen[half:]
    uuids = {links[v] for v in in_tw}
    exported = [t for t in world.export("rc.hooks=off", *UDA_RC) if t["uuid"] in uuids]
    now = tw_date(datetime.now(UTC) + timedelta(seconds=1))
    for task in exported:
        task["description"] += f" (edited in Taskwarrior, round {round_})"
        task["modified"] = now
    world.task("rc.hooks=off", *UDA_RC, "import", "-", stdin=json.dumps(exported))
    for vikunja_id in in_vikunja:
        current = emu.get_task(vikunja_id)
        emu.update_task(vikunja_id, title=current["title"] + f" (edited in Vikunja, round {round_})")
    return len(exported), len(in_vikunja)


def check_calls(run: Run, n: int, per_page: int) -> str:
    """Compare the run's API calls with pages + pushes; '' when they agree, else what differs."""
    task_pages = max(1, math.ceil(n / per_page))
    s = run.summary
    problems = []
    if s["list_calls"] != task_pages:
        problems.append(f"list_calls {s['list_calls']} != {task_pages} task pages")
    if s["api_calls"] != FIXED_CALLS + s["list_calls"] + run.pushes:
        problems.append(f"api_calls {s['api_calls']} != {FIXED_CALLS} + list_calls + pushes")
    if sum(run.requests.values()) != s["api_calls"]:
        problems.append(f"emulator saw {sum(run.requests.values())} requests, client counted {s['api_calls']}")
    expected = Counter({"GET /info": 1, "GET /projects": 1, "GET /tasks": task_pages, "POST /tasks/{id}": run.pushes})
    if run.requests != +expected:
        problems.append(f"emulator requests {dict(run.requests)}, expected {dict(+expected)}")
    return "; ".join(problems)


def bench_size(args, n: int) -> list[Run]:
    rng = random.Random(bl.SEED + n)
    with bl.temp_root(f"reconcile-{n}") as root, TimedEmulator(token=bl.TOKEN) as emu:
        world = bl.make_world(root, emu.url, timeout=60.0)
        start = time.perf_counter()
        links = seed(world, emu, n, rng)
        seed_links(world, emu, links)
        print(f"  {n} tasks seeded and linked in {time.perf_counter() - start:.1f} s", flush=True)
        runs = [reconcile(world, emu, "no-op") for _ in range(args.runs)]
        if any(r.summary["changes"] for r in runs):
            raise bl.BenchError(f"a no-op run found changes: {[r.summary for r in runs if r.summary['changes']]}")
        for round_ in range(args.changed_runs):
            in_tw, in_vikunja = change(world, emu, links, rng, round_)
            run = reconcile(world, emu, "10% changed")
            if run.summary["counts"] != {"push": in_tw, "pull": in_vikunja}:
                raise bl.BenchError(f"expected {in_tw} pushes and {in_vikunja} pulls: {run.summary['counts']}")
            runs.append(run)
            after = reconcile(world, emu, "no-op after the change")
            if after.summary["changes"] != 0:
                raise bl.BenchError(f"reconcile did not converge: {after.summary}")
            runs.append(after)
        for run in runs:
            problem = check_calls(run, n, emu.max_items_per_page)
            if problem:
                raise bl.BenchError(f"{n} tasks, {run.kind}: API calls do not add up: {problem}")
    return runs


def rows_for(n: int, runs: list[Run]) -> list[list[Any]]:
    rows = []
    for kind in dict.fromkeys(r.kind for r in runs):
        group = [r for r in runs if r.kind == kind]
        walls = [r.wall for r in group]
        server = statistics.median(r.server for r in group)
        last = group[-1].summary
        rows.append(
            [
                n,
                kind,
                len(group),
                statistics.median(walls),
                bl.percentile(walls, 95),
                server,
                statistics.median(walls) - server,
                last["changes"],
                last["api_calls"],
                last["list_calls"],
                group[-1].pushes,
            ]
        )
    return rows


def main(args) -> int:
    bl.print_header("reconcile --full at scale", args)
    all_rows, noop_at_budget = [], None
    for n in args.sizes:
        print(f"size {n}:", flush=True)
        runs = bench_size(args, n)
        all_rows += rows_for(n, runs)
        if n == BUDGET_SIZE:
            noop_at_budget = statistics.median(r.wall for r in runs if r.kind == "no-op")
    print()
    headers = (
        "tasks",
        "run",
        "runs",
        "median s",
        "p95 s",
        "server s",
        "sync s",
        "changes",
        "api_calls",
        "list_calls",
        "pushes",
    )
    print(bl.table(headers, all_rows))
    print(
        "\nserver s: the emulator's own time answering (median); sync s = median - server s.\n"
        "Checked for every run: list_calls = ceil(N/50) task pages; api_calls = 2 + list_calls + pushes\n"
        "(GET /info and one page of GET /projects); the emulator received exactly these requests."
    )
    budgets = []
    if noop_at_budget is not None:
        budgets.append(bl.Budget(f"{BUDGET_SIZE} tasks no-op reconcile (median)", noop_at_budget, BUDGET_NOOP_S, "s"))
    return bl.finish(budgets, args, empty=f"the budget is for {BUDGET_SIZE} tasks, not run in this mode")


if __name__ == "__main__":
    p = bl.parser(__doc__.split("\n", 1)[0])
    p.add_argument("--sizes", help="comma-separated task counts (default 1000,5000,10000; --quick 1000)")
    p.add_argument("--runs", type=int, help="no-op runs per size (default 3)")
    p.add_argument("--changed-runs", type=int, default=1, help="10%%-changed runs per size (default 1)")
    parsed = p.parse_args()
    sizes = parsed.sizes or ("1000" if parsed.quick else "1000,5000,10000")
    parsed.sizes = [int(s) for s in sizes.split(",")]
    parsed.runs = parsed.runs or 3
    bl.run_main(main, parsed)
