"""First-run setup and signup pages; the passkey itself is made by passkeys.js and webauthn_api."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.passkeys.signups import SignupRejected
from gateway.web.helpers import message, page, services_of


async def setup(request: Request) -> Response:
    services = services_of(request)
    if await run_in_threadpool(services.users.count_users) > 0:
        return message(request, "Not found", "There is no page at this address.", 404)
    return page(request, "enrol.html", flow="setup", token="", scripts=["passkeys.js"])


async def signup(request: Request) -> Response:
    services = services_of(request)
    mode = services.settings.allow_user_signups
    if mode == "disabled":
        return message(request, "Not found", "There is no page at this address.", 404)
    token = request.query_params.get("token", "")[:100]
    if mode == "withToken":
        try:
            await run_in_threadpool(services.signups.check, token)
        except SignupRejected as exc:
            return message(request, "Signup unavailable", str(exc), 403)
    return page(request, "enrol.html", flow="signup", token=token, scripts=["passkeys.js"])


routes = [
    Route("/setup", setup, methods=["GET"]),
    Route("/signup", signup, methods=["GET"]),
]
