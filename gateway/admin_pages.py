"""The admin console's read-only pages: the access rules with their tester, and the settings."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from gateway.admin_access import Admin, admin_only
from gateway.errors import InvalidInput, NotFound
from gateway.identity import Identity
from gateway.rules_tester import Verdict, request_facts, who_can_reach
from gateway.settings_overview import effective_settings
from gateway.web import page, services_of


@admin_only
async def home(request: Request, admin: Admin) -> Response:
    return RedirectResponse("/admin/users", 303)


@admin_only
async def rules(request: Request, admin: Admin) -> Response:
    services = services_of(request)
    services.rules.maybe_reload()
    ruleset = services.rules.current
    query = request.query_params
    form = {k: query.get(k, "")[:2048] for k in ("url", "username", "method", "ip")}
    verdict: Verdict | None = None
    error = None
    tested_as = "someone not signed in"
    if form["url"]:
        try:
            facts = request_facts(form["url"], form["method"], form["ip"])
            identity: Identity | None = None
            if form["username"].strip():
                user = await run_in_threadpool(
                    services.users.get_user_by_name, form["username"].strip()
                )
                if user.disabled:
                    tested_as = f"{user.username} (disabled, so treated as not signed in)"
                else:
                    identity = user.identity()
                    groups = ", ".join(identity.groups) or "no groups"
                    tested_as = f"{user.username} ({groups})"
            verdict = who_can_reach(facts, identity, ruleset)
        except (InvalidInput, NotFound) as exc:
            error = str(exc)
    return page(
        request,
        "admin_rules.html",
        400 if error else 200,
        section="/admin/rules",
        rules=ruleset.rules,
        default_policy=ruleset.default_policy,
        source=services.settings.config_file,
        form=form,
        verdict=verdict,
        tested_as=tested_as,
        error=error,
    )


@admin_only
async def settings_overview(request: Request, admin: Admin) -> Response:
    rows = effective_settings(services_of(request).settings)
    return page(request, "admin_settings.html", section="/admin/settings", rows=rows)


routes = [
    Route("/admin", home, methods=["GET"]),
    Route("/admin/rules", rules, methods=["GET"]),
    Route("/admin/settings", settings_overview, methods=["GET"]),
]
