"""Reading the original request from proxy headers, believing only trusted proxies."""

from __future__ import annotations

from ipaddress import ip_address, ip_network

import pytest

from gateway.http.forwarded import (
    ForwardedInvalid,
    TrustedProxies,
    UntrustedProxy,
    client_ip,
    original_request,
)

TRUSTED = TrustedProxies((ip_network("127.0.0.0/8"), ip_network("172.16.0.0/12")))
LOCAL = ip_address("127.0.0.1")
CADDY = {
    "x-forwarded-method": "POST",
    "x-forwarded-proto": "https",
    "x-forwarded-host": "App.Example.com",
    "x-forwarded-uri": "/a/b?c=d",
    "x-forwarded-for": "203.0.113.9",
}


def test_caddy_headers_describe_the_original_request() -> None:
    facts = original_request(CADDY, LOCAL, TRUSTED)
    assert (facts.method, facts.scheme, facts.host, facts.path, facts.query) == (
        "POST",
        "https",
        "app.example.com",
        "/a/b",
        "c=d",
    )
    assert facts.url == "https://app.example.com/a/b?c=d"  # canonical: the host lower-cased
    assert str(facts.client_ip) == "203.0.113.9"


def test_host_port_is_kept_in_url_but_not_in_host() -> None:
    facts = original_request({**CADDY, "x-forwarded-host": "app.example.com:8443"}, LOCAL, TRUSTED)
    assert facts.host == "app.example.com"
    assert facts.url.startswith("https://app.example.com:8443/")


def test_nginx_original_url_is_read() -> None:
    headers = {"x-original-url": "https://media.example.com/x?y=1", "x-original-method": "PUT"}
    facts = original_request(headers, LOCAL, TRUSTED, nginx=True)
    assert (facts.host, facts.path, facts.query, facts.method) == (
        "media.example.com",
        "/x",
        "y=1",
        "PUT",
    )


def test_untrusted_peer_is_refused() -> None:
    with pytest.raises(UntrustedProxy):
        original_request(CADDY, ip_address("8.8.8.8"), TRUSTED)


def test_missing_uri_is_invalid() -> None:
    headers = {k: v for k, v in CADDY.items() if k != "x-forwarded-uri"}
    with pytest.raises(ForwardedInvalid):
        original_request(headers, LOCAL, TRUSTED)


@pytest.mark.parametrize("uri", ["relative", "/a\r\nb", "/a b", "/a%2fb", "http://h/a"])
def test_malformed_uri_is_invalid(uri: str) -> None:
    with pytest.raises(ForwardedInvalid):
        original_request({**CADDY, "x-forwarded-uri": uri}, LOCAL, TRUSTED)


def test_bad_scheme_is_invalid() -> None:
    with pytest.raises(ForwardedInvalid):
        original_request({**CADDY, "x-forwarded-proto": "javascript"}, LOCAL, TRUSTED)


def test_client_ip_skips_trusted_hops_from_the_right() -> None:
    chain = "198.51.100.7, 203.0.113.9, 172.17.0.2"
    assert str(client_ip(LOCAL, chain, TRUSTED)) == "203.0.113.9"


def test_forwarded_for_from_untrusted_peer_is_ignored() -> None:
    peer = ip_address("8.8.8.8")
    assert client_ip(peer, "10.0.0.1", TRUSTED) == peer


def test_garbled_forwarded_for_names_nobody() -> None:
    assert client_ip(LOCAL, "not-an-ip", TRUSTED) is None
