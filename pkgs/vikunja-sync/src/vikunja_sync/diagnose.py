"""`vikunja-direct diagnose`: the health of every part, ending with the breaker.

Diagnosing must not change what it looks at: the breaker is only read, and the API
probe bypasses it (with the standard library, so no `requests` import), and is skipped
while the breaker is open so that an outage costs no connections.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from vikunja_sync.breaker import CircuitBreaker, format_status, state_as_dict
from vikunja_sync.config import ConfigError, Settings
from vikunja_sync.hook import HOOK_NAMES, LAUNCH_HOOK
from vikunja_sync.store import Store
from vikunja_sync.taskwarrior import Taskwarrior, TaskwarriorError, find_binary


@dataclass
class Section:
    title: str
    lines: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def ok(self, label: str, value: Any, key: str | None = None) -> None:
        self.lines.append(f"  {label}: {value}")
        self.data[key or label.lower().replace(" ", "_")] = value

    def error(self, label: str, problem: str) -> None:
        self.lines.append(f"  {label}: ERROR: {problem}")
        self.problems.append(f"{label}: {problem}")


def _configuration(settings: Settings) -> Section:
    s = Section("Configuration")
    s.ok("Config file", str(settings.config_file) if settings.config_file else "none (environment only)")
    try:
        s.ok("Vikunja URL", settings.require_url())
    except ConfigError as exc:
        s.error("Vikunja URL", str(exc))
    try:
        settings.read_token()
        s.ok("Token file", f"{settings.token_file} (readable)")
    except ConfigError as exc:
        s.error("Token file", str(exc))
    if settings.webhook_secret_file is None:
        s.ok("Webhook secret", "not configured (webhook signatures are not checked)")
    else:
        try:
            settings.read_webhook_secret()
            s.ok("Webhook secret", f"{settings.webhook_secret_file} (readable)")
        except ConfigError as exc:
            s.error("Webhook secret", str(exc))
    return s


def _taskwarrior(settings: Settings) -> Section:
    s = Section("Taskwarrior")
    binary = find_binary()
    if binary is None:
        s.error("Binary", "`task` not found on PATH; install taskwarrior")
        return s
    tw = Taskwarrior()
    try:
        s.ok("Binary", f"{binary} ({tw.version()})")
        hooks_dir = tw.hooks_dir()
    except TaskwarriorError as exc:
        s.error("Binary", str(exc))
        return s
    missing = [name for name in (*HOOK_NAMES, LAUNCH_HOOK) if not os.access(hooks_dir / name, os.X_OK)]
    if missing:
        s.ok("Hooks", f"NOT installed in {hooks_dir} (run `vikunja-direct install-hooks`)", "hooks")
    else:
        s.ok("Hooks", f"installed in {hooks_dir}", "hooks")
    return s


def _state(settings: Settings) -> Section:
    s = Section("State directory")
    directory = settings.state_dir
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".diagnose-"):
            pass
        s.ok("Path", f"{directory} (writable)")
    except OSError as exc:
        s.error("Path", f"{directory} is not writable ({exc.strerror}); fix its owner or state_dir")
        return s
    store = Store(settings.database)
    outbox = store.pending()
    s.ok("Outbox", f"{len(outbox)} pending", "outbox")
    stuck = [e for e in outbox if e.attempts >= 5]
    if outbox:
        s.ok("Oldest change", f"{time.time() - outbox[0].enqueued_at:.0f}s ago", "oldest_age")
    if stuck:
        s.error("Stuck changes", f"{len(stuck)} entries failed 5+ times, last: {stuck[0].last_error}")
    s.ok("Inbox", f"{store.inbox_depth()} pending", "inbox")
    s.ok("Daemon", "listening" if settings.outbox_wake_socket.exists() else "not running", "daemon")
    return s


def _get(url: str, timeout: float, token: str | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, None


def _api(settings: Settings, breaker_open: bool) -> Section:
    s = Section("Vikunja API")
    if breaker_open:
        s.ok("Probe", "skipped: the circuit breaker is open (no connections while failing fast)")
        return s
    try:
        api = settings.api_url
        token = settings.read_token()
    except ConfigError:
        s.ok("Probe", "skipped: configuration incomplete")
        return s
    try:
        status, info = _get(f"{api}/info", settings.timeout)
        if status != 200 or not isinstance(info, dict):
            s.error("Server", f"GET /info answered {status}; is {settings.vikunja_url} a Vikunja server?")
            return s
        s.ok("Version", info.get("version", "unknown"))
        s.ok("Webhooks enabled", "yes" if info.get("webhooks_enabled") else "NO (set webhooks.enabled in Vikunja)")
        status, _ = _get(f"{api}/projects?per_page=1", settings.timeout, token)
    except (OSError, ValueError) as exc:
        s.error("Server", f"unreachable: {exc}")
        return s
    if status == 200:
        s.ok("Authentication", "ok")
    else:
        s.error("Authentication", f"GET /projects answered {status}; check the token and its permissions")
    return s


def diagnose(settings: Settings) -> tuple[list[Section], Section]:
    breaker = CircuitBreaker(settings.state_dir, settings.failure_threshold, settings.recovery_timeout)
    state = breaker.snapshot()
    sections = [
        _configuration(settings),
        _taskwarrior(settings),
        _state(settings),
        _api(settings, state.state != "closed"),
    ]
    lines = format_status(state)
    tail = Section("Circuit Breaker", lines=lines[1:], data=state_as_dict(state))
    if state.state != "closed":
        tail.problems.append(f"circuit breaker is {state.state}")
    return sections, tail


def render_text(sections: list[Section], breaker: Section) -> str:
    out = []
    for section in [*sections, breaker]:
        out.append(f"=== {section.title} ===")
        out.extend(section.lines)
    return "\n".join(out)


def render_json(sections: list[Section], breaker: Section) -> str:
    all_sections = [*sections, breaker]
    doc = {
        "healthy": not any(s.problems for s in all_sections),
        "problems": [p for s in all_sections for p in s.problems],
        **{s.title.lower().replace(" ", "_"): s.data for s in all_sections},
    }
    return json.dumps(doc, indent=2, default=str)


def healthy(sections: list[Section], breaker: Section) -> bool:
    return not any(s.problems for s in [*sections, breaker])
