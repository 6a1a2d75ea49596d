"""provision-webhooks: exactly one webhook per top-level project, idempotent, explicit rotation."""

from __future__ import annotations

import json

from conftest import TOKEN, make_world
from vikunja_sync.emulator import Emulator

TARGET = "http://127.0.0.1:9/webhook"


def provision(world, *args: str) -> list[dict]:
    proc = world.cli("provision-webhooks", "--target-url", TARGET, *args)
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


def hooks(emu: Emulator, project_id: int) -> list[dict]:
    return [w for w in emu_webhooks(emu, project_id) if w["target_url"] == TARGET]


def emu_webhooks(emu: Emulator, project_id: int) -> list[dict]:
    import requests

    resp = requests.get(
        f"{emu.url}/api/v1/projects/{project_id}/webhooks", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5
    )
    resp.raise_for_status()
    return resp.json() or []


def test_one_webhook_per_top_level_project_and_idempotent(world):
    emu = world.emulator
    home = emu.create_project("Home")
    garden = emu.create_project("Garden", parent_project_id=home["id"])
    inbox = next(p for p in emu.projects() if p["title"].lower() == "inbox")

    planned = provision(world, "--dry-run")
    assert {o["action"] for o in planned} == {"created"} and all(o["dry_run"] for o in planned)
    assert hooks(emu, home["id"]) == []

    first = provision(world)
    assert sorted(o["vikunja_id"] for o in first) == sorted([home["id"], inbox["id"]])
    for project in (home, inbox):
        [hook] = hooks(emu, project["id"])
        assert sorted(hook["events"]) == ["task.created", "task.deleted", "task.updated"]
        assert "secret" not in hook or not hook["secret"]  # Vikunja never returns secrets
    assert hooks(emu, garden["id"]) == []  # covered by its parent's webhook

    again = provision(world)
    assert {o["action"] for o in again} == {"unchanged"}
    assert len(hooks(emu, home["id"])) == 1

    rotated = provision(world, "--rotate")
    assert {o["action"] for o in rotated} == {"rotated"}
    assert len(hooks(emu, home["id"])) == 1


def test_projects_created_on_demand_get_the_webhook(world):
    provision(world)
    world.task("add", "needs a new project", "project:Fresh")
    assert world.cli("push", world.last_uuid()).returncode == 0
    fresh = next(p for p in world.emulator.projects() if p["title"] == "Fresh")
    assert len(hooks(world.emulator, fresh["id"])) == 1


def test_warns_when_vikunja_has_webhooks_disabled(tmp_path):
    with Emulator(token=TOKEN, webhooks_enabled=False) as emu:
        world = make_world(tmp_path, emu)
        proc = world.cli("provision-webhooks", "--target-url", TARGET)
        assert "webhooks as disabled" in proc.stderr


def test_refuses_without_a_secret(world):
    world.env["VIKUNJA_WEBHOOK_SECRET_FILE"] = ""
    config = world.root / "config.toml"
    config.write_text("\n".join(line for line in config.read_text().splitlines() if "secret_file" not in line))
    proc = world.cli("provision-webhooks", "--target-url", TARGET)
    assert proc.returncode == 2 and "webhook.secret_file" in proc.stderr
