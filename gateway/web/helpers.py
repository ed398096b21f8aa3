"""Helpers every page and JSON endpoint shares: services, client address, rendering, sign-in,
and the audit events a request records."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from gateway.accounts.known_devices import (
    DEVICE_COOKIE,
    DEVICE_COOKIE_AGE,
    Sighting,
    new_device_token,
)
from gateway.audit.log import Actor, ActorKind, DetailValue
from gateway.core import metrics
from gateway.core.errors import StorageError
from gateway.core.identity import Identity
from gateway.core.templating import render
from gateway.http.forwarded import parse_ip
from gateway.http.request_log import visitor_ip
from gateway.passkeys.aaguids import model_name
from gateway.passkeys.credentials import NewPasskey, Passkey
from gateway.services import Services
from gateway.sessions.cookies import session_cookie, set_session_cookie
from gateway.sessions.csrf import remember, token_for, verify
from gateway.sessions.sessions import SessionRecord

log = logging.getLogger("passgate.web")

RETURN_COOKIE = "passgate_return"
_DEVICE_TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}$")


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


def actor_of(
    request: Request, user_id: str = "", name: str = "", kind: ActorKind = "user"
) -> Actor:
    """Who is behind this request, as an audit actor with its IP and browser: a person
    (anonymous until they are known) or, with `kind="api_key"`, an API key."""
    return Actor(
        kind,
        id=user_id,
        name=name,
        ip=client_address(request),
        user_agent=request.headers.get("user-agent", "")[:512],
    )


def passkey_details(passkey: Passkey | NewPasskey) -> dict[str, DetailValue]:
    """What the audit log says about a passkey: an id prefix, its name and model, no key."""
    return {
        "passkey": passkey.credential_id[:12],
        "passkey_name": passkey.name,
        "passkey_model": model_name(passkey.aaguid),
    }


async def record_event(
    request: Request,
    event: str,
    *,
    actor: Actor | None = None,
    user_id: str | None = None,
    success: bool = True,
    reason: str = "",
    details: Mapping[str, DetailValue] | None = None,
) -> None:
    """Record an audit event for this request (the actor defaults to the anonymous visitor).
    A failed write is logged, not raised: see `AuditLog.record_or_log`."""
    await run_in_threadpool(
        services_of(request).audit.record_or_log,
        event,
        actor=actor or actor_of(request),
        user_id=user_id,
        success=success,
        reason=reason,
        details=details,
    )


async def end_this_session(request: Request, via: str, client_id: str = "") -> None:
    """Sign out: end the browser's session and record who signed out and how."""
    services = services_of(request)
    found = await signed_in(request)
    await services.sessions.end(session_cookie(request, services.settings))
    if found is None:
        return  # nobody was signed in: nothing happened worth recording
    identity = found[1]
    details: dict[str, DetailValue] = {"via": via}
    if client_id:
        details["client_id"] = client_id[:200]
    await record_event(
        request,
        "sign_out",
        actor=actor_of(request, identity.user_id, identity.username),
        user_id=identity.user_id,
        details=details,
    )


async def signed_in_response(
    request: Request,
    user_id: str,
    target: str,
    method: str,
    json_body: bool = False,
    passkey: Passkey | NewPasskey | None = None,
) -> Response:
    """Start a fresh session (ending any old one: no session fixation), record the sign-in,
    remember the device (a new one gets a notice by email) and send the browser on."""
    services = services_of(request)
    await services.sessions.end(session_cookie(request, services.settings))
    ip, user_agent = client_address(request), request.headers.get("user-agent", "")
    cookie, _ = await services.sessions.start(user_id, ip, user_agent, method)
    log.info("user %s signed in (%s) from %s", user_id, method, ip)
    metrics.login(method, success=True)
    response: Response = (
        JSONResponse({"redirect": target}) if json_body else RedirectResponse(target, 303)
    )
    set_session_cookie(response, services.settings, cookie)
    response.delete_cookie(RETURN_COOKIE, path="/")
    user = await run_in_threadpool(services.users.find_user, user_id)
    username = user.username if user is not None else ""
    note_user(request, username)
    device = request.cookies.get(DEVICE_COOKIE, "")
    if not _DEVICE_TOKEN.match(device):
        device = new_device_token()
    sighting = await _sight_device(request, user_id, device)
    response.set_cookie(
        DEVICE_COOKIE,
        device,
        max_age=DEVICE_COOKIE_AGE,
        path="/",
        httponly=True,
        samesite="lax",
        secure=services.settings.secure_cookies,
    )
    details: dict[str, DetailValue] = {"method": method}
    if passkey is not None:
        details.update(passkey_details(passkey))
    if sighting is not None:
        details["new_device"] = sighting is Sighting.NEW
    await record_event(
        request,
        "sign_in",
        actor=actor_of(request, user_id, username),
        user_id=user_id,
        details=details,
    )
    if sighting is Sighting.NEW and user is not None and services.notifications.enabled:
        place = services.geo.lookup(ip) if services.geo is not None else None
        where = ", ".join(p for p in (place.city, place.country) if p) if place else ""
        # Sent after the response: a slow or broken mail server never delays the sign-in.
        response.background = BackgroundTask(
            services.notifications.notify_new_device, user, ip, user_agent, method, where
        )
    return response


async def _sight_device(request: Request, user_id: str, device: str) -> Sighting | None:
    try:
        return await run_in_threadpool(services_of(request).known_devices.sighted, user_id, device)
    except StorageError as exc:
        log.error("known device for user %s not recorded: %s", user_id, exc)
        return None
