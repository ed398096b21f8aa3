"""Our cookies: one value per name or none (cookie tossing), and the `__Host-` prefix wherever
the deployment allows it, on the pages, the CSRF check and a full sign-in round trip."""

from __future__ import annotations

import itertools
import logging
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response

from gateway.core.settings import Settings
from gateway.services import Services, build_services
from gateway.sessions.cookies import clear_session_cookie, set_session_cookie, single_cookie
from gateway.sessions.csrf import CsrfRejected, verify
from gateway.web.app import create_app
from tests.web_client import ORIGIN, WebClient

pytestmark = pytest.mark.anyio

NAME = "passgate_session"


# --- single_cookie -----------------------------------------------------------------------------


def test_single_cookie_finds_the_value_among_others() -> None:
    assert single_cookie(f"a=1; {NAME}=abc.def; b=2", NAME) == "abc.def"
    assert single_cookie(f"a=1;{NAME}=abc  ;b=2", NAME) == "abc"
    assert single_cookie(f"a=1; {NAME}=abc", NAME) == "abc"
    assert single_cookie(f"{NAME}=", NAME) == ""


def test_single_cookie_is_none_when_absent() -> None:
    assert single_cookie("", NAME) is None
    assert single_cookie("a=1; b=2", NAME) is None


def test_single_cookie_matches_whole_names_only() -> None:
    assert single_cookie(f"x{NAME}=1; {NAME}_old=2", NAME) is None
    assert single_cookie(f"a=1; x{NAME}=1", NAME) is None
    assert single_cookie(f"{NAME}_old=2; b=1", NAME) is None
    assert single_cookie(f"x{NAME}=1; {NAME}=3; {NAME}_old=2", NAME) == "3"
    assert single_cookie(f"a={NAME}=4", NAME) is None


@pytest.mark.parametrize("header", [f"{NAME}=ours; {NAME}=tossed", f"{NAME}=tossed; {NAME}=ours"])
def test_single_cookie_is_none_for_two_different_values(header: str) -> None:
    assert single_cookie(header, NAME) is None
    assert single_cookie(f"a=1; {header}; b=2", NAME) is None


def test_single_cookie_accepts_the_same_value_twice() -> None:
    assert single_cookie(f"{NAME}=ours; a=1; {NAME}=ours", NAME) == "ours"


def test_single_cookie_counts_an_empty_second_value_as_different() -> None:
    assert single_cookie(f"{NAME}=ours; {NAME}=", NAME) is None
    assert single_cookie(f"{NAME}=ours; {NAME}", NAME) is None


def _reference(header: str, name: str) -> str | None:
    """What single_cookie must answer: every cookie looked at, one by one."""
    values = {
        v.strip() for k, _, v in (c.partition("=") for c in header.split(";")) if k.strip() == name
    }
    return values.pop() if len(values) == 1 else None


def test_single_cookie_agrees_with_reading_every_cookie() -> None:
    cookies = [f"{NAME}=v", f"{NAME}=w", f"{NAME}= v ", f" {NAME} =v", f"{NAME}=", NAME]
    cookies += [f"x{NAME}=v", f"{NAME}x=v", f"a={NAME}", f"a=x{NAME}=v", "a=1", "", " "]
    headers = [";".join(parts) for parts in itertools.product(cookies, repeat=2)]
    headers += ["; ".join(parts) for parts in itertools.product(cookies, repeat=3)]
    for header in headers:
        assert single_cookie(header, NAME) == _reference(header, NAME), header


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


# --- the pages ---------------------------------------------------------------------------------


@pytest.fixture
async def live(make_settings: Callable[..., Settings]) -> AsyncIterator[Services]:
    built = build_services(make_settings(db_provider="sqlite"))
    yield built
    await built.close()


async def _get(services: Services, path: str, cookie: str) -> httpx.Response:
    """A request with exactly this Cookie header (no jar)."""
    transport = httpx.ASGITransport(app=create_app(services), client=("198.51.100.7", 5000))
    async with httpx.AsyncClient(transport=transport, base_url=ORIGIN) as http:
        return await http.get(path, headers={"Cookie": cookie})


async def _signed_in(services: Services, username: str) -> str:
    user = services.users.create_user(username, f"{username}@example.com", username, ())
    cookie, _ = await services.sessions.start(user.id, "198.51.100.7", "test")
    return cookie


@pytest.mark.parametrize("ours_first", [True, False])
async def test_account_page_treats_two_different_session_cookies_as_signed_out(
    live: Services, ours_first: bool, caplog: pytest.LogCaptureFixture
) -> None:
    ours, tossed = await _signed_in(live, "alice"), await _signed_in(live, "mallory")
    name = live.settings.session_cookie_name
    assert (await _get(live, "/account", f"{name}={ours}")).status_code == 200
    first, second = (ours, tossed) if ours_first else (tossed, ours)
    with caplog.at_level(logging.INFO, logger="passgate.cookies"):
        response = await _get(live, "/account", f"{name}={first}; {name}={second}")
    assert response.status_code in (302, 303)
    assert response.headers["location"].split("?")[0].endswith("/login")
    lines = [r.getMessage() for r in caplog.records if r.name == "passgate.cookies"]
    assert len(lines) == 1 and "came twice" in lines[0]
    assert ours not in lines[0] and tossed not in lines[0]


async def test_account_page_accepts_the_same_session_cookie_twice(live: Services) -> None:
    cookie = await _signed_in(live, "alice")
    name = live.settings.session_cookie_name
    response = await _get(live, "/account", f"{name}={cookie}; {name}={cookie}")
    assert response.status_code == 200


def _request(cookie: str, origin: str = ORIGIN) -> Request:
    headers = [(b"cookie", cookie.encode()), (b"origin", origin.encode())]
    return Request({"type": "http", "method": "POST", "path": "/", "headers": headers})


def test_csrf_check_refuses_a_token_whose_cookie_came_twice(
    make_settings: Callable[..., Settings],
) -> None:
    # Over http the CSRF cookie has no prefix, so a sibling subdomain can plant a known token.
    settings = make_settings(app_url="http://auth.example.com", cookie_domain=None)
    name, ours, planted = settings.csrf_cookie_name, "o" * 43, "p" * 43
    origin = settings.origin
    verify(_request(f"{name}={ours}", origin), settings, ours)
    for header in (f"{name}={ours}; {name}={planted}", f"{name}={planted}; {name}={ours}"):
        for submitted in (ours, planted):
            with pytest.raises(CsrfRejected):
                verify(_request(header, origin), settings, submitted)


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
