"""The account page: profile, passkeys (add, rename, delete) and active sessions."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from gateway.audit.log import DetailValue
from gateway.core.crypto import tokens_equal
from gateway.core.errors import InvalidInput, NotFound
from gateway.core.identity import Identity
from gateway.passkeys.aaguids import model_name
from gateway.sessions.cookies import clear_session_cookie
from gateway.web.helpers import (
    actor_of,
    form_with_csrf,
    message,
    page,
    passkey_details,
    record_event,
    services_of,
    signed_in,
)

RECENT_ACTIVITY = 10  # audit events shown on the account page


def _ago(seconds: float) -> str:
    if seconds < 90:
        return "just now"
    if seconds < 5400:
        return f"{int(seconds // 60)} minutes ago"
    if seconds < 129600:
        return f"{int(seconds // 3600)} hours ago"
    return f"{int(seconds // 86400)} days ago"


def _date(timestamp: float | None) -> str:
    if timestamp is None:
        return "never"
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")


def _date_time(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _to_login(request: Request) -> Response:
    target = services_of(request).settings.app_url + "/account"
    return RedirectResponse("/login?rd=" + quote(target, safe=""), 303)


async def account(request: Request) -> Response:
    services = services_of(request)
    found = await signed_in(request)
    if found is None:
        return _to_login(request)
    record, identity = found
    now = time.time()
    sessions = [
        {
            "key": s.key,
            "ip": s.ip,
            "user_agent": s.user_agent,
            "current": s.key == record.key,
            "last_seen_text": _ago(now - s.last_seen),
        }
        for s in await services.sessions.list_for_user(identity.user_id)
    ]
    passkeys = [
        {
            "id": p.credential_id,
            "name": p.name or model_name(p.aaguid),
            "model": model_name(p.aaguid),
            "created": _date(p.created_at),
            "last_used": _date(p.last_used_at),
            "synced": p.backed_up,
        }
        for p in await run_in_threadpool(services.passkeys.list_for_user, identity.user_id)
    ]
    apps = []
    for client_id, scope, granted_at in await run_in_threadpool(
        services.oauth.consents, identity.user_id
    ):
        client = await run_in_threadpool(services.clients.find, client_id)
        if client is not None:
            apps.append(
                {"id": client_id, "name": client.name, "scope": scope, "since": _date(granted_at)}
            )
    activity = await run_in_threadpool(
        lambda: services.audit.search(user_id=identity.user_id, limit=RECENT_ACTIVITY).events
    )
    return page(
        request,
        "account.html",
        user=identity,
        activity=[(_date_time(e.at), e) for e in activity],
        sessions=sessions,
        passkeys=passkeys,
        apps=apps,
        notice=request.query_params.get("notice", "")[:100],
        scripts=["passkeys.js"],
    )


async def _checked(request: Request) -> tuple[dict[str, str], Identity] | Response:
    """(form, identity) for a signed-in user's valid form, or the response to send instead."""
    form = await form_with_csrf(request)
    found = await signed_in(request)
    if found is None:
        return _to_login(request)
    return form, found[1]


async def _record(
    request: Request, event: str, identity: Identity, details: dict[str, DetailValue]
) -> None:
    actor = actor_of(request, identity.user_id, identity.username)
    await record_event(request, event, actor=actor, user_id=identity.user_id, details=details)


async def rename_passkey(request: Request) -> Response:
    checked = await _checked(request)
    if isinstance(checked, Response):
        return checked
    form, identity = checked
    passkeys = services_of(request).passkeys
    credential_id = form.get("id", "")
    before = await run_in_threadpool(passkeys.find, credential_id)
    try:
        after = await run_in_threadpool(
            passkeys.rename, identity.user_id, credential_id, form.get("name", "")
        )
    except (NotFound, InvalidInput) as exc:
        return message(request, "Passkey not renamed", str(exc), 400, "/account")
    details = passkey_details(after)
    details["old_name"] = before.name if before is not None else ""
    await _record(request, "passkey_renamed", identity, details)
    return RedirectResponse("/account?notice=Passkey+renamed", 303)


async def delete_passkey(request: Request) -> Response:
    checked = await _checked(request)
    if isinstance(checked, Response):
        return checked
    form, identity = checked
    passkeys = services_of(request).passkeys
    credential_id = form.get("id", "")
    remaining = await run_in_threadpool(passkeys.count_for_user, identity.user_id)
    if remaining <= 1 and form.get("confirm_last") != "yes":
        return page(request, "confirm_delete_last.html", 409, passkey_id=credential_id)
    doomed = await run_in_threadpool(passkeys.find, credential_id)
    try:
        await run_in_threadpool(passkeys.delete, identity.user_id, credential_id)
    except NotFound as exc:
        return message(request, "Passkey not deleted", str(exc), 404, "/account")
    if doomed is not None:
        await _record(request, "passkey_removed", identity, passkey_details(doomed))
    return RedirectResponse("/account?notice=Passkey+deleted", 303)


async def revoke_app(request: Request) -> Response:
    """Withdraw consent for an app and revoke every token it holds for this user."""
    checked = await _checked(request)
    if isinstance(checked, Response):
        return checked
    form, identity = checked
    services = services_of(request)
    client_id = form.get("client_id", "")
    client = await run_in_threadpool(services.clients.find, client_id) if client_id else None
    await run_in_threadpool(services.oauth.revoke_consent, identity.user_id, client_id)
    if client is not None:
        details: dict[str, DetailValue] = {"client_id": client_id, "client_name": client.name}
        await _record(request, "consent_withdrawn", identity, details)
    return RedirectResponse("/account?notice=Access+withdrawn", 303)


async def end_session(request: Request) -> Response:
    checked = await _checked(request)
    if isinstance(checked, Response):
        return checked
    form, identity = checked
    services = services_of(request)
    key = form.get("key", "")
    ended = next(
        (
            s
            for s in await services.sessions.list_for_user(identity.user_id)
            if tokens_equal(s.key, key)
        ),
        None,
    )
    if await services.sessions.end_by_key(identity.user_id, key) and ended is not None:
        details: dict[str, DetailValue] = {
            "session_ip": ended.ip,
            "session_user_agent": ended.user_agent[:200],
        }
        await _record(request, "session_revoked", identity, details)
    return RedirectResponse("/account", 303)


async def end_all_sessions(request: Request) -> Response:
    checked = await _checked(request)
    if isinstance(checked, Response):
        return checked
    services = services_of(request)
    identity = checked[1]
    count = len(await services.sessions.list_for_user(identity.user_id))
    await services.sessions.end_all_for_user(identity.user_id)
    await _record(request, "sign_out_everywhere", identity, {"sessions": count})
    response = RedirectResponse("/login", 303)
    clear_session_cookie(response, services.settings)
    return response


routes = [
    Route("/account", account, methods=["GET"]),
    Route("/account/passkeys/rename", rename_passkey, methods=["POST"]),
    Route("/account/passkeys/delete", delete_passkey, methods=["POST"]),
    Route("/account/apps/revoke", revoke_app, methods=["POST"]),
    Route("/account/sessions/end", end_session, methods=["POST"]),
    Route("/account/sessions/end-all", end_all_sessions, methods=["POST"]),
]
