"""Two-way reconciliation with real Taskwarrior and the emulator (no webhooks delivered)."""

from __future__ import annotations

import json
import math
import time

from vikunja_sync import mapping
from vikunja_sync.store import Store
from vikunja_sync.sync import tw_project


def reconcile(world, *args: str) -> tuple[int, dict, list[str]]:
    proc = world.cli("reconcile", *args)
    lines = proc.stdout.splitlines()
    assert lines, proc.stderr
    return proc.returncode, json.loads(lines[-1]), lines[:-1]


def live_tw(world) -> dict[str, dict]:
    return {t["description"]: t for t in world.export() if t["status"] != "deleted"}


def assert_sides_equal(world) -> None:
    projects = {p["id"]: tw_project(p["title"], "inbox") for p in world.emulator.projects()}
    remote = {t["title"]: mapping.fields_from_vikunja(t, projects[t["project_id"]]) for t in world.emulator.tasks()}
    local = {d: mapping.fields_from_tw(t, "inbox") for d, t in live_tw(world).items()}
    assert local == remote


def synced_world(world, n: int = 8) -> dict[str, str]:
    """n tasks pushed through the hooks; returns description -> uuid."""
    world.install_hooks()
    for i in range(n):
        world.task("add", f"task {i}", "project:Home" if i % 2 else "project:Work")
    engine = world.engine()
    assert engine.drain().remaining == 0
    engine.close()
    assert len(world.emulator.tasks()) == n
    return {d: t["uuid"] for d, t in live_tw(world).items()}


def test_diverged_sides_converge_in_one_run_and_the_second_plans_nothing(world):
    uuids = synced_world(world)
    emu = world.emulator
    by_title = {t["title"]: t for t in emu.tasks()}
    # Taskwarrior side, while Vikunja was unreachable (the outbox is dropped to force reconcile to do it all).
    world.task(uuids["task 0"], "modify", "task 0 renamed in TW", "+tw")
    world.task(uuids["task 1"], "done")
    world.task(uuids["task 2"], "delete")
    world.task("add", "new in TW", "project:Home")
    # Vikunja side, with its webhooks lost.
    emu.update_task(by_title["task 3"]["id"], title="task 3 renamed in Vikunja", priority=4)
    emu.update_task(by_title["task 4"]["id"], done=True)
    emu.delete_task(by_title["task 5"]["id"])
    emu.create_task(by_title["task 3"]["project_id"], title="new in Vikunja", due_date="2031-01-02T03:04:05Z")
    # Both sides edit task 6: Vikunja's edit is the later one and must win.
    world.task(uuids["task 6"], "modify", "priority:L")
    time.sleep(1.1)
    emu.update_task(by_title["task 6"]["id"], priority=2)
    with Store(world.settings.database)._transaction() as conn:
        conn.execute("DELETE FROM outbox")

    code, summary, _ = reconcile(world, "--full")
    assert code == 0 and summary["success"], summary
    tw = live_tw(world)
    assert "task 3 renamed in Vikunja" in tw and tw["task 3 renamed in Vikunja"]["priority"] == "H"
    assert tw["task 4"]["status"] == "completed" and "task 5" not in tw
    assert tw["new in Vikunja"]["due"] == "20310102T030405Z"
    assert tw["task 6"]["priority"] == "M"
    remote = {t["title"]: t for t in emu.tasks()}
    assert "task 2" not in remote and remote["task 1"]["done"] is True
    assert {lbl["title"] for lbl in remote["task 0 renamed in TW"]["labels"]} == {"tw"}
    assert "new in TW" in remote
    assert_sides_equal(world)

    code, summary, plan = reconcile(world, "--full", "--dry-run")
    assert code == 0 and summary["changes"] == 0 and plan == []


def test_dry_run_prints_the_plan_and_changes_nothing(world):
    synced_world(world, 3)
    emu = world.emulator
    target = emu.tasks()[0]
    emu.update_task(target["id"], title="changed remotely")
    before_tw, before_remote = world.export(), emu.tasks()
    code, summary, plan = reconcile(world, "--full", "--dry-run")
    assert code == 0 and summary["action"] == "planned" and summary["changes"] == 1
    assert len(plan) == 1 and plan[0].startswith("pull") and "changed remotely" in plan[0]
    assert world.export() == before_tw and emu.tasks() == before_remote


def test_a_failed_listing_changes_nothing(world):
    synced_world(world, 3)
    emu = world.emulator
    emu.update_task(emu.tasks()[0]["id"], title="would be pulled")
    world.task("add", "would be pushed")
    before_tw, before_remote = world.export(), emu.tasks()
    emu.reset_counters()
    emu.set_fault("error500")
    code, summary, _ = reconcile(world, "--full")
    assert code == 75 and summary["action"] == "aborted" and "nothing was changed" in summary["detail"]
    assert all(method == "GET" for method, _ in emu.requests)
    emu.set_fault("none")
    assert world.export() == before_tw and emu.tasks() == before_remote


def test_mass_deletion_needs_force(world):
    synced_world(world, 6)
    emu = world.emulator
    for task in emu.tasks()[:5]:
        emu.delete_task(task["id"])
    code, summary, _ = reconcile(world, "--full")
    assert code == 1 and "--force" in summary["detail"] and "max_delete_share" in summary["detail"]
    assert len(live_tw(world)) == 6
    code, summary, _ = reconcile(world, "--full", "--force")
    assert code == 0 and summary["counts"] == {"delete-local": 5}
    assert list(live_tw(world)) == [emu.tasks()[0]["title"]]


def test_cost_grows_with_pages_not_tasks(world):
    emu = world.emulator
    inbox = next(p for p in emu.projects() if p["title"].lower() == "inbox")
    n = 120
    for i in range(n):
        emu.create_task(inbox["id"], title=f"bulk {i:03d}")
    code, summary, _ = reconcile(world, "--full")
    assert code == 0 and summary["counts"] == {"pull": n}
    pages = math.ceil(n / 50)
    emu.reset_counters()
    code, summary, _ = reconcile(world, "--full")
    assert summary["changes"] == 0
    task_lists = [path for method, path in emu.requests if path.endswith("/tasks")]
    assert len(task_lists) == pages and summary["list_calls"] == pages
    writes = [r for r in emu.requests if r[0] != "GET"]
    assert writes == []
    assert_sides_equal(world)


def test_incremental_run_sees_recent_changes(world):
    synced_world(world, 4)
    emu = world.emulator
    code, summary, _ = reconcile(world, "--full")
    assert code == 0
    target = emu.tasks()[1]
    emu.update_task(target["id"], title="edited after the full run")
    emu.reset_counters()
    code, summary, _ = reconcile(world)
    assert code == 0 and summary["full"] is False and summary["counts"] == {"pull": 1}
    filters = [p for m, p in emu.requests if p.endswith("/tasks")]
    assert len(filters) == 1
    assert "edited after the full run" in live_tw(world)


def test_an_expired_vikunja_end_date_never_deletes_the_task(world):
    emu = world.emulator
    inbox = next(p for p in emu.projects() if p["title"].lower() == "inbox")
    task = emu.create_task(inbox["id"], title="ended last year", end_date="2025-06-01T12:00:00Z")
    code, summary, _ = reconcile(world, "--full")
    assert code == 0 and summary["counts"] == {"pull": 1}
    [local] = list(live_tw(world).values())
    assert "until" not in local  # Taskwarrior would delete a pending task whose until passed
    world.task("list")  # let Taskwarrior run its housekeeping
    code, summary, _ = reconcile(world, "--full")
    assert code == 0 and summary["changes"] == 0
    assert emu.get_task(task["id"])["end_date"].startswith("2025-06-01")
    world.task(local["uuid"], "modify", "ended last year, renamed")
    code, summary, _ = reconcile(world, "--full")
    assert summary["counts"] == {"push": 1}
    remote = emu.get_task(task["id"])
    assert remote["title"] == "ended last year, renamed" and remote["end_date"].startswith("2025-06-01")


def test_a_repeating_vikunja_task_is_not_duplicated_by_taskwarriors_instances(world):
    emu = world.emulator
    inbox = next(p for p in emu.projects() if p["title"].lower() == "inbox")
    emu.create_task(inbox["id"], title="water plants", due_date="2031-01-01T08:00:00Z", repeat_after=7 * 86400)
    for _ in range(2):
        code, summary, _ = reconcile(world, "--full")
        assert code == 0, summary
    assert len(emu.tasks()) == 1
    live = [t for t in world.export() if t["status"] in ("pending", "recurring")]
    assert {t["description"] for t in live} == {"water plants"}
    assert all(t.get("recur") == "1w" for t in live)


def test_first_reconcile_links_tasks_that_already_match(world):
    emu = world.emulator
    inbox = next(p for p in emu.projects() if p["title"].lower() == "inbox")
    emu.create_task(inbox["id"], title="exists on both sides")
    world.task("add", "exists on both sides")
    code, summary, _ = reconcile(world, "--full")
    assert code == 0 and summary["counts"] == {"link": 1}
    assert len(Store(world.settings.database).links()) == 1
    code, summary, _ = reconcile(world, "--full")
    assert summary["changes"] == 0 and len(emu.tasks()) == 1 and len(live_tw(world)) == 1
