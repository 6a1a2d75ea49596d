"""The Vikunja client against the emulator: breaker accounting per fault, pagination, typed errors."""

from __future__ import annotations

import json
import os
import time

import pytest

from conftest import TOKEN, make_world
from vikunja_sync.breaker import CircuitBreaker, CircuitBreakerOpen
from vikunja_sync.emulator import Emulator
from vikunja_sync.vikunja import NotFound, RateLimited, ServerError, Unauthorized, Unreachable, VikunjaClient


def client_for(emu: Emulator, tmp_path, timeout: float = 0.5, recovery: float = 60.0, token: str = TOKEN):
    breaker = CircuitBreaker(tmp_path / "state", failure_threshold=3, recovery_timeout=recovery, trial_lease=5)
    return VikunjaClient(emu.url, token, breaker, timeout=timeout)


def inbox_id(emu: Emulator) -> int:
    return next(p["id"] for p in emu.projects() if p["title"].lower() == "inbox")


FAULTS = {
    "refused": (lambda emu: emu.go_down(), Unreachable),
    "error500": (lambda emu: emu.set_fault("error500"), ServerError),
    "hang": (lambda emu: emu.set_fault("hang", hang_seconds=2.0), Unreachable),
    "ratelimit": (lambda emu: emu.set_fault("ratelimit"), RateLimited),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_breaker_opens_after_three_logical_calls_and_the_fourth_makes_no_connection(emulator, tmp_path, fault):
    task_id = emulator.create_task(inbox_id(emulator), title="probe")["id"]
    client = client_for(emulator, tmp_path)
    start_fault, error = FAULTS[fault]
    start_fault(emulator)
    for n in range(1, 4):
        with pytest.raises(error):
            client.get_task(task_id)
        assert client.breaker.snapshot().failures == n  # one logical call, one failure, retries or not
    assert client.breaker.snapshot().state == "open"
    connections, attempts = emulator.connections, client.calls
    with pytest.raises(CircuitBreakerOpen) as info:
        client.get_task(task_id)
    assert 0 < info.value.retry_after <= 60
    assert (emulator.connections, client.calls) == (connections, attempts)


def test_diagnose_reads_an_open_breaker_without_touching_it_and_a_trial_closes_it(tmp_path, emulator):
    world = make_world(tmp_path, emulator, breaker={"failure_threshold": 3, "recovery_timeout": 2})
    client = client_for(emulator, tmp_path, recovery=2)
    emulator.set_fault("error500")
    for _ in range(3):
        with pytest.raises(ServerError):
            client.get_task(1)
    state_file = tmp_path / "state" / "circuit_breaker.json"
    before = (state_file.read_bytes(), os.stat(state_file).st_mtime_ns)
    connections = emulator.connections
    proc = world.cli("diagnose")
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    tail = lines[lines.index("=== Circuit Breaker ===") :]
    assert tail[:3] == ["=== Circuit Breaker ===", "  State: OPEN (failing fast)", "  Failures: 3"]
    assert tail[3] in ("  Recovery in: 1s", "  Recovery in: 2s")
    assert (state_file.read_bytes(), os.stat(state_file).st_mtime_ns) == before
    assert emulator.connections == connections  # no API probe while failing fast
    emulator.set_fault("none")
    time.sleep(2.1)
    assert client.projects()  # the one trial
    assert client.breaker.snapshot().state == "closed"
    proc = world.cli("diagnose")
    assert "  State: CLOSED (normal)\n  Consecutive failures: 0" in proc.stdout


def test_a_breaker_file_of_the_earlier_system_is_read_as_is(tmp_path, emulator):
    state = tmp_path / "state"
    state.mkdir()
    legacy = json.dumps({"failures": 3, "last_failure_time": time.time() - 15, "state": "open"})
    (state / "circuit_breaker.json").write_text(legacy)
    client = client_for(emulator, tmp_path)
    with pytest.raises(CircuitBreakerOpen) as info:
        client.get_task(1)
    assert 40 <= info.value.retry_after <= 45
    world = make_world(tmp_path / "w", emulator)
    world.env["VIKUNJA_SYNC_STATE_DIR"] = str(state)
    out = world.cli("breaker", "status").stdout
    assert "State: OPEN (failing fast)" in out and "Failures: 3" in out
    assert (state / "circuit_breaker.json").read_text() == legacy


def test_4xx_is_neither_failure_nor_reset(emulator, tmp_path):
    client = client_for(emulator, tmp_path)
    emulator.set_fault("error500", count=1)
    with pytest.raises(ServerError):
        client.get_task(1)
    with pytest.raises(NotFound) as info:
        client.get_task(999)
    assert info.value.code == 4002 and info.value.status == 404
    assert client.breaker.snapshot().failures == 1
    bad = client_for(emulator, tmp_path, token="tk_" + "0" * 40)
    with pytest.raises(Unauthorized) as info:
        bad.get_task(1)
    assert info.value.code == 11 and "token" in str(info.value)
    assert client.breaker.snapshot().failures == 1


def test_a_read_is_retried_once_on_a_refused_connection_but_counted_once(emulator, tmp_path):
    client = client_for(emulator, tmp_path)
    emulator.go_down()
    with pytest.raises(Unreachable):
        client.projects()
    assert client.calls == 2 and client.breaker.snapshot().failures == 1
    emulator.come_up()
    with pytest.raises(Unreachable):
        emulator.go_down()
        client.create_project("never retried")
    assert client.calls == 3  # writes are never retried


def test_pagination_normalisation_and_pseudo_projects(emulator, tmp_path):
    client = client_for(emulator, tmp_path)
    for i in range(120):
        emulator.create_task(inbox_id(emulator), title=f"t{i:03d}")
    emulator.reset_counters()
    tasks = client.list_tasks()
    assert sorted(t["title"] for t in tasks) == [f"t{i:03d}" for i in range(120)]
    assert [p for _, p in emulator.requests if p.endswith("/tasks")] == ["/api/v1/tasks"] * 3
    assert all(t["labels"] == [] and t["assignees"] == [] and t["due_date"] is None for t in tasks)
    raw = emulator_raw_projects(emulator)
    assert any(p["id"] < 0 for p in raw)
    assert all(p["id"] > 0 for p in client.projects())


def emulator_raw_projects(emu: Emulator) -> list[dict]:
    import requests

    resp = requests.get(f"{emu.url}/api/v1/projects", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
    return resp.json()


def test_full_object_update_keeps_what_the_sync_does_not_own(emulator, tmp_path):
    client = client_for(emulator, tmp_path)
    task = emulator.create_task(inbox_id(emulator), title="keep", hex_color="00ff00", percent_done=0.3, priority=5)
    updated = client.update_task(task["id"], lambda t: {**t, "title": "kept"})
    assert (updated["title"], updated["hex_color"], updated["percent_done"], updated["priority"]) == (
        "kept",
        "00ff00",
        0.3,
        5,
    )
    calls = client.calls
    client.update_task(task["id"], lambda t: t)
    assert client.calls == calls + 1  # nothing to change: a GET and no POST


def test_old_servers_list_tasks_at_tasks_all(tmp_path):
    with Emulator(token=TOKEN, version="v0.22.1") as emu:
        client = client_for(emu, tmp_path)
        assert client.tasks_path == "/tasks/all"
        emu.create_task(1, title="old")
        assert [t["title"] for t in client.list_tasks()] == ["old"]


def test_diagnose_healthy_report_never_shows_the_token(world):
    world.install_hooks()
    text = world.cli("diagnose")
    assert text.returncode == 0, text.stdout
    for section in ("Configuration", "Taskwarrior", "State directory", "Vikunja API", "Circuit Breaker"):
        assert f"=== {section} ===" in text.stdout
    assert "installed in" in text.stdout and "Authentication: ok" in text.stdout
    assert text.stdout.rstrip().endswith("  State: CLOSED (normal)\n  Consecutive failures: 0")
    report = json.loads(world.cli("diagnose", "--json").stdout)
    assert report["healthy"] is True and report["circuit_breaker"]["state"] == "closed"
    for output in (text.stdout, text.stderr, json.dumps(report)):
        assert TOKEN not in output
    (world.root / "token").write_text("")
    broken = world.cli("diagnose")
    assert broken.returncode == 1 and "Token file: ERROR:" in broken.stdout and "is empty" in broken.stdout
