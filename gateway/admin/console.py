"""What every admin console page shares: admins-only access, rendering, and error statuses.

Only signed-in members of ADMIN_GROUP may use the console. Every console endpoint is wrapped in
`admin_only`, which answers before the endpoint runs: a visitor who is not signed in goes to the
login page (and comes back), a signed-in non-admin gets a 403 page.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import wraps
from typing import Any
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from gateway.accounts.notifications import MailFailed
from gateway.audit.log import Actor
from gateway.core.errors import Conflict, InvalidInput, NotFound, PassgateError
from gateway.core.identity import Identity
from gateway.oidc.clients import ReadOnlyClient
from gateway.web.helpers import actor_of, form_with_csrf, page, services_of, signed_in


@dataclass(frozen=True, slots=True)
class Admin:
    """The signed-in administrator behind a console request, and the actor audit records name."""

    identity: Identity
    actor: Actor


AdminHandler = Callable[[Request, Admin], Awaitable[Response]]


def is_admin(identity: Identity, admin_group: str) -> bool:
    return admin_group in identity.groups


def _login_redirect(request: Request) -> Response:
    """To the login page, then back here (a form's target cannot be revisited: the console)."""
    target = services_of(request).settings.app_url + "/admin"
    if request.method in ("GET", "HEAD"):
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
        actor = actor_of(request, identity.user_id, identity.username)
        return await handler(request, Admin(identity, actor))

    return endpoint


def console(
    request: Request, template: str, section: str, status: int = 200, **context: Any
) -> Response:
    """Render a console page with its nav; `?notice=` from a redirect is shown once."""
    context.setdefault("notice", request.query_params.get("notice", "")[:200])
    return page(request, template, status, section=section, when=when, **context)


def done(path: str, notice: str) -> Response:
    """After a change: back to a page (POST-redirect-GET) with a line saying what happened."""
    return RedirectResponse(f"{path}?{urlencode({'notice': notice})}", 303)


def status_for(error: PassgateError) -> int:
    """The HTTP status a console form answers with when the service layer refuses."""
    if isinstance(error, NotFound):
        return 404
    if isinstance(error, (Conflict, ReadOnlyClient)):
        return 409
    if isinstance(error, MailFailed):
        return 502  # the mail server refused or could not be reached
    return 400 if isinstance(error, InvalidInput) else 422


# What the service layer raises when it refuses a change: shown on the form, nothing lost.
REFUSALS = (NotFound, Conflict, InvalidInput, ReadOnlyClient, MailFailed)


def when(timestamp: float | None) -> str:
    """A timestamp as the console shows it (UTC, to the minute)."""
    if timestamp is None:
        return "never"
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")


Change = Callable[[Request, Admin, str, dict[str, str]], Awaitable[Response]]
Refused = Callable[[Request, str, PassgateError, dict[str, str]], Awaitable[Response]]


def form_change(
    param: str, refused: Refused
) -> Callable[[Change], Callable[[Request], Awaitable[Response]]]:
    """Make console form endpoints for one kind of record, named by the path parameter
    `param`: admins only, CSRF-checked, and a refusal from the service layer answered by
    `refused` (which re-renders the record's page with the message and the input)."""

    def decorate(change: Change) -> Callable[[Request], Awaitable[Response]]:
        @admin_only
        @wraps(change)
        async def endpoint(request: Request, admin: Admin) -> Response:
            key = request.path_params[param]
            form = await form_with_csrf(request)
            try:
                return await change(request, admin, key, form)
            except REFUSALS as exc:
                return await refused(request, key, exc, form)

        return endpoint

    return decorate
