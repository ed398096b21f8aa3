"""Console pages for groups: list, create, rename, delete, members and custom claims. Every
change goes through `services.admin`."""

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
from gateway.web.helpers import form_with_csrf, message, services_of

SECTION = "/admin/groups"


def _path(name: str) -> str:
    return f"{SECTION}/{quote(name, safe='')}"


async def _groups_page(
    request: Request, status: int = 200, *, form: dict[str, str] | None = None, error: str = ""
) -> Response:
    return console(
        request,
        "admin_groups.html",
        SECTION,
        status,
        groups=await services_of(request).admin.list_groups(),
        form=form or {},
        error=error,
    )


@admin_only
async def groups(request: Request, admin: Admin) -> Response:
    return await _groups_page(request)


@admin_only
async def create_group(request: Request, admin: Admin) -> Response:
    form = await form_with_csrf(request)
    try:
        group = await services_of(request).admin.create_group(admin.actor, form.get("name", ""))
    except REFUSALS as exc:
        return await _groups_page(request, status_for(exc), form=form, error=str(exc))
    return done(_path(group.name), f"Group {group.name} created")


async def _group_page(
    request: Request, name: str, status: int = 200, *, error: str = "", **extra: Any
) -> Response:
    admin = services_of(request).admin
    try:
        group = await admin.get_group(name)
    except NotFound as exc:
        return message(request, "No such group", str(exc), 404, SECTION)
    users = [u.username for u in await admin.list_users() if u.username not in group.members]
    return console(
        request,
        "admin_group.html",
        SECTION,
        status,
        group=group,
        candidates=users,
        claims=await admin.list_claims(f"group:{group.name}"),
        is_admin_group=group.name == services_of(request).settings.admin_group,
        error=error,
        **extra,
    )


@admin_only
async def group(request: Request, admin: Admin) -> Response:
    return await _group_page(request, request.path_params["name"], form={})


async def _refused(
    request: Request, name: str, error: PassgateError, form: dict[str, str]
) -> Response:
    return await _group_page(request, name, status_for(error), error=str(error), form=form)


group_change = form_change("name", _refused)


@group_change
async def rename_group(request: Request, admin: Admin, name: str, form: dict[str, str]) -> Response:
    renamed = await services_of(request).admin.rename_group(
        admin.actor, name, form.get("new_name", "")
    )
    return done(_path(renamed.name), f"Renamed to {renamed.name}")


@group_change
async def delete_group(request: Request, admin: Admin, name: str, form: dict[str, str]) -> Response:
    """Deleting asks first: the admin types the group's name to confirm."""
    if "confirm" not in form:
        return await _group_page(request, name, confirm_delete=True, form={})
    if form["confirm"].strip() != name:
        raise InvalidInput("type the group's name exactly to confirm the deletion")
    await services_of(request).admin.delete_group(admin.actor, name)
    return done(SECTION, f"Group {name} deleted")


@group_change
async def add_member(request: Request, admin: Admin, name: str, form: dict[str, str]) -> Response:
    username = form.get("username", "").strip()
    if not username:
        raise InvalidInput("choose a user to add")
    await services_of(request).admin.add_member(admin.actor, name, username)
    return done(_path(name), f"{username} added")


@group_change
async def remove_member(
    request: Request, admin: Admin, name: str, form: dict[str, str]
) -> Response:
    username = form.get("username", "")
    await services_of(request).admin.remove_member(admin.actor, name, username)
    return done(_path(name), f"{username} removed")


@group_change
async def set_claim(request: Request, admin: Admin, name: str, form: dict[str, str]) -> Response:
    await services_of(request).admin.set_claim(
        admin.actor, f"group:{name}", form.get("claim", ""), form.get("value", "")
    )
    return done(_path(name), "Claim saved")


@group_change
async def unset_claim(request: Request, admin: Admin, name: str, form: dict[str, str]) -> Response:
    await services_of(request).admin.unset_claim(
        admin.actor, f"group:{name}", form.get("claim", "")
    )
    return done(_path(name), "Claim removed")


routes = [
    Route(SECTION, groups, methods=["GET"]),
    Route(SECTION, create_group, methods=["POST"]),
    Route(SECTION + "/{name}", group, methods=["GET"]),
    Route(SECTION + "/{name}/rename", rename_group, methods=["POST"]),
    Route(SECTION + "/{name}/delete", delete_group, methods=["POST"]),
    Route(SECTION + "/{name}/members/add", add_member, methods=["POST"]),
    Route(SECTION + "/{name}/members/remove", remove_member, methods=["POST"]),
    Route(SECTION + "/{name}/claims/set", set_claim, methods=["POST"]),
    Route(SECTION + "/{name}/claims/unset", unset_claim, methods=["POST"]),
]
