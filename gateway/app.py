"""The ASGI application: forward-auth fast path in front of the Starlette pages.

Errors raised on purpose are mapped to responses here, in one place.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway import (
    account_pages,
    admin_audit_pages,
    admin_client_pages,
    admin_group_pages,
    admin_key_pages,
    admin_pages,
    admin_user_pages,
    enrol_pages,
    oidc_api,
    pages,
    webauthn_api,
)
from gateway.csrf import CsrfRejected
from gateway.errors import SessionStoreUnavailable, StorageError
from gateway.forward_auth import PATHS, ForwardAuth
from gateway.health import healthz, readyz
from gateway.rate_limit import RateLimited
from gateway.services import Services
from gateway.templating import render

log = logging.getLogger("passgate.app")

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self' https: http:; frame-ancestors 'none'; "
    "base-uri 'none'"
)
_SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


class PassgateApp:
    """Routes the forward-auth paths to the bare ASGI handler and everything else to Starlette
    (with security headers added to its responses)."""

    def __init__(self, services: Services, pages_app: ASGIApp) -> None:
        self.services = services
        self._forward_auth = ForwardAuth(services)
        self._pages = pages_app

    @property
    def routes(self) -> list[BaseRoute]:
        """Every page and API route (the forward-auth paths are answered before these)."""
        assert isinstance(self._pages, Starlette)
        return self._pages.routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in PATHS:
            await self._forward_auth(scope, receive, send)
            return
        if scope["type"] != "http":
            await self._pages(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend(h for h in _SECURITY_HEADERS if h[0] not in present)
                if b"cache-control" not in present:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self._pages(scope, receive, send_with_headers)


async def _store_unavailable(request: Request, exc: Exception) -> Response:
    return _error_page(
        request,
        503,
        "Temporarily unavailable",
        "Sign-in is unavailable for a moment. Please try again shortly.",
    )


async def _storage_failed(request: Request, exc: Exception) -> Response:
    log.error("storage error on %s: %s", request.url.path, exc)
    return _error_page(
        request,
        500,
        "Something went wrong",
        "Passgate could not reach its database. Please try again shortly.",
    )


def _error_page(
    request: Request,
    status: int,
    title: str,
    text: str,
    link: str | None = None,
    code: str = "server_error",
) -> Response:
    """The one place errors become responses: a page for browsers, JSON for everything else."""
    if "text/html" not in request.headers.get("accept", ""):
        return JSONResponse({"error": code, "error_description": text}, status)
    services: Services = request.app.state.services
    body = render(
        "message.html",
        app_name=services.settings.app_name,
        title=title,
        message=text,
        link=link,
        link_text="Continue",
    )
    return Response(body, status, media_type="text/html")


async def _csrf_rejected(request: Request, exc: Exception) -> Response:
    return _error_page(request, 403, "Please try again", str(exc), "/account", "csrf")


async def _rate_limited(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RateLimited)
    response = _error_page(request, 429, "Too many attempts", str(exc), "/login", "rate_limited")
    response.headers["Retry-After"] = str(exc.retry_after)
    return response


async def _not_found(request: Request, exc: Exception) -> Response:
    return _error_page(request, 404, "Not found", "There is no page at this address.")


def create_app(services: Services) -> PassgateApp:
    """Build the ASGI app around ready services; closes them on shutdown."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await services.close()

    static = StaticFiles(directory=str(files("gateway") / "static"))
    starlette = Starlette(
        routes=[
            *pages.routes,
            *account_pages.routes,
            *admin_pages.routes,
            *admin_user_pages.routes,
            *admin_group_pages.routes,
            *admin_client_pages.routes,
            *admin_key_pages.routes,
            *admin_audit_pages.routes,
            *enrol_pages.routes,
            *webauthn_api.routes,
            *oidc_api.routes,
            Route("/healthz", healthz, methods=["GET", "HEAD"]),
            Route("/readyz", readyz, methods=["GET", "HEAD"]),
            Route("/", lambda request: RedirectResponse("/account", 303)),
            Route("/favicon.ico", lambda request: RedirectResponse("/static/favicon.svg", 301)),
            Mount("/static", static, name="static"),
        ],
        exception_handlers={
            SessionStoreUnavailable: _store_unavailable,
            CsrfRejected: _csrf_rejected,
            RateLimited: _rate_limited,
            StorageError: _storage_failed,
            404: _not_found,
        },
        lifespan=lifespan,
    )
    starlette.state.services = services
    return PassgateApp(services, starlette)
