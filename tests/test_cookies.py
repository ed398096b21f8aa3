"""Our cookies: the `__Host-` prefix wherever the deployment allows it, through a full sign-in
round trip."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from starlette.responses import Response

from gateway.app import create_app
from gateway.cookies import clear_session_cookie, set_session_cookie
from gateway.services import Services, build_services
from gateway.settings import Settings
from tests.web_client import WebClient

pytestmark = pytest.mark.anyio


# --- names and attributes ----------------------------------------------------------------------


def _set_cookie(settings: Settings, clear: bool = False) -> str:
    response = Response()
    if clear:
        clear_session_cookie(response, settings)
    else:
        set_session_cookie(response, settings, "value")
    return response.headers["set-cookie"]


def test_https_without_cookie_domain_uses_the_host_prefix(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(cookie_domain=None)
    for header in (_set_cookie(settings), _set_cookie(settings, clear=True)):
        assert header.startswith("__Host-passgate_session=")
        attributes = [part.strip().lower() for part in header.split(";")[1:]]
        assert "path=/" in attributes and "secure" in attributes and "httponly" in attributes
        assert "samesite=lax" in attributes
        assert not any(part.startswith("domain") for part in attributes)


def test_cookie_domain_keeps_the_configured_name(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(cookie_domain="example.com", cookie_name="sso")
    assert settings.session_cookie_name == "sso"
    header = _set_cookie(settings)
    assert header.startswith("sso=") and "Domain=example.com" in header and "Secure" in header


def test_plain_http_keeps_the_plain_name(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(app_url="http://localhost:1411", cookie_domain=None)
    assert settings.session_cookie_name == "passgate_session"
    assert settings.csrf_cookie_name == "passgate_csrf"
    header = _set_cookie(settings)
    assert header.startswith("passgate_session=") and "Secure" not in header


def test_csrf_cookie_is_host_prefixed_on_https_even_with_cookie_domain(
    make_settings: Callable[..., Settings],
) -> None:
    # It never carries a Domain, so the prefix always fits on https.
    assert make_settings(cookie_domain="example.com").csrf_cookie_name == "__Host-passgate_csrf"


async def _signed_in(services: Services, username: str) -> str:
    user = services.users.create_user(username, f"{username}@example.com", username, ())
    cookie, _ = await services.sessions.start(user.id, "198.51.100.7", "test")
    return cookie


# --- a full round trip with the prefix ---------------------------------------------------------


@pytest.fixture
async def host_only(make_settings: Callable[..., Settings]) -> AsyncIterator[Services]:
    built = build_services(make_settings(cookie_domain=None, db_provider="sqlite"))
    assert built.settings.session_cookie_name == "__Host-passgate_session"
    yield built
    await built.close()


async def test_sign_in_account_and_logout_use_the_host_prefixed_cookie(
    host_only: Services,
) -> None:
    async with WebClient(host_only) as browser:
        await browser.set_up("alice")
        assert browser.http.cookies.get("passgate_session") is None
        cookie = browser.session_cookie()
        assert cookie is not None

        signed_in = await browser.sign_in()
        assert signed_in.status_code == 200, signed_in.text
        set_cookie = signed_in.headers["set-cookie"]
        assert "__Host-passgate_session=" in set_cookie and "Domain" not in set_cookie
        assert browser.session_cookie() not in (None, cookie)  # a fresh session
        assert (await browser.http.get("/account")).status_code == 200

        logout = await browser.post_form("/logout", {})
        assert logout.status_code == 303
        assert 'passgate_session=""' in logout.headers["set-cookie"]
        assert logout.headers["set-cookie"].startswith("__Host-passgate_session=")
        assert browser.session_cookie() is None
        assert (await browser.http.get("/account")).status_code in (302, 303)


async def test_forward_auth_reads_only_the_host_prefixed_cookie(host_only: Services) -> None:
    cookie = await _signed_in(host_only, "alice")
    headers = {
        "X-Forwarded-Method": "GET",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "auth.example.com",
        "X-Forwarded-Uri": "/",
    }
    transport = httpx.ASGITransport(app=create_app(host_only), client=("127.0.0.1", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://passgate") as http:
        for name, status in (("__Host-passgate_session", 200), ("passgate_session", 401)):
            sent = {**headers, "Cookie": f"{name}={cookie}"}
            assert (await http.get("/api/auth/caddy", headers=sent)).status_code == status
