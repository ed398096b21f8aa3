"""Forward-auth requests refused as ambiguous (`/public/%2e%2e%2fadmin`, `%00`, …) go to the audit
log with the reason, at most once a minute per client address, so a scanner cannot flood it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from ipaddress import ip_network

from starlette.concurrency import run_in_threadpool

from gateway.audit.log import SYSTEM, Actor, AuditLog
from gateway.http.forwarded import Address, TrustedProxies, client_ip

log = logging.getLogger("passgate.forward_auth")

EVENT = "forward_auth_refused"
INTERVAL = 60.0  # seconds between two recorded refusals of one client
GLOBAL_PER_MINUTE = 120  # refusals recorded per minute from everyone together
_MAX_CLIENTS = 1024
_MAX_SHOWN = 256


def _shown(value: str) -> str:
    """An attacker's text made safe to show: printable ASCII, no query string, bounded."""
    path = value.split("?", 1)[0][:_MAX_SHOWN]
    return "".join(ch if " " <= ch < "\x7f" else "?" for ch in path)


def _network(client: str) -> str:
    """Whom the throttle counts: an IPv4 address, or the /64 of an IPv6 one (which a single
    host can hold whole)."""
    if ":" not in client:
        return client
    try:
        return str(ip_network(f"{client}/64", strict=False))
    except ValueError:
        return client


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
        self._window = (0.0, 0)  # (start of the current minute, refusals recorded in it)

    def _global_allows(self, now: float) -> bool:
        start, count = self._window
        if now - start >= INTERVAL:
            start, count = now, 0
        self._window = (start, count + 1)
        return count < GLOBAL_PER_MINUTE

    async def record(
        self, reason: str, headers: Mapping[str, str], peer: Address | None, nginx: bool
    ) -> None:
        """Log and audit one refusal unless this client (its IPv6 /64) had one recorded in the
        last minute, or GLOBAL_PER_MINUTE refusals were recorded in it from anyone."""
        forwarded_for = headers.get("x-forwarded-for") or headers.get("x-real-ip")
        client = str(client_ip(peer, forwarded_for, self._trusted) or "")
        now = self._clock()
        network = _network(client)
        if self._next.get(network, 0.0) > now or not self._global_allows(now):
            return
        if len(self._next) >= _MAX_CLIENTS:
            self._next.clear()
        self._next[network] = now + INTERVAL
        # What original_request read for this proxy, not a header the client may have added.
        if nginx:
            host, target = "", _shown(headers.get("x-original-url") or "")
        else:
            host = _shown(headers.get("x-forwarded-host") or headers.get("host") or "")
            target = _shown(headers.get("x-forwarded-uri") or "")
        log.warning("forward-auth refused %s%s from %s: %s", host, target, client, reason)
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
