"""The server-rendered pages: sign-in by login code, one-time links, account, sign-out."""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from gateway.cookies import clear_session_cookie, session_cookie, set_session_cookie
from gateway.csrf import CsrfRejected, remember, token_for, verify
from gateway.errors import LoginCodeRejected
from gateway.forwarded import client_ip, parse_ip
from gateway.services import Services
from gateway.templating import render

log = logging.getLogger("passgate.pages")

RETURN_COOKIE = "passgate_return"


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def client_address(request: Request) -> str:
    """The client's IP as Passgate's own pages see it (X-Forwarded-For only with TRUST_PROXY)."""
    settings = services_of(request).settings
    peer = parse_ip(request.client.host) if request.client else None
    if not settings.trust_proxy:
        return str(peer or "")
    found = client_ip(peer, request.headers.get("x-forwarded-for"), settings.trusted_networks)
    return str(found or "")


def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """Render a page with the app name and a CSRF token, setting the CSRF cookie if new."""
    services = services_of(request)
    settings = services.settings
    body = render(
        template, app_name=settings.app_name, csrf_token=token_for(request, settings), **context
    )
    response = HTMLResponse(body, status_code=status)
    remember(request, response, settings)
    return response


def message(request: Request, title: str, text: str, status: int, link: str = "/login") -> Response:
    return page(
        request, "message.html", status, title=title, message=text, link=link, link_text="Continue"
    )


def return_target(request: Request, candidate: str | None) -> str:
    services = services_of(request)
    return services.redirects.safe_target(candidate, services.settings.app_url + "/account")


async def form_with_csrf(request: Request) -> dict[str, str]:
    """The submitted form as strings, after the CSRF checks (raises CsrfRejected)."""
    form = await request.form()
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    verify(request, services_of(request).settings, fields.get("csrf_token"))
    return fields


async def login(request: Request) -> Response:
    services = services_of(request)
    rd = request.query_params.get("rd")
    found = await services.current_user.identify(session_cookie(request, services.settings))
    if found is not None and rd is not None:
        return RedirectResponse(return_target(request, rd), status_code=303)
    safe_rd = return_target(request, rd) if rd else ""
    response = page(request, "login.html", rd=safe_rd, error=None)
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


async def login_link(request: Request) -> Response:
    """GET /lc/<code>: a confirmation page, so link scanners that only GET cannot burn the code."""
    rd = request.query_params.get("rd") or request.cookies.get(RETURN_COOKIE)
    return page(
        request,
        "login_code.html",
        code=request.path_params["code"][:64],
        rd=return_target(request, rd) if rd else "",
    )


async def login_with_code(request: Request) -> Response:
    services = services_of(request)
    try:
        form = await form_with_csrf(request)
    except CsrfRejected as exc:
        return message(request, "Please try again", str(exc), 403)
    rd = form.get("rd") or None
    try:
        user = await run_in_threadpool(services.login_codes.redeem, form.get("code", "")[:64])
    except LoginCodeRejected as exc:
        log.info("login code rejected from %s", client_address(request))
        safe_rd = return_target(request, rd) if rd else ""
        return page(request, "login.html", 400, rd=safe_rd, error=str(exc))
    await services.sessions.end(session_cookie(request, services.settings))
    cookie, _ = await services.sessions.start(
        user.id, client_address(request), request.headers.get("user-agent", "")
    )
    log.info("user %s signed in with a login code", user.username)
    response = RedirectResponse(return_target(request, rd), status_code=303)
    set_session_cookie(response, services.settings, cookie)
    response.delete_cookie(RETURN_COOKIE, path="/")
    return response


async def account(request: Request) -> Response:
    services = services_of(request)
    cookie = session_cookie(request, services.settings)
    found = await services.current_user.identify(cookie)
    if found is None:
        return RedirectResponse("/login?rd=" + quote(services.settings.app_url + "/account"), 303)
    record, identity = found
    now = time.time()
    sessions = [
        {
            "key": s.key,
            "ip": s.ip,
            "user_agent": s.user_agent,
            "current": s.key == record.key,
            "last_seen_text": _ago(now - s.last_seen),
        }
        for s in await services.sessions.list_for_user(identity.user_id)
    ]
    return page(request, "account.html", user=identity, sessions=sessions)


async def end_session(request: Request) -> Response:
    services = services_of(request)
    try:
        form = await form_with_csrf(request)
    except CsrfRejected as exc:
        return message(request, "Please try again", str(exc), 403, "/account")
    found = await services.current_user.identify(session_cookie(request, services.settings))
    if found is None:
        return RedirectResponse("/login", 303)
    await services.sessions.end_by_key(found[1].user_id, form.get("key", ""))
    return RedirectResponse("/account", 303)


async def end_all_sessions(request: Request) -> Response:
    services = services_of(request)
    try:
        await form_with_csrf(request)
    except CsrfRejected as exc:
        return message(request, "Please try again", str(exc), 403, "/account")
    found = await services.current_user.identify(session_cookie(request, services.settings))
    if found is not None:
        await services.sessions.end_all_for_user(found[1].user_id)
    response = RedirectResponse("/login", 303)
    clear_session_cookie(response, services.settings)
    return response


async def logout_page(request: Request) -> Response:
    rd = request.query_params.get("rd")
    return page(request, "logout.html", rd=return_target(request, rd) if rd else "")


async def logout(request: Request) -> Response:
    services = services_of(request)
    try:
        form = await form_with_csrf(request)
    except CsrfRejected as exc:
        return message(request, "Please try again", str(exc), 403, "/logout")
    await services.sessions.end(session_cookie(request, services.settings))
    rd = form.get("rd") or None
    target = return_target(request, rd) if rd else services.settings.app_url + "/login"
    response = RedirectResponse(target, status_code=303)
    clear_session_cookie(response, services.settings)
    return response


def _ago(seconds: float) -> str:
    if seconds < 90:
        return "just now"
    if seconds < 5400:
        return f"{int(seconds // 60)} minutes ago"
    if seconds < 129600:
        return f"{int(seconds // 3600)} hours ago"
    return f"{int(seconds // 86400)} days ago"


routes = [
    Route("/login", login, methods=["GET"]),
    Route("/login/code", login_with_code, methods=["POST"]),
    Route("/lc/{code}", login_link, methods=["GET"]),
    Route("/account", account, methods=["GET"]),
    Route("/account/sessions/end", end_session, methods=["POST"]),
    Route("/account/sessions/end-all", end_all_sessions, methods=["POST"]),
    Route("/logout", logout_page, methods=["GET"]),
    Route("/logout", logout, methods=["POST"]),
]
