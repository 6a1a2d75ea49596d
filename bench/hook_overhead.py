"""What the Taskwarrior hook adds to `task add`, and proof that it stays off `requests`.

Two identical Taskwarrior data dirs (hooks=on in both); only one has the vikunja-sync hooks:
on-add and on-modify (Python) and the on-launch write gate (sh + `flock -s` on the gate file,
which is created first, as a daemon that has written once leaves it; the lock is free).
The sync is configured as in production with a daemon: push.fallback = "none" and a bound
wake socket (a dummy datagram listener standing in for `serve`), so the hook writes one
spool file (`<state_dir>/spool/`), sends its wake datagram and exits; no drain is spawned,
no sqlite is opened and no network is touched. Nothing ingests the spool during the run;
afterwards the script checks that the hook created no sqlite database, that there is one
spool file per hooked change, and that `Store.ingest_spool()` accepts every one of them.

Rows are measured interleaved (a different order each round), so drift on the machine hits
all of them alike. "Added" is median(with hooks) - median(without); the paired differences
give its spread. The hook's interpreter start (`python -IS -c pass`, the interpreter and flags
of the installed hook's shebang) is the floor any Python hook pays.

Run: .venv/bin/python bench/hook_overhead.py [--quick] [--runs N]
"""

from __future__ import annotations

import json
import random
import resource
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import benchlib as bl

from vikunja_sync import spool
from vikunja_sync.store import Store
from vikunja_sync.twgate import GATE_FILE

BUDGET_ADDED_MS = 45.0
HEAVY_MODULES = (
    "requests",
    "urllib3",
    "http.client",
    "vikunja_sync.sync",
    "vikunja_sync.vikunja",
    "vikunja_sync.store",
    "vikunja_sync.config",
    "sqlite3",
    "subprocess",
)
WARMUP = 3
IMPORT_RUNS = 7
HOOK_MODULE = "vikunja_sync.hook"
FLOOR = "python -IS -c pass (the hook's #! line)"


class WakeListener:
    """Binds the wake socket like `serve` does and counts the datagrams the hooks send."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.wakes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sock.recv(64)
                self.wakes += 1
            except TimeoutError:
                continue

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(cmd: list[str], env: dict[str, str], stdin: str | None = None) -> tuple[float, float]:
    """Wall seconds, and CPU seconds of the command and everything it waited for (the hooks)."""
    cpu = children_cpu()
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, input=stdin, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise bl.BenchError(f"{cmd[0]} exited {proc.returncode}: {proc.stderr.strip()}")
    return elapsed, children_cpu() - cpu


def task_json(i: int) -> str:
    return json.dumps({"uuid": str(uuid.UUID(int=i + 1)), "description": f"hook alone {i}", "status": "pending"})


@dataclass
class Import:
    name: str
    depth: int
    self_us: int
    cumulative_us: int


def importtime(cmd: list[str], env: dict[str, str], stdin: str | None) -> list[Import]:
    """Every module the command imports, in `python -X importtime` order."""
    proc = subprocess.run(cmd, env=env, input=stdin, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise bl.BenchError(f"importtime run failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    found = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "imported package" in line:
            continue
        self_us, cumulative_us, name = line.removeprefix("import time:").split("|")
        depth = (len(name) - len(name.lstrip(" ")) - 1) // 2
        found.append(Import(name.strip(), depth, int(self_us), int(cumulative_us)))
    return found


def median_imports(runs: list[list[Import]]) -> list[Import]:
    """Per module, the median self and cumulative time over several runs (first run's order)."""
    by_name: dict[str, list[Import]] = {}
    for run in runs:
        for item in run:
            by_name.setdefault(item.name, []).append(item)
    return [
        Import(
            i.name,
            i.depth,
            int(statistics.median(x.self_us for x in by_name[i.name])),
            int(statistics.median(x.cumulative_us for x in by_name[i.name])),
        )
        for i in runs[0]
    ]


def direct_imports(imports: list[Import], parent: str) -> list[Import]:
    """What `parent` imported itself: importtime prints children, one level deeper, before their parent."""
    at = next((k for k, i in enumerate(imports) if i.name == parent), None)
    if at is None:
        return []
    children = []
    for item in reversed(imports[:at]):
        if item.depth <= imports[at].depth:
            break
        if item.depth == imports[at].depth + 1:
            children.append(item)
    return children[::-1]


def interpreter(hook: Path) -> list[str]:
    """The interpreter and flags of the hook's `#!` line, as the kernel runs them."""
    first = hook.read_text(encoding="utf-8").splitlines()[0]
    if not first.startswith("#!"):
        raise bl.BenchError(f"{hook} has no #! line")
    return first[2:].split()


def shown(python: list[str]) -> str:
    """`python -IS` for the hook's interpreter line (the full path is in the header)."""
    return " ".join(["python", *python[1:]])


def measure(
    args, world_hooks: bl.World, world_plain: bl.World, hook: Path, launch: Path
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall and CPU samples per row."""
    python = interpreter(hook)
    rows = {
        FLOOR: lambda i: timed([*python, "-c", "pass"], world_plain.env),
        "python -c pass (with site, for comparison)": lambda i: timed([sys.executable, "-c", "pass"], world_plain.env),
        "task add, no hooks": lambda i: timed(
            ["task", "rc.confirmation=off", "rc.verbose=nothing", "add", f"plain {i}"], world_plain.env
        ),
        "task add, vikunja-sync hooks": lambda i: timed(
            ["task", "rc.confirmation=off", "rc.verbose=nothing", "add", f"hooked {i}"], world_hooks.env
        ),
        "hook alone (on-add, one task on stdin)": lambda i: timed([str(hook)], world_hooks.env, task_json(i)),
        "on-launch gate hook alone (sh + flock -s)": lambda i: timed([str(launch)], world_hooks.env, ""),
    }
    wall: dict[str, list[float]] = {name: [] for name in rows}
    cpu: dict[str, list[float]] = {name: [] for name in rows}
    order = list(rows)
    rng = random.Random(bl.SEED)
    for i in range(-WARMUP, args.runs):
        rng.shuffle(order)
        for name in order:
            elapsed, used = rows[name](i + WARMUP)
            if i >= 0:
                wall[name].append(elapsed)
                cpu[name].append(used)
    return wall, cpu


def gate_hook(world: bl.World, hooks: list[Path]) -> Path:
    """The on-launch hook, with the gate file in place as a daemon that has written once leaves it."""
    gate = world.state_dir / GATE_FILE
    launch = next(p for p in hooks if p.name.startswith("on-launch"))
    if str(gate) not in launch.read_text(encoding="utf-8"):
        raise bl.BenchError(f"{launch} does not wait on this world's gate file {gate}")
    gate.touch(mode=0o600)  # without it the hook skips flock; with it, it takes the lock shared
    return launch


def check_spooled(world: bl.World, expected: int) -> int:
    """Every hooked change is one spool file the drain can ingest, and the hook opened no sqlite."""
    if world.database.exists():
        raise bl.BenchError(f"the hook created {world.database}: it must not open sqlite")
    spooled = len(spool.pending_files(str(world.state_dir)))
    if spooled != expected:
        raise bl.BenchError(f"the spool holds {spooled} files, expected {expected}: the hook did not spool")
    store = Store(world.database)
    ingested = store.ingest_spool()
    queued = len(store.pending())
    if ingested != expected or queued != expected or store.outbox_depth() != expected:
        raise bl.BenchError(f"ingest_spool() moved {ingested} of {expected} spool files; the outbox holds {queued}")
    return spooled


def main(args) -> int:
    bl.print_header("hook overhead: task add with vs without the vikunja-sync hooks", args)
    with bl.temp_root("hook") as root:
        world_hooks = bl.make_world(root / "with-hooks", "http://127.0.0.1:9")
        world_plain = bl.make_world(root / "without-hooks", "http://127.0.0.1:9")
        hooks = world_hooks.install_hooks()
        hook = next(p for p in hooks if p.name.startswith("on-add"))
        launch = gate_hook(world_hooks, hooks)
        python = interpreter(hook)
        listener = WakeListener(world_hooks.state_dir / "wake.sock")
        try:
            samples, cpu = measure(args, world_hooks, world_plain, hook, launch)
            imports = median_imports(
                [
                    importtime([*python, "-X", "importtime", str(hook)], world_hooks.env, task_json(10**6 + k))
                    for k in range(IMPORT_RUNS)
                ]
            )
            baseline = importtime([*python, "-X", "importtime", "-c", "pass"], world_hooks.env, None)
        finally:
            listener.close()
        expected = 2 * (args.runs + WARMUP) + IMPORT_RUNS  # task adds + hook-alone runs + importtime runs
        if listener.wakes < expected:
            raise bl.BenchError(f"the wake socket got {listener.wakes} datagrams, expected {expected}")
        spooled = check_spooled(world_hooks, expected)

    print(
        bl.table(
            (*bl.SUMMARY_HEADERS, "cpu median ms"),
            [[*bl.summary_row(name, values), bl.ms(statistics.median(cpu[name]))] for name, values in samples.items()],
        )
    )
    hooked, plain = samples["task add, vikunja-sync hooks"], samples["task add, no hooks"]
    python_start = statistics.median(samples[FLOOR])
    added = statistics.median(hooked) - statistics.median(plain)
    paired = bl.Summary.of([h - p for h, p in zip(hooked, plain)])
    print(
        f"\nadded by the hooks: {bl.ms(added):.1f} ms median (paired differences: median {bl.ms(paired.median):.1f}, "
        f"p95 {bl.ms(paired.p95):.1f} ms) = {added / python_start:.2f} x the hook's bare interpreter start "
        f"({shown(python)} -c pass: {bl.ms(python_start):.1f} ms)"
    )
    cpu_added = statistics.median(cpu["task add, vikunja-sync hooks"]) - statistics.median(cpu["task add, no hooks"])
    print(f"CPU time added: {bl.ms(cpu_added):.1f} ms median (insensitive to other load on the machine)")
    print(
        f"every hooked change was spooled ({spooled} files, no sqlite opened), woke the stand-in daemon "
        f"({listener.wakes} wakes) and was accepted by Store.ingest_spool() afterwards"
    )

    names = {i.name for i in imports}
    extra = names - {i.name for i in baseline}
    heavy = [m for m in HEAVY_MODULES if m in names]
    print(
        f"\nimports on the hook path ({shown(python)} -X importtime {hook.name}, median of {IMPORT_RUNS} "
        f"runs): {len(names)} modules, {len(extra)} more than `{shown(python)} -c pass`; "
        f"{sum(i.self_us for i in imports) / 1000:.1f} ms importing (importtime itself slows imports down)"
    )
    slowest = sorted((i for i in imports if i.name in extra), key=lambda i: i.self_us, reverse=True)[:3]
    print(
        bl.table(
            ("slowest imports (self time)", "self ms", "cumulative ms"),
            [[i.name, i.self_us / 1000, i.cumulative_us / 1000] for i in slowest],
        )
    )
    print()
    print(
        bl.table(
            (f"imported by {HOOK_MODULE}", "cumulative ms"),
            [[i.name, i.cumulative_us / 1000] for i in direct_imports(imports, HOOK_MODULE)],
        )
    )
    print(f"heavy modules imported: {', '.join(heavy) if heavy else 'none'} (checked: {', '.join(HEAVY_MODULES)})")

    budgets = [bl.Budget("hook adds to task add (median)", bl.ms(added), BUDGET_ADDED_MS, "ms")]
    code = bl.finish(budgets, args)
    verdict = "PASS" if not heavy else "FAIL"
    print(f"  {verdict}  requests not imported on the hook path")
    if heavy and args.strict:
        return 3
    return code


if __name__ == "__main__":
    p = bl.parser(__doc__.split("\n", 1)[0])
    p.add_argument("--runs", type=int, help="runs per row (default 60, --quick 30)")
    parsed = p.parse_args()
    parsed.runs = parsed.runs or (30 if parsed.quick else 60)
    bl.run_main(main, parsed)
