"""The session cookie: HttpOnly, SameSite=Lax, Secure on https, scoped to COOKIE_DOMAIN."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from gateway.settings import Settings


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
    return request.cookies.get(settings.session_cookie_name)
