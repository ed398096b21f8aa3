"""The "My apps" page (/apps): the apps a signed-in user may open, with their logos and launch
links. An app is listed when its client has a launch URL and lets the user's groups in."""

from __future__ import annotations

from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from gateway.oidc.clients import logo_of, open_to
from gateway.web.helpers import page, services_of, signed_in


async def my_apps(request: Request) -> Response:
    services = services_of(request)
    found = await signed_in(request)
    if found is None:
        target = services.settings.app_url + "/apps"
        return RedirectResponse("/login?rd=" + quote(target, safe=""), 303)
    identity = found[1]
    clients = await run_in_threadpool(services.clients.list)
    apps = [
        {"id": c.client_id, "name": c.name, "url": c.launch_url, "logo": logo_of(c)}
        for c in clients
        if c.launch_url and open_to(c, identity.groups)
    ]
    return page(request, "apps.html", user=identity, apps=apps)


routes = [Route("/apps", my_apps, methods=["GET"])]
