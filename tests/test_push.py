"""Taskwarrior -> Vikunja: real `task` with the hooks, the outbox, the drain, the emulator."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import make_world
from vikunja_sync.store import Store


def titles(emulator) -> list[str]:
    return sorted(t["title"] for t in emulator.tasks())


def only(emulator, title: str) -> dict:
    [task] = [t for t in emulator.tasks() if t["title"] == title]
    return task


def label_titles(task: dict) -> set[str]:
    return {lbl["title"] for lbl in task["labels"] or []}


def drain(world) -> None:
    engine = world.engine()
    try:
        report = engine.drain()
    finally:
        engine.close()
    assert report.remaining == 0, report


def test_lifecycle_reaches_vikunja_and_keeps_unowned_fields(world):
    world.install_hooks()
    emu = world.emulator
    world.task("add", "Write report", "project:Work", "tags:office,q-4", "due:2030-03-01T09:00:00Z", "priority:H")
    uuid = world.last_uuid()
    drain(world)
    task = only(emu, "Write report")
    work = next(p for p in emu.projects() if p["title"] == "Work")
    assert task["project_id"] == work["id"] and task["priority"] == 3
    assert label_titles(task) == {"office", "q-4"}  # hyphenated tags stay whole
    assert task["due_date"].startswith("2030-03-01T") and task["done"] is False
    [exported] = world.export(f"uuid:{uuid}")
    assert "vikunjaid" not in exported  # not written while the user may be running `task`...
    assert world.cli("reconcile", "--full").returncode == 0
    [exported] = world.export(f"uuid:{uuid}")
    assert int(exported["vikunjaid"]) == task["id"]  # ...but by reconcile, with hooks off

    # Fields the sync does not own, and precision TW cannot express, must survive updates.
    emu.update_task(task["id"], hex_color="ff8800", percent_done=0.5, priority=5, is_favorite=True)
    world.task(uuid, "modify", "Write the report", "-office", "+writing", "project:Home")
    drain(world)
    task = only(emu, "Write the report")
    home = next(p for p in emu.projects() if p["title"] == "Home")
    assert task["project_id"] == home["id"] and label_titles(task) == {"q-4", "writing"}
    assert (task["hex_color"], task["percent_done"], task["priority"], task["is_favorite"]) == ("ff8800", 0.5, 5, True)

    world.task(uuid, "annotate", "note: first paragraph")
    world.task(uuid, "done")
    drain(world)
    task = only(emu, "Write the report")
    assert task["done"] is True and "first paragraph" in task["description"]

    world.task(uuid, "modify", "status:pending")
    drain(world)
    assert only(emu, "Write the report")["done"] is False

    world.task(uuid, "delete")
    drain(world)
    assert titles(emu) == []
    assert Store(world.settings.database).link_for_uuid(uuid) is None


def test_push_command_exit_codes_and_json(world):
    world.task("add", "single push")  # hooks not installed: push by hand
    uuid = world.last_uuid()
    proc = world.cli("push", uuid)
    assert proc.returncode == 0, proc.stderr
    line = json.loads(proc.stdout.splitlines()[-1])
    assert line["success"] is True and line["action"] == "created" and line["uuid"] == uuid
    assert line["vikunja_id"] == only(world.emulator, "single push")["id"]
    proc = world.cli("push", uuid)
    assert json.loads(proc.stdout)["action"] == "unchanged"
    world.cli("breaker", "trip")
    world.task(uuid, "modify", "single push, edited")
    proc = world.cli("push", uuid)
    assert proc.returncode == 75 and json.loads(proc.stdout)["action"] == "circuit_breaker_open"
    assert Store(world.settings.database).pending_for(uuid) is not None  # still queued
    assert world.cli("push", "not-a-uuid").returncode == 1


def test_legacy_annotation_matches_exactly(world):
    emu = world.emulator
    inbox = next(p for p in emu.projects() if p["title"].lower() == "inbox")
    ids = [emu.create_task(inbox["id"], title=f"legacy {i}")["id"] for i in range(13)]
    twelve = ids[11]
    world.task("add", "legacy renamed")
    uuid = world.last_uuid()
    world.task(uuid, "annotate", f"vikunja_id:{twelve}")
    world.task(uuid, "annotate", f"vikunja_id:{twelve}3 is not mine")
    assert world.cli("push", uuid).returncode == 0
    assert emu.get_task(twelve)["title"] == "legacy renamed"
    assert len(emu.tasks()) == 13


def test_outage_of_200_changes_loses_nothing(tmp_path, emulator):
    world = make_world(tmp_path, emulator, breaker={"failure_threshold": 3, "recovery_timeout": 1})
    world.install_hooks()
    engine = world.engine()
    emulator.go_down()
    for i in range(200):
        world.task("add", f"offline {i:03d}")
    for _ in range(3):
        report = engine.drain()
        assert report.stopped_by == "queued"
    assert engine.breaker.snapshot().state == "open"
    attempts = engine.client.calls
    for _ in range(5):
        report = engine.drain()
        assert report.stopped_by == "circuit_breaker_open" and report.remaining == 200
    assert engine.client.calls == attempts  # an open breaker makes no connection at all
    emulator.come_up()
    time.sleep(1.1)
    emulator.reset_counters()
    report = engine.drain()
    engine.close()
    assert (report.pushed, report.remaining) == (200, 0)
    assert titles(emulator) == [f"offline {i:03d}" for i in range(200)]
    assert engine.breaker.snapshot().state == "closed"


def test_concurrent_adds_arrive_exactly_once(world):
    world.install_hooks()

    def add(i: int) -> int:
        return world.task("add", f"parallel {i}", check=False).returncode

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(add, range(8))) == [0] * 8
    drain(world)
    assert titles(world.emulator) == sorted(f"parallel {i}" for i in range(8))


def test_delete_is_never_retried_as_update(world):
    world.install_hooks()
    world.task("add", "to delete")
    uuid = world.last_uuid()
    drain(world)
    vid = only(world.emulator, "to delete")["id"]
    world.emulator.set_fault("error500")
    world.task(uuid, "delete")
    engine = world.engine()
    assert engine.drain().stopped_by == "queued"
    [entry] = Store(world.settings.database).pending()
    assert entry.kind == "delete"
    world.emulator.set_fault("none")
    world.emulator.delete_task(vid)  # deleted in Vikunja meanwhile: 404 means done
    report = engine.drain()
    engine.close()
    assert report.remaining == 0 and [o.action for o in report.outcomes] == ["unchanged"]
    assert world.emulator.tasks() == []


@pytest.mark.parametrize("kill_after", [5, 25])
def test_kill_9_during_a_drain_never_duplicates(tmp_path, emulator, kill_after):
    world = make_world(tmp_path, emulator)
    world.install_hooks()
    for i in range(60):
        world.task("add", f"crash {i:02d}")
    proc = subprocess.Popen(
        [sys.executable, "-m", "vikunja_sync", "process-queue"],
        env=world.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while len(emulator.tasks()) < kill_after and time.monotonic() < deadline:
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 0 < len(emulator.tasks()) < 60, "the drain must be killed mid-way"
    done = world.cli("process-queue")
    assert done.returncode == 0, done.stdout + done.stderr
    assert titles(emulator) == [f"crash {i:02d}" for i in range(60)]
