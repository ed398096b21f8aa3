"""The /device pages (RFC 8628 3.3): a signed-in user types the code a TV or command-line tool
shows (or arrives with it prefilled from `verification_uri_complete`), sees which app asks for
what, and approves or denies it.

Every step that reads a user code counts against rate limits per user, per IP and for the
whole instance, so a script cannot walk the code space; the code itself is only ever looked up
by its hash, in canonical form (upper case, no dash or spaces).
"""

from __future__ import annotations

import logging
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from gateway.core import metrics
from gateway.oidc.api import SCOPE_TEXT, server_of
from gateway.oidc.claims import amr_for
from gateway.oidc.clients import OidcClient, open_to
from gateway.oidc.device_codes import DeviceCode, normalise_user_code, shown
from gateway.oidc.server import SCOPES
from gateway.sessions.rate_limit import Limit
from gateway.web.helpers import (
    actor_of,
    client_address,
    form_with_csrf,
    message,
    page,
    record_event,
    services_of,
    signed_in,
)

log = logging.getLogger("passgate.oidc")

# A person mistypes a few times; a script guessing 20^8 codes gets nowhere.
DEVICE_CODE_USER = Limit("device-code-user", 10, 600)
DEVICE_CODE_IP = Limit("device-code-ip", 20, 600)
DEVICE_CODE_ALL = Limit("device-code-all", 300, 600)  # every user and address together
_TYPED_MAX = 32  # characters of a typed code worth echoing back into the form


def _to_login(request: Request, typed: str = "") -> Response:
    back = services_of(request).settings.app_url + "/device"
    if typed:
        back += "?" + urlencode({"user_code": typed[:_TYPED_MAX]})
    return RedirectResponse("/login?" + urlencode({"rd": back}), 303)


def _prefill(typed: str) -> str:
    canonical = normalise_user_code(typed)
    return shown(canonical) if canonical else typed[:_TYPED_MAX]


async def device_form(request: Request) -> Response:
    """GET /device: the code entry form (prefilled from ?user_code=, never submitted for the
    user: they still confirm)."""
    typed = request.query_params.get("user_code", "")
    if await signed_in(request) is None:
        return _to_login(request, typed)
    return page(request, "device.html", user_code=_prefill(typed), error=None)


async def _pending(request: Request, user_id: str, typed: str) -> DeviceCode | None:
    """The pending device code the typed user code names, after counting the attempt against
    the rate limits (RateLimited past any of them)."""
    limits = services_of(request).rate_limits
    await limits.check(DEVICE_CODE_ALL, "all")
    await limits.check(DEVICE_CODE_IP, client_address(request))
    await limits.check(DEVICE_CODE_USER, user_id)
    canonical = normalise_user_code(typed)
    if canonical is None:
        return None
    devices = server_of(request).devices
    return await run_in_threadpool(devices.pending_by_user_code, canonical)


async def _device_client(request: Request, device: DeviceCode | None) -> OidcClient | None:
    """The client that asked for the code, if it still exists and may still use the grant."""
    if device is None:
        return None
    client = await run_in_threadpool(services_of(request).clients.find, device.client_id)
    return client if client is not None and client.allows_grant("device_code") else None


async def device_lookup(request: Request) -> Response:
    """POST /device: find the code the user typed and ask them to approve or deny it."""
    services = services_of(request)
    form = await form_with_csrf(request)
    typed = form.get("user_code", "")
    found = await signed_in(request)
    if found is None:
        return _to_login(request, typed)
    user = await run_in_threadpool(services.users.find_user, found[1].user_id)
    if user is None:
        return _to_login(request, typed)
    device = await _pending(request, user.id, typed)
    client = await _device_client(request, device)
    if device is None or client is None:
        metrics.device_authorization("unknown_code")
        await record_event(
            request,
            "device_code_unknown",
            actor=actor_of(request, user.id, user.username),
            user_id=user.id,
            success=False,
            reason="the code matches no waiting device",
        )
        error = "That code is not valid: it may have expired or been used. Check your device."
        return page(request, "device.html", 400, user_code=_prefill(typed), error=error)
    if not open_to(client, user.groups):
        return page(request, "not_allowed.html", 403, client=client, user=user)
    wanted = [s for s in SCOPES if s in device.scope.split()]
    return page(
        request,
        "device_consent.html",
        client=client,
        user=user,
        user_code=shown(normalise_user_code(typed) or ""),
        scopes=[(s, SCOPE_TEXT.get(s, s)) for s in wanted],
    )


async def device_decision(request: Request) -> Response:
    """POST /device/decision: the user approves or denies the device."""
    services = services_of(request)
    form = await form_with_csrf(request)
    typed = form.get("user_code", "")
    found = await signed_in(request)
    if found is None:
        return _to_login(request, typed)
    session, identity = found
    user = await run_in_threadpool(services.users.find_user, identity.user_id)
    if user is None:
        return _to_login(request, typed)
    device = await _pending(request, user.id, typed)
    client = await _device_client(request, device)
    if device is None or client is None:
        text = "That code has expired or was already answered. Start again on your device."
        return message(request, "Code no longer valid", text, 400, "/device")
    if not open_to(client, user.groups):
        return page(request, "not_allowed.html", 403, client=client, user=user)
    approved = form.get("decision") == "approve"
    decided = await run_in_threadpool(
        lambda: server_of(request).devices.decide(
            device.user_code_hash,
            approved=approved,
            user_id=user.id,
            auth_time=session.created_at,
            amr=amr_for(session.method),
        )
    )
    if not decided:
        text = "That code has expired or was already answered. Start again on your device."
        return message(request, "Code no longer valid", text, 400, "/device")
    metrics.device_authorization("approved" if approved else "denied")
    await record_event(
        request,
        "device_authorized" if approved else "device_denied",
        actor=actor_of(request, user.id, user.username),
        user_id=user.id,
        success=approved,
        reason="" if approved else "denied by the user",
        details={"client_id": client.client_id, "client_name": client.name, "scope": device.scope},
    )
    if approved:
        title, text = "Device approved", f"{client.name} is signed in. Return to your device."
    else:
        title, text = "Device denied", f"{client.name} was not signed in. You can close this page."
    return message(request, title, text, 200, "/account")


routes = [
    Route("/device", device_form, methods=["GET"]),
    Route("/device", device_lookup, methods=["POST"]),
    Route("/device/decision", device_decision, methods=["POST"]),
]
