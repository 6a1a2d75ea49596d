"""Two-way reconciliation: the safety net for lost webhooks and long outages.

It first reads both sides completely (one `task export`, every page of Vikunja's task
list); if any read fails it stops before changing anything. Per task the last agreed
fingerprint decides which side changed; when both did, the later writer wins (TW
`modified` against Vikunja `updated`, as instants). Changes bound for Taskwarrior are
written in one `task import`, so the cost grows with pages and changes, not tasks.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from vikunja_sync import mapping
from vikunja_sync.config import Settings
from vikunja_sync.store import Link
from vikunja_sync.sync import SyncEngine, legacy_vikunja_id, tw_timestamp, uda_vikunja_id, vikunja_timestamp
from vikunja_sync.taskwarrior import UDA

log = logging.getLogger(__name__)

LAST_RUN_KEY = "reconcile.last_run"
CLOCK_MARGIN = 120.0  # seconds of overlap between incremental runs, for clock skew
LIVE_STATUSES = ("pending", "completed", "waiting")


@dataclass
class Change:
    """One planned change; `describe()` is the --dry-run line."""

    action: str  # push | pull | delete-remote | delete-local | link | unlink
    uuid: str | None
    vikunja_id: int | None
    title: str
    reason: str
    tw_task: dict[str, Any] | None = None
    vikunja_task: dict[str, Any] | None = None

    def describe(self) -> str:
        ids = f"tw={self.uuid or '-'} vikunja={self.vikunja_id if self.vikunja_id is not None else '-'}"
        return f"{self.action:<13} {ids} {self.title!r}: {self.reason}"


@dataclass
class Plan:
    changes: list[Change] = field(default_factory=list)
    tw_tasks: int = 0
    vikunja_tasks: int = 0
    list_calls: int = 0
    ids_to_record: list[dict[str, Any]] = field(default_factory=list)  # TW tasks missing their `vikunjaid`

    def deletions(self) -> int:
        return sum(1 for c in self.changes if c.action.startswith("delete"))


class ReconcileAborted(Exception):
    pass


class Reconciler:
    def __init__(self, engine: SyncEngine) -> None:
        self.engine = engine
        self.settings = engine.settings

    def _fields_tw(self, task: dict[str, Any]) -> mapping.SyncedFields:
        return self.engine.local_fields(task)

    def _fields_vikunja(self, task: dict[str, Any]) -> mapping.SyncedFields:
        return self.engine.remote_fields(task, self.engine.project_title(int(task.get("project_id") or 0)))

    def plan(self, full: bool) -> Plan:
        """Read both sides and decide; changes nothing."""
        engine = self.engine
        since = None if full else engine.store.get_meta(LAST_RUN_KEY)
        engine._refresh_projects()
        engine.client.info()
        calls_before = engine.client.calls
        remote = engine.client.list_tasks(updated_since=since)
        plan = Plan(list_calls=engine.client.calls - calls_before)
        tw_all = engine.tw.export()
        plan.tw_tasks, plan.vikunja_tasks = len(tw_all), len(remote)
        by_uuid = {t["uuid"]: t for t in tw_all if isinstance(t.get("uuid"), str)}
        by_vid = {int(t["id"]): t for t in remote}
        links = {link.tw_uuid: link for link in engine.store.links()}
        claimed: set[int] = set()

        for uuid, link in links.items():
            claimed.add(link.vikunja_id)
            change = self._compare_linked(link, by_uuid.get(uuid), by_vid.get(link.vikunja_id), full)
            if change:
                plan.changes.append(change)
            task = by_uuid.get(uuid)
            missing_id = task and task.get("status") != "deleted" and uda_vikunja_id(task) != link.vikunja_id
            if missing_id and (change is None or change.action in ("push", "link")):  # a pull writes it anyway
                plan.ids_to_record.append({**task, UDA: str(link.vikunja_id)})

        unlinked_remote = {vid: t for vid, t in by_vid.items() if vid not in claimed}
        by_title = {}
        for vid, vtask in sorted(unlinked_remote.items()):
            by_title.setdefault((vtask.get("title"), int(vtask.get("project_id") or 0)), vid)
        for uuid, task in by_uuid.items():
            if uuid in links or task.get("status") not in LIVE_STATUSES:
                continue
            vid = uda_vikunja_id(task) or legacy_vikunja_id(task)
            if vid in claimed:
                continue  # a copy of a linked task, e.g. the instance TW made of a recurring one
            if vid is None or vid not in unlinked_remote:
                key = (task.get("description"), self._project_id_if_known(self._fields_tw(task).project))
                vid = by_title.get(key) if key[1] is not None else None
            if vid is not None and vid in unlinked_remote:
                vtask = unlinked_remote.pop(vid)
                plan.changes.append(self._compare_unlinked(task, vtask))
            elif vid is None or full:
                plan.changes.append(Change("push", uuid, None, task.get("description", ""), "new in Taskwarrior", task))
        for vid, vtask in sorted(unlinked_remote.items()):
            plan.changes.append(Change("pull", None, vid, vtask.get("title", ""), "new in Vikunja", None, vtask))
        return plan

    def _project_id_if_known(self, title: str) -> int | None:
        for pid, project in self.engine._projects.items():
            if str(project.get("title", "")).lower() == title.lower():
                return pid
        return None

    def _compare_unlinked(self, task: dict[str, Any], vtask: dict[str, Any]) -> Change:
        tf, vf = self._fields_tw(task), self._fields_vikunja(vtask)
        if tf == vf:
            return Change(
                "link", task["uuid"], int(vtask["id"]), vtask.get("title", ""), "same task on both sides", task, vtask
            )
        if tw_timestamp(task.get("modified")) >= vikunja_timestamp(vtask.get("updated")):
            return Change(
                "push", task["uuid"], int(vtask["id"]), tf.title, "matched; Taskwarrior is newer", task, vtask
            )
        return Change("pull", task["uuid"], int(vtask["id"]), vf.title, "matched; Vikunja is newer", task, vtask)

    def _compare_linked(
        self, link: Link, task: dict[str, Any] | None, vtask: dict[str, Any] | None, full: bool
    ) -> Change | None:
        uuid, vid = link.tw_uuid, link.vikunja_id
        tw_gone = task is None or task.get("status") == "deleted"
        if vtask is None and not full:
            if tw_gone:
                return Change("delete-remote", uuid, vid, "", "deleted in Taskwarrior")
            tf = self._fields_tw(task)
            if mapping.fingerprint(tf) == link.fingerprint:
                return None  # unchanged on both sides as far as an incremental run can tell
            return Change("push", uuid, vid, tf.title, "changed in Taskwarrior", task)
        if vtask is None:
            if tw_gone:
                return Change("unlink", uuid, vid, "", "gone on both sides")
            return Change("delete-local", uuid, vid, task.get("description", ""), "deleted in Vikunja", task)
        if tw_gone:
            return Change("delete-remote", uuid, vid, vtask.get("title", ""), "deleted in Taskwarrior", None, vtask)
        tf, vf = self._fields_tw(task), self._fields_vikunja(vtask)
        if tf == vf:
            if mapping.fingerprint(vf) != link.fingerprint:
                return Change("link", uuid, vid, vf.title, "both sides agree; recording it", task, vtask)
            return None
        tw_changed = mapping.fingerprint(tf) != link.fingerprint
        vikunja_changed = mapping.fingerprint(vf) != link.fingerprint
        if tw_changed and not vikunja_changed:
            return Change("push", uuid, vid, tf.title, "changed in Taskwarrior", task, vtask)
        if vikunja_changed and not tw_changed:
            return Change("pull", uuid, vid, vf.title, "changed in Vikunja", task, vtask)
        tw_time, v_time = tw_timestamp(task.get("modified")), vikunja_timestamp(vtask.get("updated"))
        if tw_time >= v_time:
            return Change("push", uuid, vid, tf.title, "changed on both sides; Taskwarrior is newer", task, vtask)
        return Change("pull", uuid, vid, vf.title, "changed on both sides; Vikunja is newer", task, vtask)

    def check_safety(self, plan: Plan, force: bool) -> None:
        linked = max(len(self.engine.store.links()), 1)
        limit = max(1, math.floor(self.settings.reconcile_max_delete_share * linked))
        if plan.deletions() > limit and not force:
            raise ReconcileAborted(
                f"plan deletes {plan.deletions()} of {linked} synced tasks, more than "
                f"reconcile.max_delete_share allows ({limit}); check both sides, then rerun with --force"
            )

    def execute(self, plan: Plan) -> dict[str, int]:
        """Apply the plan; TW-bound writes are batched into one `task import`."""
        engine = self.engine
        counts: dict[str, int] = {}
        imports: list[tuple[dict[str, Any], dict[str, Any] | None, int, str, float]] = []
        for change in plan.changes:
            counts[change.action] = counts.get(change.action, 0) + 1
            if change.action == "push":
                engine.push_task(change.tw_task["uuid"], change.tw_task, change.vikunja_task)
            elif change.action == "delete-remote":
                engine.delete_remote(change.uuid, change.tw_task or {"uuid": change.uuid})
            elif change.action == "delete-local":
                engine.tw.delete(change.uuid)
                engine.store.drop_link(change.uuid)
            elif change.action == "unlink":
                engine.store.drop_link(change.uuid)
            elif change.action in ("pull", "link"):
                vf = self._fields_vikunja(change.vikunja_task)
                updated = vikunja_timestamp(change.vikunja_task.get("updated"))
                if change.action == "link":
                    engine.store.save_link(change.uuid, change.vikunja_id, mapping.fingerprint(vf), updated)
                    continue
                new = engine.tw_version(change.tw_task, vf, change.vikunja_id)
                imports.append((new, change.tw_task, change.vikunja_id, mapping.fingerprint(vf), updated))
        if imports:
            engine.tw.import_tasks([new for new, *_ in imports], previous=[prev for _, prev, *_ in imports])
            for new, _, vid, fp, updated in imports:
                engine.store.save_link(new["uuid"], vid, fp, updated)
        if plan.ids_to_record:
            engine.tw.import_tasks(plan.ids_to_record, previous=plan.ids_to_record)
        return counts


def run_reconcile(settings: Settings, dry_run: bool, full: bool, force: bool) -> int:
    from vikunja_sync.breaker import CircuitBreakerOpen
    from vikunja_sync.sync import engine_from_settings
    from vikunja_sync.vikunja import TEMPORARY_ERRORS, VikunjaError

    engine = engine_from_settings(settings)
    reconciler = Reconciler(engine)
    started = datetime.now(UTC).timestamp() - CLOCK_MARGIN
    began = time.monotonic()
    phase = "reading both sides; nothing was changed"
    try:
        with engine.lock.hold():
            plan = reconciler.plan(full)
            reconciler.check_safety(plan, force)
            counts: dict[str, int] = {}
            if dry_run:
                for change in plan.changes:
                    print(change.describe())
            else:
                phase = "applying the plan; what was applied stays, rerun to finish"
                counts = reconciler.execute(plan)
                stamp = datetime.fromtimestamp(started, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                engine.store.set_meta(LAST_RUN_KEY, stamp)
    except CircuitBreakerOpen as exc:
        _summary(False, "circuit_breaker_open", detail=f"{exc} ({phase})")
        return 75
    except TEMPORARY_ERRORS as exc:
        _summary(False, "aborted", detail=f"{exc} ({phase})")
        return 75
    except (ReconcileAborted, VikunjaError) as exc:
        _summary(False, "aborted", detail=f"{exc} ({phase})")
        return 1
    finally:
        engine.close()
    _summary(
        True,
        "planned" if dry_run else "reconciled",
        changes=len(plan.changes),
        counts=counts,
        tw_tasks=plan.tw_tasks,
        vikunja_tasks=plan.vikunja_tasks,
        list_calls=plan.list_calls,
        api_calls=engine.client.calls if engine._client else 0,
        seconds=round(time.monotonic() - began, 3),
        ids_recorded=0 if dry_run else len(plan.ids_to_record),
        full=full,
    )
    return 0


def _summary(success: bool, action: str, **extra: Any) -> None:
    print(json.dumps({"success": success, "action": action, **extra}, sort_keys=True), file=sys.stdout, flush=True)
