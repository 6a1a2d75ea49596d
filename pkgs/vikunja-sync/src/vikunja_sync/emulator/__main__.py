"""``python -m vikunja_sync.emulator``: run the emulator as a process or service.

The token is read from a file, never from argv, so it does not show up in ``ps``.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from .core import Emulator


def _rate_limit(text: str) -> tuple[int, float]:
    limit, _, window = text.partition("/")
    return int(limit), float(window or 60)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m vikunja_sync.emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3456)
    parser.add_argument("--token-file", type=Path, required=True, help="file holding the API token")
    parser.add_argument("--webhook-timeout", type=float, default=30.0, help="seconds per delivery attempt")
    parser.add_argument("--max-items-per-page", type=int, default=50)
    parser.add_argument("--server-tz", default="+02:00", help="UTC offset dates are rendered in")
    parser.add_argument("--rate-limit", type=_rate_limit, help="LIMIT/SECONDS per token, e.g. 100/60")
    parser.add_argument("--no-webhooks", action="store_true", help="behave as webhooks.enabled=false")
    parser.add_argument("--log-level", default="INFO")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    try:
        token = args.token_file.read_text().strip()
    except OSError as exc:
        print(f"cannot read token file: {exc}", file=sys.stderr)
        return 2
    if not token:
        print("token file is empty", file=sys.stderr)
        return 2
    emulator = Emulator(
        token=token,
        host=args.host,
        port=args.port,
        max_items_per_page=args.max_items_per_page,
        webhooks_enabled=not args.no_webhooks,
        server_tz=args.server_tz,
        rate_limit=args.rate_limit,
        webhook_timeout=args.webhook_timeout,
    )
    done = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: done.set())
    emulator.start()
    print(f"vikunja emulator listening on {emulator.url}", flush=True)
    done.wait()
    emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
