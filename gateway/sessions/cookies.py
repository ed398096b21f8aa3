"""The session cookie: HttpOnly, SameSite=Lax, Secure on https, scoped to COOKIE_DOMAIN, and
named `Settings.session_cookie_name` (with the `__Host-` prefix where browsers allow it).

Every reader of our cookies goes through `single_cookie`, so that two different values under one
name ("cookie tossing": a sibling subdomain planting a second cookie for the parent domain or a
narrower path, which the browser sends alongside ours) reads as no cookie, never as either one.
The pages then do not clear ours: the browser never says which value is ours nor where the other
was set, so a deletion could leave the planted cookie as the only one, signing the user in as
whoever planted it.
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response

from gateway.core.settings import Settings

log = logging.getLogger("passgate.cookies")


def single_cookie(header: str, name: str) -> str | None:
    """The value of cookie `name` in a Cookie header; None when it is absent or when it appears
    with two different values. Identical repeats are accepted: they carry nothing new.

    Values are compared as sent (not unquoted): ours are URL-safe and never quoted, so a quoted
    value is someone else's and fails its signature or CSRF check anyway."""
    before, named, after = header.partition(name)
    if not named:
        return None
    if name in after:
        return _only_value(header, name)
    # Named once, the usual case, in a few C-speed scans however many cookies the browser sends:
    # it is our cookie only where a cookie starts with exactly this name.
    gap, equals, value = after.partition(";")[0].partition("=")
    tail = before.rstrip()
    if (gap and not gap.isspace()) or (tail and tail[-1] != ";"):
        return None  # part of a longer name, or of another cookie's value
    return value.strip() if equals else ""


def _values(header: str, name: str) -> list[str]:
    """Every value cookie `name` has in the header, cookie by cookie."""
    pairs = (chunk.partition("=") for chunk in header.split(";"))
    return [value.strip() for key, _, value in pairs if key.strip() == name]


def _only_value(header: str, name: str) -> str | None:
    values = _values(header, name)
    return values[0] if values and all(value == values[0] for value in values) else None


def _named_in(header: str, name: str) -> bool:
    return name in header and bool(_values(header, name))


def request_cookie(request: Request, name: str) -> str | None:
    """`single_cookie` for a page request; logs (once per request, no values) when two
    different values cancelled each other out."""
    header = request.headers.get("cookie", "")
    value = single_cookie(header, name)
    logged = "passgate.tossed." + name
    if value is None and logged not in request.scope and _named_in(header, name):
        request.scope[logged] = True
        log.info(
            "ignored the %s cookie on %s %s: it came twice with different values (one planted "
            "by a sibling subdomain?)",
            name,
            request.method,
            request.url.path,
        )
    return value


def set_session_cookie(response: Response, settings: Settings, value: str) -> None:
    response.set_cookie(
        settings.session_cookie_name,
        value,
        max_age=int(settings.session_duration * 60),
        domain=settings.cookie_domain,
        path="/",
        secure=settings.secure_cookies,
        httponly=True,
        samesite="lax",
    )


def clear_session_cookie(response: Response, settings: Settings) -> None:
    response.delete_cookie(
        settings.session_cookie_name,
        domain=settings.cookie_domain,
        path="/",
        secure=settings.secure_cookies,
        httponly=True,
        samesite="lax",
    )


def session_cookie(request: Request, settings: Settings) -> str | None:
    """This request's session cookie, or None (absent, or tossed: see `single_cookie`)."""
    return request_cookie(request, settings.session_cookie_name)
