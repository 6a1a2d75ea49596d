"""Webhook delivery with Vikunja's failure behaviour: in memory, few retries, then gone.

One worker thread sends deliveries in order. Each gets one attempt plus five retries
(100 ms, doubling); any status >= 400 or a connection error is a failure, and after
the last retry the event is dropped for good, as Vikunja does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import queue
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

WEBHOOK_EVENTS = (
    "task.created",
    "task.updated",
    "task.deleted",
    "task.assignee.created",
    "task.assignee.deleted",
    "task.comment.created",
    "task.comment.edited",
    "task.comment.deleted",
    "task.attachment.created",
    "task.attachment.deleted",
    "task.relation.created",
    "task.relation.deleted",
    "task.reminder.fired",
    "task.overdue",
    "tasks.overdue",
    "project.updated",
    "project.deleted",
    "project.shared.user",
    "project.shared.team",
)
RETRIES = 5
FIRST_BACKOFF = 0.1


@dataclass
class Delivery:
    """One envelope for one webhook target; ``body`` is the exact bytes to sign and send."""

    url: str
    body: bytes
    secret: str
    event: str
    task_id: int | None
    basic_auth: tuple[str, str] | None = None


def signature(secret: str, body: bytes) -> str:
    """X-Vikunja-Signature: lowercase hex HMAC-SHA256 of the raw body."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Dispatcher:
    """Background sender; records every delivery's fate for tests and /_emulator/stats."""

    def __init__(self, timeout: float = 30.0) -> None:
        self.timeout = timeout
        self._queue: queue.Queue[tuple[Delivery, dict[str, Any]] | None] = queue.Queue()
        self._records: list[dict[str, Any]] = []
        self._pending = 0
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._stopping.set()  # until start(): events raised meanwhile are lost
        # Loopback receivers must not be routed through an environment proxy.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stopping.clear()
        self._queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, args=(self._queue,), name="emulator-webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop sending; undelivered events are lost, as when Vikunja restarts."""
        self._stopping.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        with self._cond:
            for record in self._records:
                if record["state"] == "pending":
                    record["state"] = "dropped"
            self._pending = 0
            self._cond.notify_all()

    def enqueue(self, delivery: Delivery) -> None:
        record = {
            "url": delivery.url,
            "event": delivery.event,
            "status": None,
            "attempts": 0,
            "task_id": delivery.task_id,
            "state": "dropped" if self._stopping.is_set() else "pending",
        }
        with self._cond:
            self._records.append(record)
            if record["state"] == "pending":
                self._pending += 1
                self._queue.put((delivery, record))

    def records(self) -> list[dict[str, Any]]:
        with self._cond:
            return [dict(r) for r in self._records]

    def clear_records(self) -> None:
        with self._cond:
            self._records = [r for r in self._records if r["state"] == "pending"]

    def wait_idle(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._pending == 0, timeout=timeout)

    def _run(self, jobs: queue.Queue[tuple[Delivery, dict[str, Any]] | None]) -> None:
        while True:
            item = jobs.get()
            if item is None:
                return
            delivery, record = item
            delivered = self._deliver(delivery, record)
            with self._cond:
                if record["state"] == "pending":
                    record["state"] = "delivered" if delivered else "dropped"
                    self._pending -= 1
                self._cond.notify_all()
            if not delivered:
                log.warning("webhook %s to %s dropped", delivery.event, delivery.url)

    def _deliver(self, delivery: Delivery, record: dict[str, Any]) -> bool:
        backoff = FIRST_BACKOFF
        for attempt in range(RETRIES + 1):
            if attempt and self._stopping.wait(backoff):
                return False
            if attempt:
                backoff *= 2
            status = self._attempt(delivery)
            with self._cond:
                record["attempts"] = attempt + 1
                record["status"] = status
            if status is not None and status < 400:
                return True
        return False

    def _attempt(self, delivery: Delivery) -> int | None:
        headers = {"Content-Type": "application/json", "User-Agent": "Vikunja-Emulator"}
        if delivery.secret:
            headers["X-Vikunja-Signature"] = signature(delivery.secret, delivery.body)
        if delivery.basic_auth:
            raw = ":".join(delivery.basic_auth).encode()
            headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
        request = urllib.request.Request(delivery.url, data=delivery.body, headers=headers, method="POST")
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                response.read()
                return int(response.status)
        except urllib.error.HTTPError as exc:
            exc.close()
            return int(exc.code)
        except (OSError, ValueError) as exc:
            log.debug("webhook attempt to %s failed: %s", delivery.url, exc)
            return None
