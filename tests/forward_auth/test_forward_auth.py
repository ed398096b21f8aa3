"""The forward-auth endpoints in-process: status codes and headers for each decision."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from itsdangerous import Signer

from gateway.audit.log import CLI
from gateway.core.settings import Settings
from gateway.services import Services, build_services
from gateway.web.app import create_app

RULES = """
default_policy: allow
rules:
  - domain: closed.example.com
    policy: deny
  - domain: public.example.com
    policy: bypass
  - domain: admin.example.com
    subject: group:admins
    policy: allow
  - domain: admin.example.com
    policy: deny
"""
ORIGINAL = {
    "X-Forwarded-Method": "GET",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "app.example.com",
    "X-Forwarded-Uri": "/dash?tab=1",
}
BROWSER = {"Accept": "text/html", "Sec-Fetch-Mode": "navigate"}


@pytest.fixture
def gateway(make_settings: Callable[..., Settings], tmp_path: Path) -> Iterator[Services]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    built = build_services(make_settings(config_file=str(rules)))
    built.users.create_group("admins")
    built.users.create_user("alice", "alice@example.com", "Alice", ("admins",))
    built.users.create_user("bob")
    yield built
    asyncio.run(built.close())


def ask(
    services: Services,
    path: str = "/api/auth/caddy",
    peer: str = "127.0.0.1",
    user: str | None = None,
    **headers: str,
) -> httpx.Response:
    async def run() -> httpx.Response:
        sent = {**ORIGINAL, **{k.replace("_", "-"): v for k, v in headers.items()}}
        if user is not None:
            cookie, _ = await services.sessions.start(
                services.users.get_user_by_name(user).id, "127.0.0.1", "test"
            )
            sent["Cookie"] = f"{services.settings.cookie_name}={cookie}"
        transport = httpx.ASGITransport(app=create_app(services), client=(peer, 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://passgate") as client:
            return await client.get(path, headers=sent)

    return asyncio.run(run())


def test_signed_in_user_gets_200_with_all_identity_headers(gateway: Services) -> None:
    response = ask(gateway, user="alice")
    assert response.status_code == 200
    assert response.headers["remote-user"] == "alice"
    assert response.headers["remote-email"] == "alice@example.com"
    assert response.headers["remote-name"] == "Alice"
    assert response.headers["remote-groups"] == "admins"


def test_anonymous_browser_is_redirected_to_login_with_return_url(gateway: Services) -> None:
    response = ask(gateway, **BROWSER)
    assert response.status_code == 302
    assert response.headers["location"] == (
        "https://auth.example.com/login?rd=https%3A%2F%2Fapp.example.com%2Fdash%3Ftab%3D1"
    )


def test_anonymous_fetch_gets_401(gateway: Services) -> None:
    response = ask(gateway, Accept="text/html", Sec_Fetch_Mode="cors")
    assert response.status_code == 401 and "www-authenticate" in response.headers


def test_anonymous_xhr_gets_401(gateway: Services) -> None:
    assert ask(gateway, X_Requested_With="XMLHttpRequest", **BROWSER).status_code == 401


def test_nginx_flavour_answers_401_instead_of_redirecting(gateway: Services) -> None:
    response = ask(gateway, "/api/auth/nginx", X_Original_URL="https://app.example.com/", **BROWSER)
    assert response.status_code == 401
    assert response.headers["x-login-url"].startswith("https://auth.example.com/login?rd=")


def test_traefik_flavour_redirects_browsers(gateway: Services) -> None:
    assert ask(gateway, "/api/auth/traefik", **BROWSER).status_code == 302


def test_user_outside_group_gets_403_page_naming_the_service(gateway: Services) -> None:
    response = ask(gateway, user="bob", X_Forwarded_Host="admin.example.com", **BROWSER)
    assert response.status_code == 403
    assert "admin.example.com" in response.text and "bob" in response.text


def test_deny_rule_refuses_everyone(gateway: Services) -> None:
    assert ask(gateway, user="alice", X_Forwarded_Host="closed.example.com").status_code == 403
    assert ask(gateway, X_Forwarded_Host="closed.example.com").status_code == 403


def test_bypass_answers_200_with_empty_identity_headers(gateway: Services) -> None:
    response = ask(gateway, X_Forwarded_Host="public.example.com", Remote_User="evil")
    assert response.status_code == 200
    assert response.headers["remote-user"] == "" and response.headers["remote-groups"] == ""


def test_untrusted_peer_is_refused(gateway: Services) -> None:
    response = ask(gateway, peer="203.0.113.5", user="alice")
    assert response.status_code == 403
    assert response.json()["error"] == "untrusted_proxy"


@pytest.mark.parametrize("peer", ["10.1.2.3", "192.168.1.10", "172.17.0.2"])
def test_private_network_peer_is_refused_by_the_default_trusted_proxies(
    gateway: Services, peer: str
) -> None:
    response = ask(gateway, peer=peer, user="alice")
    assert response.status_code == 403
    assert response.json()["error"] == "untrusted_proxy"


def test_peer_named_in_trusted_proxies_is_believed(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    built = build_services(
        make_settings(config_file=str(rules), trusted_proxies="127.0.0.1/32,10.0.0.5/32")
    )
    try:
        built.users.create_user("alice")
        assert ask(built, peer="10.0.0.5", user="alice").status_code == 200
        assert ask(built, peer="10.0.0.6", user="alice").status_code == 403
    finally:
        asyncio.run(built.close())


def test_missing_forwarded_uri_is_a_400(gateway: Services) -> None:
    response = ask(gateway, X_Forwarded_Uri="relative")
    assert response.status_code == 400


def test_disabled_user_is_treated_as_signed_out(gateway: Services) -> None:
    async def disable() -> None:
        # Another administrator first: the last one cannot be disabled.
        await gateway.admin.create_user(CLI, "carol", groups=["admins"])
        await gateway.admin.set_disabled(CLI, "alice", True)

    asyncio.run(disable())
    assert ask(gateway, user="alice", **BROWSER).status_code == 302


def _session_of(services: Services, username: str) -> str:
    user_id = services.users.get_user_by_name(username).id
    cookie, _ = asyncio.run(services.sessions.start(user_id, "127.0.0.1", "test"))
    return cookie


@pytest.mark.parametrize("ours_first", [True, False])
def test_two_different_session_cookies_are_signed_out(gateway: Services, ours_first: bool) -> None:
    # Both are valid sessions: either alone would be let in, so only the pair can refuse them.
    ours, tossed = _session_of(gateway, "alice"), _session_of(gateway, "bob")
    name = gateway.settings.session_cookie_name
    first, second = (ours, tossed) if ours_first else (tossed, ours)
    both = f"{name}={first}; other=1; {name}={second}"
    assert ask(gateway, Cookie=f"{name}={ours}").status_code == 200
    assert ask(gateway, Cookie=both, **BROWSER).status_code == 302
    assert ask(gateway, Cookie=both).status_code == 401


def test_the_same_session_cookie_twice_still_signs_in(gateway: Services) -> None:
    name, cookie = gateway.settings.session_cookie_name, _session_of(gateway, "alice")
    response = ask(gateway, Cookie=f"{name}={cookie}; {name}={cookie}")
    assert response.status_code == 200 and response.headers["remote-user"] == "alice"


def test_answers_are_never_cached(gateway: Services) -> None:
    assert ask(gateway, user="alice").headers["cache-control"] == "no-store"


def test_unreachable_session_store_fails_closed_with_503(
    make_settings: Callable[..., Settings],
) -> None:
    built = build_services(make_settings(redis_url="redis://127.0.0.1:1/0"))
    try:
        # A correctly signed cookie, so the lookup really has to ask the (dead) store.
        signed = Signer(built.secrets.cookie_signing_key, salt="passgate.session").sign(b"id")
        response = ask(built, Cookie=f"passgate_session={signed.decode()}")
        assert response.status_code == 503
    finally:
        asyncio.run(built.close())
