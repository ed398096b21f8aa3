"""The admin console's read-only pages: the access rules with their "who can reach this?"
tester, and the effective settings."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from gateway.admin.administration import AccessCheck
from gateway.admin.console import Admin, admin_only, console
from gateway.admin.settings_overview import effective_settings
from gateway.core.errors import InvalidInput, NotFound
from gateway.forward_auth.decision import VERDICTS
from gateway.web.helpers import services_of

SECTION_RULES = "/admin/rules"


@admin_only
async def home(request: Request, admin: Admin) -> Response:
    return RedirectResponse("/admin/users", 303)


@admin_only
async def rules(request: Request, admin: Admin) -> Response:
    """The rules in force, and the tester: what forward-auth would answer for a URL and a user
    (or, with no username, for someone not signed in, plus who would be let in)."""
    services = services_of(request)
    services.rules.maybe_reload()
    ruleset = services.rules.current
    query = request.query_params
    form = {k: query.get(k, "")[:2048] for k in ("url", "username", "method")}
    check: AccessCheck | None = None
    error = ""
    if form["url"]:
        try:
            check = await services.admin.check_access(
                form["url"], form["username"].strip() or None, form["method"].strip() or "GET"
            )
        except (InvalidInput, NotFound) as exc:
            error = str(exc)
    return console(
        request,
        "admin_rules.html",
        SECTION_RULES,
        400 if error else 200,
        rules=ruleset.rules,
        default_policy=ruleset.default_policy,
        warnings=ruleset.warnings,
        source=services.settings.config_file,
        form=form,
        check=check,
        verdict=VERDICTS[check.outcome] if check else "",
        error=error,
    )


@admin_only
async def settings_overview(request: Request, admin: Admin) -> Response:
    rows = effective_settings(services_of(request).settings)
    return console(request, "admin_settings.html", "/admin/settings", rows=rows)


routes = [
    Route("/admin", home, methods=["GET"]),
    Route("/admin/rules", rules, methods=["GET"]),
    Route("/admin/settings", settings_overview, methods=["GET"]),
]
