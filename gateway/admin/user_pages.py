"""Console pages for users: list, create, edit, disable, delete, claims, sign-in links, signup
links, and each user's passkeys and sessions. Every change goes through `services.admin`."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.admin.console import (
    REFUSALS,
    Admin,
    admin_only,
    console,
    done,
    form_change,
    status_for,
)
from gateway.core.errors import InvalidInput, NotFound, PassgateError
from gateway.passkeys.aaguids import model_name
from gateway.web.helpers import form_with_csrf, message, services_of

SECTION = "/admin/users"


def _number(form: dict[str, str], name: str, default: str, kind: type[int] | type[float]) -> Any:
    text = form.get(name, "").strip() or default
    try:
        return kind(text)
    except ValueError:
        raise InvalidInput(f"{name} must be a number") from None


async def _users_page(
    request: Request,
    status: int = 200,
    *,
    form: dict[str, str] | None = None,
    invite_form: dict[str, str] | None = None,
    error: str | None = None,
    invite: Any = None,
) -> Response:
    admin = services_of(request).admin
    return console(
        request,
        "admin_users.html",
        SECTION,
        status,
        users=await admin.list_users(),
        groups=await admin.list_groups(),
        form=form or {},
        chosen=(await request.form()).getlist("groups") if form else [],
        invite_form=invite_form or {"days": "7", "uses": "1"},
        invite=invite,
        signups_open=services_of(request).settings.allow_user_signups != "disabled",
        error=error,
    )


@admin_only
async def users(request: Request, admin: Admin) -> Response:
    return await _users_page(request)


@admin_only
async def create_user(request: Request, admin: Admin) -> Response:
    form = await form_with_csrf(request)
    groups = (await request.form()).getlist("groups")
    try:
        user = await services_of(request).admin.create_user(
            admin.actor,
            form.get("username", ""),
            email=form.get("email", ""),
            display_name=form.get("display_name", ""),
            groups=[g for g in groups if isinstance(g, str)],
        )
    except REFUSALS as exc:
        return await _users_page(request, status_for(exc), form=form, error=str(exc))
    return done(_path(user.username), f"User {user.username} created")


@admin_only
async def create_signup_token(request: Request, admin: Admin) -> Response:
    form = await form_with_csrf(request)
    try:
        invite = await services_of(request).admin.create_signup_token(
            admin.actor,
            days=_number(form, "days", "7", float),
            uses=_number(form, "uses", "1", int),
        )
    except REFUSALS as exc:
        return await _users_page(request, status_for(exc), invite_form=form, error=str(exc))
    return await _users_page(request, invite=invite, invite_form=form)


# --- one user ---------------------------------------------------------------------------------


async def _user_page(
    request: Request,
    username: str,
    status: int = 200,
    *,
    error: str | None = None,
    form: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    admin = services_of(request).admin
    try:
        user = await admin.get_user(username)
    except NotFound as exc:
        return message(request, "No such user", str(exc), 404, SECTION)
    passkeys = [
        {"passkey": p, "name": p.name or model_name(p.aaguid), "model": model_name(p.aaguid)}
        for p in await admin.list_passkeys(user.username)
    ]
    return console(
        request,
        "admin_user.html",
        SECTION,
        status,
        user=user,
        groups=await admin.list_groups(),
        claims=await admin.list_claims(f"user:{user.username}"),
        passkeys=passkeys,
        sessions=await admin.list_sessions(user.username),
        mail_enabled=services_of(request).notifications.enabled,
        error=error,
        form=form or {},
        **extra,
    )


@admin_only
async def user(request: Request, admin: Admin) -> Response:
    return await _user_page(request, request.path_params["username"])


async def _refused(
    request: Request, username: str, error: PassgateError, form: dict[str, str]
) -> Response:
    chosen = (await request.form()).getlist("groups")
    return await _user_page(
        request, username, status_for(error), error=str(error), form=form, chosen=chosen
    )


user_change = form_change("username", _refused)


def _path(username: str) -> str:
    return f"{SECTION}/{quote(username, safe='')}"


@user_change
async def edit_user(
    request: Request, admin: Admin, username: str, form: dict[str, str]
) -> Response:
    groups = [g for g in (await request.form()).getlist("groups") if isinstance(g, str)]
    await services_of(request).admin.update_user(
        admin.actor,
        username,
        email=form.get("email", ""),
        display_name=form.get("display_name", ""),
        groups=groups,
    )
    return done(_path(username), "Saved")


@user_change
async def disable_user(
    request: Request, admin: Admin, username: str, form: dict[str, str]
) -> Response:
    disabled = form.get("disabled") == "yes"
    await services_of(request).admin.set_disabled(admin.actor, username, disabled)
    return done(_path(username), "Account disabled" if disabled else "Account enabled")


@user_change
async def delete_user(
    request: Request, admin: Admin, username: str, form: dict[str, str]
) -> Response:
    """Deleting asks first: the admin types the username to confirm."""
    if "confirm" not in form:
        return await _user_page(request, username, confirm_delete=True)
    if form["confirm"].strip().lower() != username.lower():
        raise InvalidInput("type the username exactly to confirm the deletion")
    await services_of(request).admin.delete_user(admin.actor, username)
    return done(SECTION, f"User {username} deleted")


@user_change
async def set_claim(
    request: Request, admin: Admin, username: str, form: dict[str, str]
) -> Response:
    await services_of(request).admin.set_claim(
        admin.actor, f"user:{username}", form.get("claim", ""), form.get("value", "")
    )
    return done(_path(username), "Claim saved")


@user_change
async def unset_claim(
    request: Request, admin: Admin, username: str, form: dict[str, str]
) -> Response:
    claim = form.get("claim", "")
    await services_of(request).admin.unset_claim(admin.actor, f"user:{username}", claim)
    return done(_path(username), "Claim removed")


@user_change
async def create_login_link(
    request: Request, admin: Admin, username: str, form: dict[str, str]
) -> Response:
    """The link is shown on this response only (never put in a URL or a log), or emailed to
    the user when they asked for that and mail is set up."""
    minutes = _number(form, "minutes", "60", int)
    if form.get("send") == "email":
        user = await services_of(request).admin.email_login_link(admin.actor, username, minutes)
        return done(_path(username), f"Sign-in link emailed to {user.email}")
    link = await services_of(request).admin.create_login_link(admin.actor, username, minutes)
    return await _user_page(request, username, login_link=link, minutes=minutes)


@user_change
async def revoke_passkey(
    request: Request, admin: Admin, username: str, form: dict[str, str]
) -> Response:
    await services_of(request).admin.delete_passkey(admin.actor, username, form.get("id", ""))
    return done(_path(username), "Passkey revoked")


@user_change
async def end_session(
    request: Request, admin: Admin, username: str, form: dict[str, str]
) -> Response:
    await services_of(request).admin.end_session(admin.actor, username, form.get("key", ""))
    return done(_path(username), "Session ended")


@user_change
async def end_all_sessions(
    request: Request, admin: Admin, username: str, form: dict[str, str]
) -> Response:
    count = await services_of(request).admin.end_all_sessions(admin.actor, username)
    return done(_path(username), f"{count} session(s) ended")


routes = [
    Route(SECTION, users, methods=["GET"]),
    Route(SECTION, create_user, methods=["POST"]),
    Route("/admin/signup-tokens", create_signup_token, methods=["POST"]),
    Route(SECTION + "/{username}", user, methods=["GET"]),
    Route(SECTION + "/{username}/edit", edit_user, methods=["POST"]),
    Route(SECTION + "/{username}/disable", disable_user, methods=["POST"]),
    Route(SECTION + "/{username}/delete", delete_user, methods=["POST"]),
    Route(SECTION + "/{username}/claims/set", set_claim, methods=["POST"]),
    Route(SECTION + "/{username}/claims/unset", unset_claim, methods=["POST"]),
    Route(SECTION + "/{username}/login-link", create_login_link, methods=["POST"]),
    Route(SECTION + "/{username}/passkeys/revoke", revoke_passkey, methods=["POST"]),
    Route(SECTION + "/{username}/sessions/end", end_session, methods=["POST"]),
    Route(SECTION + "/{username}/sessions/end-all", end_all_sessions, methods=["POST"]),
]
