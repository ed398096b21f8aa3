"""Abuse protection and signup modes, in-process: CSRF on JSON calls, rate limits with 429 and
Retry-After, signups disabled / with a token / open, and the setup page's lifetime."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from gateway import rate_limit
from gateway.app import create_app
from gateway.services import Services, build_services
from gateway.settings import Settings

pytestmark = pytest.mark.anyio
ORIGIN = "https://auth.example.com"


async def _client(services: Services) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(services), client=("127.0.0.1", 5000))
    return httpx.AsyncClient(transport=transport, base_url=ORIGIN)


async def _csrf(client: httpx.AsyncClient, path: str = "/login/code") -> str:
    page = await client.get(path)
    token = client.cookies.get("__Host-passgate_csrf")
    assert token, page.headers
    return token


def build(make_settings: Callable[..., Settings], **overrides: str) -> Services:
    return build_services(make_settings(**overrides))


@pytest.fixture
async def services(make_settings: Callable[..., Settings]) -> AsyncIterator[Services]:
    built = build(make_settings, allow_user_signups="withToken")
    built.users.create_user("alice")
    yield built
    await built.close()


async def test_json_call_without_csrf_header_is_refused(services: Services) -> None:
    async with await _client(services) as client:
        await _csrf(client)
        response = await client.post("/api/webauthn/login/begin", headers={"Origin": ORIGIN})
    assert response.status_code == 403
    assert response.json()["error"] == "csrf"


async def test_json_call_from_another_origin_is_refused(services: Services) -> None:
    async with await _client(services) as client:
        token = await _csrf(client)
        response = await client.post(
            "/api/webauthn/login/begin",
            headers={"Origin": "https://evil.example.net", "X-CSRF-Token": token},
        )
    assert response.status_code == 403


async def test_passkey_begin_is_rate_limited_with_retry_after(services: Services) -> None:
    async with await _client(services) as client:
        token = await _csrf(client)
        headers = {"Origin": ORIGIN, "X-CSRF-Token": token}
        statuses = [
            (await client.post("/api/webauthn/login/begin", headers=headers)).status_code
            for _ in range(rate_limit.WEBAUTHN.attempts)
        ]
        limited = await client.post("/api/webauthn/login/begin", headers=headers)
    assert set(statuses) == {200}
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) > 0
    assert limited.json()["error"] == "rate_limited"


async def test_login_code_guessing_is_rate_limited(services: Services) -> None:
    async with await _client(services) as client:
        token = await _csrf(client)
        form = {"csrf_token": token, "code": "AAAABBBBCCCCDDDD"}
        for _ in range(rate_limit.LOGIN_CODE.attempts):
            wrong = await client.post("/login/code", data=form, headers={"Origin": ORIGIN})
            assert wrong.status_code == 400
        # Even the right code waits once the limit is reached: guessing gains nothing.
        form["code"] = services.login_codes.issue("alice")
        limited = await client.post("/login/code", data=form, headers={"Origin": ORIGIN})
    assert limited.status_code == 429
    assert "retry-after" in limited.headers


async def test_wrong_and_used_codes_get_the_same_message(services: Services) -> None:
    code = services.login_codes.issue("alice")
    async with await _client(services) as client:
        token = await _csrf(client)
        form = {"csrf_token": token}
        ok = await client.post(
            "/login/code", data={**form, "code": code}, headers={"Origin": ORIGIN}
        )
        assert ok.status_code == 303
        used = await client.post(
            "/login/code", data={**form, "code": code}, headers={"Origin": ORIGIN}
        )
        unknown = await client.post(
            "/login/code", data={**form, "code": "ZZZZZZZZZZZZZZZZ"}, headers={"Origin": ORIGIN}
        )
    assert used.status_code == unknown.status_code == 400
    assert "invalid or has expired" in used.text and "invalid or has expired" in unknown.text


async def test_signup_page_needs_a_valid_token(services: Services) -> None:
    token = services.signups.create(usage_limit=1).token
    async with await _client(services) as client:
        assert (await client.get("/signup")).status_code == 403
        assert (await client.get("/signup?token=nope")).status_code == 403
        assert (await client.get(f"/signup?token={token}")).status_code == 200


async def test_signup_begin_with_bad_token_is_refused(services: Services) -> None:
    async with await _client(services) as client:
        csrf = await _csrf(client)
        response = await client.post(
            "/api/webauthn/register/begin",
            json={"flow": "signup", "username": "bob", "token": "nope"},
            headers={"Origin": ORIGIN, "X-CSRF-Token": csrf},
        )
    assert response.status_code == 403
    assert response.json()["error"] == "not_allowed"


async def test_signups_disabled_hides_the_page_and_refuses_the_api(
    make_settings: Callable[..., Settings],
) -> None:
    built = build(make_settings)
    try:
        built.users.create_user("alice")
        async with await _client(built) as client:
            assert (await client.get("/signup")).status_code == 404
            csrf = await _csrf(client)
            response = await client.post(
                "/api/webauthn/register/begin",
                json={"flow": "signup", "username": "bob"},
                headers={"Origin": ORIGIN, "X-CSRF-Token": csrf},
            )
        assert response.status_code == 403
    finally:
        await built.close()


async def test_open_signups_offer_a_passkey_without_a_token(
    make_settings: Callable[..., Settings],
) -> None:
    built = build(make_settings, allow_user_signups="open")
    try:
        built.users.create_user("alice")
        async with await _client(built) as client:
            assert (await client.get("/signup")).status_code == 200
            csrf = await _csrf(client)
            response = await client.post(
                "/api/webauthn/register/begin",
                json={"flow": "signup", "username": "bob"},
                headers={"Origin": ORIGIN, "X-CSRF-Token": csrf},
            )
        assert response.status_code == 200
        options = response.json()
        assert options["rp"]["id"] == "example.com"
        assert options["authenticatorSelection"]["residentKey"] == "required"
        assert options["authenticatorSelection"]["userVerification"] == "required"
    finally:
        await built.close()


async def test_setup_is_open_only_while_no_user_exists(
    make_settings: Callable[..., Settings],
) -> None:
    built = build(make_settings)
    try:
        async with await _client(built) as client:
            assert (await client.get("/login")).headers["location"] == "/setup"
            assert (await client.get("/setup")).status_code == 200
            built.users.create_user("alice")
            assert (await client.get("/setup")).status_code == 404
            csrf = await _csrf(client)
            response = await client.post(
                "/api/webauthn/register/begin",
                json={"flow": "setup", "username": "mallory"},
                headers={"Origin": ORIGIN, "X-CSRF-Token": csrf},
            )
        assert response.status_code == 403
    finally:
        await built.close()


async def test_pages_carry_a_strict_content_security_policy(services: Services) -> None:
    async with await _client(services) as client:
        response = await client.get("/login")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "http" not in csp.split("form-action")[0]
