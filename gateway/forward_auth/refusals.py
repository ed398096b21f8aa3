"""Forward-auth requests refused as ambiguous (`/public/%2e%2e%2fadmin`, `%00`, …) go to the audit
log with the reason, at most once a minute per client address, so a scanner cannot flood it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from starlette.concurrency import run_in_threadpool

from gateway.audit.log import SYSTEM, Actor, AuditLog
from gateway.http.forwarded import Address, TrustedProxies, client_ip

log = logging.getLogger("passgate.forward_auth")

EVENT = "forward_auth_refused"
INTERVAL = 60.0  # seconds between two recorded refusals of one client
_MAX_CLIENTS = 1024
_MAX_SHOWN = 256


def _shown(value: str) -> str:
    """An attacker's text made safe to show: printable ASCII, no query string, bounded."""
    path = value.split("?", 1)[0]
    return path[:_MAX_SHOWN].encode("ascii", "backslashreplace").decode().replace("\x7f", "?")


class Refusals:
    """Records refused forward-auth requests, throttled per client address."""

    def __init__(
        self,
        audit: AuditLog,
        trusted: TrustedProxies,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._audit = audit
        self._trusted = trusted
        self._clock = clock
        self._next: dict[str, float] = {}

    async def record(self, reason: str, headers: Mapping[str, str], peer: Address | None) -> None:
        """Log and audit one refusal unless this client had one recorded in the last minute."""
        forwarded_for = headers.get("x-forwarded-for") or headers.get("x-real-ip")
        client = str(client_ip(peer, forwarded_for, self._trusted) or "")
        now = self._clock()
        if self._next.get(client, 0.0) > now:
            return
        if len(self._next) >= _MAX_CLIENTS:
            self._next.clear()
        self._next[client] = now + INTERVAL
        host = _shown(headers.get("x-forwarded-host") or "")
        target = _shown(headers.get("x-forwarded-uri") or headers.get("x-original-url") or "")
        printable = "".join(ch if " " <= ch < "\x7f" else "?" for ch in target)
        log.warning("forward-auth refused %s%s from %s: %s", host, printable, client, reason)
        actor = Actor(SYSTEM.kind, name=SYSTEM.name, ip=client)
        details = {"host": host, "target": target}
        await run_in_threadpool(
            self._audit.record_or_log,
            EVENT,
            actor=actor,
            success=False,
            reason=reason,
            details=details,
        )
