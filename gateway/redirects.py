"""Open-redirect protection: where Passgate may send a browser after sign-in or sign-out.

A return URL is honoured only for hosts under COOKIE_DOMAIN, APP_URL's host, or host patterns
named in the access rules. Anything odd (other schemes, user info, backslashes, control
characters, percent-encoded tricks, non-ASCII hosts) falls back: when in doubt, deny.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from urllib.parse import urljoin, urlsplit

MAX_LENGTH = 4096
_HOST = re.compile(
    r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$"
)
# Browsers strip tabs/newlines and treat backslashes as slashes, so a URL holding them means one
# thing to us and another to the browser.
_SUSPICIOUS = re.compile(r"[\x00-\x20\x7f\\]")
# A path that starts with an encoded slash or backslash may be decoded into `//host` downstream.
_ENCODED_LEAD = re.compile(r"^/+%(?:2f|5c)", re.IGNORECASE)


def _pattern_matches(pattern: str, host: str) -> bool:
    pattern = pattern.strip().lower().rstrip(".")
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    return host == pattern


class RedirectPolicy:
    """Decides whether a URL is a safe place to send the browser."""

    def __init__(
        self,
        app_url: str,
        cookie_domain: str | None,
        host_patterns: Callable[[], Iterable[str]] = lambda: (),
    ) -> None:
        parts = urlsplit(app_url)
        self._app_url = app_url.rstrip("/")
        self._app_host = (parts.hostname or "").lower()
        self._https_only = parts.scheme == "https"
        self._cookie_domain = cookie_domain.lower().lstrip(".") if cookie_domain else None
        self._host_patterns = host_patterns

    def _host_allowed(self, host: str) -> bool:
        if host == self._app_host:
            return True
        domain = self._cookie_domain
        if domain is not None and (host == domain or host.endswith("." + domain)):
            return True
        return any(_pattern_matches(pattern, host) for pattern in self._host_patterns())

    def is_allowed(self, url: str) -> bool:
        """True when `url` is an absolute http(s) URL on an allowed host, or a plain path."""
        if not url or len(url) > MAX_LENGTH or not url.isascii() or _SUSPICIOUS.search(url):
            return False
        if url.startswith("/"):
            return not url.startswith("//") and not _ENCODED_LEAD.match(url)
        try:
            parts = urlsplit(url)
            port = parts.port  # raises ValueError for a malformed port
        except ValueError:
            return False
        del port
        if parts.scheme not in ("http", "https") or (self._https_only and parts.scheme != "https"):
            return False
        # Percent signs in the authority hide hosts and user info (evil.com%2eexample.com, %40).
        if "@" in parts.netloc or "%" in parts.netloc or parts.username is not None:
            return False
        host = (parts.hostname or "").rstrip(".")
        if not _HOST.match(host):
            return False
        return self._host_allowed(host)

    def safe_target(self, url: str | None, fallback: str) -> str:
        """`url` (made absolute against APP_URL when it is a path) if allowed, else `fallback`."""
        if url is None or not self.is_allowed(url):
            return fallback
        return urljoin(self._app_url + "/", url) if url.startswith("/") else url
