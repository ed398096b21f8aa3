"""Sign-in pages: passkey sign-in, login codes and one-time links, and sign-out."""

from __future__ import annotations

import logging

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from gateway.core import metrics
from gateway.core.errors import LoginCodeRejected
from gateway.sessions import rate_limit
from gateway.sessions.cookies import clear_session_cookie
from gateway.sessions.rate_limit import RateLimited
from gateway.web.helpers import (
    RETURN_COOKIE,
    client_address,
    end_this_session,
    form_with_csrf,
    page,
    record_event,
    return_target,
    services_of,
    signed_in,
    signed_in_response,
)

log = logging.getLogger("passgate.pages")


def _rd(request: Request) -> str:
    """The validated return URL from ?rd= or the cookie the login page left, or ""."""
    rd = request.query_params.get("rd") or request.cookies.get(RETURN_COOKIE)
    return return_target(request, rd) if rd else ""


async def login(request: Request) -> Response:
    services = services_of(request)
    rd = request.query_params.get("rd")
    # force=1: an app asked for a fresh sign-in (prompt=login, max_age), so do not skip ahead.
    forced = request.query_params.get("force") == "1"
    if not forced and rd is not None and await signed_in(request) is not None:
        return RedirectResponse(return_target(request, rd), status_code=303)
    if await run_in_threadpool(services.users.count_users) == 0:
        return RedirectResponse("/setup", status_code=303)
    safe_rd = return_target(request, rd) if rd else ""
    hint = request.query_params.get("hint", "")[:64]
    response = page(request, "login.html", rd=safe_rd, hint=hint, scripts=["passkeys.js"])
    if safe_rd:
        # A one-time link opened from another tab or an email still returns the user here.
        response.set_cookie(
            RETURN_COOKIE,
            safe_rd,
            max_age=3600,
            path="/",
            httponly=True,
            samesite="lax",
            secure=services.settings.secure_cookies,
        )
    return response


async def login_code_page(request: Request) -> Response:
    return page(request, "login_code_form.html", rd=_rd(request), error=None)


async def login_link(request: Request) -> Response:
    """GET /lc/<code>: a confirmation page, so link scanners that only GET cannot burn the code."""
    return page(request, "login_code.html", code=request.path_params["code"][:64], rd=_rd(request))


async def login_with_code(request: Request) -> Response:
    services = services_of(request)
    form = await form_with_csrf(request)
    # The /lc/<code> confirmation page says so; a code typed by hand is a login code.
    method = "one_time_link" if form.get("via") == "link" else "login_code"
    try:
        await services.rate_limits.check(rate_limit.LOGIN_CODE, client_address(request))
    except RateLimited:
        await _code_rate_limited(request, method)
        raise
    rd = form.get("rd") or None
    try:
        user = await run_in_threadpool(services.login_codes.redeem, form.get("code", "")[:64])
    except LoginCodeRejected as exc:
        log.info("login code rejected from %s", client_address(request))
        metrics.login(method, success=False)
        # An unknown code names no account, so only the per-IP limit above counts it (80 bits
        # make guessing hopeless; one shared counter would let anyone block every code). A code
        # that does name one (expired, disabled user) counts against that account too.
        try:
            await services.rate_limits.sign_in_failed(exc.user_id)
        except RateLimited:
            await _code_rate_limited(request, method, exc.user_id)
            raise
        await record_event(
            request,
            "sign_in",
            user_id=exc.user_id,
            success=False,
            reason=exc.reason,
            details={"method": method},
        )
        safe_rd = return_target(request, rd) if rd else ""
        return page(request, "login_code_form.html", 400, rd=safe_rd, error=str(exc))
    return await signed_in_response(request, user.id, return_target(request, rd), method)


async def _code_rate_limited(request: Request, method: str, user_id: str | None = None) -> None:
    await record_event(
        request,
        "sign_in",
        user_id=user_id,
        success=False,
        reason="rate limited",
        details={"method": method},
    )


async def logout_page(request: Request) -> Response:
    return page(request, "logout.html", rd=_rd(request) if request.query_params.get("rd") else "")


async def logout(request: Request) -> Response:
    services = services_of(request)
    form = await form_with_csrf(request)
    await end_this_session(request, "logout")
    rd = form.get("rd") or None
    target = return_target(request, rd) if rd else services.settings.app_url + "/login"
    response = RedirectResponse(target, status_code=303)
    clear_session_cookie(response, services.settings)
    return response


routes = [
    Route("/login", login, methods=["GET"]),
    Route("/login/code", login_code_page, methods=["GET"]),
    Route("/login/code", login_with_code, methods=["POST"]),
    Route("/lc/{code}", login_link, methods=["GET"]),
    Route("/logout", logout_page, methods=["GET"]),
    Route("/logout", logout, methods=["POST"]),
]
