"""The forward-auth endpoints (`/api/auth/caddy|traefik|nginx`): the hot path in front of every
request of every protected service.

This is a bare ASGI app, not a Starlette route: it parses the few headers it needs straight from
the scope, asks `decide`, and renders the decision. Nothing here blocks on the database: sessions
and identities come from one-second in-process caches over the session store. Each answer
costs one counter increment and one histogram observation (gateway/core/metrics.py); request ids
and a request-log line only with ACCESS_LOG=all, on a separate path.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from functools import lru_cache
from ipaddress import IPv4Address, IPv6Address
from time import perf_counter
from typing import Any
from urllib.parse import quote

from starlette.types import Receive, Scope, Send

from gateway.core import metrics
from gateway.core.errors import SessionStoreUnavailable
from gateway.core.identity import Identity
from gateway.core.templating import render
from gateway.forward_auth.decision import Decision, Outcome, decide
from gateway.forward_auth.refusals import Refusals
from gateway.http import request_log
from gateway.http.forwarded import (
    ForwardedInvalid,
    RequestAmbiguous,
    UntrustedProxy,
    original_request,
    parse_ip,
)
from gateway.http.request_facts import RequestFacts
from gateway.services import Services
from gateway.sessions.cookies import single_cookie

log = logging.getLogger("passgate.forward_auth")

PATHS = {"/api/auth/caddy": "caddy", "/api/auth/traefik": "traefik", "/api/auth/nginx": "nginx"}
IDENTITY_HEADERS = ("remote-user", "remote-email", "remote-name", "remote-groups")
_NO_STORE = (b"cache-control", b"no-store")
_EMPTY_IDENTITY = tuple((name.encode(), b"") for name in IDENTITY_HEADERS)
_STATUS = {
    "allow": 200,
    "bypass": 200,
    "redirect": 302,
    "unauthorized": 401,
    "forbidden": 403,
    "unavailable": 503,
    "untrusted_proxy": 403,
    "invalid_request": 400,
}


def _header_value(value: str) -> bytes:
    # Identity values come from our own database, but never let one smuggle a header break.
    return "".join(ch for ch in value if ch >= " " and ch != "\x7f").encode("utf-8")


@lru_cache(maxsize=4096)
def identity_headers(identity: Identity | None) -> tuple[tuple[bytes, bytes], ...]:
    """All four identity headers, empty when nobody is signed in, so no client value survives.
    Cached: identities are immutable and few, and this runs on every allowed request."""
    if identity is None:
        return _EMPTY_IDENTITY
    values = (identity.username, identity.email, identity.display_name, ",".join(identity.groups))
    return tuple(
        (n.encode(), _header_value(v)) for n, v in zip(IDENTITY_HEADERS, values, strict=True)
    )


def wants_redirect(headers: dict[str, str], facts: RequestFacts) -> bool:
    """Only top-level browser navigations get sent to the login page; API calls, fetch/XHR and
    non-GET requests get a 401 they can act on instead of an HTML page they cannot."""
    if facts.method not in ("GET", "HEAD"):
        return False
    if headers.get("x-requested-with", "").lower() == "xmlhttprequest":
        return False
    mode = headers.get("sec-fetch-mode")
    if mode is not None and mode != "navigate":
        return False
    return "text/html" in headers.get("accept", "")


class ForwardAuth:
    """ASGI app answering forward-auth sub-requests for Caddy, Traefik and nginx."""

    def __init__(self, services: Services) -> None:
        self._services = services
        settings = services.settings
        self._trusted = settings.trusted_networks
        self._cookie_name = settings.session_cookie_name
        self._login_url = settings.app_url + "/login?rd="
        self._www_authenticate = f'Passgate realm="{settings.app_name}"'.encode()
        self._untrusted_logged: set[str] = set()
        self._access_log = settings.access_log == "all"
        self._encoded_slashes = settings.encoded_slashes
        self._refusals = Refusals(services.audit, self._trusted)
        # Bound once: the hot path pays one counter increment and one histogram observation.
        self._decisions = metrics.DECISION_COUNTERS
        self._latency = metrics.FORWARD_AUTH_SECONDS

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = perf_counter()
        if self._access_log:
            await self._logged(scope, send, started)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        answer = await self._answer(scope, headers, send, ())
        self._decisions[answer[0]].inc()
        self._latency.observe(perf_counter() - started)

    async def _logged(self, scope: Scope, send: Send, started: float) -> None:
        """The same answer, plus a request id and a line in the request log (ACCESS_LOG=all)."""
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        client = scope.get("client")
        peer = parse_ip(client[0]) if client else None
        rid = request_log.request_id(headers.get("x-request-id"), peer in self._trusted)
        result, facts, identity = await self._answer(
            scope, headers, send, ((b"x-request-id", rid.encode()),)
        )
        elapsed = perf_counter() - started
        self._decisions[result].inc()
        self._latency.observe(elapsed)
        request_log.write(
            {
                "request_id": rid,
                "method": scope["method"],
                "host": headers.get("host", ""),
                "path": scope["path"],
                "status": _STATUS[result],
                "duration_ms": round(elapsed * 1000, 3),
                "user": identity.username if identity is not None else None,
                "client_ip": str(facts.client_ip or "") if facts else str(peer or ""),
                "decision": result,
                "url_host": facts.host if facts else "",
                "url_path": request_log.loggable_path(facts.path) if facts else "",
            }
        )

    async def _answer(
        self,
        scope: Scope,
        headers: dict[str, str],
        send: Send,
        extra: tuple[tuple[bytes, bytes], ...],
    ) -> tuple[str, RequestFacts | None, Identity | None]:
        """Answer the sub-request; return the result (a name in metrics.RESULTS), the original
        request and who asked, for the metrics and the request log."""
        proxy = PATHS[scope["path"]]
        client = scope.get("client")
        peer = parse_ip(client[0]) if client else None
        try:
            facts = original_request(
                headers, peer, self._trusted, proxy == "nginx", self._encoded_slashes
            )
        except UntrustedProxy as exc:
            self._log_untrusted(peer)
            await _respond(send, 403, extra, _json("untrusted_proxy", str(exc)))
            return "untrusted_proxy", None, None
        except ForwardedInvalid as exc:
            if isinstance(exc, RequestAmbiguous):
                await self._refusals.record(str(exc), headers, peer, proxy == "nginx")
            # nginx's auth_request turns anything but 2xx/401/403 into a 500: refuse with 403.
            status = 403 if proxy == "nginx" else 400
            await _respond(send, status, extra, _json("invalid_request", str(exc)))
            return "invalid_request", None, None

        rules_store = self._services.rules
        rules_store.maybe_reload()
        rules = rules_store.current
        decision = decide(facts, None, rules)
        identity: Identity | None = None
        if decision.outcome is not Outcome.BYPASS:
            try:
                found = await self._services.current_user.identify(
                    single_cookie(headers.get("cookie", ""), self._cookie_name)
                )
            except SessionStoreUnavailable:
                await _respond(
                    send,
                    503,
                    ((b"retry-after", b"5"), *extra),
                    _json("temporarily_unavailable", "the session store is unreachable; try again"),
                )
                return "unavailable", facts, None
            identity = found[1] if found is not None else None
            decision = decide(facts, identity, rules)
        result = await self._render(send, proxy, headers, facts, decision, identity, extra)
        return result, facts, identity

    async def _render(
        self,
        send: Send,
        proxy: str,
        headers: dict[str, str],
        facts: RequestFacts,
        decision: Decision,
        identity: Identity | None,
        extra: tuple[tuple[bytes, bytes], ...],
    ) -> str:
        outcome = decision.outcome
        if outcome is Outcome.ALLOW or outcome is Outcome.BYPASS:
            out = identity_headers(identity)
            await _respond(send, 200, out + extra if extra else out, b"")
            return "allow" if outcome is Outcome.ALLOW else "bypass"
        if outcome is Outcome.LOGIN:
            location = (self._login_url + quote(facts.url, safe="")).encode()
            if proxy != "nginx" and wants_redirect(headers, facts):
                await _respond(send, 302, ((b"location", location), *extra), b"")
                return "redirect"
            # nginx's auth_request only understands 2xx/401/403: its error_page redirects.
            out = ((b"www-authenticate", self._www_authenticate), (b"x-login-url", location))
            await _respond(send, 401, out + extra, _json("unauthorized", "sign in first"))
            return "unauthorized"
        body = render(
            "forbidden.html",
            app_name=self._services.settings.app_name,
            service=facts.host,
            username=identity.username if identity else None,
            account_url=self._services.settings.app_url + "/account",
        ).encode()
        html = ((b"content-type", b"text/html; charset=utf-8"), *extra)
        await _respond(send, 403, html, body)
        return "forbidden"

    def _log_untrusted(self, peer: IPv4Address | IPv6Address | None) -> None:
        name = str(peer)
        if name not in self._untrusted_logged and len(self._untrusted_logged) < 1000:
            self._untrusted_logged.add(name)
            log.warning(
                "refused forward-auth from %s: not in TRUSTED_PROXIES (add the proxy's address)",
                name,
            )


def _json(error: str, description: str) -> bytes:
    return json.dumps({"error": error, "error_description": description}).encode()


async def _respond(
    send: Send, status: int, headers: Sequence[tuple[bytes, bytes]], body: bytes
) -> None:
    out: list[Any] = [*headers, _NO_STORE, (b"content-length", str(len(body)).encode())]
    if body and not any(name == b"content-type" for name, _ in headers):
        out.append((b"content-type", b"application/json"))
    await send({"type": "http.response.start", "status": status, "headers": out})
    await send({"type": "http.response.body", "body": body})
