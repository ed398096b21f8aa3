"""Who may use the admin console: signed-in members of ADMIN_GROUP, and nobody else.

Every console page is wrapped in `admin_only`, which answers before the page runs: a visitor who
is not signed in goes to the login page (and comes back), a signed-in non-admin gets a 403 page.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import wraps
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from gateway.audit import Actor
from gateway.identity import Identity
from gateway.web import client_address, page, services_of, signed_in


@dataclass(frozen=True, slots=True)
class Admin:
    """The signed-in administrator behind a console request, and the actor audit records name."""

    identity: Identity
    actor: Actor


AdminHandler = Callable[[Request, Admin], Awaitable[Response]]


def is_admin(identity: Identity, admin_group: str) -> bool:
    return admin_group in identity.groups


def _login_redirect(request: Request) -> Response:
    target = services_of(request).settings.app_url + request.url.path
    if request.url.query:
        target += "?" + request.url.query
    return RedirectResponse("/login?rd=" + quote(target, safe=""), 303)


def admin_only(handler: AdminHandler) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a console endpoint: run it only for a signed-in member of ADMIN_GROUP."""

    @wraps(handler)
    async def endpoint(request: Request) -> Response:
        found = await signed_in(request)
        if found is None:
            return _login_redirect(request)
        identity = found[1]
        if not is_admin(identity, services_of(request).settings.admin_group):
            return page(request, "admin_forbidden.html", 403, username=identity.username)
        actor = Actor(
            "user",
            id=identity.user_id,
            name=identity.username,
            ip=client_address(request),
            user_agent=request.headers.get("user-agent", "")[:512],
        )
        return await handler(request, Admin(identity, actor))

    return endpoint
