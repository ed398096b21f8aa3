"""Open-redirect protection: where Passgate may send a browser after sign-in or sign-out.

A return URL is honoured only on APP_URL's host, hosts under COOKIE_DOMAIN, or host patterns
named in the access rules, or as a plain path on APP_URL. Anything odd (other schemes, user
info, backslashes, control characters, percent-encoded tricks, non-ASCII) is refused: when in
doubt, deny.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from urllib.parse import unquote, urlsplit

MAX_URL_LENGTH = 4096

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
# The whole authority of an acceptable absolute URL: an ASCII host name and an optional port.
# Anything else (user info, `%`, brackets, a trailing dot, an empty port) does not match.
_AUTHORITY = re.compile(rf"(?P<host>{_LABEL}(?:\.{_LABEL})*)(?::(?P<port>[0-9]{{1,5}}))?")
# Browsers strip tabs and newlines and read backslashes as slashes, so a URL holding any of them
# means one thing to us and another to the browser.
_UNSAFE_CHARS = re.compile(r"[\x00-\x20\x7f\\]")
_INVISIBLE_CHARS = re.compile(r"[\x00-\x20\x7f]")
# A path whose decoded form starts like `//host` or `/\host` could become protocol-relative.
_SLASH_LEAD = re.compile(r"/[/\\]")
_MAX_DECODES = 5


def _normalise_domain(domain: str) -> str:
    return domain.strip().lower().strip(".")


def _path_is_safe(path: str) -> bool:
    """Whether a `/path` stays a path on APP_URL however many times something decodes it."""
    for _ in range(_MAX_DECODES):
        if _SLASH_LEAD.match(_INVISIBLE_CHARS.sub("", path)):
            return False
        decoded = unquote(path)
        if decoded == path:
            return True
        path = decoded
    return False  # still decoding after several rounds: someone is up to something


def _pattern_matches(pattern: str, host: str) -> bool:
    """Exact `app.example.com`, or `*.example.com` for any subdomain depth (not the bare one)."""
    pattern = _normalise_domain(pattern)
    if pattern.startswith("*."):
        suffix = pattern[1:]
        return len(suffix) > 1 and host.endswith(suffix)
    return bool(pattern) and host == pattern


class RedirectPolicy:
    """Decides whether a URL is a safe place to send the browser, and picks a fallback if not."""

    def __init__(
        self,
        app_url: str,
        cookie_domain: str | None,
        host_patterns: Callable[[], Iterable[str]] = lambda: (),
    ) -> None:
        """Trust APP_URL's host, hosts under `cookie_domain`, and `host_patterns()` (re-read on
        every check, since the rules file reloads).

        Raises ValueError if `app_url` is not an absolute http(s) URL.
        """
        parts = urlsplit(app_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"APP_URL must be an absolute http(s) URL, not {app_url!r}")
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self._app_host = _normalise_domain(parts.hostname)
        # An https gateway never sends the browser to plain http (no downgrades).
        self._schemes = ("https",) if parts.scheme == "https" else ("http", "https")
        self._cookie_domain = _normalise_domain(cookie_domain) if cookie_domain else ""
        self._host_patterns = host_patterns

    def _host_allowed(self, host: str) -> bool:
        domain = self._cookie_domain
        if host == self._app_host or (domain and (host == domain or host.endswith("." + domain))):
            return True
        return any(_pattern_matches(pattern, host) for pattern in self._host_patterns())

    def is_allowed(self, url: str) -> bool:
        """Whether `url` is an absolute http(s) URL on a trusted host, or a `/path` on APP_URL.

        Never raises: anything malformed or suspicious is simply not allowed.
        """
        if not url or len(url) > MAX_URL_LENGTH or not url.isascii() or _UNSAFE_CHARS.search(url):
            return False
        if url.startswith("/"):
            return _path_is_safe(url)
        try:
            parts = urlsplit(url)
        except ValueError:
            return False
        if parts.scheme not in self._schemes:
            return False
        authority = _AUTHORITY.fullmatch(parts.netloc.lower())
        if authority is None:
            return False
        port = authority.group("port")
        if port is not None and not 0 < int(port) <= 65535:
            return False
        return self._host_allowed(authority.group("host"))

    def safe_target(self, url: str | None, fallback: str) -> str:
        """`url` if allowed (a `/path` made absolute on APP_URL), else `fallback`. Never raises."""
        if url is None or not self.is_allowed(url):
            return fallback
        return self._origin + url if url.startswith("/") else url
