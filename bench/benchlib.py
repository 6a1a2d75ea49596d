"""Shared pieces of the bench scripts: machine facts, statistics, tables, budgets, a throwaway world.

Each script in this folder runs standalone (``.venv/bin/python bench/<name>.py``) and imports this
module from its own directory. Everything a script creates lives in one temporary directory; the
only network used is loopback.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from vikunja_sync.hook import install_hooks

TOKEN = "tk_" + "be" * 20
SECRET = "bench-webhook-secret"
SEED = 20240601
WAIT = 30.0


# --- machine ------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _filesystem(path: Path) -> str:
    """The filesystem type holding `path` (sqlite's fsync cost depends on it)."""
    best, kind = "", "unknown"
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return kind
    resolved = str(path.resolve())
    for line in mounts:
        fields = line.split()
        if len(fields) < 3 or len(fields[1]) < len(best):
            continue
        if resolved == fields[1] or resolved.startswith(fields[1].rstrip("/") + "/"):
            best, kind = fields[1], f"{fields[2]} ({fields[0]} on {fields[1]})"
    return kind


def _task_version() -> str:
    binary = shutil.which("task")
    if binary is None:
        return "not installed"
    proc = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    return proc.stdout.strip() or "unknown"


def machine() -> dict[str, str]:
    return {
        "cpus (nproc)": str(len(os.sched_getaffinity(0))),
        "cpu model": _cpu_model(),
        "kernel": platform.release(),
        "python": f"{platform.python_version()} ({sys.executable})",
        "task --version": _task_version(),
        "temp dir fs": _filesystem(Path(tempfile.gettempdir())),
    }


def print_header(title: str, args: argparse.Namespace) -> None:
    sys.stdout.reconfigure(line_buffering=True)  # keep our lines in order with the sync's log lines on stderr
    print(f"== {title} ==")
    for key, value in machine().items():
        print(f"  {key:<15} {value}")
    print(f"  {'mode':<15} {'quick' if args.quick else 'full'}; seed {SEED}")
    print(flush=True)


# --- statistics and tables ------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile: a value that was actually measured."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Summary:
    n: int
    median: float
    p95: float
    minimum: float
    maximum: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        if not values:
            raise ValueError("no samples")
        return cls(len(values), statistics.median(values), percentile(values, 95), min(values), max(values))


def ms(seconds: float) -> float:
    return seconds * 1000.0


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain aligned table: first column left, the rest right."""
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"
    return str(value)


def summary_row(name: str, values_seconds: Sequence[float]) -> list[Any]:
    s = Summary.of(values_seconds)
    return [name, s.n, ms(s.median), ms(s.p95), ms(s.minimum), ms(s.maximum)]


SUMMARY_HEADERS = ("measurement", "runs", "median ms", "p95 ms", "min ms", "max ms")


# --- budgets --------------------------------------------------------------------------


@dataclass(frozen=True)
class Budget:
    """One stated budget: `measured` must be at most `limit`."""

    name: str
    measured: float
    limit: float
    unit: str

    @property
    def passed(self) -> bool:
        return self.measured <= self.limit

    def line(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        miss = "" if self.passed else f" (over by {self.measured - self.limit:.2f} {self.unit})"
        return f"{verdict}  {self.name}: {self.measured:.2f} {self.unit} <= {self.limit:g} {self.unit}{miss}"


def finish(
    budgets: Sequence[Budget], args: argparse.Namespace, empty: str = "none stated for this benchmark: figures only"
) -> int:
    """Print the verdicts (or why there are none); exit 0 unless --strict and a budget was missed."""
    print("\nBudgets")
    if not budgets:
        print(f"  ({empty})")
    for budget in budgets:
        print("  " + budget.line())
    missed = [b for b in budgets if not b.passed]
    return 3 if missed and args.strict else 0


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="fewer runs and sizes (a smoke run, figures are noisier)")
    p.add_argument("--strict", action="store_true", help="exit 3 when a budget is missed (default: exit 0)")
    return p


# --- waiting ----------------------------------------------------------------------------


class BenchError(Exception):
    """The benchmark itself went wrong (not a missed budget): the figures would be meaningless."""


def wait_until(what: str, check: Callable[[], Any], timeout: float = WAIT, pause: float = 0.005) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(pause)
    raise BenchError(f"timed out after {timeout:.0f} s waiting for {what}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- a user's machine in a temp dir --------------------------------------------------------


@dataclass
class World:
    """A Taskwarrior data dir, the sync's state and config, all under `root`."""

    root: Path
    env: dict[str, str]
    listen_port: int

    @property
    def taskdata(self) -> Path:
        return self.root / "taskdata"

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    @property
    def database(self) -> Path:
        return self.state_dir / "sync.sqlite3"

    def install_hooks(self) -> list[Path]:
        return install_hooks(self.taskdata / "hooks", state_dir=self.state_dir, python=sys.executable)

    def task(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        """The real `task`, as the user runs it (hooks on)."""
        return subprocess.run(
            ["task", "rc.confirmation=off", "rc.verbose=nothing", *args],
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            check=check,
            timeout=600,
        )

    def export(self, *filters: str) -> list[dict[str, Any]]:
        out = self.task("rc.hooks=off", "rc.json.array=on", *filters, "export").stdout
        return json.loads(out) if out.strip() else []

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [sys.executable, "-m", "vikunja_sync", *args],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
            timeout=900,
        )
        if check and proc.returncode != 0:
            raise BenchError(f"vikunja-direct {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}")
        return proc


def make_world(
    root: Path,
    vikunja_url: str,
    *,
    recovery: float = 60.0,
    drain_interval: float = 300.0,
    timeout: float = 5.0,
) -> World:
    """Config as the NixOS module writes it, with push.fallback = "none" (the daemon drains)."""
    taskdata = root / "taskdata"
    taskdata.mkdir(parents=True)
    taskrc = root / "taskrc"
    taskrc.write_text(f"data.location={taskdata}\nhooks=on\nnews.version=99.99.99\n")
    (root / "token").write_text(TOKEN + "\n")
    (root / "secret").write_text(SECRET)
    (root / "state").mkdir(mode=0o700)  # as systemd's StateDirectory= would (`reconcile` expects it)
    port = free_port()
    config = root / "config.toml"
    config.write_text(
        f'state_dir = "{root / "state"}"\n'
        'default_project = "inbox"\n'
        f'[vikunja]\nurl = "{vikunja_url}"\ntoken_file = "{root / "token"}"\ntimeout = {timeout}\n'
        f'[webhook]\nsecret_file = "{root / "secret"}"\nlisten = "127.0.0.1:{port}"\n'
        f'[push]\nfallback = "none"\ndrain_interval = {drain_interval}\n'
        f"[breaker]\nfailure_threshold = 3\nrecovery_timeout = {recovery}\n"
        "[reconcile]\nmax_delete_share = 0.5\n"
    )
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(root),
        "TASKRC": str(taskrc),
        "TASKDATA": str(taskdata),
        "VIKUNJA_SYNC_CONFIG": str(config),
        "LANG": "C.UTF-8",
    }
    if os.environ.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return World(root, env, port)


@contextmanager
def temp_root(prefix: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=f"vikunja-bench-{prefix}-") as tmp:
        yield Path(tmp)


# --- the daemon ------------------------------------------------------------------------------


class Serve:
    """`vikunja-direct serve` as a subprocess, logging to <root>/serve.log."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.log_path = world.root / "serve.log"
        self.proc: subprocess.Popen | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.world.listen_port}"

    def start(self) -> Self:
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "vikunja_sync", "serve"],
                env=self.world.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        wait_until("serve to answer /healthz", self.health)
        return self

    def health(self) -> dict[str, Any] | None:
        if self.proc is not None and self.proc.poll() is not None:
            raise BenchError(f"serve exited with {self.proc.returncode}; see {self.log_tail()}")
        try:
            with urllib.request.urlopen(self.base + "/healthz", timeout=2) as resp:
                return json.loads(resp.read())
        except OSError:
            return None

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def peak_rss_kib(self) -> int:
        """VmHWM: the resident-set high-water mark of the serve process."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        raise BenchError("no VmHWM in /proc/<pid>/status")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_main(main: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> None:
    """Run, and turn a BenchError into a clear message and exit 1."""
    try:
        code = main(args)
    except BenchError as exc:
        print(f"\nBENCHMARK ERROR: {exc}", file=sys.stderr)
        code = 1
    sys.exit(code)
