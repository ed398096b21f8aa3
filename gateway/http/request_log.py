"""The request log: one line per request, and the request id that ties a request's lines together.

A line names the request id, method, host, path, status, latency, user (when known) and client IP;
forward-auth lines add the decision and the protected URL's host and path. Never the query string,
cookies, headers or bodies: those carry codes, tokens and secrets. Paths that hold a secret
themselves (`/lc/<code>`) are cut short.

ACCESS_LOG chooses what is logged: `pages` (the default: sign-in, account, OIDC and API requests),
`all` (also every forward-auth decision) or `off`.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import MutableMapping
from typing import Any

from gateway.http.forwarded import Address, TrustedProxies, client_ip, parse_ip

log = logging.getLogger("passgate.access")

_WELL_FORMED_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+/=-]{0,127}")
_SECRET_PATHS = ("/lc/",)  # everything after these prefixes is a credential
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f]")
_MAX_PATH = 300


def request_id(given: str | None, from_trusted_proxy: bool) -> str:
    """The proxy's X-Request-Id when a trusted proxy sent a well-formed one, else a new id."""
    if from_trusted_proxy and given is not None and _WELL_FORMED_ID.fullmatch(given):
        return given
    return secrets.token_hex(16)


def loggable_path(path: str) -> str:
    """The path as it may be logged: secrets cut out, control characters escaped, length capped."""
    for prefix in _SECRET_PATHS:
        if path.startswith(prefix) and len(path) > len(prefix):
            return prefix + "…"
    if _UNPRINTABLE.search(path):
        path = _UNPRINTABLE.sub(lambda m: f"\\x{ord(m.group()):02x}", path)
    return path if len(path) <= _MAX_PATH else path[:_MAX_PATH] + "…"


def visitor_ip(
    peer: Address | None, forwarded_for: str | None, trust_proxy: bool, trusted: TrustedProxies
) -> str:
    """The client's IP as Passgate's pages see it (X-Forwarded-For only with TRUST_PROXY)."""
    found = client_ip(peer, forwarded_for, trusted) if trust_proxy else peer
    return str(found or "")


def scope_peer(scope: MutableMapping[str, Any]) -> Address | None:
    client = scope.get("client")
    return parse_ip(client[0]) if client else None


def write(fields: dict[str, Any]) -> None:
    """Log one request line: `fields` as JSON keys, or a short line for people."""
    user = fields.get("user") or "-"
    text = (
        f"{fields['method']} {fields['host']}{fields['path']} {fields['status']} "
        f"{fields['duration_ms']}ms user={user} ip={fields['client_ip'] or '-'}"
    )
    if "decision" in fields:
        text = (
            f"forward-auth {fields['decision']} {fields['url_host']}{fields['url_path']} "
            f"{fields['status']} {fields['duration_ms']}ms user={user} "
            f"ip={fields['client_ip'] or '-'}"
        )
    log.info("%s id=%s", text, fields["request_id"], extra={"fields": fields})
