"""Vikunja -> Taskwarrior: real signed webhooks from the emulator into a running `serve`."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from vikunja_sync.store import Store


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


class Daemon:
    def __init__(self, world) -> None:
        self.world = world
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    def start(self) -> Daemon:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "vikunja_sync", "serve", "--listen", f"127.0.0.1:{self.port}"],
            env=self.world.env,
            stdout=subprocess.DEVNULL,
            stderr=open(self.world.root / "daemon.log", "ab"),  # noqa: SIM115 - lives as long as the process
        )
        wait_for(self.health, what="daemon health")
        return self

    def health(self) -> dict | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1) as resp:
                return json.loads(resp.read())
        except OSError:
            return None

    def settled(self) -> bool:
        h = self.health()
        return bool(h) and h["inbox"] == 0 and h["outbox"] == 0 and self.world.emulator.wait_for_webhooks(0.05)

    def settle(self, timeout: float = 30.0) -> None:
        # Twice in a row: a delivery may be between the emulator and the inbox.
        wait_for(lambda: self.settled() and (time.sleep(0.1) or self.settled()), timeout, "sync to settle")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(15)


@pytest.fixture
def daemon(world):
    d = Daemon(world).start()
    proc = world.cli("provision-webhooks", "--target-url", f"http://127.0.0.1:{d.port}/webhook")
    assert proc.returncode == 0, proc.stderr
    yield d
    if d.proc and d.proc.poll() is None:
        d.stop()


def tw_by_description(world, description: str) -> dict | None:
    live = [t for t in world.export() if t["description"] == description and t["status"] != "deleted"]
    assert len(live) <= 1, f"duplicate TW tasks for {description!r}"
    return live[0] if live else None


def inbox_project(emu) -> dict:
    return next(p for p in emu.projects() if p["title"].lower() == "inbox")


def test_each_event_kind_reaches_taskwarrior(world, daemon):
    emu = world.emulator
    home = emu.create_project("Home")
    garden = emu.create_project("Garden", parent_project_id=home["id"])
    provision = world.cli("provision-webhooks", "--target-url", f"http://127.0.0.1:{daemon.port}/webhook")
    assert provision.returncode == 0
    created = emu.create_task(
        home["id"], title="Paint fence", priority=4, due_date="2030-05-01T10:00:00+02:00", description="<p>white</p>"
    )
    task = wait_for(lambda: tw_by_description(world, "Paint fence"), what="created task")
    assert (task["priority"], task["project"], task["due"]) == ("H", "Home", "20300501T080000Z")
    assert [a["description"] for a in task["annotations"]] == ["note: white"]

    emu.add_label_to_task(created["id"], "outdoor")
    wait_for(lambda: tw_by_description(world, "Paint fence").get("tags") == ["outdoor"], what="label added")
    emu.remove_label_from_task(created["id"], "outdoor")
    wait_for(lambda: "tags" not in tw_by_description(world, "Paint fence"), what="label removed")

    emu.update_task(created["id"], project_id=garden["id"])  # sub-project: the webhook comes via Home
    wait_for(lambda: tw_by_description(world, "Paint fence")["project"] == "Garden", what="moved project")
    emu.update_task(created["id"], done=True)
    wait_for(lambda: tw_by_description(world, "Paint fence")["status"] == "completed", what="completed")
    emu.update_task(created["id"], done=False, due_date=None)
    wait_for(
        lambda: (t := tw_by_description(world, "Paint fence"))["status"] == "pending" and "due" not in t,
        what="un-completed, due cleared",
    )
    emu.delete_task(created["id"])
    wait_for(lambda: tw_by_description(world, "Paint fence") is None, what="deleted")
    daemon.settle()
    assert len(world.export("status:deleted")) == 1


def test_echo_of_our_own_push_changes_nothing(world, daemon):
    world.install_hooks()
    world.task("add", "echo me")
    daemon.settle()
    uuid = world.last_uuid()
    world.task(uuid, "modify", "priority:L", "+echo")
    [before] = world.export(f"uuid:{uuid}")
    wait_for(lambda: any(t["priority"] == 1 for t in world.emulator.tasks()), what="push")
    daemon.settle()
    deliveries = [d for d in world.emulator.webhook_deliveries if d["event"] == "task.updated"]
    assert deliveries and all(d["status"] == 202 for d in deliveries)
    [after] = world.export(f"uuid:{uuid}")
    assert after == before  # `modified` included: the echo was recognised


def test_webhook_command_is_idempotent(world, tmp_path):
    emu = world.emulator
    task = emu.create_task(inbox_project(emu)["id"], title="from a file")
    payload = {"event_name": "task.updated", "time": task["updated"], "data": {"task": task}}
    path = tmp_path / "payload.json"
    path.write_text(json.dumps(payload))
    first = world.cli("webhook", str(path))
    assert first.returncode == 0 and json.loads(first.stdout)["action"] == "created"
    second = world.cli("webhook", "-", stdin=json.dumps(payload))
    assert second.returncode == 0 and json.loads(second.stdout)["action"] == "unchanged"
    assert len([t for t in world.export() if t["description"] == "from a file"]) == 1
    assert world.cli("webhook", "-", stdin="[1]").returncode == 1
    ignored = world.cli("webhook", "-", stdin='{"event_name": "task.comment.created", "data": {}}')
    assert json.loads(ignored.stdout)["action"] == "ignored"


def test_stale_event_never_overwrites_a_newer_change(world):
    emu = world.emulator
    task = emu.create_task(inbox_project(emu)["id"], title="version 1")
    old = {"event_name": "task.updated", "data": {"task": task}}
    time.sleep(1.1)  # Vikunja's timestamps have second precision
    newer = emu.update_task(task["id"], title="version 2")
    engine = world.engine()
    assert engine.apply_payload({"event_name": "task.updated", "data": {"task": newer}}).action == "created"
    assert engine.apply_payload(old).action == "unchanged"
    engine.close()
    assert [t["description"] for t in world.export()] == ["version 2"]


def test_kill_9_after_202_before_apply_applies_once_after_restart(world, daemon):
    emu = world.emulator
    lock = os.open(world.settings.state_dir / "sync.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX)  # the apply worker blocks right before applying
    try:
        emu.create_task(inbox_project(emu)["id"], title="survives a crash")
        wait_for(lambda: any(d["status"] == 202 for d in emu.webhook_deliveries), what="202 from serve")
        assert Store(world.settings.database).inbox_depth() == 1
        daemon.stop(signal.SIGKILL)
    finally:
        os.close(lock)
    assert tw_by_description(world, "survives a crash") is None
    daemon.start()
    wait_for(lambda: tw_by_description(world, "survives a crash"), what="applied after restart")
    daemon.settle()
    assert len([t for t in world.export() if t["description"] == "survives a crash"]) == 1


def test_burst_of_500_webhooks_with_concurrent_tw_edits(world, daemon):
    world.install_hooks()
    emu = world.emulator
    project = inbox_project(emu)
    remote_ids = [emu.create_task(project["id"], title=f"remote {i:02d}")["id"] for i in range(50)]
    for i in range(10):
        world.task("add", f"local {i}")
    daemon.settle(60)
    local_uuids = [t["uuid"] for t in world.export() if t["description"].startswith("local")]

    def remote_edits(round_: int) -> None:
        for vid in remote_ids:
            emu.update_task(vid, priority=(round_ % 5) + 1, percent_done=round_ / 10)

    def local_edits() -> None:
        for n in range(3):
            for uuid in local_uuids:
                world.task(uuid, "modify", f"local edit {n} {uuid[:8]}")

    start = time.monotonic()
    with ThreadPoolExecutor(2) as pool:
        local = pool.submit(local_edits)
        for round_ in range(10):  # 10 rounds x 50 tasks = 500 webhooks
            remote_edits(round_)
        burst_seconds = time.monotonic() - start
        local.result()
    daemon.settle(120)
    print(f"500 webhooks fired in {burst_seconds:.2f}s")
    tw = [t for t in world.export() if t["status"] != "deleted"]
    gone = [(t["description"], t["status"]) for t in world.export() if t["status"] == "deleted"]
    assert gone == []
    remote_now = {t["title"] for t in emu.tasks()}
    assert remote_now - {t["description"] for t in tw} == set()
    assert len(tw) == 60 and len({t["description"] for t in tw}) == 60  # nothing lost, no duplicates
    remote_titles = {t["title"]: t for t in emu.tasks()}
    for t in tw:
        assert t["description"] in remote_titles
        if t["description"].startswith("remote"):
            assert t["priority"] == "H"  # the last round set priority 5 (read as H)
    failed = [d for d in emu.webhook_deliveries if d["status"] != 202]
    assert failed == []
