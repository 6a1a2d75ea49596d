"""`vikunja-direct`: argument parsing and output only.

Exit codes: 0 done, 1 error, 2 bad configuration or usage, 75 (EX_TEMPFAIL) queued,
try later. Heavy modules are imported inside the commands that need them; `hook`
skips argparse altogether because it runs inside every Taskwarrior command.
"""

from __future__ import annotations

import sys

EX_TEMPFAIL = 75
EX_CONFIG = 2


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["hook"]:
        from vikunja_sync.hook import main as hook_main

        return hook_main()
    return _main(argv)


def _main(argv: list[str]) -> int:
    import logging

    from vikunja_sync.breaker import CircuitBreakerOpen
    from vikunja_sync.config import ConfigError

    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO if args.command == "serve" else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.handler(args) or 0)
    except ConfigError as exc:
        print(f"vikunja-direct: {exc}", file=sys.stderr)
        return EX_CONFIG
    except CircuitBreakerOpen as exc:
        print(f"vikunja-direct: {exc}; nothing was changed, try again later", file=sys.stderr)
        return EX_TEMPFAIL
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        logging.getLogger("vikunja_sync").debug("failed", exc_info=True)
        print(f"vikunja-direct {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


def _parser():
    import argparse

    p = argparse.ArgumentParser(prog="vikunja-direct", description="Real-time Taskwarrior <-> Vikunja sync")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler, help: str):
        c = sub.add_parser(name, help=help, description=help)
        c.set_defaults(handler=handler)
        return c

    command("hook", None, "Taskwarrior hook entry (reads the task on stdin)")
    c = command("install-hooks", cmd_install_hooks, "install the Taskwarrior hooks")
    c.add_argument("--hooks-dir", help="hooks directory (default: Taskwarrior's rc.hooks.location)")
    c = command("push", cmd_push, "push one task to Vikunja now")
    c.add_argument("uuid")
    c = command("process-queue", cmd_process_queue, "push every queued change")
    c.add_argument("--no-wait", action="store_true", help="exit at once if another drain is running")
    c.add_argument("--quiet", action="store_true", help="print only the summary line")
    c = command("webhook", cmd_webhook, "apply one Vikunja webhook payload")
    c.add_argument("file", nargs="?", default="-", help="payload file, or - for stdin")
    c = command("serve", cmd_serve, "run the sync daemon (webhook server + outbox drain)")
    c.add_argument("--listen", help="HOST:PORT (default from the config, 127.0.0.1:8765)")
    c.add_argument("--insecure", action="store_true", help="allow a non-loopback address without a webhook secret")
    c = command("reconcile", cmd_reconcile, "two-way reconciliation")
    c.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    c.add_argument("--full", action="store_true", help="compare everything, not only recent changes")
    c.add_argument("--force", action="store_true", help="allow more deletions than reconcile.max_delete_share")
    c = command("diagnose", cmd_diagnose, "health report")
    c.add_argument("--json", action="store_true")
    c = command("breaker", cmd_breaker, "show or set the circuit breaker")
    c.add_argument("action", choices=("status", "reset", "trip"))
    c.add_argument("--json", action="store_true")
    c = command("provision-webhooks", cmd_provision_webhooks, "create the Vikunja webhooks this sync needs")
    c.add_argument("--target-url", required=True, help="the URL Vikunja should POST to (…/webhook)")
    c.add_argument("--dry-run", action="store_true")
    c.add_argument("--rotate", action="store_true", help="replace existing webhooks to set the current secret")
    c = command("demo", cmd_demo, "self-contained demo against the bundled Vikunja emulator")
    c.add_argument("--recovery", type=float, default=5.0, help="breaker recovery seconds used in the demo")
    return p


def _emit(obj) -> None:
    import json

    print(json.dumps(obj if isinstance(obj, dict) else obj.as_dict(), sort_keys=True), flush=True)


def _settings():
    from vikunja_sync.config import load_settings

    return load_settings()


def _engine(settings):
    from vikunja_sync.sync import engine_from_settings

    return engine_from_settings(settings)


def cmd_install_hooks(args) -> int:
    from pathlib import Path

    from vikunja_sync.hook import install_hooks
    from vikunja_sync.taskwarrior import Taskwarrior

    hooks_dir = Path(args.hooks_dir) if args.hooks_dir else Taskwarrior().hooks_dir()
    for path in install_hooks(hooks_dir, _settings().state_dir):
        print(f"installed {path}")
    return 0


def cmd_push(args) -> int:
    settings = _settings()
    engine = _engine(settings)
    try:
        outcome = engine.push_uuid(args.uuid)
    finally:
        engine.close()
    _emit(outcome)
    if outcome.success:
        return 0
    return EX_TEMPFAIL if outcome.action in ("queued", "circuit_breaker_open") else 1


def cmd_process_queue(args) -> int:
    from vikunja_sync.breaker import CircuitBreaker
    from vikunja_sync.store import Store

    settings = _settings()
    state = CircuitBreaker(settings.state_dir, settings.failure_threshold, settings.recovery_timeout).snapshot()
    if state.state == "open":  # fail fast without even loading the HTTP client
        remaining = Store(settings.database).outbox_depth()
        _emit({"success": remaining == 0, "action": "circuit_breaker_open", "remaining": remaining})
        return EX_TEMPFAIL if remaining else 0
    engine = _engine(settings)
    try:
        report = engine.drain(wait=not args.no_wait)
    finally:
        engine.close()
    if not args.quiet:
        for outcome in report.outcomes:
            _emit(outcome)
    _emit(
        {
            "success": report.remaining == 0,
            "action": "busy" if report.busy else (report.stopped_by or "drained"),
            "pushed": report.pushed,
            "failed": report.failed,
            "remaining": report.remaining,
        }
    )
    if report.busy:
        return 0
    return EX_TEMPFAIL if report.remaining else 0


def cmd_webhook(args) -> int:
    import json
    from pathlib import Path

    raw = sys.stdin.read() if args.file == "-" else Path(args.file).read_text(encoding="utf-8")
    try:
        payload = json.loads(raw)
    except ValueError as exc:
        print(f"vikunja-direct webhook: payload is not JSON ({exc}); pass a Vikunja webhook body", file=sys.stderr)
        return 1
    if not isinstance(payload, dict):
        print("vikunja-direct webhook: payload must be a JSON object (a Vikunja webhook envelope)", file=sys.stderr)
        return 1
    engine = _engine(_settings())
    try:
        outcome = engine.apply_payload(payload)
    except Exception as exc:  # noqa: BLE001 - report any failure as one line, like the other commands
        outcome = None
        _emit({"success": False, "action": "error", "detail": str(exc)})
    finally:
        engine.close()
    if outcome is None:
        return 1
    _emit(outcome)
    return 0 if outcome.success else 1


def cmd_serve(args) -> int:
    from vikunja_sync.server import serve

    return serve(_settings(), args.listen, args.insecure)


def cmd_reconcile(args) -> int:
    from vikunja_sync.reconcile import run_reconcile

    return run_reconcile(_settings(), dry_run=args.dry_run, full=args.full, force=args.force)


def cmd_diagnose(args) -> int:
    from vikunja_sync.diagnose import diagnose, healthy, render_json, render_text

    sections, breaker = diagnose(_settings())
    print(render_json(sections, breaker) if args.json else render_text(sections, breaker))
    return 0 if healthy(sections, breaker) else 1


def cmd_breaker(args) -> int:
    from vikunja_sync.breaker import CircuitBreaker, format_status, state_as_dict

    settings = _settings()
    breaker = CircuitBreaker(settings.state_dir, settings.failure_threshold, settings.recovery_timeout)
    if args.action == "reset":
        breaker.reset()
    elif args.action == "trip":
        breaker.trip()
    state = breaker.snapshot()
    if args.json:
        _emit(state_as_dict(state))
    else:
        print("\n".join(format_status(state)))
    return 0


def cmd_provision_webhooks(args) -> int:
    settings = _settings()
    secret = settings.read_webhook_secret()
    if not secret:
        print(
            "vikunja-direct: no webhook secret configured; set webhook.secret_file so Vikunja signs its webhooks",
            file=sys.stderr,
        )
        return EX_CONFIG
    engine = _engine(settings)
    try:
        outcomes = engine.provision_webhooks(args.target_url, secret, args.dry_run, args.rotate)
    finally:
        engine.close()
    for outcome in outcomes:
        _emit({**outcome.as_dict(), "dry_run": args.dry_run})
    return 0


def cmd_demo(args) -> int:
    from vikunja_sync.demo import run_demo

    return run_demo(recovery=args.recovery)
