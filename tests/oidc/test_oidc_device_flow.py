"""The device authorization grant (RFC 8628) for TVs and command-line tools: the device asks for
codes, a signed-in user approves the user code on /device, the device's polls hear
authorization_pending, slow_down, access_denied or expired_token until it gets its tokens, once.

The real ASGI app runs in-process against both databases; tests/oidc/test_oidc_openid_client.py
drives the same flow with npm openid-client and Chromium.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from playwright.sync_api import Browser
from prometheus_client import REGISTRY

from gateway.accounts.users import User
from gateway.oidc import api
from gateway.oidc.device_codes import (
    USER_CODE_ALPHABET,
    new_user_code,
    normalise_user_code,
)
from gateway.services import Services
from tests.browser import DOMAIN, Gate
from tests.conftest import PassgateProcess
from tests.oidc.machines import APP, App, Gateway
from tests.oidc.node_rp import rp_command
from tests.oidc.relying_party import RP_CALLBACK
from tests.web_client import audit_rows


@pytest.fixture
def gw(services: Services) -> Iterator[Gateway]:
    yield Gateway(services)


@pytest.fixture
def alice(services: Services) -> User:
    services.users.create_group("family")
    return services.users.create_user(
        "alice", display_name="Alice Liddell", email="alice@example.com", groups=("family",)
    )


@pytest.fixture
def tv(gw: Gateway) -> App:
    """A public client (no secret, like a command-line tool) allowed the device grant."""
    return gw.client(public=True, grant_types=["device_code"])


def approved(gw: Gateway, app: App, user: User, scope: str = "openid profile") -> dict[str, Any]:
    codes = gw.device_authorize(app, scope)
    gw.sign_in(user)
    answered = gw.answer(codes["user_code"], "approve")
    assert answered.status_code == 200, answered.text
    return codes


def assert_token_error(response: Any, error: str, status: int = 400) -> None:
    assert response.status_code == status, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["error"] == error and body["error_description"], body


# --- user codes --------------------------------------------------------------------------------


def test_user_codes_are_two_groups_of_four_from_the_unambiguous_alphabet() -> None:
    for _ in range(50):
        code = new_user_code()
        assert len(code) == 9 and code[4] == "-"
        assert all(ch in USER_CODE_ALPHABET for ch in code.replace("-", ""))


def test_typed_user_codes_are_normalised_for_case_dashes_and_spaces() -> None:
    assert normalise_user_code(" bcdf-ghjk ") == "BCDFGHJK"
    assert normalise_user_code("bcdf ghjk") == "BCDFGHJK"
    assert normalise_user_code("BCDFGHJK") == "BCDFGHJK"


def test_typed_user_codes_outside_the_alphabet_or_length_are_not_codes() -> None:
    assert normalise_user_code("BCDF-GHJA") is None  # a vowel
    assert normalise_user_code("BCDF-GHJ") is None
    assert normalise_user_code("BCDF-GHJKL") is None


# --- the device authorization endpoint ---------------------------------------------------------


def test_device_authorization_answers_codes_and_where_to_enter_them(gw: Gateway, tv: App) -> None:
    codes = gw.device_authorize(tv)
    assert codes["verification_uri"] == f"{APP}/device"
    query = parse_qs(urlsplit(codes["verification_uri_complete"]).query)
    assert query == {"user_code": [codes["user_code"]]}
    assert codes["expires_in"] == 600 and codes["interval"] == 5
    assert normalise_user_code(codes["user_code"]) is not None


def test_device_and_user_codes_are_stored_only_hashed(gw: Gateway, tv: App) -> None:
    codes = gw.device_authorize(tv)
    rows = gw.services.db.fetchall("SELECT * FROM oauth_device_codes")
    stored = " ".join(str(value) for row in rows for value in row)
    assert codes["device_code"] not in stored
    assert codes["user_code"].replace("-", "") not in stored


def test_client_not_allowed_the_device_grant_is_refused(gw: Gateway) -> None:
    plain = gw.client(public=True)
    response = gw.send("/api/oidc/device/authorize", plain, {"scope": "openid"})
    assert_token_error(response, "unauthorized_client")


def test_device_authorization_with_a_wrong_secret_is_invalid_client(gw: Gateway) -> None:
    app = gw.client(grant_types=["device_code"])
    response = gw.send("/api/oidc/device/authorize", App(app.client_id, "wrong"), {})
    assert_token_error(response, "invalid_client", 401)


def test_device_authorization_with_an_unknown_scope_is_invalid_scope(gw: Gateway, tv: App) -> None:
    response = gw.send("/api/oidc/device/authorize", tv, {"scope": "openid admin"})
    assert_token_error(response, "invalid_scope")


def test_discovery_advertises_the_device_endpoint_and_grant(gw: Gateway) -> None:
    document = gw.backend.get("/.well-known/openid-configuration").json()
    assert document["device_authorization_endpoint"] == f"{APP}/api/oidc/device/authorize"
    assert "urn:ietf:params:oauth:grant-type:device_code" in document["grant_types_supported"]


# --- the /device page --------------------------------------------------------------------------


def test_device_page_sends_a_visitor_to_sign_in_and_back_with_the_code(gw: Gateway) -> None:
    response = gw.browser.get("/device", params={"user_code": "BCDF-GHJK"})
    assert response.status_code == 303
    back = parse_qs(urlsplit(response.headers["location"]).query)["rd"]
    assert back == [f"{APP}/device?user_code=BCDF-GHJK"]


def test_verification_uri_complete_prefills_the_code_but_the_user_still_confirms(
    gw: Gateway, tv: App, alice: User
) -> None:
    codes = gw.device_authorize(tv)
    gw.sign_in(alice)
    page = gw.browser.get(
        urlsplit(codes["verification_uri_complete"]).path, params={"user_code": codes["user_code"]}
    )
    assert page.status_code == 200
    assert f'value="{codes["user_code"]}"' in page.text
    assert_token_error(gw.poll(tv, codes["device_code"]), "authorization_pending")


def test_consent_page_names_the_app_and_the_scopes(gw: Gateway, tv: App, alice: User) -> None:
    codes = gw.device_authorize(tv, "openid email")
    gw.sign_in(alice)
    page = gw.enter_code(codes["user_code"].lower().replace("-", " "))
    assert page.status_code == 200
    assert "Living room TV" in page.text
    assert "See your email address" in page.text
    assert 'value="approve"' in page.text and 'value="deny"' in page.text


def test_unknown_user_code_shows_an_error_on_the_page(gw: Gateway, alice: User) -> None:
    gw.sign_in(alice)
    response = gw.enter_code("BCDF-GHJK")
    assert response.status_code == 400
    assert "not valid" in response.text
    assert audit_rows(gw.services, "device_code_unknown")[0]["success"] is False


def test_decision_without_the_csrf_token_is_refused(gw: Gateway, tv: App, alice: User) -> None:
    codes = gw.device_authorize(tv)
    gw.sign_in(alice)
    gw.csrf()
    response = gw.browser.post(
        "/device/decision",
        data={"user_code": codes["user_code"], "decision": "approve"},
        headers={"Origin": APP},
    )
    assert response.status_code == 403
    assert_token_error(gw.poll(tv, codes["device_code"]), "authorization_pending")


def test_user_outside_the_clients_groups_cannot_approve(gw: Gateway, alice: User) -> None:
    gw.services.users.create_group("admins")
    app = gw.client(public=True, grant_types=["device_code"], allowed_groups=["admins"])
    codes = gw.device_authorize(app)
    gw.sign_in(alice)
    assert gw.enter_code(codes["user_code"]).status_code == 403
    response = gw.submit("/device/decision", user_code=codes["user_code"], decision="approve")
    assert response.status_code == 403
    assert_token_error(gw.poll(app, codes["device_code"]), "authorization_pending")


def age_sessions(gw: Gateway, seconds: float) -> None:
    """Make the test browser's session `seconds` older (before anything has read it)."""

    async def older() -> None:
        sessions = gw.services.sessions
        cookie = gw.browser.cookies.get(gw.services.settings.cookie_name) or ""
        key = sessions.key_of(cookie)
        record = await sessions.store.load(key) if key else None
        assert record is not None
        await sessions.store.delete(record.key)
        aged = dataclasses.replace(record, created_at=record.created_at - seconds)
        await sessions.store.save(aged, sessions.inactivity)

    asyncio.run(older())


def test_reauth_client_needs_a_fresh_sign_in_to_approve_a_device(gw: Gateway, alice: User) -> None:
    """require_reauth holds for the device grant too: a session older than the re-auth window
    is sent to sign in again (and back to the code), and cannot approve."""
    app = gw.client(public=True, grant_types=["device_code"], require_reauth=True)
    codes = gw.device_authorize(app)
    gw.sign_in(alice)
    age_sessions(gw, 3600)
    shown = gw.enter_code(codes["user_code"])
    assert shown.status_code == 303, shown.text
    target = urlsplit(shown.headers["location"])
    assert target.path == "/login" and parse_qs(target.query)["force"] == ["1"]
    assert "user_code" in parse_qs(target.query)["rd"][0]
    decided = gw.submit("/device/decision", user_code=codes["user_code"], decision="approve")
    assert decided.status_code == 303
    assert_token_error(gw.poll(app, codes["device_code"]), "authorization_pending")
    gw.sign_in(alice)  # the fresh sign-in
    assert gw.answer(codes["user_code"], "approve").status_code == 200


def test_user_code_guessing_is_rate_limited_per_user(gw: Gateway, alice: User) -> None:
    gw.sign_in(alice)
    answers = [gw.enter_code("BCDF-GHJK").status_code for _ in range(11)]
    assert answers[:10] == [400] * 10
    assert answers[10] == 429


def test_user_code_guessing_is_rate_limited_per_address(gw: Gateway, services: Services) -> None:
    for name in ("bob", "carol", "dave"):
        gw.sign_in(services.users.create_user(name))
        answers = [gw.enter_code("BCDF-GHJK").status_code for _ in range(7)]
    assert answers[-1] == 429  # the 21st try from one address, though each user tried 7 times


def test_code_of_a_client_no_longer_allowed_the_grant_cannot_be_approved(
    gw: Gateway, tv: App, alice: User
) -> None:
    codes = gw.device_authorize(tv)
    gw.services.clients.update(tv.client_id, grant_types=[])
    gw.sign_in(alice)
    assert gw.enter_code(codes["user_code"]).status_code == 400


def test_device_steps_are_counted_in_the_metrics(gw: Gateway, tv: App, alice: User) -> None:
    def count(result: str) -> float:
        labels = {"result": result}
        return REGISTRY.get_sample_value("passgate_oidc_device_authorizations_total", labels) or 0

    requested, approvals = count("requested"), count("approved")
    approved(gw, tv, alice)
    assert (count("requested"), count("approved")) == (requested + 1, approvals + 1)


def test_rate_limit_also_guards_the_decision_step(gw: Gateway, alice: User) -> None:
    gw.sign_in(alice)
    for _ in range(10):
        gw.submit("/device/decision", user_code="BCDF-GHJK", decision="approve")
    response = gw.submit("/device/decision", user_code="BCDF-GHJK", decision="approve")
    assert response.status_code == 429


# --- polling the token endpoint ----------------------------------------------------------------


def test_approved_device_gets_tokens_and_an_id_token_with_the_users_claims(
    gw: Gateway, tv: App, alice: User
) -> None:
    codes = approved(gw, tv, alice, "openid profile email")
    response = gw.poll(tv, codes["device_code"])
    assert response.status_code == 200, response.text
    tokens = response.json()
    assert tokens["token_type"] == "Bearer" and tokens["scope"] == "openid profile email"
    assert "refresh_token" not in tokens  # no offline_access, no refresh_tokens flag
    keys = KeySet.import_key_set(gw.services.keys.jwks())  # type: ignore[arg-type]
    claims = jwt.decode(tokens["id_token"], keys).claims
    assert claims["sub"] == alice.id and claims["aud"] == [tv.client_id]
    assert claims["preferred_username"] == "alice" and claims["email"] == "alice@example.com"
    assert claims["amr"] == ["hwk", "user"]  # how the approving user signed in
    assert abs(claims["auth_time"] - time.time()) < 60
    userinfo = gw.backend.get(
        "/api/oidc/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert userinfo.json()["sub"] == alice.id


def test_approval_and_issue_are_audited(gw: Gateway, tv: App, alice: User) -> None:
    codes = approved(gw, tv, alice)
    gw.poll(tv, codes["device_code"])
    (authorised,) = audit_rows(gw.services, "device_authorized")
    assert authorised["user_id"] == alice.id and authorised["details"]["client_id"] == tv.client_id
    (issued,) = audit_rows(gw.services, "token_issued")
    assert issued["details"]["grant_type"] == "urn:ietf:params:oauth:grant-type:device_code"
    assert issued["user_id"] == alice.id


def test_offline_access_gives_the_device_a_refresh_token(gw: Gateway, tv: App, alice: User) -> None:
    codes = approved(gw, tv, alice, "openid offline_access")
    tokens = gw.poll(tv, codes["device_code"]).json()
    assert tokens["refresh_token"]
    refreshed = gw.token(tv, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text


def test_poll_before_the_user_answers_is_authorization_pending(gw: Gateway, tv: App) -> None:
    codes = gw.device_authorize(tv)
    assert_token_error(gw.poll(tv, codes["device_code"]), "authorization_pending")


def test_polling_faster_than_the_interval_is_slow_down_and_lengthens_it(
    gw: Gateway, tv: App
) -> None:
    codes = gw.device_authorize(tv)
    gw.poll(tv, codes["device_code"])
    assert_token_error(gw.poll(tv, codes["device_code"]), "slow_down")
    interval = gw.services.db.fetchone("SELECT poll_interval FROM oauth_device_codes")
    assert interval is not None and interval[0] == 10


def test_denied_device_gets_access_denied(gw: Gateway, tv: App, alice: User) -> None:
    codes = gw.device_authorize(tv)
    gw.sign_in(alice)
    assert gw.answer(codes["user_code"], "deny").status_code == 200
    assert_token_error(gw.poll(tv, codes["device_code"]), "access_denied")
    (denied,) = audit_rows(gw.services, "device_denied")
    assert denied["success"] is False


def test_expired_device_code_gets_expired_token(gw: Gateway, tv: App, alice: User) -> None:
    codes = approved(gw, tv, alice)
    gw.services.db.execute("UPDATE oauth_device_codes SET expires_at = ?", (time.time() - 1,))
    assert_token_error(gw.poll(tv, codes["device_code"]), "expired_token")


def test_expired_user_code_cannot_be_approved(gw: Gateway, tv: App, alice: User) -> None:
    codes = gw.device_authorize(tv)
    gw.services.db.execute("UPDATE oauth_device_codes SET expires_at = ?", (time.time() - 1,))
    gw.sign_in(alice)
    assert gw.enter_code(codes["user_code"]).status_code == 400


def test_device_code_gives_tokens_only_once(gw: Gateway, tv: App, alice: User) -> None:
    codes = approved(gw, tv, alice)
    assert gw.poll(tv, codes["device_code"]).status_code == 200
    gw.allow_next_poll()
    assert_token_error(gw.poll(tv, codes["device_code"]), "invalid_grant")


def test_user_code_is_single_use(gw: Gateway, tv: App, alice: User) -> None:
    codes = approved(gw, tv, alice)
    assert gw.enter_code(codes["user_code"]).status_code == 400


def test_another_clients_device_code_is_refused(gw: Gateway, tv: App, alice: User) -> None:
    other = gw.client(public=True, grant_types=["device_code"])
    codes = approved(gw, tv, alice)
    assert_token_error(gw.poll(other, codes["device_code"]), "unauthorized_client")


def test_unknown_device_code_is_invalid_grant(gw: Gateway, tv: App) -> None:
    assert_token_error(gw.poll(tv, "not-a-device-code"), "invalid_grant")


def test_confidential_client_authenticates_when_polling(gw: Gateway, alice: User) -> None:
    app = gw.client(grant_types=["device_code"])
    codes = approved(gw, app, alice)
    assert_token_error(
        gw.poll(App(app.client_id, "wrong"), codes["device_code"]), "invalid_client", 401
    )
    gw.allow_next_poll()
    assert gw.poll(app, codes["device_code"]).status_code == 200


# --- a real device: npm openid-client, approved in Chromium with a passkey ------------------------


def test_openid_client_device_flow_is_approved_in_the_browser_after_signing_in(
    idp: tuple[PassgateProcess, Browser, int], openid_client: Path
) -> None:
    passgate, browser, port = idp
    issuer = f"http://auth.{DOMAIN}:{port}"
    added = passgate.cli(
        "clients",
        "add",
        "TV CLI",
        "--redirect-uri",
        RP_CALLBACK,
        "--public",
        "--grant",
        "device_code",
    )
    assert added.returncode == 0, added.stderr
    client_id = added.stdout.split("client_id: ")[1].split()[0]
    alice = Gate(passgate, port, browser).person(autofill=False)  # signs in by the button
    alice.set_up_account("alice", "Alice Liddell")
    alice.sign_out()

    settings = {"issuer": issuer, "local_url": passgate.url, "client_id": client_id}
    device = subprocess.Popen(
        **rp_command(openid_client, "device", **settings, scope="openid profile email"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert device.stdout is not None
        authorization = json.loads(device.stdout.readline() or "{}")
        assert authorization.get("verification_uri") == f"{issuer}/device", device.stderr
        # The complete URI prefills the code; signing in comes back to it; the user confirms.
        alice.page.goto(authorization["verification_uri_complete"])
        alice.page.wait_for_url("**/login?*")
        alice.sign_in_with_button(expect_url="**/device?user_code=*")
        assert alice.page.input_value("#user_code") == authorization["user_code"]
        alice.page.click("form[action='/device'] button")
        alice.page.click("button[value=approve]")
        alice.page.wait_for_selector("text=Device approved")
        out, err = device.communicate(timeout=60)
    finally:
        device.kill()
    assert device.returncode == 0, err
    done = json.loads(out)
    assert done["claims"]["iss"] == issuer and done["claims"]["aud"] == [client_id]
    assert done["claims"]["preferred_username"] == "alice"
    assert done["claims"]["email"] == "alice@example.com" and done["claims"]["amr"]
    assert done["userinfo"]["sub"] == done["claims"]["sub"]
    assert "refresh_token" not in done["tokens"]
    assert done["reused"] == "invalid_grant"


def test_device_authorization_is_limited_per_address(gw: Gateway, tv: App) -> None:
    """A public client needs no secret, so anyone could fill the device-code table: past
    DEVICE_PER_ADDRESS requests from one address the answer is 429 with Retry-After."""
    for _ in range(api.DEVICE_PER_ADDRESS.attempts):
        assert gw.send("/api/oidc/device/authorize", tv, {"scope": "openid"}).status_code == 200
    refused = gw.send("/api/oidc/device/authorize", tv, {"scope": "openid"})
    assert refused.status_code == 429
    assert refused.json()["error"] == "temporarily_unavailable"
    assert int(refused.headers["retry-after"]) > 0
    rows = gw.services.db.fetchall("SELECT 1 FROM oauth_device_codes")
    assert len(rows) == api.DEVICE_PER_ADDRESS.attempts
