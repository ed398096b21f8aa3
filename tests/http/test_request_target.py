"""The one canonical request target: what each tricky spelling means, and what is refused."""

from __future__ import annotations

import re

import pytest

from gateway.http.request_target import TargetRefused, canonical_authority, canonical_target

# raw target -> (path the rules match, path for URLs, query)
CANONICAL = {
    "/": ("/", "/", ""),
    "/a/b?c=d": ("/a/b", "/a/b", "c=d"),
    "/%61dmin": ("/admin", "/admin", ""),
    "/a//b//": ("/a/b/", "/a/b/", ""),
    "/admin;jsessionid=1": ("/admin", "/admin;jsessionid=1", ""),
    "/a;x/b": ("/a/b", "/a;x/b", ""),
    "/admin%3bx": ("/admin;x", "/admin%3Bx", ""),  # an encoded ';' is data, not a parameter
    "/public\\x": ("/public/x", "/public/x", ""),
    "/caf%C3%A9": ("/café", "/caf%C3%A9", ""),
    "/a%3fb?x=%2f": ("/a?b", "/a%3Fb", "x=%2f"),  # the query is split off before decoding
    "/a%20b": ("/a b", "/a%20b", ""),
    "/%7Euser/": ("/~user/", "/~user/", ""),
    "/.well-known/x": ("/.well-known/x", "/.well-known/x", ""),
    "/a/.b/c..": ("/a/.b/c..", "/a/.b/c..", ""),  # dots inside a name are a name
}

# raw target -> the other paths a server may read it as
READINGS = {
    "/a/b": (),
    "/admin%3Bx": ("/admin",),  # apps that cut parameters after decoding (Shiro-style)
    "/admin.": ("/admin",),  # Windows drops trailing dots and spaces
    "/admin%20": ("/admin",),
    "/%EF%BD%81dmin": ("/admin",),  # NFKC folds the fullwidth letter
    "/caf%C3%A9/": (),  # NFKC leaves it as it is
    "/a;x/b": ("/a;x/b",),
    "/public\\x": ("/public\\x",),
    "/a\\b;p/c/": ("/a\\b/c/", "/a/b;p/c/", "/a\\b;p/c/"),
}

DOT_SEGMENTS = [
    "/public/../private/s.txt",
    "/public/%2e%2e/private/s.txt",
    "/public/.%2E/private/s.txt",
    "/public/%2E./private/s.txt",
    "/public/x/../../private/s.txt",
    "/./admin",
    "/x/../admin",
    "/%2e/admin",
    "/../../admin",
    "/a/b/..",
    "/a/b/.",
    "/config.json/.",
    "/public/..;/private",
    "/public/.;x/private",
    "/public\\..\\private",
    "/public\\.",
    "/a/.../b",
    "/public/x;\\..\\..\\admin",
    "/..%3bx/a",  # '..' once a decoded ';' cuts the name
    "/a/..%20/b",  # '..' once Windows trims the space
    "/a/.%2e./b",
]

REFUSED = {
    **{raw: "dot segment" for raw in DOT_SEGMENTS},
    "//admin": "starts with '//'",
    "//public/x": "starts with '//'",
    "/public/..%2fprivate": "encoded slash",
    "/%2fadmin": "encoded slash",
    "/%2Fadmin": "encoded slash",
    "/a%5cb": "encoded backslash",
    "/public/#/../../private": "literal '#'",
    "/a?b#c": "literal '#'",
    "/a%00b": "NUL or control",
    "/a%0ab": "NUL or control",
    "/a%7f": "NUL or control",
    "/a%c2%85": "NUL or control",  # U+0085, a C1 control
    "/a%c0%ae": "not valid UTF-8",  # overlong '.'
    "/a%e0%80%ae": "not valid UTF-8",
    "/a%ff": "not valid UTF-8",
    "/a%252e%252e/": "percent-encoded twice",
    "/a%25%32%65": "percent-encoded twice",
    "/a%2": "two hex digits",
    "/a%zz": "two hex digits",
    "/a%ef%bc%8fadmin": "U+FF0F",  # fullwidth solidus
    "/a%e2%80%a5/": "U+2025",  # two dot leader: NFKC '..'
    "/;x/admin": "only of ';' parameters",
    "/\\;": "only of ';' parameters",  # a name of backslashes only: no segment to carry them
    "/x/\\;a": "only of ';' parameters",
    "http://app.example.com/public/../private": "origin form",
    "app.example.com:443": "origin form",
    "*": "'*'",
    "": "origin form",
    "/a b": "spaces, control or non-ASCII",
    "/a\tb": "spaces, control or non-ASCII",
    "/caf\u00e9": "spaces, control or non-ASCII",
    "/" + "a" * 8200: "longer than 8192",
}


@pytest.mark.parametrize(("raw", "expected"), CANONICAL.items())
def test_target_has_one_canonical_form(raw: str, expected: tuple[str, str, str]) -> None:
    target = canonical_target(raw)
    assert (target.path, target.url_path, target.query) == expected


@pytest.mark.parametrize(("raw", "reason"), REFUSED.items(), ids=lambda v: repr(v)[:40])
def test_ambiguous_target_is_refused_with_a_reason(raw: str, reason: str) -> None:
    with pytest.raises(TargetRefused, match=re.escape(reason)):
        canonical_target(raw)


@pytest.mark.parametrize(("raw", "readings"), READINGS.items())
def test_parameters_and_backslashes_keep_their_other_readings(
    raw: str, readings: tuple[str, ...]
) -> None:
    assert canonical_target(raw).readings == readings


def test_encoded_slash_is_kept_encoded_when_configured() -> None:
    target = canonical_target("/bucket/a%2Fb/c", "keep")
    assert (target.path, target.url_path) == ("/bucket/a%2Fb/c", "/bucket/a%2Fb/c")


@pytest.mark.parametrize(
    "raw", ["/p%2f..%2fq", "/p/..%2fq", "/p/%2e%2e%2fq", "/public/x;%2F..%2F..%2Fadmin.txt"]
)
def test_kept_encoded_slash_next_to_a_dot_segment_is_refused(raw: str) -> None:
    with pytest.raises(TargetRefused, match="dot segment"):
        canonical_target(raw, "keep")


def test_canonical_url_path_is_its_own_canonical_form() -> None:
    for raw in CANONICAL:
        once = canonical_target(raw)
        assert canonical_target(once.url_path).url_path == once.url_path


@pytest.mark.parametrize(
    ("netloc", "scheme", "host", "port"),
    [
        ("App.Example.COM", "https", "app.example.com", None),
        ("app.test.", "https", "app.test", None),  # nginx serves the site for a trailing dot
        ("app.test:443", "https", "app.test", None),
        ("app.test:80", "http", "app.test", None),
        ("app.test:80", "https", "app.test", "80"),
        ("app.test:08443", "https", "app.test", "8443"),
        ("[::1]:8443", "https", "::1", "8443"),
        ("[0:0::1]", "https", "::1", None),
        ("10.0.0.1", "http", "10.0.0.1", None),
        ("my_app.lan", "http", "my_app.lan", None),
    ],
)
def test_host_has_one_canonical_form(netloc: str, scheme: str, host: str, port: str | None) -> None:
    authority = canonical_authority(netloc, scheme)
    assert (authority.host, authority.port) == (host, port)


@pytest.mark.parametrize(
    ("netloc", "reason"),
    [
        ("alice@app.test", "user info"),
        ("app.test@evil.test", "user info"),
        ("", "not a valid host name"),
        ("app..test", "not a valid host name"),
        ("app.test..", "not a valid host name"),
        ("-app.test", "not a valid host name"),
        ("app test", "not a valid host name"),
        ("app.test/x", "not a valid host name"),
        ("app%2etest", "not a valid host name"),
        ("äpp.test", "not a valid host name"),
        ("app.test:0", "port"),
        ("app.test:65536", "port"),
        ("app.test:", "port"),
        ("app.test:8x", "port"),
        ("app.test:443:443", "port"),
        ("[::1", "IPv6"),
        ("[not-ipv6]", "IPv6"),
        ("[::1]x", "IPv6"),
    ],
)
def test_ambiguous_host_is_refused(netloc: str, reason: str) -> None:
    with pytest.raises(TargetRefused, match=reason):
        canonical_authority(netloc, "https")
