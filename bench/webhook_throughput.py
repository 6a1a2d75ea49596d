"""Sustained webhook intake of `vikunja-direct serve` (inbox on disk), the apply drain, and peak RSS.

`serve` runs as a subprocess against the emulator (in this process). A pool of Vikunja tasks
is first brought into Taskwarrior by one webhook each (warm-up, not timed). Then client
threads POST signed `task.updated` envelopes (built like the emulator's own: the task as the
emulator renders it after a UI edit, its project and the doer) over loopback for N seconds.
`serve` answers every request with `Connection: close`, so each event is one TCP connection;
a 202 means the body is committed to the sqlite inbox (synchronous=FULL). Each thread owns
its own tasks and sends in order, so the last title sent per task is what Taskwarrior must
hold at the end (checked with one `task export`).

Reported: accepted events/s during the intake, the HTTP answer time, the inbox depth when the
intake stops, the time the apply worker then needs to empty it, the apply rate over the
whole run, and the resident set of `serve` (VmRSS idle after warm-up, VmHWM peak at the end).

Run: .venv/bin/python bench/webhook_throughput.py [--quick] [--seconds N] [--clients K]
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import benchlib as bl

from vikunja_sync.emulator import Emulator

POOL = 48
UDA_FILTER = ("rc.uda.vikunjaid.type=numeric", "vikunjaid.any:")


@dataclass
class Client:
    """One sender thread's tasks, answers and last titles."""

    task_ids: list[int]
    accepted: int = 0
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    last_title: dict[int, str] = field(default_factory=dict)


def envelope(emu: Emulator, task_id: int, title: str, projects: dict[int, dict]) -> bytes:
    task = emu.update_task(task_id, title=title)
    data = {"project": projects[task["project_id"]], "task": task, "doer": emu.store.render_user()}
    return json.dumps({"event_name": "task.updated", "time": task["updated"], "data": data}).encode()


def post(port: int, body: bytes) -> int:
    digest = hmac.new(bl.SECRET.encode(), body, hashlib.sha256).hexdigest()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=bl.WAIT)
    try:
        conn.request(
            "POST",
            "/webhook",
            body=body,
            headers={"Content-Type": "application/json", "X-Vikunja-Signature": digest},
        )
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def send_for(client: Client, emu: Emulator, port: int, projects: dict[int, dict], stop_at: float) -> None:
    version = 0
    while time.perf_counter() < stop_at:
        for task_id in client.task_ids:
            title = f"task {task_id} version {version}"
            body = envelope(emu, task_id, title, projects)
            start = time.perf_counter()
            try:
                status = post(port, body)
            except OSError as exc:
                client.errors.append(f"{type(exc).__name__}: {exc}")
                continue
            client.latencies.append(time.perf_counter() - start)
            if status != 202:
                client.errors.append(f"HTTP {status}")
                continue
            client.accepted += 1
            client.last_title[task_id] = title
        version += 1


def inbox_depth(db: sqlite3.Connection) -> int:
    return db.execute("SELECT COUNT(*) FROM inbox").fetchone()[0]


def vm_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise bl.BenchError("no VmRSS in /proc/<pid>/status")


def warm_up(emu: Emulator, serve: bl.Serve, world: bl.World, projects: dict[int, dict]) -> list[int]:
    """Create the task pool in Vikunja and bring each task into Taskwarrior through one webhook."""
    project_ids = sorted(projects)
    ids = [emu.create_task(project_ids[i % len(project_ids)], title=f"pool task {i}")["id"] for i in range(POOL)]
    for task_id in ids:
        status = post(world.listen_port, envelope(emu, task_id, f"task {task_id} warm", projects))
        if status != 202:
            raise bl.BenchError(f"warm-up webhook answered {status}")
    bl.wait_until("the warm-up webhooks to be applied", lambda: (serve.health() or {}).get("inbox") == 0, 120)
    if len(world.export(*UDA_FILTER)) != POOL:
        raise bl.BenchError("the warm-up did not bring every pool task into Taskwarrior")
    return ids


def main(args) -> int:
    bl.print_header("webhook intake and apply throughput of `vikunja-direct serve`", args)
    with bl.temp_root("webhooks") as root, Emulator(token=bl.TOKEN) as emu:
        emu.create_project("Home")
        projects = {p["id"]: p for p in emu.projects()}
        world = bl.make_world(root, emu.url)
        with bl.Serve(world) as serve:
            ids = warm_up(emu, serve, world, projects)
            idle_rss = vm_rss_kib(serve.proc.pid)
            clients = [Client(ids[k :: args.clients]) for k in range(args.clients)]
            db = sqlite3.connect(f"file:{world.database}?mode=ro", uri=True, isolation_level=None)
            start = time.perf_counter()
            stop_at = start + args.seconds
            threads = [
                threading.Thread(target=send_for, args=(c, emu, world.listen_port, projects, stop_at)) for c in clients
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            intake = time.perf_counter() - start
            depth = inbox_depth(db)
            bl.wait_until("the inbox to empty", lambda: inbox_depth(db) == 0, timeout=600, pause=0.01)
            drained = time.perf_counter() - start
            db.close()
            peak_rss = serve.peak_rss_kib()
            final = {t["vikunjaid"]: t["description"] for t in world.export(*UDA_FILTER)}

    accepted = sum(c.accepted for c in clients)
    errors = [e for c in clients for e in c.errors]
    expected = {task_id: title for c in clients for task_id, title in c.last_title.items()}
    wrong = {k: (final.get(k), v) for k, v in expected.items() if final.get(k) != v}
    latencies = [x for c in clients for x in c.latencies]

    print(bl.table(bl.SUMMARY_HEADERS, [bl.summary_row("POST /webhook answered (202)", latencies)]))
    rows = [
        ["clients (threads, one connection per event)", args.clients],
        ["intake seconds", intake],
        ["events accepted (202)", accepted],
        ["events refused or failed", len(errors)],
        ["accepted events/s", accepted / intake],
        ["inbox depth when the intake stopped", depth],
        ["seconds to empty the inbox after the intake", drained - intake],
        ["applied events/s over the whole run", accepted / drained],
        ["serve VmRSS after warm-up (MiB)", idle_rss / 1024],
        ["serve VmHWM peak (MiB)", peak_rss / 1024],
    ]
    print()
    print(bl.table(("figure", "value"), rows))
    if errors:
        raise bl.BenchError(f"{len(errors)} webhooks were not accepted, e.g. {errors[:3]}")
    if wrong:
        raise bl.BenchError(
            f"Taskwarrior does not hold the last title of {len(wrong)} tasks, e.g. {list(wrong.items())[:3]}"
        )
    print(f"\nTaskwarrior holds the last title sent for all {len(expected)} tasks.")
    return bl.finish([], args)


if __name__ == "__main__":
    p = bl.parser(__doc__.split("\n", 1)[0])
    p.add_argument("--seconds", type=float, help="intake duration (default 5, --quick 2)")
    p.add_argument("--clients", type=int, default=4, help="concurrent sender threads (default 4)")
    parsed = p.parse_args()
    parsed.seconds = parsed.seconds or (2.0 if parsed.quick else 5.0)
    bl.run_main(main, parsed)
