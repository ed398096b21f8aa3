"""Reading the original request from a proxy's forward-auth sub-request.

Caddy and Traefik send X-Forwarded-Method/-Proto/-Host/-Uri; nginx's auth_request sends the
original URL in X-Original-URL. These headers, and X-Forwarded-For, are believed only from peers
inside TRUSTED_PROXIES: anyone else could claim to be any client on any host.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from urllib.parse import urlsplit

from gateway.request_facts import RequestFacts

Network = IPv4Network | IPv6Network
Address = IPv4Address | IPv6Address


class ForwardedInvalid(Exception):
    """The sub-request lacks or garbles the headers that describe the original request."""


class UntrustedProxy(ForwardedInvalid):
    """The peer asking is not a trusted proxy, so its description of the request is not believed."""


@lru_cache(maxsize=4096)
def parse_ip(value: str | None) -> Address | None:
    """An IP address from a header or socket value, or None; cached (peers repeat)."""
    if not value:
        return None
    try:
        return ip_address(value.strip().strip("[]").split("%")[0])
    except ValueError:
        return None


class TrustedProxies:
    """The networks whose forwarded headers are believed, with a per-address answer cache
    (the same few proxies ask on every request)."""

    def __init__(self, networks: tuple[Network, ...]) -> None:
        self.networks = networks
        self._answers: dict[Address, bool] = {}

    def __contains__(self, peer: Address | None) -> bool:
        if peer is None:
            return False
        answer = self._answers.get(peer)
        if answer is None:
            answer = any(peer in network for network in self.networks)
            if len(self._answers) < 4096:
                self._answers[peer] = answer
        return answer


def is_trusted(peer: Address | None, trusted: TrustedProxies) -> bool:
    return peer in trusted


def client_ip(
    peer: Address | None, forwarded_for: str | None, trusted: TrustedProxies
) -> Address | None:
    """The first address, from the right, in peer + X-Forwarded-For that is not a trusted proxy."""
    if not is_trusted(peer, trusted) or not forwarded_for:
        return peer
    hops = [parse_ip(part) for part in forwarded_for.split(",")]
    for hop in reversed(hops):
        if hop is None:
            return None  # a garbled chain names no one we can vouch for
        if not is_trusted(hop, trusted):
            return hop
    return hops[0] if hops else peer


def original_request(
    headers: Mapping[str, str],
    peer: Address | None,
    trusted: TrustedProxies,
    nginx: bool = False,
) -> RequestFacts:
    """Build RequestFacts from a forward-auth sub-request's headers (lower-case names).

    Raises UntrustedProxy when the peer is not trusted, ForwardedInvalid when headers are missing
    or malformed.
    """
    if not is_trusted(peer, trusted):
        raise UntrustedProxy("forward-auth requests are only accepted from TRUSTED_PROXIES")
    original_url = headers.get("x-original-url") if nginx else None
    if original_url:
        parts = urlsplit(original_url)
        scheme, netloc, path, query = parts.scheme, parts.netloc, parts.path, parts.query
        method = headers.get("x-original-method") or headers.get("x-forwarded-method") or "GET"
    else:
        uri = headers.get("x-forwarded-uri")
        if uri is None:
            raise ForwardedInvalid("missing X-Forwarded-Uri: is this a forward_auth sub-request?")
        scheme = headers.get("x-forwarded-proto") or "https"
        netloc = headers.get("x-forwarded-host") or headers.get("host") or ""
        path, _, query = uri.partition("?")
        method = headers.get("x-forwarded-method") or "GET"
    scheme = scheme.lower()
    netloc = netloc.split(",")[0].strip()
    host = netloc.rsplit(":", 1)[0] if not netloc.endswith("]") else netloc
    host = host.strip("[]").lower().rstrip(".")
    if scheme not in ("http", "https") or not host or not path.startswith("/"):
        raise ForwardedInvalid("the forwarded URL is not an absolute http(s) URL")
    if any(ch in netloc + path + query for ch in "\r\n\t\\ \x00"):
        raise ForwardedInvalid("the forwarded URL contains forbidden characters")
    url = f"{scheme}://{netloc}{path}" + (f"?{query}" if query else "")
    return RequestFacts(
        method=method.upper(),
        scheme=scheme,
        host=host,
        path=path,
        query=query,
        url=url,
        client_ip=client_ip(
            peer, headers.get("x-forwarded-for") or headers.get("x-real-ip"), trusted
        ),
    )
