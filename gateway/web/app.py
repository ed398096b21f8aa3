"""The ASGI application: forward-auth fast path in front of the Starlette pages.

Errors raised on purpose are mapped to responses here, in one place.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from http import HTTPStatus
from importlib.resources import files
from time import perf_counter

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.accounts import apps_pages
from gateway.accounts import pages as account_pages
from gateway.admin import api as admin_api
from gateway.admin import audit_pages as admin_audit_pages
from gateway.admin import client_pages as admin_client_pages
from gateway.admin import group_pages as admin_group_pages
from gateway.admin import key_pages as admin_key_pages
from gateway.admin import pages as admin_pages
from gateway.admin import user_pages as admin_user_pages
from gateway.core import metrics
from gateway.core.errors import (
    BodyTooLarge,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    RequestInvalid,
    SessionStoreUnavailable,
    StorageError,
    Unauthenticated,
)
from gateway.core.logs import REQUEST_ID
from gateway.core.templating import render
from gateway.forward_auth.endpoint import PATHS, ForwardAuth
from gateway.http import request_log
from gateway.oidc import api as oidc_api
from gateway.oidc import device_pages as oidc_device_pages
from gateway.oidc.clients import ReadOnlyClient
from gateway.passkeys import api as webauthn_api
from gateway.passkeys import enrol_pages
from gateway.services import Services
from gateway.sessions.csrf import CsrfRejected
from gateway.sessions.rate_limit import RateLimited
from gateway.web import login_pages as pages
from gateway.web.body_limit import BodyLimit
from gateway.web.health import healthz, readyz

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
    """Routes the forward-auth paths to the bare ASGI handler and everything else to Starlette,
    adding security headers and a request id to its responses and a line to the request log, and
    capping request bodies (gateway.web.body_limit)."""

    def __init__(self, services: Services, pages_app: Starlette) -> None:
        self.services = services
        self._forward_auth = ForwardAuth(services)
        self._pages: ASGIApp = BodyLimit(pages_app)
        self.routes = pages_app.routes  # the route table, for tests that walk every route
        settings = services.settings
        self._log_pages = settings.access_log != "off"
        self._trust_proxy = settings.trust_proxy
        self._trusted = settings.trusted_networks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in PATHS:
            await self._forward_auth(scope, receive, send)
            return
        if scope["type"] != "http":
            await self._pages(scope, receive, send)
            return

        started = perf_counter()
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        peer = request_log.scope_peer(scope)
        from_proxy = self._trust_proxy and peer in self._trusted
        rid = request_log.request_id(headers.get("x-request-id"), from_proxy)
        state = scope.setdefault("state", {})
        status = 500

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                out = list(message.get("headers", []))
                present = {name.lower() for name, _ in out}
                out.extend(h for h in _SECURITY_HEADERS if h[0] not in present)
                if b"cache-control" not in present:
                    out.append((b"cache-control", b"no-store"))
                out.append((b"x-request-id", rid.encode()))
                message = {**message, "headers": out}
            await send(message)

        context = REQUEST_ID.set(rid)
        try:
            await self._pages(scope, receive, send_with_headers)
        finally:
            REQUEST_ID.reset(context)
            if self._log_pages:
                request_log.write(
                    {
                        "request_id": rid,
                        "method": scope["method"],
                        "host": headers.get("host", ""),
                        "path": request_log.loggable_path(scope["path"]),
                        "status": status,
                        "duration_ms": round((perf_counter() - started) * 1000, 3),
                        "user": state.get("passgate_user"),
                        "client_ip": request_log.visitor_ip(
                            peer, headers.get("x-forwarded-for"), self._trust_proxy, self._trusted
                        ),
                    }
                )


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
    fields: dict[str, str] | None = None,
) -> Response:
    """The one place errors become responses: a page for browsers, JSON for everything else
    (always JSON for the admin API, whose errors may carry `fields`)."""
    is_api = request.url.path.startswith(admin_api.PREFIX)
    if is_api or "text/html" not in request.headers.get("accept", ""):
        data: dict[str, object] = {"error": code, "error_description": text}
        if fields is not None:
            data["fields"] = fields
        return JSONResponse(data, status)
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


async def _unauthenticated(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Unauthenticated)
    response = _error_page(request, 401, "Sign in", str(exc), "/login", "unauthorized")
    response.headers["WWW-Authenticate"] = exc.challenge
    return response


async def _forbidden(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Forbidden)
    return _error_page(request, 403, "Not allowed", str(exc), "/account", exc.code)


async def _missing(request: Request, exc: Exception) -> Response:
    return _error_page(request, 404, "Not found", str(exc), "/account", "not_found")


async def _conflict(request: Request, exc: Exception) -> Response:
    return _error_page(request, 409, "Conflict", str(exc), "/account", "conflict")


async def _invalid(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, InvalidInput)
    if isinstance(exc, RequestInvalid):
        fields = exc.fields
    else:
        fields = {exc.field: str(exc)} if exc.field else {}
    status = 400 if isinstance(exc, RequestInvalid) and exc.unparseable else 422
    return _error_page(request, status, "Invalid input", str(exc), None, "invalid_request", fields)


async def _too_large(request: Request, exc: Exception) -> Response:
    return _error_page(request, 413, "Too much data", str(exc), None, "request_too_large")


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals: a form its parser could not read (400; the parser's message is
    not for the caller, and is logged at debug level) and a method the route does not take."""
    assert isinstance(exc, HTTPException)
    status = HTTPStatus(exc.status_code)
    if status == HTTPStatus.BAD_REQUEST:
        log.debug("unreadable form on %s: %s", request.url.path, exc.detail)
        text, code = "the request body could not be read as a form", "invalid_request"
    else:
        text, code = status.phrase, status.phrase.lower().replace(" ", "_")
    response = _error_page(request, status, status.phrase, text, None, code)
    response.headers.update(exc.headers or {})
    return response


def create_app(services: Services) -> PassgateApp:
    """Build the ASGI app around ready services; closes them on shutdown."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await run_in_threadpool(services.audit.prune_expired)  # AUDIT_LOG_RETENTION_DAYS
        # MAXMIND_LICENSE_KEY: keep GeoLite2 fresh, and this worker on the newest file.
        refresher = asyncio.create_task(services.geolite.run()) if services.geolite else None
        yield
        if refresher is not None:
            refresher.cancel()
            with suppress(asyncio.CancelledError):
                await refresher
        await services.close()

    static = StaticFiles(directory=str(files("gateway") / "static"))
    starlette = Starlette(
        routes=[
            *pages.routes,
            *account_pages.routes,
            *apps_pages.routes,
            *admin_pages.routes,
            *admin_user_pages.routes,
            *admin_group_pages.routes,
            *admin_client_pages.routes,
            *admin_key_pages.routes,
            *admin_audit_pages.routes,
            *enrol_pages.routes,
            *webauthn_api.routes,
            *oidc_api.routes,
            *oidc_device_pages.routes,  # machine and TV grants
            *admin_api.routes,
            Route("/healthz", healthz, methods=["GET", "HEAD"]),
            Route("/readyz", readyz, methods=["GET", "HEAD"]),
            Route("/metrics", metrics.endpoint(services.settings.metrics_token), methods=["GET"]),
            Route("/", lambda request: RedirectResponse("/account", 303)),
            Route("/favicon.ico", lambda request: RedirectResponse("/static/favicon.svg", 301)),
            Mount("/static", static, name="static"),
        ],
        exception_handlers={
            SessionStoreUnavailable: _store_unavailable,
            CsrfRejected: _csrf_rejected,
            RateLimited: _rate_limited,
            StorageError: _storage_failed,
            Unauthenticated: _unauthenticated,
            Forbidden: _forbidden,
            NotFound: _missing,
            Conflict: _conflict,
            ReadOnlyClient: _conflict,
            InvalidInput: _invalid,
            BodyTooLarge: _too_large,
            HTTPException: _http_error,
            404: _not_found,
        },
        lifespan=lifespan,
    )
    starlette.state.services = services
    return PassgateApp(services, starlette)
