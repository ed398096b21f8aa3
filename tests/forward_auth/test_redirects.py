"""Open-redirect protection: which return URLs Passgate honours, and the fallback for the rest."""

from __future__ import annotations

import pytest

from gateway.forward_auth.redirects import MAX_URL_LENGTH, RedirectPolicy

APP_URL = "https://auth.example.com"
FALLBACK = "https://auth.example.com/account"
PATTERNS = ["*.lan.example.org", "media.other.net"]


@pytest.fixture
def policy() -> RedirectPolicy:
    return RedirectPolicy(APP_URL, "example.com", lambda: PATTERNS)


GOOD = [
    "https://auth.example.com/",
    "https://auth.example.com",
    "https://example.com/",
    "https://app.example.com/some/path?x=1&y=2#frag",
    "https://deep.sub.app.example.com/",
    "HTTPS://APP.EXAMPLE.COM/",
    "https://App.Example.Com/x",
    "https://app.example.com:8443/x",
    "https://nas.lan.example.org/photos",
    "https://a.b.lan.example.org/",
    "https://media.other.net/watch?v=1",
    "https://MEDIA.OTHER.NET/",
    "https://app.example.com/?next=https://evil.com",
    "https://app.example.com/#@evil.com",
    "https://app.example.com/a%2Fb?q=%20space",
    "https://app.example.com//evil.com",
]


@pytest.mark.parametrize("url", GOOD)
def test_trusted_absolute_url_is_returned_unchanged(policy: RedirectPolicy, url: str) -> None:
    assert policy.is_allowed(url)
    assert policy.safe_target(url, FALLBACK) == url


HOSTILE = [
    # Other domains and look-alikes.
    "https://evil.com/",
    "https://notexample.com/",
    "https://example.com.evil.com/",
    "https://evilexample.com/",
    "https://example.co/",
    "https://lan.example.org/",  # the wildcard does not cover the bare domain
    "https://xlan.example.org/",
    "https://other.net/",
    "https://x.media.other.net/",  # an exact pattern does not cover subdomains
    "https://127.0.0.1/",
    "https://[::1]/",
    # Protocol-relative and slash/backslash tricks.
    "//evil.com",
    "//evil.com/path",
    "///evil.com",
    "/\\evil.com",
    "\\\\evil.com",
    "\\/evil.com",
    "https:\\\\evil.com",
    "https:/\\evil.com",
    "https://evil.com\\@app.example.com/",
    "https://app.example.com\\.evil.com/",
    "https:evil.com",
    "https:/evil.com",
    "https:///evil.com",
    # Other schemes.
    "javascript:alert(1)",
    "JavaScript:alert(document.domain)",
    "javascript://app.example.com/%0aalert(1)",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    "ftp://app.example.com/",
    "file:///etc/passwd",
    "ws://app.example.com/",
    "wss://app.example.com/",
    # Plain http when APP_URL is https (downgrade).
    "http://app.example.com/",
    "http://auth.example.com/account",
    # User info.
    "https://example.com@evil.com/",
    "https://app.example.com@evil.com/",
    "https://user:pass@app.example.com/",
    "https://user@app.example.com/",
    "https://@app.example.com/",
    "https://evil.com#@app.example.com/",
    "https://evil.com?@app.example.com/",
    # Control characters and whitespace.
    "ht\ttps://evil.com/",
    "https://app.example.com/\t",
    "/\t/evil.com",
    "/\n/evil.com",
    "\r\n//evil.com",
    " https://app.example.com/",
    "https://app.example.com /",
    "https://app.example.com/\x00",
    "https://app.example.com/\x7f",
    "java\nscript:alert(1)",
    # Percent-encoded variants.
    "%2F%2Fevil.com",
    "/%2F/evil.com",
    "/%2fevil.com",
    "/%5Cevil.com",
    "/%5cevil.com",
    "/%252F%252Fevil.com",
    "/%09/evil.com",
    "/%25252F%25252Fevil.com",
    "https:%2F%2Fevil.com",
    "https://evil.com%2Eexample.com/",
    "https://evil.com%2eexample.com/",
    "https://app.example.com%40evil.com/",
    "https://evil.com%40app.example.com/",
    "https://app%2Eexample.com/",
    "https%3A%2F%2Fevil.com",
    # Non-ASCII hosts and paths.
    "https://\u0430pp.example.com/",  # Cyrillic a
    "https://app.example.com\u3002evil.com/",
    "https://evil.com\uff0fexample.com/",
    "https://app.example.com/caf\u00e9",
    # Malformed hosts and ports.
    "https://app..example.com/",
    "https://-app.example.com/",
    "https://app_x.example.com/",
    "https://app.example.com:99999/",
    "https://app.example.com:0/",
    "https://app.example.com:abc/",
    "https://app.example.com:+443/",
    "https://app.example.com:/",
    "https:///",
    "https://",
    # Relative references that are not absolute paths.
    "evil.com",
    "app.example.com/x",
    "?next=x",
    "#frag",
    "./account",
    # Oversized.
    "https://app.example.com/" + "a" * MAX_URL_LENGTH,
]


@pytest.mark.parametrize("url", HOSTILE)
def test_hostile_url_falls_back(policy: RedirectPolicy, url: str) -> None:
    assert not policy.is_allowed(url)
    assert policy.safe_target(url, FALLBACK) == FALLBACK


def test_attack_list_is_long_enough() -> None:
    assert len(HOSTILE) >= 30


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/account?x=1", "https://auth.example.com/account?x=1"),
        ("/", "https://auth.example.com/"),
        ("/a/b#frag", "https://auth.example.com/a/b#frag"),
        ("/a//b", "https://auth.example.com/a//b"),
        ("/a%2F%2Fb", "https://auth.example.com/a%2F%2Fb"),
        ("/search?q=a%20b", "https://auth.example.com/search?q=a%20b"),
    ],
)
def test_relative_path_resolves_against_app_url(
    policy: RedirectPolicy, path: str, expected: str
) -> None:
    assert policy.is_allowed(path)
    assert policy.safe_target(path, FALLBACK) == expected


def test_relative_path_keeps_app_url_port() -> None:
    policy = RedirectPolicy("http://localhost:1411", None)
    assert policy.safe_target("/account", "/fallback") == "http://localhost:1411/account"


def test_none_falls_back(policy: RedirectPolicy) -> None:
    assert policy.safe_target(None, FALLBACK) == FALLBACK


def test_empty_string_falls_back(policy: RedirectPolicy) -> None:
    assert not policy.is_allowed("")
    assert policy.safe_target("", FALLBACK) == FALLBACK


def test_url_at_length_limit_is_allowed(policy: RedirectPolicy) -> None:
    base = "https://app.example.com/"
    url = base + "a" * (MAX_URL_LENGTH - len(base))
    assert len(url) == MAX_URL_LENGTH
    assert policy.is_allowed(url)


def test_url_over_length_limit_falls_back(policy: RedirectPolicy) -> None:
    base = "https://app.example.com/"
    url = base + "a" * (MAX_URL_LENGTH - len(base) + 1)
    assert policy.safe_target(url, FALLBACK) == FALLBACK


def test_trailing_dot_host_falls_back(policy: RedirectPolicy) -> None:
    assert not policy.is_allowed("https://app.example.com./")


def test_path_encoded_many_times_falls_back(policy: RedirectPolicy) -> None:
    assert not policy.is_allowed("/%" + "25" * 8 + "41")  # "A", percent-encoded nine times


def test_plain_http_allowed_when_app_url_is_http() -> None:
    policy = RedirectPolicy("http://auth.example.com", "example.com")
    assert policy.is_allowed("http://app.example.com/")
    assert policy.is_allowed("https://app.example.com/")


def test_plain_http_falls_back_when_app_url_is_https(policy: RedirectPolicy) -> None:
    assert policy.safe_target("http://app.example.com/", FALLBACK) == FALLBACK


@pytest.mark.parametrize(
    "url",
    ["https://auth.example.com/x", "https://nas.lan.example.org/", "https://media.other.net/"],
)
def test_without_cookie_domain_app_host_and_patterns_are_allowed(url: str) -> None:
    policy = RedirectPolicy(APP_URL, None, lambda: PATTERNS)
    assert policy.is_allowed(url)


@pytest.mark.parametrize(
    "url", ["https://example.com/", "https://app.example.com/", "https://x.auth.example.com/"]
)
def test_without_cookie_domain_other_hosts_fall_back(url: str) -> None:
    policy = RedirectPolicy(APP_URL, None, lambda: PATTERNS)
    assert policy.safe_target(url, FALLBACK) == FALLBACK


def test_default_patterns_trust_only_app_host_and_cookie_domain() -> None:
    policy = RedirectPolicy(APP_URL, "example.com")
    assert policy.is_allowed("https://app.example.com/")
    assert not policy.is_allowed("https://media.other.net/")


def test_cookie_domain_is_normalised() -> None:
    policy = RedirectPolicy(APP_URL, ".Example.COM")
    assert policy.is_allowed("https://app.example.com/")
    assert not policy.is_allowed("https://notexample.com/")


def test_patterns_are_normalised() -> None:
    policy = RedirectPolicy(APP_URL, None, lambda: [" *.LAN.Example.org. ", "Media.Other.Net"])
    assert policy.is_allowed("https://nas.lan.example.org/")
    assert policy.is_allowed("https://media.other.net/")


@pytest.mark.parametrize("pattern", ["*", "*.", "", "."])
def test_degenerate_pattern_matches_nothing(pattern: str) -> None:
    policy = RedirectPolicy(APP_URL, None, lambda: [pattern])
    assert not policy.is_allowed("https://evil.com/")


def test_host_patterns_are_read_on_every_check() -> None:
    patterns: list[str] = []
    policy = RedirectPolicy(APP_URL, None, lambda: patterns)
    assert not policy.is_allowed("https://media.other.net/")
    patterns.append("media.other.net")
    assert policy.is_allowed("https://media.other.net/")
    patterns.clear()
    assert not policy.is_allowed("https://media.other.net/")


@pytest.mark.parametrize("app_url", ["auth.example.com", "ftp://auth.example.com", "https://", ""])
def test_invalid_app_url_raises(app_url: str) -> None:
    with pytest.raises(ValueError, match="APP_URL"):
        RedirectPolicy(app_url, None)
