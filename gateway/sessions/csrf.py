"""CSRF protection for every state-changing form and JSON call.

Two checks, both required: the request's Origin (or Referer) must be APP_URL's origin, and the
submitted token must equal the CSRF cookie (double submit). On https the cookie carries the
`__Host-` prefix, so a sibling subdomain cannot plant one ("cookie tossing"); over http a planted
second value makes the cookie read as missing (`cookies.single_cookie`), never as the planted one.
"""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from gateway.core.crypto import tokens_equal
from gateway.core.settings import Settings
from gateway.sessions.cookies import request_cookie


class CsrfRejected(Exception):
    """The request failed the CSRF checks; nothing was changed."""


def token_for(request: Request, settings: Settings) -> str:
    """The CSRF token to embed in a form; `remember` must put it in the cookie."""
    existing = request_cookie(request, settings.csrf_cookie_name)
    if existing and 20 <= len(existing) <= 100:
        return existing
    token: str = request.scope.setdefault("passgate.csrf", secrets.token_urlsafe(32))
    return token


def remember(request: Request, response: Response, settings: Settings) -> None:
    """Set the CSRF cookie if this request minted a new token."""
    token = request.scope.get("passgate.csrf")
    if token:
        response.set_cookie(
            settings.csrf_cookie_name,
            token,
            path="/",
            secure=settings.secure_cookies,
            httponly=True,
            samesite="lax",
        )


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def verify(request: Request, settings: Settings, submitted: str | None) -> None:
    """Raise CsrfRejected unless the request comes from our own pages with the right token."""
    expected_origin = _origin_of(settings.app_url)
    origin = request.headers.get("origin")
    if origin is None:
        referer = request.headers.get("referer")
        origin = _origin_of(referer) if referer else None
    if origin is not None and origin.lower() != expected_origin:
        raise CsrfRejected("the form was sent from another site")
    cookie = request_cookie(request, settings.csrf_cookie_name)
    if not cookie or not submitted or not tokens_equal(cookie, submitted):
        raise CsrfRejected("the form has expired; reload the page and try again")
