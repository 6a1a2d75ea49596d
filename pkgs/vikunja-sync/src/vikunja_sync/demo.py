"""`vikunja-direct demo`: the whole system, end to end, against the bundled emulator.

Everything lives in a temporary directory: a Taskwarrior data dir with the hooks
installed, the sync's state, the config, the emulator and the daemon on loopback.
Each step is checked, timed and narrated; the exit code is 0 only if all held.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vikunja_sync import mapping
from vikunja_sync.emulator import Emulator
from vikunja_sync.hook import install_hooks
from vikunja_sync.sync import tw_project

TOKEN = "tk_" + "d3" * 20
SECRET = "demo-webhook-secret"
STEP_TIMEOUT = 15.0


class DemoFailed(Exception):
    pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what: str, check: Callable[[], Any], timeout: float = STEP_TIMEOUT) -> float:
    """Poll until `check()` is truthy; returns the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(0.005)
    raise DemoFailed(f"timed out after {timeout:.0f}s waiting for {what}")


class Demo:
    def __init__(self, root: Path, recovery: float) -> None:
        self.root = root
        self.recovery = recovery
        self.emulator = Emulator(token=TOKEN)
        self.port = _free_port()
        self.env: dict[str, str] = {}
        self.daemon: subprocess.Popen | None = None
        self.checks = 0

    # --- set-up -------------------------------------------------------------
    def setup(self) -> None:
        self.emulator.start()
        data = self.root / "taskdata"
        data.mkdir()
        (self.root / "taskrc").write_text(f"data.location={data}\nnews.version=99.99.99\n")
        (self.root / "token").write_text(TOKEN)
        (self.root / "secret").write_text(SECRET)
        config = self.root / "config.toml"
        config.write_text(
            f'state_dir = "{self.root / "state"}"\n'
            f'[vikunja]\nurl = "{self.emulator.url}"\ntoken_file = "{self.root / "token"}"\ntimeout = 2\n'
            f'[webhook]\nsecret_file = "{self.root / "secret"}"\nlisten = "127.0.0.1:{self.port}"\n'
            f'[push]\nfallback = "none"\ndrain_interval = 1\n'
            f"[breaker]\nfailure_threshold = 3\nrecovery_timeout = {self.recovery}\n"
        )
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("TASK", "VIKUNJA"))},
            "TASKRC": str(self.root / "taskrc"),
            "TASKDATA": str(data),
            "VIKUNJA_SYNC_CONFIG": str(config),
        }
        install_hooks(data / "hooks", self.root / "state")
        self.daemon = subprocess.Popen(
            [sys.executable, "-m", "vikunja_sync", "serve"],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=open(self.root / "daemon.log", "wb"),  # noqa: SIM115 - closed with the process
        )
        wait_for("the daemon to answer /healthz", self.healthz)
        self.cli("provision-webhooks", "--target-url", f"http://127.0.0.1:{self.port}/webhook")

    def close(self) -> None:
        if self.daemon and self.daemon.poll() is None:
            self.daemon.terminate()
            self.daemon.wait(10)
        self.emulator.stop()

    # --- helpers ------------------------------------------------------------
    def healthz(self) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1) as resp:
                return json.loads(resp.read())
        except OSError:
            return None

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "vikunja_sync", *args]
        return subprocess.run(cmd, env=self.env, capture_output=True, text=True, check=False, timeout=60)

    def task(self, *args: str) -> None:
        cmd = ["task", "rc.confirmation=off", "rc.verbose=nothing", *args]
        subprocess.run(cmd, env=self.env, capture_output=True, text=True, check=True, timeout=60)

    def tw_tasks(self) -> list[dict[str, Any]]:
        out = subprocess.run(
            ["task", "rc.json.array=on", "rc.hooks=off", "export"],
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return [t for t in json.loads(out or "[]") if t.get("status") != "deleted"]

    def remote(self, title: str) -> dict[str, Any] | None:
        return next((t for t in self.emulator.tasks() if t["title"] == title), None)

    def local(self, description: str) -> dict[str, Any] | None:
        return next((t for t in self.tw_tasks() if t["description"] == description), None)

    def step(self, text: str, seconds: float | None = None) -> None:
        self.checks += 1
        timing = f" ({seconds * 1000:.0f} ms)" if seconds is not None else ""
        print(f"  ok  {text}{timing}", flush=True)

    def breaker_lines(self) -> list[str]:
        out = self.cli("diagnose").stdout.splitlines()
        return out[out.index("=== Circuit Breaker ===") :]

    # --- the story ------------------------------------------------------------
    def run(self) -> None:
        print(f"Emulated Vikunja at {self.emulator.url}; sync daemon on 127.0.0.1:{self.port}\n")
        print("1. Taskwarrior -> Vikunja, through the hooks and the daemon")
        start = time.monotonic()
        self.task("add", "Buy milk", "project:Home", "+shopping", "due:2030-01-15", "priority:M")
        wait_for("'Buy milk' in Vikunja", lambda: self.remote("Buy milk"))
        self.step("task add 'Buy milk' -> created in Vikunja", time.monotonic() - start)
        uuid = self.local("Buy milk")["uuid"]
        start = time.monotonic()
        self.task(uuid, "modify", "priority:H", "+errand")
        wait_for(
            "priority and label in Vikunja",
            lambda: (t := self.remote("Buy milk")) and t["priority"] == 3 and len(t["labels"] or []) == 2,
        )
        self.step("task modify priority:H +errand -> priority 3, labels shopping+errand", time.monotonic() - start)
        start = time.monotonic()
        self.task(uuid, "done")
        wait_for("done in Vikunja", lambda: (self.remote("Buy milk") or {}).get("done"))
        self.step("task done -> done in Vikunja", time.monotonic() - start)

        print("\n2. Vikunja -> Taskwarrior, through a signed webhook")
        project = next(p for p in self.emulator.projects() if p["title"] == "Home")
        start = time.monotonic()
        created = self.emulator.create_task(project["id"], title="Call the plumber", priority=5)
        wait_for("the new task in Taskwarrior", lambda: self.local("Call the plumber"))
        self.step("task created in the Vikunja UI -> in Taskwarrior, priority H", time.monotonic() - start)
        assert self.local("Call the plumber")["priority"] == "H"
        start = time.monotonic()
        self.emulator.update_task(created["id"], title="Call the plumber today")
        wait_for("the renamed task in Taskwarrior", lambda: self.local("Call the plumber today"))
        self.step("title edited in Vikunja -> description in Taskwarrior", time.monotonic() - start)

        print("\n3. Vikunja fails: the breaker opens and changes wait in the outbox")
        self.emulator.set_fault("error500")
        for i in range(3):
            self.task("add", f"Offline change {i + 1}")
            wait_for(f"failure {i + 1} to be counted", lambda n=i + 1: self.breaker_state()["failures"] >= n)
        wait_for("the breaker to open", lambda: self.breaker_state()["state"] == "open")
        self.step("3 failed pushes -> breaker OPEN")
        before = self.emulator.connections
        for i in range(3, 6):
            self.task("add", f"Offline change {i + 1}")
        time.sleep(0.3)
        depth = self.healthz()["outbox"]
        if self.emulator.connections != before or depth < 6:
            raise DemoFailed(
                f"expected 6 queued and no connections, got {depth} and {self.emulator.connections - before}"
            )
        self.step(f"3 more changes queued with 0 connections to Vikunja (outbox: {depth})")
        print("      " + "\n      ".join(self.breaker_lines()))

        print("\n4. Vikunja recovers: one trial closes the breaker and the outbox drains")
        self.emulator.set_fault("none")
        start = time.monotonic()
        wait_for("the outbox to drain", lambda: self.healthz()["outbox"] == 0, timeout=self.recovery + 15)
        self.step("after the recovery timeout the trial succeeded; outbox empty", time.monotonic() - start)
        if self.breaker_state()["state"] != "closed":
            raise DemoFailed("the breaker did not close after recovery")
        print("      " + "\n      ".join(self.breaker_lines()))

        print("\n5. Both sides hold the same tasks")
        self.compare_sides()

    def breaker_state(self) -> dict[str, Any]:
        return json.loads(self.cli("breaker", "status", "--json").stdout)

    def compare_sides(self) -> None:
        titles = {p["id"]: tw_project(p["title"], "inbox") for p in self.emulator.projects()}
        remote = {t["title"]: mapping.fields_from_vikunja(t, titles[t["project_id"]]) for t in self.emulator.tasks()}
        local = {t["description"]: mapping.fields_from_tw(t, "inbox") for t in self.tw_tasks()}
        if remote.keys() != local.keys():
            raise DemoFailed(
                f"task sets differ: only TW {local.keys() - remote.keys()}, only Vikunja {remote.keys() - local.keys()}"
            )
        differing = [title for title in local if local[title] != remote[title]]
        if differing:
            raise DemoFailed(f"tasks differ between the sides: {differing}")
        self.step(f"{len(local)} tasks, every synced field equal on both sides")


def run_demo(recovery: float = 5.0) -> int:
    with tempfile.TemporaryDirectory(prefix="vikunja-sync-demo-") as tmp:
        demo = Demo(Path(tmp), recovery)
        try:
            demo.setup()
            demo.run()
        except (DemoFailed, AssertionError, subprocess.CalledProcessError) as exc:
            print(f"\nDEMO FAILED: {exc}", file=sys.stderr)
            log = Path(tmp) / "daemon.log"
            if log.exists():
                print("daemon log (last lines):\n" + "\n".join(log.read_text().splitlines()[-15:]), file=sys.stderr)
            return 1
        finally:
            demo.close()
    print(f"\nDemo passed: {demo.checks} checks.")
    return 0
