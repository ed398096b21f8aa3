"""Forward-auth decides on the canonical request target: spellings of a denied or protected path
get the same answer as the path itself, and ambiguous targets are refused, with a reason that
reaches the proxy and the audit log."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from gateway.core.settings import Settings
from gateway.services import Services, build_services
from gateway.web.app import create_app

RULES = """
default_policy: allow
rules:
  - domain: app.example.com
    resources: ['^/public/']
    policy: bypass
  - domain: app.example.com
    resources: ['^/api/webhook/']
    methods: [POST]
    policy: bypass
  - domain: app.example.com
    resources: ['^/admin']
    policy: deny
"""


@pytest.fixture
def gateway(make_settings: Callable[..., Settings], tmp_path: Path) -> Iterator[Services]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    built = build_services(make_settings(config_file=str(rules)))
    built.users.create_user("alice")
    yield built
    asyncio.run(built.close())


def ask(
    services: Services,
    uri: str,
    *,
    user: str | None = None,
    proxy: str = "caddy",
    method: str = "GET",
    host: str = "app.example.com",
    client: str = "203.0.113.7",
) -> httpx.Response:
    async def run() -> httpx.Response:
        if proxy == "nginx":
            sent = {"X-Original-URL": f"https://{host}{uri}", "X-Original-Method": method}
        else:
            sent = {
                "X-Forwarded-Method": method,
                "X-Forwarded-Proto": "https",
                "X-Forwarded-Host": host,
                "X-Forwarded-Uri": uri,
            }
        sent["X-Forwarded-For"] = client
        if user is not None:
            cookie, _ = await services.sessions.start(
                services.users.get_user_by_name(user).id, "127.0.0.1", "test"
            )
            sent["Cookie"] = f"{services.settings.cookie_name}={cookie}"
        transport = httpx.ASGITransport(app=create_app(services), client=("127.0.0.1", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://passgate") as http:
            return await http.get(f"/api/auth/{proxy}", headers=sent)

    return asyncio.run(run())


def refusals(services: Services) -> list[dict[str, object]]:
    page = services.audit.search(event="forward_auth_refused")
    return [event.to_dict() for event in page.events]


@pytest.mark.parametrize(
    ("proxy", "status"),
    [("caddy", 400), ("nginx", 403)],  # auth_request: 400 would be a 500
)
@pytest.mark.parametrize(
    "uri",
    [
        "/public/../private/s.txt",
        "/public/%2e%2e/private/s.txt",
        "/public/.%2e/private/s.txt",
        "/public/x/../../private/s.txt",
        "/public/./../private/s.txt",
        "/public//../private/s.txt",
        "/private/../public/p.txt",  # an app routing on the raw path would serve /private
        "/public/..;/private/s.txt",
    ],
)
def test_dot_segments_are_refused(gateway: Services, proxy: str, status: int, uri: str) -> None:
    response = ask(gateway, uri, proxy=proxy)
    assert response.status_code == status
    assert "dot segment" in response.json()["error_description"]


@pytest.mark.parametrize("proxy", ["caddy", "nginx"])
@pytest.mark.parametrize("uri", ["/%61dmin", "/admin;x", "/admin/", "/x//../admin", "/admin\\x"])
def test_spellings_of_a_denied_path_are_denied(gateway: Services, proxy: str, uri: str) -> None:
    assert ask(gateway, uri, user="alice", proxy=proxy).status_code in (400, 403)
    assert ask(gateway, uri, user="alice", proxy=proxy).status_code != 200


def test_leading_double_slash_is_refused(gateway: Services) -> None:
    response = ask(gateway, "//admin", user="alice")
    assert response.status_code == 400 and "'//'" in response.json()["error_description"]


@pytest.mark.parametrize("uri", ["/public;x/p.txt", "/public\\p.txt"])
def test_a_bypass_must_hold_for_every_reading_of_the_path(gateway: Services, uri: str) -> None:
    # Go, nginx and Starlette serve /public;x/ and /public\p.txt as names of their own.
    assert ask(gateway, uri).status_code == 401


def test_lower_case_method_is_not_the_method_of_a_rule(gateway: Services) -> None:
    response = ask(gateway, "/api/webhook/hook", method="post")
    assert response.status_code == 400


def test_post_bypass_does_not_reach_outside_its_path(gateway: Services) -> None:
    assert ask(gateway, "/api/webhook/hook", method="POST").status_code == 200
    assert ask(gateway, "/api/webhook/../../secret", method="POST").status_code == 400
    assert ask(gateway, "/api/webhookx/secret", method="POST").status_code == 401


def test_honest_requests_still_work(gateway: Services) -> None:
    assert ask(gateway, "/public/p.txt").status_code == 200
    assert ask(gateway, "/public/caf%C3%A9.txt").status_code == 200
    assert ask(gateway, "/private/s.txt", user="alice").status_code == 200
    assert ask(gateway, "/private/s.txt").status_code == 401


def test_ambiguous_target_is_a_400_with_the_reason_for_caddy(gateway: Services) -> None:
    response = ask(gateway, "/public/..%2fprivate/s.txt")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert "encoded slash" in response.json()["error_description"]


def test_ambiguous_target_is_a_403_for_nginx(gateway: Services) -> None:
    # auth_request would turn a 400 into a 500; 403 is what it passes on.
    response = ask(gateway, "/public/%c0%ae%c0%ae/private", proxy="nginx")
    assert response.status_code == 403
    assert response.json()["error"] == "invalid_request"


def test_nginx_url_with_a_literal_hash_is_refused_not_cut(gateway: Services) -> None:
    response = ask(gateway, "/public/#/../../private/s.txt", proxy="nginx")
    assert response.status_code == 403
    assert "'#'" in response.json()["error_description"]


def test_nginx_url_that_is_not_absolute_is_refused(gateway: Services) -> None:
    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=create_app(gateway), client=("127.0.0.1", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://passgate") as http:
            return await http.get("/api/auth/nginx", headers={"X-Original-URL": "/public/x"})

    assert asyncio.run(run()).status_code == 403


@pytest.mark.parametrize("host", ["alice@app.example.com", "app..example.com", "app.example.com:0"])
def test_ambiguous_host_is_refused(gateway: Services, host: str) -> None:
    assert ask(gateway, "/public/p.txt", host=host).status_code == 400


def test_trailing_dot_host_is_the_same_host(gateway: Services) -> None:
    assert ask(gateway, "/admin", user="alice", host="APP.example.com.").status_code == 403
    assert ask(gateway, "/public/p.txt", host="app.example.com.").status_code == 200


def test_redirect_target_is_the_canonical_url(gateway: Services) -> None:
    response = ask(gateway, "/docs//%62;v=1?q=%2f", host="App.Example.com:443")
    login = response.headers["x-login-url"]
    assert login.endswith("rd=" + quote("https://app.example.com/docs/b;v=1?q=%2f", safe=""))


def test_refusal_is_audited_with_its_reason_once_a_minute_per_client(gateway: Services) -> None:
    async def run() -> None:
        transport = httpx.ASGITransport(app=create_app(gateway), client=("127.0.0.1", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://passgate") as http:
            for uri, client in [
                ("/a%00b", "203.0.113.7"),
                ("/a%252e", "203.0.113.7"),  # the same client within the minute: not again
                ("/a%2fb?token=secret", "198.51.100.9"),
            ]:
                headers = {"X-Forwarded-Host": "app.example.com", "X-Forwarded-Uri": uri}
                response = await http.get(
                    "/api/auth/caddy", headers={**headers, "X-Forwarded-For": client}
                )
                assert response.status_code == 400

    asyncio.run(run())
    events = refusals(gateway)
    assert len(events) == 2
    by_ip = {event["actor"]["ip"]: event for event in events}  # type: ignore[index]
    assert "NUL" in str(by_ip["203.0.113.7"]["reason"])
    other = by_ip["198.51.100.9"]
    assert other["success"] is False
    assert other["details"] == {"host": "app.example.com", "target": "/a%2fb"}  # no query


def test_encoded_slashes_can_be_kept(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    services = build_services(make_settings(config_file=str(rules), encoded_slashes="keep"))
    try:
        # Matched encoded: /public%2Fx is one segment, not under /public/.
        assert ask(services, "/public%2fx").status_code == 401
        assert ask(services, "/public/a%2Fb").status_code == 200
        assert ask(services, "/public/..%2fadmin").status_code == 400  # a dot segment still
    finally:
        asyncio.run(services.close())


@pytest.mark.parametrize("uri", ["/admin%3Bx", "/admin.", "/admin%20", "/%EF%BD%81dmin"])
def test_readings_of_other_servers_are_denied_too(gateway: Services, uri: str) -> None:
    assert ask(gateway, uri, user="alice").status_code == 403


@pytest.mark.parametrize("proxy", ["caddy", "nginx"])
def test_a_segment_of_backslashes_with_parameters_is_refused_not_a_500(
    gateway: Services, proxy: str
) -> None:
    assert ask(gateway, "/\\;", proxy=proxy).status_code == (403 if proxy == "nginx" else 400)


@pytest.mark.parametrize("header", ["X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override"])
def test_method_override_headers_must_pass_the_rules_too(
    make_settings: Callable[..., Settings], tmp_path: Path, header: str
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "rules:\n  - domain: app.example.com\n    methods: [DELETE]\n    policy: deny\n"
    )
    services = build_services(make_settings(config_file=str(rules)))
    services.users.create_user("alice")
    try:

        async def run(extra: dict[str, str]) -> int:
            cookie, _ = await services.sessions.start(
                services.users.get_user_by_name("alice").id, "127.0.0.1", "test"
            )
            sent = {
                "X-Forwarded-Method": "POST",
                "X-Forwarded-Host": "app.example.com",
                "X-Forwarded-Uri": "/items/1",
                "Cookie": f"{services.settings.session_cookie_name}={cookie}",
                **extra,
            }
            transport = httpx.ASGITransport(app=create_app(services), client=("127.0.0.1", 1))
            async with httpx.AsyncClient(transport=transport, base_url="http://pg") as http:
                return (await http.get("/api/auth/caddy", headers=sent)).status_code

        assert asyncio.run(run({})) == 200
        assert asyncio.run(run({header: "delete"})) == 403
        assert asyncio.run(run({header: "DEL ETE"})) == 400
    finally:
        asyncio.run(services.close())


def test_a_get_rule_covers_head(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - domain: app.example.com\n    methods: [GET]\n    policy: deny\n")
    services = build_services(make_settings(config_file=str(rules)))
    try:
        assert ask(services, "/x", method="HEAD").status_code == 403
        assert ask(services, "/x", method="POST").status_code == 401
    finally:
        asyncio.run(services.close())


def test_refusal_from_nginx_records_the_url_it_read_not_client_headers(
    gateway: Services,
) -> None:
    async def run() -> None:
        transport = httpx.ASGITransport(app=create_app(gateway), client=("127.0.0.1", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://passgate") as http:
            headers = {
                "X-Original-URL": "https://app.example.com/public/%2e%2e/admin\x1b[2J",
                "X-Forwarded-Host": "grafana.example.com",  # a client's own, passed on
                "X-Forwarded-Uri": "/grafana/login",
                "X-Forwarded-For": "203.0.113.50",
            }
            assert (await http.get("/api/auth/nginx", headers=headers)).status_code == 403

    asyncio.run(run())
    (event,) = refusals(gateway)
    details = event["details"]
    assert details == {"host": "", "target": "https://app.example.com/public/%2e%2e/admin?[2J"}


def test_refusals_are_throttled_per_ipv6_64_and_overall(gateway: Services) -> None:
    from gateway.forward_auth import refusals as module

    async def run() -> None:
        transport = httpx.ASGITransport(app=create_app(gateway), client=("127.0.0.1", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://passgate") as http:
            for i in range(5):  # one /64, five addresses
                headers = {"X-Forwarded-Uri": "/a%00", "X-Forwarded-For": f"2001:db8::{i + 1}"}
                await http.get("/api/auth/caddy", headers=headers)
            for i in range(module.GLOBAL_PER_MINUTE + 10):
                headers = {
                    "X-Forwarded-Uri": "/a%00",
                    "X-Forwarded-For": f"198.51.{i // 250}.{i % 250}",
                }
                await http.get("/api/auth/caddy", headers=headers)

    asyncio.run(run())
    assert len(gateway.audit.search(event="forward_auth_refused", limit=1000).events) == (
        module.GLOBAL_PER_MINUTE
    )
