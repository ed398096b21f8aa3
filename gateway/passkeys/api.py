"""JSON endpoints behind the passkey buttons: begin and finish each ceremony.

Every call needs the CSRF header and our own Origin; every call is rate-limited per IP, and a
refused sign-in also counts against the account its passkey names. Errors come back as
`{"error": code, "message": text}` with a status that says what happened.
"""

from __future__ import annotations

import json
import logging
import secrets
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.accounts.users import validate_email, validate_username
from gateway.audit.log import DetailValue
from gateway.core.errors import BodyTooLarge, Conflict, InvalidInput, NotFound, RequestInvalid
from gateway.passkeys.ceremonies import AUDIT_REASONS, PasskeyRejected, PendingRegistration
from gateway.passkeys.enrolment import SetupClosed
from gateway.passkeys.signups import SignupRejected
from gateway.sessions import rate_limit
from gateway.sessions.cookies import session_cookie
from gateway.sessions.csrf import CsrfRejected, verify
from gateway.sessions.rate_limit import RateLimited
from gateway.web.helpers import (
    actor_of,
    client_address,
    passkey_details,
    record_event,
    return_target,
    services_of,
    signed_in_response,
)

log = logging.getLogger("passgate.webauthn")

NOT_JSON = "the request body is not valid JSON"
LOGIN_COOKIE = "passgate_webauthn_login"
REGISTER_COOKIE = "passgate_webauthn_register"


class RegisterBegin(BaseModel):
    model_config = ConfigDict(extra="forbid")

    flow: str = Field(pattern="^(setup|signup|add)$")
    username: str = Field("", max_length=64)
    email: str = Field("", max_length=254)
    display_name: str = Field("", max_length=100)
    token: str | None = Field(None, max_length=100)


class RegisterFinish(BaseModel):
    model_config = ConfigDict(extra="forbid")

    credential: dict[str, Any]
    name: str = Field("", max_length=64)
    rd: str | None = Field(None, max_length=4096)


class LoginFinish(BaseModel):
    model_config = ConfigDict(extra="forbid")

    credential: dict[str, Any]
    rd: str | None = Field(None, max_length=4096)


def error(code: str, message: str, status: int, **headers: str) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status, headers=headers)


async def _body(request: Request, model: type[BaseModel]) -> Any:
    """CSRF-check and parse the JSON body; raises CsrfRejected, BodyTooLarge
    (gateway.web.body_limit) and RequestInvalid, whose message is ours: never the JSON parser's
    or pydantic's text, which may quote the body."""
    verify(request, services_of(request).settings, request.headers.get("x-csrf-token"))
    raw = await request.body()
    try:
        data = json.loads(raw or b"{}")
    except ValueError as exc:  # JSONDecodeError, or bytes that are not UTF-8
        log.debug("%s: body is not JSON: %s", request.url.path, exc)  # a position, no content
        raise RequestInvalid(NOT_JSON, {}, unparseable=True) from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RequestInvalid(_invalid_fields(model, exc), {}) from None


def _invalid_fields(model: type[BaseModel], exc: ValidationError) -> str:
    """A message naming the model's own fields that failed; never pydantic's text, nor a name
    the caller made up."""
    failed = {str(e["loc"][0]) for e in exc.errors(include_input=False) if e["loc"]}
    names = sorted(failed & set(model.model_fields))
    if names:
        return "missing or invalid in the request: " + ", ".join(names)
    return "the request body is not what this endpoint expects"


def _with_cookie(response: Response, request: Request, name: str, value: str) -> Response:
    response.set_cookie(
        name,
        value,
        max_age=300,
        path="/api/webauthn",
        httponly=True,
        samesite="strict",
        secure=services_of(request).settings.secure_cookies,
    )
    return response


def _guarded(handler: Any) -> Any:
    """Map the ceremony's failures to JSON errors in one place."""

    async def endpoint(request: Request) -> Response:
        try:
            response: Response = await handler(request)
            return response
        except CsrfRejected as exc:
            return error("csrf", str(exc), 403)
        except RequestInvalid as exc:
            return error("invalid_request", str(exc), 400)
        except BodyTooLarge as exc:
            return error("request_too_large", str(exc), 413)
        except RateLimited as exc:
            return error("rate_limited", str(exc), 429, **{"Retry-After": str(exc.retry_after)})
        except PasskeyRejected as exc:
            return error(exc.reason, str(exc), 403 if exc.reason == "disabled" else 400)
        except (SignupRejected, SetupClosed) as exc:
            return error("not_allowed", str(exc), 403)
        except (Conflict, InvalidInput) as exc:
            return error("invalid_account", str(exc), 409 if isinstance(exc, Conflict) else 400)

    return endpoint


async def login_begin(request: Request) -> Response:
    services = services_of(request)
    verify(request, services.settings, request.headers.get("x-csrf-token"))
    await services.rate_limits.check(rate_limit.WEBAUTHN, client_address(request))
    ceremony, options = await services.ceremonies.begin_authentication()
    response = Response(options, media_type="application/json")
    return _with_cookie(response, request, LOGIN_COOKIE, ceremony)


async def login_finish(request: Request) -> Response:
    services = services_of(request)
    body: LoginFinish = await _body(request, LoginFinish)
    try:
        await services.rate_limits.check(rate_limit.WEBAUTHN, client_address(request))
        passkey = await services.ceremonies.finish_authentication(
            request.cookies.get(LOGIN_COOKIE), body.credential
        )
    except RateLimited as exc:
        await _sign_in_refused(request, "passkey", exc)
        raise
    except PasskeyRejected as exc:
        # Usernameless: the account is known only once the answer names a known passkey.
        await _count_against_account(request, exc.user_id)
        await _sign_in_refused(request, "passkey", exc)
        raise
    # A passkey that verifies is never held back by the account's failures (rate_limit says why).
    target = return_target(request, body.rd)
    response = await signed_in_response(
        request, passkey.user_id, target, "passkey", json_body=True, passkey=passkey
    )
    response.delete_cookie(LOGIN_COOKIE, path="/api/webauthn")
    return response


async def login_cancel(request: Request) -> Response:
    """The browser's passkey prompt was cancelled or timed out: end the ceremony, and record
    the attempt (only for a ceremony that really began, so this cannot flood the audit log)."""
    services = services_of(request)
    verify(request, services.settings, request.headers.get("x-csrf-token"))
    await services.rate_limits.check(rate_limit.WEBAUTHN, client_address(request))
    if await services.ceremonies.cancel_authentication(request.cookies.get(LOGIN_COOKIE)):
        await record_event(
            request,
            "sign_in",
            success=False,
            reason="cancelled",
            details={"method": "passkey"},
        )
    response = Response(status_code=204)
    response.delete_cookie(LOGIN_COOKIE, path="/api/webauthn")
    return response


async def _count_against_account(request: Request, user_id: str | None) -> None:
    """Count a refused sign-in against its account; past the limit, record and raise
    RateLimited in place of the refusal."""
    try:
        await services_of(request).rate_limits.sign_in_failed(user_id)
    except RateLimited as exc:
        await _sign_in_refused(request, "passkey", exc, user_id)
        raise


async def _sign_in_refused(
    request: Request, method: str, exc: Exception, user_id: str | None = None
) -> None:
    """Record a refused passkey sign-in or signup; the caller re-raises the refusal."""
    details: dict[str, DetailValue] = {"method": method}
    if isinstance(exc, PasskeyRejected):
        reason = AUDIT_REASONS[exc.reason]
        user_id = exc.user_id or user_id
        if exc.credential_id:
            known = await run_in_threadpool(services_of(request).passkeys.find, exc.credential_id)
            details.update(passkey_details(known) if known else {"passkey": exc.credential_id[:12]})
    elif isinstance(exc, RateLimited):
        reason = "rate limited"
    elif isinstance(exc, Conflict | InvalidInput):
        reason = f"invalid account details: {exc}"
    else:
        reason = str(exc)  # signup link or setup refused; the messages name no secret
    await record_event(
        request, "sign_in", user_id=user_id, success=False, reason=reason, details=details
    )


async def register_begin(request: Request) -> Response:
    services = services_of(request)
    body: RegisterBegin = await _body(request, RegisterBegin)
    ip = client_address(request)
    await services.rate_limits.check(rate_limit.WEBAUTHN, ip)
    try:
        pending = await _pending_registration(request, body)
    except (SignupRejected, SetupClosed) as exc:
        await _sign_in_refused(request, body.flow, exc)
        raise
    ceremony, options = await services.ceremonies.begin_registration(pending)
    response = Response(options, media_type="application/json")
    return _with_cookie(response, request, REGISTER_COOKIE, ceremony)


async def _pending_registration(request: Request, body: RegisterBegin) -> PendingRegistration:
    services = services_of(request)
    if body.flow == "add":
        found = await services.current_user.identify(session_cookie(request, services.settings))
        if found is None:
            raise PasskeyRejected("expired")
        identity = found[1]
        handle = await run_in_threadpool(services.passkeys.user_handle, identity.user_id)
        return PendingRegistration(
            "add",
            handle,
            identity.username,
            identity.email,
            identity.display_name,
            identity.user_id,
        )
    if body.flow == "setup":
        if await run_in_threadpool(services.users.count_users) > 0:
            raise SetupClosed("setup is already complete; sign in instead")
    else:
        # Per IP only: a signup names no account yet, and how many it can make is bounded by the
        # signup token's usage limit (withToken) or left open on purpose (open).
        await services.rate_limits.check(rate_limit.SIGNUP, client_address(request))
        mode = services.settings.allow_user_signups
        if mode == "disabled":
            raise SignupRejected("signups are closed")
        if mode == "withToken":
            await run_in_threadpool(services.signups.check, body.token or "")
    # Validate the account fields now, so a typo fails before the passkey prompt.
    username = validate_username(body.username)
    validate_email(body.email)
    if await _username_taken(request, username):
        raise Conflict("that username is taken; choose another")
    with_token = body.flow == "signup" and services.settings.allow_user_signups == "withToken"
    token = body.token if with_token else None
    return PendingRegistration(
        body.flow,
        secrets.token_urlsafe(32),
        username,
        body.email.strip(),
        body.display_name.strip(),
        None,
        token,
    )


async def _username_taken(request: Request, username: str) -> bool:
    try:
        await run_in_threadpool(services_of(request).users.get_user_by_name, username)
    except NotFound:
        return False
    return True


async def register_finish(request: Request) -> Response:
    services = services_of(request)
    body: RegisterFinish = await _body(request, RegisterFinish)
    pending: PendingRegistration | None = None
    try:
        await services.rate_limits.check(rate_limit.WEBAUTHN, client_address(request))
        pending, passkey = await services.ceremonies.finish_registration(
            request.cookies.get(REGISTER_COOKIE), body.credential, body.name
        )
        if pending.flow == "add":
            # The session must still be the one that began the ceremony.
            found = await services.current_user.identify(session_cookie(request, services.settings))
            if found is None or found[1].user_id != pending.user_id:
                raise PasskeyRejected("expired", flow="add", user_id=pending.user_id)
        user_id = await run_in_threadpool(services.enrolment.complete, pending, passkey)
    except (PasskeyRejected, RateLimited, SignupRejected, SetupClosed, Conflict) as exc:
        await _registration_refused(request, pending, exc)
        raise
    log.info("passkey added for %s (%s)", pending.username, pending.flow)
    actor = actor_of(request, user_id, pending.username)
    added = passkey_details(passkey)
    if pending.flow == "add":
        await record_event(request, "passkey_added", actor=actor, user_id=user_id, details=added)
        response: Response = JSONResponse({"redirect": services.settings.app_url + "/account"})
    else:
        await record_event(
            request,
            "signup_completed",
            actor=actor,
            user_id=user_id,
            details={"flow": pending.flow, "username": pending.username, **added},
        )
        target = return_target(request, body.rd)
        response = await signed_in_response(
            request, user_id, target, pending.flow, json_body=True, passkey=passkey
        )
    response.delete_cookie(REGISTER_COOKIE, path="/api/webauthn")
    return response


async def _registration_refused(
    request: Request, pending: PendingRegistration | None, exc: Exception
) -> None:
    """A refused new passkey is a failed `passkey_added` for the account page's flow and a
    failed sign-in (method setup/signup) otherwise; an expired ceremony's flow is unknown."""
    flow = pending.flow if pending else exc.flow if isinstance(exc, PasskeyRejected) else ""
    if flow != "add":
        await _sign_in_refused(request, flow or "registration", exc)
        return
    user_id = (
        pending.user_id if pending else exc.user_id if isinstance(exc, PasskeyRejected) else None
    )
    reason = AUDIT_REASONS[exc.reason] if isinstance(exc, PasskeyRejected) else str(exc)
    await record_event(
        request,
        "passkey_added",
        actor=actor_of(request, user_id or ""),
        user_id=user_id,
        success=False,
        reason=reason,
    )


routes = [
    Route("/api/webauthn/login/begin", _guarded(login_begin), methods=["POST"]),
    Route("/api/webauthn/login/finish", _guarded(login_finish), methods=["POST"]),
    Route("/api/webauthn/login/cancel", _guarded(login_cancel), methods=["POST"]),
    Route("/api/webauthn/register/begin", _guarded(register_begin), methods=["POST"]),
    Route("/api/webauthn/register/finish", _guarded(register_finish), methods=["POST"]),
]
