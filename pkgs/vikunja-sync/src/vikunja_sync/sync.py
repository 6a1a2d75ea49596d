"""Push, apply-webhook and reconcile, built from store, mapping, Taskwarrior and the client.

Agreement between the two sides is remembered per task as the fingerprint of its
synced meaning (`store.Link`). A webhook whose meaning equals the last agreement, or
one of our own recent pushes, is an echo and changes nothing; a Vikunja change older
than what we last agreed on is stale. All mutating work runs under one cross-process
lock, so a webhook is never applied while the push that caused it is half-recorded.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import time
import uuid as uuidlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from vikunja_sync import mapping, spool
from vikunja_sync.breaker import CircuitBreaker, CircuitBreakerOpen
from vikunja_sync.config import Settings
from vikunja_sync.store import CREATE_INTENT_PREFIX, InboxEntry, Link, OutboxEntry, Store
from vikunja_sync.taskwarrior import UDA, Taskwarrior, TaskwarriorError

if TYPE_CHECKING:  # the client pulls in `requests`; only import it when the network is used
    from vikunja_sync.vikunja import VikunjaClient

log = logging.getLogger(__name__)

INTENT_SLACK = 5.0  # seconds: Vikunja's clock may lag ours a little
LEGACY_ID = re.compile(r"^vikunja_id:(\d+)$")
TASK_EVENTS = ("task.created", "task.updated", "task.deleted")
WEBHOOK_TARGET_KEY = "webhooks.target_url"  # set by provision-webhooks, used for projects made later
SKIPPED_STATUSES = ("recurring",)  # templates; their instances are synced


@dataclass
class Outcome:
    success: bool
    action: str
    uuid: str | None = None
    vikunja_id: int | None = None
    detail: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class DrainReport:
    pushed: int = 0
    failed: int = 0
    remaining: int = 0
    busy: bool = False
    stopped_by: str | None = None
    outcomes: list[Outcome] = field(default_factory=list)


class SyncLock:
    """One mutator at a time across processes and threads (flock is per open file)."""

    def __init__(self, path: os.PathLike[str] | str) -> None:
        self.path = path

    @contextmanager
    def hold(self, wait: bool = True) -> Iterator[bool]:
        os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)


def legacy_vikunja_id(task: dict[str, Any]) -> int | None:
    """The earlier system's `vikunja_id:N` annotation, matched exactly (12 is not 123)."""
    for note in task.get("annotations") or []:
        m = LEGACY_ID.match(str(note.get("description", "")).strip())
        if m:
            return int(m.group(1))
    return None


def uda_vikunja_id(task: dict[str, Any]) -> int | None:
    try:
        value = int(float(task[UDA]))
    except (KeyError, TypeError, ValueError):
        return None
    return value if value > 0 else None


def without_expired_end(fields: mapping.SyncedFields) -> mapping.SyncedFields:
    """Taskwarrior deletes a pending task whose `until` has passed; syncing an expired
    Vikunja end date would delete the task on both sides. Both sides therefore compare
    as if an expired end date of an open task were unset, and it is never written to TW.
    """
    if fields.end is not None and not fields.done and fields.end <= datetime.now(UTC):
        return replace(fields, end=None)
    return fields


def tw_project(vikunja_title: str | None, default_project: str) -> str:
    """Vikunja's "Inbox" is Taskwarrior's default project, whatever its capitalisation."""
    if not vikunja_title or vikunja_title.lower() == default_project.lower():
        return default_project
    return vikunja_title


def vikunja_timestamp(value: Any) -> float:
    try:
        parsed = mapping.parse_vikunja_date(value)
    except (TypeError, ValueError):
        return 0.0
    return parsed.timestamp() if parsed else 0.0


def tw_timestamp(value: Any) -> float:
    try:
        return mapping.parse_tw_date(str(value)).timestamp()
    except (TypeError, ValueError):
        return 0.0


class SyncEngine:
    def __init__(self, settings: Settings, store: Store, tw: Taskwarrior, breaker: CircuitBreaker) -> None:
        self.settings = settings
        self.store = store
        self.tw = tw
        self.breaker = breaker
        self.lock = SyncLock(settings.state_dir / "sync.lock")
        self._client: VikunjaClient | None = None
        self._projects: dict[int, dict[str, Any]] = {}
        self._labels: dict[str, int] = {}

    # --- plumbing -------------------------------------------------------------
    @property
    def client(self) -> VikunjaClient:
        if self._client is None:
            from vikunja_sync.vikunja import VikunjaClient

            self._client = VikunjaClient(
                self.settings.require_url(), self.settings.read_token(), self.breaker, self.settings.timeout
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def _refresh_projects(self) -> None:
        self._projects = {int(p["id"]): p for p in self.client.projects()}

    def project_title(self, project_id: int, hint: dict[str, Any] | None = None) -> str:
        if hint and int(hint.get("id", 0)) == project_id and hint.get("title"):
            self._projects[project_id] = hint
        if project_id not in self._projects:
            self._refresh_projects()
        project = self._projects.get(project_id)
        return tw_project(str(project["title"]) if project else None, self.settings.default_project)

    def project_id(self, title: str) -> int:
        """The project with this title (case-insensitive), created on demand."""
        for attempt in range(2):
            matches = sorted(
                pid for pid, p in self._projects.items() if str(p.get("title", "")).lower() == title.lower()
            )
            if matches:
                return matches[0]
            if attempt == 0:
                self._refresh_projects()
        created = self.client.create_project(title)
        self._projects[int(created["id"])] = created
        log.info("created Vikunja project %r (id %s)", title, created["id"])
        target_url, secret = self.store.get_meta(WEBHOOK_TARGET_KEY), self.settings.read_webhook_secret()
        if target_url and secret:  # the new project needs its webhook as much as the provisioned ones
            self.client.create_webhook(int(created["id"]), target_url, list(TASK_EVENTS), secret)
        return int(created["id"])

    def label_id(self, title: str) -> int:
        if title not in self._labels:
            self._labels = {str(lbl["title"]): int(lbl["id"]) for lbl in self.client.labels()}
        if title not in self._labels:
            self._labels[title] = int(self.client.create_label(title)["id"])
        return self._labels[title]

    # --- what each side means -------------------------------------------------------
    def local_fields(self, task: dict[str, Any]) -> mapping.SyncedFields:
        return without_expired_end(mapping.fields_from_tw(task, self.settings.default_project))

    def remote_fields(self, vtask: dict[str, Any], project_title: str) -> mapping.SyncedFields:
        return without_expired_end(mapping.fields_from_vikunja(vtask, project_title))

    def _keeping_expired_end(self, desired: mapping.SyncedFields, current: dict[str, Any]) -> mapping.SyncedFields:
        """An end date that expired in Vikunja is not Taskwarrior's to clear."""
        raw = mapping.fields_from_vikunja(current, desired.project)
        if desired.end is None and raw.end is not None and without_expired_end(raw).end is None:
            return replace(desired, end=raw.end)
        return desired

    # --- TW -> Vikunja ----------------------------------------------------------
    def vikunja_id_for(self, uuid: str, task: dict[str, Any]) -> int | None:
        link = self.store.link_for_uuid(uuid)
        if link:
            return link.vikunja_id
        return uda_vikunja_id(task) or legacy_vikunja_id(task)

    def _sync_labels(self, task_id: int, vtask: dict[str, Any], tags: frozenset[str]) -> Iterator[dict[str, Any]]:
        """Add and remove labels one call at a time, yielding each state Vikunja passes through."""
        present = {str(lbl["title"]): lbl for lbl in vtask.get("labels") or []}
        for title in sorted(set(present) - tags):
            self.client.remove_label(task_id, int(present.pop(title)["id"]))
            yield {**vtask, "labels": list(present.values())}
        for title in sorted(tags - set(present)):
            label_id = self.label_id(title)
            self.client.add_label(task_id, label_id)
            present[title] = {"id": label_id, "title": title}
            yield {**vtask, "labels": list(present.values())}

    def push_task(self, uuid: str, task: dict[str, Any], current: dict[str, Any] | None = None) -> Outcome:
        """Make Vikunja hold this TW task's synced fields; `current` saves a GET when known.

        Every state a write leaves in Vikunja (after the replace, after each label call)
        fires its own webhook, so each is remembered as ours: none of those echoes may
        be applied back to Taskwarrior.
        """
        from vikunja_sync.vikunja import NotFound

        desired = self.local_fields(task)
        vikunja_id = self.vikunja_id_for(uuid, task)
        if current is None and vikunja_id is not None:
            try:
                current = self.client.get_task(vikunja_id)
            except NotFound:
                log.info("Vikunja task %s of %s is gone; creating it again", vikunja_id, uuid)
        project_id = self.project_id(desired.project)
        if current is None:
            current = self._created_before_crash(uuid, desired, project_id)
        if current is None:
            self.store.set_meta(CREATE_INTENT_PREFIX + uuid, str(time.time()))
            state = self.client.create_task(project_id, mapping.vikunja_create_body(desired))
            states, action = [state], "created"
        else:
            body = mapping.vikunja_update_body(current, self._keeping_expired_end(desired, current), project_id)
            state, states, action = current, [], "unchanged"
            if body != {k: v for k, v in current.items() if k != "labels"}:
                # A replace leaves labels alone, whatever its answer shows.
                state = {**self.client.replace_task(int(current["id"]), body), "labels": current.get("labels")}
                states, action = [state], "updated"
        vikunja_id = int(state["id"])
        labelled = list(self._sync_labels(vikunja_id, state, desired.tags))
        if labelled:
            states += labelled
            state = labelled[-1]
            action = "updated" if action == "unchanged" else action
        seen = [mapping.fingerprint(self.remote_fields(s, desired.project)) for s in states]
        agreed = mapping.fingerprint(self.remote_fields(state, desired.project))
        # The `vikunjaid` UDA is written later, by reconcile: Taskwarrior 2.6 does not lock
        # across read-modify-write, so writing it now would race the user's next command.
        self.store.save_link(uuid, vikunja_id, agreed, vikunja_timestamp(state.get("updated")), pushed=seen)
        return Outcome(True, action, uuid, vikunja_id)

    def _created_before_crash(self, uuid: str, desired: mapping.SyncedFields, project_id: int) -> dict[str, Any] | None:
        """A create whose answer was lost (crash, timeout) must not create a twin.

        Before creating we note the intent; if it is still there, the earlier attempt
        may have reached Vikunja, so an unlinked task with our title created since then
        in the same project is adopted instead.
        """
        intent = self.store.get_meta(CREATE_INTENT_PREFIX + uuid)
        if intent is None:
            return None
        since = datetime.fromtimestamp(float(intent) - INTENT_SLACK, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        for candidate in self.client.list_tasks(updated_since=since):
            if (
                candidate.get("title") == desired.title
                and int(candidate.get("project_id") or 0) == project_id
                and self.store.link_for_vikunja(int(candidate["id"])) is None
            ):
                log.info("adopting Vikunja task %s created by an interrupted push of %s", candidate["id"], uuid)
                return candidate
        return None

    def delete_remote(self, uuid: str, task: dict[str, Any]) -> Outcome:
        vikunja_id = self.vikunja_id_for(uuid, task)
        if vikunja_id is None:
            return Outcome(True, "unchanged", uuid, detail="never reached Vikunja")
        existed = self.client.delete_task(vikunja_id)
        self.store.drop_link(uuid)
        return Outcome(True, "deleted" if existed else "unchanged", uuid, vikunja_id)

    def push_entry(self, entry: OutboxEntry) -> Outcome:
        """Push one outbox entry; it leaves the outbox only when Vikunja confirmed it."""
        from vikunja_sync.vikunja import TEMPORARY_ERRORS, Unauthorized, VikunjaError

        task = entry.task
        if self.breaker.snapshot().state == "open":  # fail fast: no network, no writes
            return Outcome(False, "circuit_breaker_open", entry.uuid, detail="circuit breaker open")
        try:
            if entry.kind == "delete" or task.get("status") == "deleted":
                outcome = self.delete_remote(entry.uuid, task)
            elif task.get("status") in SKIPPED_STATUSES:
                outcome = Outcome(True, "unchanged", entry.uuid, detail="recurrence template")
            else:
                outcome = self.push_task(entry.uuid, task)
        except CircuitBreakerOpen as exc:  # no attempt was made: nothing to record
            return Outcome(False, "circuit_breaker_open", entry.uuid, detail=str(exc))
        except (*TEMPORARY_ERRORS, Unauthorized) as exc:
            self.store.record_attempt(entry, str(exc))
            return Outcome(False, "queued", entry.uuid, detail=str(exc))
        except (VikunjaError, TaskwarriorError, ValueError) as exc:
            self.store.record_attempt(entry, str(exc))
            log.error("push of %s failed and stays queued: %s", entry.uuid, exc)
            return Outcome(False, "error", entry.uuid, detail=str(exc))
        self.store.complete(entry)
        return outcome

    def push_uuid(self, uuid: str) -> Outcome:
        """`push UUID`: queue the task's current state, then push that entry now."""
        task = self.tw.get(uuid)
        if task is None:
            return Outcome(False, "error", uuid, detail="no Taskwarrior task has this uuid")
        with self.lock.hold():
            self.store.ingest_spool()  # older spooled changes first, so ours supersedes them
            self.store.enqueue(uuid, "delete" if task.get("status") == "deleted" else "upsert", task)
            entry = self.store.pending_for(uuid)
            if entry is None:  # a concurrent drain pushed it meanwhile
                return Outcome(True, "unchanged", uuid)
            return self.push_entry(entry)

    def drain(self, wait: bool = True) -> DrainReport:
        """Push the outbox in order; stop at the first breaker-open or temporary failure.

        Entries that arrive while the lock is being released are picked up by a second
        round, so a `--no-wait` drain that found us busy can rely on us.
        """
        report = DrainReport()
        failed_seqs: set[int] = set()
        if self.breaker.snapshot().state == "open":  # fail fast: no lock, no network, no writes
            report.stopped_by = "circuit_breaker_open"
        while not report.stopped_by:
            with self.lock.hold(wait) as held:
                if not held:
                    report.busy = True
                    break
                self._drain_locked(report, failed_seqs)
            spooled = spool.pending_files(str(self.settings.state_dir))
            if not spooled and not any(e.seq not in failed_seqs for e in self.store.pending()):
                break
        report.remaining = self.store.outbox_depth()
        return report

    def _drain_locked(self, report: DrainReport, failed_seqs: set[int]) -> None:
        while True:
            self.store.ingest_spool()
            todo = [e for e in self.store.pending() if e.seq not in failed_seqs]
            if not todo:
                return
            for entry in todo:
                outcome = self.push_entry(entry)
                report.outcomes.append(outcome)
                if outcome.success:
                    report.pushed += 1
                    continue
                report.failed += 1
                failed_seqs.add(entry.seq)
                if outcome.action in ("circuit_breaker_open", "queued"):
                    report.stopped_by = outcome.action
                    return

    # --- Vikunja -> TW ----------------------------------------------------------
    def apply_payload(self, payload: dict[str, Any]) -> Outcome:
        """Apply one webhook envelope to TW; safe to repeat."""
        event = payload.get("event_name")
        data = payload.get("data") if isinstance(payload.get("data"), dict) else {}
        vtask = data.get("task") if isinstance(data.get("task"), dict) else None
        if event not in TASK_EVENTS or vtask is None or not isinstance(vtask.get("id"), int):
            return Outcome(True, "ignored", detail=f"event {event!r} is not synced")
        with self.lock.hold():
            self.store.ingest_spool()  # a TW change still spooled may be newer than this event
            if event == "task.deleted":
                return self.delete_local(int(vtask["id"]))
            from vikunja_sync.vikunja import normalize_task

            vtask = normalize_task(vtask)
            title = self.project_title(int(vtask.get("project_id") or 0), data.get("project"))
            return self.apply_remote_task(vtask, title)

    def apply_inbox_entry(self, entry: InboxEntry) -> Outcome:
        try:
            payload = json.loads(entry.body)
        except ValueError:
            return Outcome(True, "ignored", detail="inbox entry is not JSON")
        return self.apply_payload(payload if isinstance(payload, dict) else {})

    def _local_task(self, vikunja_id: int) -> tuple[Link | None, dict[str, Any] | None]:
        link = self.store.link_for_vikunja(vikunja_id)
        task = self.tw.get(link.tw_uuid) if link else self.tw.find_by_vikunja_id(vikunja_id)
        return link, task

    def delete_local(self, vikunja_id: int) -> Outcome:
        link, task = self._local_task(vikunja_id)
        if task is None or task.get("status") == "deleted":
            if link:
                self.store.drop_link(link.tw_uuid)
            return Outcome(True, "unchanged", link.tw_uuid if link else None, vikunja_id)
        self.tw.delete(task["uuid"])
        self.store.drop_link(task["uuid"])
        return Outcome(True, "deleted", task["uuid"], vikunja_id)

    def is_stale(self, link: Link | None, remote: mapping.SyncedFields, updated: float) -> bool:
        """An echo of our own push, or older than what both sides last agreed on."""
        if link is None:
            return False
        fp = mapping.fingerprint(remote)
        return fp == link.fingerprint or fp in link.recent_pushes or updated < link.vikunja_updated

    def apply_remote_task(self, vtask: dict[str, Any], project_title: str) -> Outcome:
        vikunja_id = int(vtask["id"])
        remote = self.remote_fields(vtask, project_title)
        updated = vikunja_timestamp(vtask.get("updated"))
        link, task = self._local_task(vikunja_id)
        if self.is_stale(link, remote, updated):
            return Outcome(True, "unchanged", link.tw_uuid if link else None, vikunja_id, detail="echo or stale")
        if task is not None:
            queued = self.store.pending_for(task["uuid"])
            if queued and tw_timestamp(queued.task.get("modified")) > updated:
                # A newer TW edit waits in the outbox: last writer wins, and that is TW.
                return Outcome(True, "unchanged", task["uuid"], vikunja_id, detail="newer Taskwarrior change queued")
        new = self.tw_version(task, remote, vikunja_id)
        if task is not None and self.local_fields(task) == remote:
            action = "unchanged"
        else:
            self.tw.import_task(new, previous=task)
            action = "created" if task is None else "updated"
        self.store.save_link(new["uuid"], vikunja_id, mapping.fingerprint(remote), updated)
        return Outcome(True, action, new["uuid"], vikunja_id)

    def tw_version(self, task: dict[str, Any] | None, remote: mapping.SyncedFields, vikunja_id: int) -> dict[str, Any]:
        new = mapping.tw_task_updated(task, remote, self.settings.default_project)
        new.setdefault("uuid", str(uuidlib.uuid4()))
        new[UDA] = str(vikunja_id)
        new["modified"] = mapping.format_tw_date(datetime.now(UTC))
        return new

    # --- webhooks at Vikunja ------------------------------------------------------
    def provision_webhooks(self, target_url: str, secret: str, dry_run: bool, rotate: bool) -> list[Outcome]:
        """Exactly one webhook to `target_url` per top-level project (it covers sub-projects)."""
        outcomes = []
        if not self.client.info().get("webhooks_enabled", True):
            log.warning("Vikunja reports webhooks as disabled (webhooks.enabled); nothing will be delivered")
        self._refresh_projects()
        for pid, project in sorted(self._projects.items()):
            if int(project.get("parent_project_id") or 0) != 0:
                continue
            existing = [w for w in self.client.webhooks(pid) if w.get("target_url") == target_url]
            if existing and not rotate:
                outcomes.append(Outcome(True, "unchanged", vikunja_id=pid, detail=f"project {project['title']!r}"))
                continue
            action = "rotated" if existing else "created"
            if not dry_run:  # the new webhook first: a rotation never leaves a gap
                self.client.create_webhook(pid, target_url, list(TASK_EVENTS), secret)
                for hook in existing:
                    self.client.delete_webhook(pid, int(hook["id"]))
            outcomes.append(Outcome(True, action, vikunja_id=pid, detail=f"project {project['title']!r}"))
        if not dry_run:
            self.store.set_meta(WEBHOOK_TARGET_KEY, target_url)
        return outcomes


def engine_from_settings(settings: Settings) -> SyncEngine:
    from vikunja_sync.store import Store
    from vikunja_sync.taskwarrior import Taskwarrior
    from vikunja_sync.twgate import WriteGate

    breaker = CircuitBreaker(
        settings.state_dir,
        failure_threshold=settings.failure_threshold,
        recovery_timeout=settings.recovery_timeout,
        trial_lease=2 * settings.timeout + 1.0,  # a read may take two attempts
    )
    return SyncEngine(settings, Store(settings.database), Taskwarrior(gate=WriteGate(settings.state_dir)), breaker)
