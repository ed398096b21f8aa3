"""Console page for admin API keys: create (the token shown once), list, revoke."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.admin.console import REFUSALS, Admin, admin_only, console, done, status_for
from gateway.core.errors import InvalidInput
from gateway.web.helpers import form_with_csrf, services_of

SECTION = "/admin/api-keys"
NEW_KEY = {"name": "", "scope": "read", "days": "90"}


async def _keys_page(
    request: Request,
    status: int = 200,
    *,
    form: dict[str, str] | None = None,
    error: str = "",
    created: object = None,
    token: str = "",
) -> Response:
    return console(
        request,
        "admin_api_keys.html",
        SECTION,
        status,
        keys=await services_of(request).admin.list_api_keys(),
        form=form or NEW_KEY,
        error=error,
        created=created,
        token=token,
        now=time.time(),
    )


@admin_only
async def api_keys(request: Request, admin: Admin) -> Response:
    return await _keys_page(request)


def _days(text: str) -> float | None:
    if not text.strip():
        return None  # never expires
    try:
        return float(text)
    except ValueError:
        raise InvalidInput("days must be a number, or empty for a key that never expires") from None


@admin_only
async def create_api_key(request: Request, admin: Admin) -> Response:
    """The token is in this response only: it is stored hashed."""
    form = await form_with_csrf(request)
    try:
        key, token = await services_of(request).admin.create_api_key(
            admin.actor,
            form.get("name", ""),
            form.get("scope", "read"),
            _days(form.get("days", "")),
        )
    except REFUSALS as exc:
        return await _keys_page(request, status_for(exc), form=form, error=str(exc))
    return await _keys_page(request, created=key, token=token)


@admin_only
async def revoke_api_key(request: Request, admin: Admin) -> Response:
    form = await form_with_csrf(request)
    try:
        key = await services_of(request).admin.revoke_api_key(admin.actor, form.get("id", ""))
    except REFUSALS as exc:
        return await _keys_page(request, status_for(exc), error=str(exc))
    return done(SECTION, f"API key {key.name} revoked")


routes = [
    Route(SECTION, api_keys, methods=["GET"]),
    Route(SECTION, create_api_key, methods=["POST"]),
    Route(SECTION + "/revoke", revoke_api_key, methods=["POST"]),
]
