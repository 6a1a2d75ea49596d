"""The write gate: the sync's Taskwarrior writes and the user's commands take turns."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from vikunja_sync.taskwarrior import Taskwarrior
from vikunja_sync.twgate import WriteGate, other_task_processes


def test_the_gate_waits_for_a_running_task_process(tmp_path, caplog):
    fake = tmp_path / "task"
    shutil.copy("/bin/sleep", fake)
    proc = subprocess.Popen([str(fake), "0.5"])
    try:
        deadline = time.monotonic() + 5
        while proc.pid not in other_task_processes() and time.monotonic() < deadline:
            time.sleep(0.001)  # until the child has exec'd and is named `task`
        assert proc.pid in other_task_processes()
        with WriteGate(tmp_path / "state").hold():
            assert proc.poll() is not None, "the gate opened while a task command was running"
    finally:
        proc.kill()
        proc.wait()
    assert "writing anyway" not in caplog.text  # it opened when the command ended, not on impatience


def test_a_user_command_waits_for_a_sync_write_through_the_on_launch_hook(world):
    world.install_hooks()
    world.task("add", "existing")
    gate = WriteGate(world.settings.state_dir)
    order: list[str] = []
    held = threading.Event()

    def sync_write() -> None:
        with gate.hold():
            held.set()
            time.sleep(0.8)
            order.append("sync write done")

    writer = threading.Thread(target=sync_write)
    writer.start()
    held.wait(10)
    world.task("list")
    order.append("user command done")
    writer.join()
    assert order == ["sync write done", "user command done"]


def test_no_write_is_lost_when_both_sides_write_at_once(world):
    """Taskwarrior 2.6 loses one of two overlapping writes; with the gate, none is lost."""
    world.install_hooks()
    world.task("add", "edited by the user")
    world.task("add", "edited by the sync")
    user_uuid, sync_uuid = (t["uuid"] for t in sorted(world.export(), key=lambda t: t["id"]))
    tw = Taskwarrior(env=world.env, gate=WriteGate(world.settings.state_dir))
    rounds = 25

    def user_edits() -> None:
        for i in range(rounds):
            world.task(user_uuid, "modify", f"user edit {i}")

    def sync_edits() -> None:
        for i in range(rounds):
            [task] = tw.export(f"uuid:{sync_uuid}")
            tw.import_task({**task, "description": f"sync edit {i}"}, previous=task)

    with ThreadPoolExecutor(2) as pool:
        for future in [pool.submit(user_edits), pool.submit(sync_edits)]:
            future.result()
    final = {t["uuid"]: t["description"] for t in world.export()}
    assert final == {user_uuid: f"user edit {rounds - 1}", sync_uuid: f"sync edit {rounds - 1}"}
    assert len(world.export()) == 2
