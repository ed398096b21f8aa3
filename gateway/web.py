"""Helpers every page and JSON endpoint shares: services, client address, rendering, sign-in."""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from gateway import metrics
from gateway.cookies import session_cookie, set_session_cookie
from gateway.csrf import remember, token_for, verify
from gateway.forwarded import parse_ip
from gateway.identity import Identity
from gateway.request_log import visitor_ip
from gateway.services import Services
from gateway.sessions import SessionRecord
from gateway.templating import render

log = logging.getLogger("passgate.web")

RETURN_COOKIE = "passgate_return"


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def client_address(request: Request) -> str:
    """The client's IP as Passgate's own pages see it (X-Forwarded-For only with TRUST_PROXY)."""
    settings = services_of(request).settings
    peer = parse_ip(request.client.host) if request.client else None
    forwarded_for = request.headers.get("x-forwarded-for")
    return visitor_ip(peer, forwarded_for, settings.trust_proxy, settings.trusted_networks)


def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """Render a page with the app name and a CSRF token, setting the CSRF cookie if new."""
    settings = services_of(request).settings
    body = render(
        template, app_name=settings.app_name, csrf_token=token_for(request, settings), **context
    )
    response = HTMLResponse(body, status_code=status)
    remember(request, response, settings)
    return response


def message(request: Request, title: str, text: str, status: int, link: str = "/login") -> Response:
    return page(
        request, "message.html", status, title=title, message=text, link=link, link_text="Continue"
    )


def return_target(request: Request, candidate: str | None) -> str:
    """`candidate` if it is a safe place to send the browser, else the account page."""
    services = services_of(request)
    return services.redirects.safe_target(candidate, services.settings.app_url + "/account")


async def form_with_csrf(request: Request) -> dict[str, str]:
    """The submitted form as strings, after the CSRF checks (raises CsrfRejected)."""
    form = await request.form()
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    verify(request, services_of(request).settings, fields.get("csrf_token"))
    return fields


async def signed_in(request: Request) -> tuple[SessionRecord, Identity] | None:
    services = services_of(request)
    found = await services.current_user.identify(session_cookie(request, services.settings))
    if found is not None:
        note_user(request, found[1].username)
    return found


def note_user(request: Request, username: str) -> None:
    """Name the signed-in user on this request's log line."""
    request.scope.setdefault("state", {})["passgate_user"] = username


async def signed_in_response(
    request: Request, user_id: str, target: str, method: str, json_body: bool = False
) -> Response:
    """Start a fresh session (ending any old one: no session fixation) and send the browser on."""
    services = services_of(request)
    await services.sessions.end(session_cookie(request, services.settings))
    cookie, _ = await services.sessions.start(
        user_id, client_address(request), request.headers.get("user-agent", "")
    )
    log.info("user %s signed in (%s) from %s", user_id, method, client_address(request))
    metrics.login(method, success=True)
    identity = await services.current_user.identity(user_id)
    if identity is not None:
        note_user(request, identity.username)
    response: Response = (
        JSONResponse({"redirect": target}) if json_body else RedirectResponse(target, 303)
    )
    set_session_cookie(response, services.settings, cookie)
    response.delete_cookie(RETURN_COOKIE, path="/")
    return response
