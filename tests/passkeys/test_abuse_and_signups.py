"""Abuse protection and signup modes, in-process: CSRF on JSON calls, rate limits with 429 and
Retry-After (per IP, and per account whatever X-Forwarded-For a trusted proxy relays), signups
disabled / with a token / open, and the setup page's lifetime."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from ipaddress import IPv4Address
from itertools import count
from typing import Any

import httpx
import pytest

from gateway.core.settings import Settings
from gateway.services import Services, build_services
from gateway.sessions import rate_limit
from gateway.web.app import create_app
from tests.web_client import WebClient, audit_rows

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


# --- per account, through a trusted proxy that relays any X-Forwarded-For --------------------

EVIL = "https://evil.example.net"


@pytest.fixture
async def behind_proxy(make_settings: Callable[..., Settings]) -> AsyncIterator[Services]:
    """TRUST_PROXY on, every request from 127.0.0.1 (trusted by default), open signups."""
    built = build(make_settings, trust_proxy="true", allow_user_signups="open")
    yield built
    await built.close()


class ProxiedClient(WebClient):
    """A browser behind the trusted proxy: every call claims X-Forwarded-For `address`, or a
    new address each time while `address` is None, as a client rotating it would."""

    def __init__(self, services: Services) -> None:
        super().__init__(services, "127.0.0.1")
        self.address: str | None = None
        self._fresh = (str(IPv4Address("198.18.0.0") + n) for n in count(1))

    def _forward(self) -> None:
        self.http.headers["X-Forwarded-For"] = self.address or next(self._fresh)

    async def post_json(self, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        self._forward()
        return await super().post_json(path, body)

    async def post_form(self, path: str, form: dict[str, str], **kwargs: Any) -> httpx.Response:
        self._forward()
        return await super().post_form(path, form, **kwargs)


@pytest.fixture
async def alice(behind_proxy: Services) -> AsyncIterator[ProxiedClient]:
    async with ProxiedClient(behind_proxy) as client:
        await client.set_up("alice")
        yield client


@pytest.fixture
async def bob(behind_proxy: Services, alice: ProxiedClient) -> AsyncIterator[ProxiedClient]:
    async with ProxiedClient(behind_proxy) as client:
        assert (await client.enrol("signup", "bob", email="bob@example.com")).status_code == 200
        yield client


async def _fail_passkey_sign_ins(client: ProxiedClient, times: int) -> list[int]:
    """Passkey answers for the wrong origin: refused after naming the passkey's account."""
    return [(await client.sign_in(origin=EVIL)).status_code for _ in range(times)]


async def test_failed_passkey_sign_ins_are_limited_per_account_from_any_address(
    behind_proxy: Services, alice: ProxiedClient
) -> None:
    assert set(await _fail_passkey_sign_ins(alice, rate_limit.ACCOUNT.attempts)) == {400}
    limited = await alice.sign_in(origin=EVIL)
    assert limited.status_code == 429 and limited.json()["error"] == "rate_limited"
    row = audit_rows(behind_proxy, "sign_in")[-1]
    assert row["reason"] == "rate limited"
    assert row["user_id"] == behind_proxy.users.get_user_by_name("alice").id


async def test_account_limit_leaves_other_accounts_alone(
    alice: ProxiedClient, bob: ProxiedClient
) -> None:
    await _fail_passkey_sign_ins(alice, rate_limit.ACCOUNT.attempts + 1)
    assert (await bob.sign_in(origin=EVIL)).status_code == 400
    assert (await bob.sign_in()).status_code == 200


async def test_account_limit_never_refuses_a_passkey_that_verifies(alice: ProxiedClient) -> None:
    await _fail_passkey_sign_ins(alice, rate_limit.ACCOUNT.attempts + 1)
    assert (await alice.sign_in()).status_code == 200


async def test_successful_passkey_sign_ins_do_not_count_against_the_account(
    alice: ProxiedClient,
) -> None:
    times = rate_limit.ACCOUNT.attempts + 1
    assert {(await alice.sign_in()).status_code for _ in range(times)} == {200}
    assert (await alice.sign_in(origin=EVIL)).status_code == 400


async def test_refused_codes_of_one_account_are_limited_from_any_address(
    behind_proxy: Services, alice: ProxiedClient, bob: ProxiedClient
) -> None:
    def expired(username: str) -> dict[str, str]:
        return {"code": behind_proxy.login_codes.issue(username, lifetime=-1)}

    statuses = [
        (await alice.post_form("/login/code", expired("alice"))).status_code
        for _ in range(rate_limit.ACCOUNT.attempts)
    ]
    assert set(statuses) == {400}
    assert (await alice.post_form("/login/code", expired("alice"))).status_code == 429
    assert (await bob.post_form("/login/code", expired("bob"))).status_code == 400
    # The account's failures never hold back a code that is valid.
    valid = {"code": behind_proxy.login_codes.issue("alice")}
    assert (await alice.post_form("/login/code", valid)).status_code == 303


async def test_per_address_code_limit_holds_for_the_forwarded_address(
    alice: ProxiedClient,
) -> None:
    wrong = {"code": "AAAABBBBCCCCDDDD"}
    alice.address = "203.0.113.50"
    for _ in range(rate_limit.LOGIN_CODE.attempts):
        assert (await alice.post_form("/login/code", wrong)).status_code == 400
    assert (await alice.post_form("/login/code", wrong)).status_code == 429
    alice.address = "203.0.113.51"  # another client behind the same proxy
    assert (await alice.post_form("/login/code", wrong)).status_code == 400
