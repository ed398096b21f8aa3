"""The original request a proxy asks about, reduced to the facts access rules look at."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """The request the client sent to the proxy (not the proxy's sub-request to us), in its
    canonical form (gateway.http.request_target): every rule, redirect and log line reads these.

    `host` is lower-case without port or trailing dot; `path` is the canonical path rules match
    (decoded, slashes merged, `;params` dropped, `\\` as `/`); `url` is the canonical
    original URL (scheme://host[:port]/path?query) used as the return target after login.
    """

    method: str
    scheme: str
    host: str
    path: str
    query: str
    url: str
    client_ip: IPv4Address | IPv6Address | None
    readings: tuple[str, ...] = ()  # other paths a server may read the target as (see decide)
    other_methods: tuple[str, ...] = ()  # from X-HTTP-Method-Override and the like
