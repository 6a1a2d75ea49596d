"""A Vikunja v2.5 emulator: real HTTP on loopback, Vikunja's quirks, switchable faults.

No real Vikunja can run in the test sandbox, so this reproduces what a sync client
must cope with (see docs/vikunja-api.md): replace-on-update, capped pagination,
negative pseudo-project ids, ``null`` empty lists, zero dates, soft deletes, signed
webhooks that are retried briefly and then dropped, and rate limits. Faults
(``go_down``, ``set_fault``) simulate outages, 500s, hangs and 429s.

Usage::

    with Emulator(token="tk_" + "0" * 40) as emu:
        requests.get(emu.url + "/api/v1/info")

As a process: ``python -m vikunja_sync.emulator --port N --token-file FILE``; it is
then controlled through the unauthenticated ``/_emulator/`` admin routes.
Standard library only: it must not depend on what it is used to test.
"""

from .clock import ZERO_DATE
from .core import FAULT_KINDS, Emulator
from .model import ApiError
from .routes import API_PREFIX, ROUTES, Route
from .webhooks import WEBHOOK_EVENTS, signature

__all__ = [
    "API_PREFIX",
    "FAULT_KINDS",
    "ROUTES",
    "WEBHOOK_EVENTS",
    "ZERO_DATE",
    "ApiError",
    "Emulator",
    "Route",
    "signature",
]
