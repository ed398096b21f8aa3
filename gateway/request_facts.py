"""The original request a proxy asks about, reduced to the facts access rules look at."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """The request the client sent to the proxy (not the proxy's sub-request to us).

    `host` is lower-case without port; `path` excludes the query string; `url` is the full
    original URL (scheme://host[:port]/path?query) used as the return target after login.
    """

    method: str
    scheme: str
    host: str
    path: str
    query: str
    url: str
    client_ip: IPv4Address | IPv6Address | None
