"""Reading the original request from a proxy's forward-auth sub-request.

Caddy and Traefik send X-Forwarded-Method/-Proto/-Host/-Uri; nginx's auth_request sends the
original URL in X-Original-URL. These headers, and X-Forwarded-For, are believed only from peers
inside TRUSTED_PROXIES: anyone else could claim to be any client on any host.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

from gateway.http.request_facts import RequestFacts
from gateway.http.request_target import (
    EncodedSlashes,
    TargetRefused,
    canonical_authority,
    canonical_target,
)

_ABSOLUTE_URL = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)(.*)", re.DOTALL)

Network = IPv4Network | IPv6Network
Address = IPv4Address | IPv6Address


class ForwardedInvalid(Exception):
    """The sub-request lacks or garbles the headers that describe the original request."""


class RequestAmbiguous(ForwardedInvalid):
    """The original host or path cannot be read one unambiguous way, so it is refused."""


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
    encoded_slashes: EncodedSlashes = "reject",
) -> RequestFacts:
    """Build RequestFacts from a forward-auth sub-request's headers (lower-case names), with
    the host and path in their one canonical form (gateway.http.request_target).

    Raises UntrustedProxy when the peer is not trusted, ForwardedInvalid when headers are missing
    or malformed, RequestAmbiguous when the target cannot be read one unambiguous way.
    """
    if not is_trusted(peer, trusted):
        raise UntrustedProxy("forward-auth requests are only accepted from TRUSTED_PROXIES")
    client = client_ip(peer, headers.get("x-forwarded-for") or headers.get("x-real-ip"), trusted)
    original_url = headers.get("x-original-url") if nginx else None
    if original_url:
        method = headers.get("x-original-method") or headers.get("x-forwarded-method") or "GET"
        return request_from_url(
            original_url, method, encoded_slashes, client, _overridden_methods(headers)
        )
    target = headers.get("x-forwarded-uri")
    if target is None:
        raise ForwardedInvalid("missing X-Forwarded-Uri: is this a forward_auth sub-request?")
    return _canonical_facts(
        headers.get("x-forwarded-proto") or "https",
        headers.get("x-forwarded-host") or headers.get("host") or "",
        target,
        headers.get("x-forwarded-method") or "GET",
        encoded_slashes,
        client,
        _overridden_methods(headers),
    )


# Headers with which many frameworks (Express method-override, Laravel, Symfony, Rails' Rack)
# let a POST act as another method: the rules must hold for that method too.
_OVERRIDE_HEADERS = ("x-http-method-override", "x-http-method", "x-method-override")


def _overridden_methods(headers: Mapping[str, str]) -> tuple[str, ...]:
    """The methods override headers name, upper-cased as the frameworks read them, once each."""
    if headers.keys().isdisjoint(_OVERRIDE_HEADERS):
        return ()  # the hot path: no such header
    found = [value.strip() for name in _OVERRIDE_HEADERS if (value := headers.get(name))]
    for value in found:
        if not value.isascii() or not value.isalpha() or len(value) > 16:
            raise RequestAmbiguous("a method-override header does not name an HTTP method")
    return tuple(dict.fromkeys(value.upper() for value in found))


def request_from_url(
    url: str,
    method: str = "GET",
    encoded_slashes: EncodedSlashes = "reject",
    client: Address | None = None,
    overrides: tuple[str, ...] = (),
) -> RequestFacts:
    """RequestFacts for an absolute URL (nginx's X-Original-URL, the rules tester).

    Raises ForwardedInvalid for a URL that is not absolute http(s), RequestAmbiguous as above.
    """
    # Split by hand: urlsplit would cut a literal '#' off as a fragment and judge less.
    absolute = _ABSOLUTE_URL.fullmatch(url)
    if absolute is None:
        raise ForwardedInvalid("the URL must be an absolute http(s) URL")
    scheme, netloc, target = absolute.groups()
    return _canonical_facts(scheme, netloc, target, method, encoded_slashes, client, overrides)


def _canonical_facts(
    scheme: str,
    netloc: str,
    target: str,
    method: str,
    encoded_slashes: EncodedSlashes,
    client: Address | None,
    overrides: tuple[str, ...] = (),
) -> RequestFacts:
    scheme = scheme.lower()
    if scheme not in ("http", "https"):
        raise ForwardedInvalid("the forwarded URL is not an absolute http(s) URL")
    # Methods are case-sensitive (RFC 9110): `post` is not POST to the app, so not to the rules.
    if not method.isascii() or not method.isalpha() or not method.isupper() or len(method) > 16:
        raise ForwardedInvalid("the method is not an upper-case HTTP method")
    try:
        authority = canonical_authority(netloc.split(",")[0].strip(), scheme)
        canonical = canonical_target(target, encoded_slashes)
    except TargetRefused as exc:
        raise RequestAmbiguous(str(exc)) from None
    query = canonical.query
    return RequestFacts(
        method=method,
        scheme=scheme,
        host=authority.host,
        path=canonical.path,
        query=query,
        url=f"{scheme}://{authority.netloc()}{canonical.url_path}" + (f"?{query}" if query else ""),
        client_ip=client,
        readings=canonical.readings,
        other_methods=tuple(m for m in overrides if m != method) if overrides else (),
    )
