"""Audit events recorded by the real flows: passkey and code sign-ins (and their refusals, with
reasons), signup, sign-out, passkey changes, OIDC tokens and consent. In-process app, software
authenticator, SQLite; no secret may reach an audit row or a log line."""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from urllib.parse import parse_qs, urlsplit

import pytest

from gateway.core.settings import Settings
from gateway.services import Services, build_services
from gateway.sessions import rate_limit
from gateway.sessions.rate_limit import RateLimited
from tests.web_client import ORIGIN, USER_AGENT, WebClient, audit_rows

pytestmark = pytest.mark.anyio
IP = "198.51.100.7"
CALLBACK = "https://memos.example.com/auth/callback"


@pytest.fixture
async def live(make_settings: Callable[..., Settings]) -> AsyncIterator[Services]:
    built = build_services(make_settings(db_provider="sqlite", allow_user_signups="open"))
    yield built
    await built.close()


@pytest.fixture
async def alice(live: Services) -> AsyncIterator[tuple[WebClient, str]]:
    """Alice set up the instance (her passkey is on this client's authenticator)."""
    async with WebClient(live, IP) as client:
        user_id = await client.set_up("alice")
        yield client, user_id


async def _exhaust(services: Services, limit: rate_limit.Limit) -> None:
    """Use up `limit` for IP, as a flood of earlier attempts would."""
    with pytest.raises(RateLimited):
        for _ in range(limit.attempts + 1):
            await services.rate_limits.check(limit, IP)


def last(services: Services, event: str) -> dict[str, object]:
    rows = audit_rows(services, event)
    assert rows, f"no {event} event recorded"
    return rows[-1]


# --- sign-in ----------------------------------------------------------------------------------


async def test_setup_records_signup_completed_and_a_setup_sign_in(
    live: Services, alice: tuple[WebClient, str]
) -> None:
    client, user_id = alice
    signup = last(live, "signup_completed")
    assert signup["user_id"] == user_id and signup["success"]
    assert signup["actor_name"] == "alice" and signup["ip"] == IP
    credential_id = client.auth.credential().id
    assert signup["details"] == {
        "flow": "setup",
        "username": "alice",
        "passkey": credential_id[:12],
        "passkey_name": "Laptop",
        "passkey_model": signup["details"]["passkey_model"],  # type: ignore[index]
    }
    sign_in = last(live, "sign_in")
    assert sign_in["details"]["method"] == "setup"  # type: ignore[index]


async def test_open_signup_records_signup_completed_with_method_signup(
    live: Services, alice: tuple[WebClient, str]
) -> None:
    async with WebClient(live, "198.51.100.8") as bob:
        assert (await bob.enrol("signup", "bob", email="bob@example.com")).status_code == 200
    bob_id = live.users.get_user_by_name("bob").id
    assert last(live, "signup_completed")["details"]["flow"] == "signup"  # type: ignore[index]
    sign_in = last(live, "sign_in")
    assert sign_in["user_id"] == bob_id and sign_in["details"]["method"] == "signup"  # type: ignore[index]


async def test_passkey_sign_in_records_method_passkey_ip_and_user_agent(
    live: Services, alice: tuple[WebClient, str]
) -> None:
    client, user_id = alice
    assert (await client.sign_in()).status_code == 200
    row = last(live, "sign_in")
    assert row["success"] and row["reason"] == ""
    assert row["user_id"] == user_id and row["actor_kind"] == "user"
    assert row["actor_id"] == user_id and row["actor_name"] == "alice"
    assert row["ip"] == IP and row["user_agent"] == USER_AGENT
    details = row["details"]
    assert details["method"] == "passkey"  # type: ignore[index]
    assert details["passkey"] == client.auth.credential().id[:12]  # type: ignore[index]
    assert details["passkey_name"] == "Laptop" and details["new_device"] is False  # type: ignore[index]
    assert details["passkey_model"]  # type: ignore[index]


async def test_unknown_passkey_is_recorded_as_failed_sign_in(
    live: Services, alice: tuple[WebClient, str]
) -> None:
    client, _ = alice
    live.passkeys.delete(live.users.get_user_by_name("alice").id, client.auth.credential().id)
    assert (await client.sign_in()).status_code == 400
    row = last(live, "sign_in")
    assert not row["success"] and row["reason"] == "unknown passkey"
    assert row["user_id"] is None and row["ip"] == IP
    assert (
        row["details"]
        == {  # type: ignore[comparison-overlap]
            "method": "passkey",
            "passkey": client.auth.credential().id[:12],
        }
    )


async def test_sign_count_regression_is_recorded_with_the_passkey_and_user(
    live: Services, alice: tuple[WebClient, str]
) -> None:
    client, user_id = alice
    assert (await client.sign_in(sign_count=10)).status_code == 200
    assert (await client.sign_in(sign_count=5)).status_code == 400
    row = last(live, "sign_in")
    assert not row["success"] and row["reason"] == "sign-count regression"
    assert row["user_id"] == user_id
    assert row["details"]["passkey"] == client.auth.credential().id[:12]  # type: ignore[index]


async def test_wrong_origin_is_recorded(live: Services, alice: tuple[WebClient, str]) -> None:
    client, user_id = alice
    assert (await client.sign_in(origin="https://evil.example.net")).status_code == 400
    row = last(live, "sign_in")
    assert not row["success"] and row["reason"] == "wrong origin or RP ID"
    assert row["user_id"] == user_id


async def test_disabled_account_sign_in_is_recorded(
    live: Services, alice: tuple[WebClient, str]
) -> None:
    client, user_id = alice
    live.users.set_disabled("alice", True)
    assert (await client.sign_in()).status_code == 403
    row = last(live, "sign_in")
    assert not row["success"] and row["reason"] == "disabled account"
    assert row["user_id"] == user_id


async def test_cancelled_passkey_prompt_is_recorded(
    live: Services, alice: tuple[WebClient, str]
) -> None:
    client, _ = alice
    await client.begin_sign_in()
    assert (await client.post_json("/api/webauthn/login/cancel")).status_code == 204
    row = last(live, "sign_in")
    assert not row["success"] and row["reason"] == "cancelled"
    assert row["details"] == {"method": "passkey"}  # type: ignore[comparison-overlap]


async def test_cancel_without_a_ceremony_records_nothing(
    live: Services, alice: tuple[WebClient, str]
) -> None:
    client, _ = alice
    before = len(audit_rows(live))
    assert (await client.post_json("/api/webauthn/login/cancel")).status_code == 204
    assert len(audit_rows(live)) == before


async def test_replayed_ceremony_is_recorded_as_expired(
    live: Services, alice: tuple[WebClient, str]
) -> None:
    client, _ = alice
    options = await client.begin_sign_in()
    answer = {"credential": client.auth.get(options, ORIGIN)}
    assert (await client.post_json("/api/webauthn/login/finish", answer)).status_code == 200
    assert (await client.post_json("/api/webauthn/login/finish", answer)).status_code == 400
    assert last(live, "sign_in")["reason"] == "expired or replayed ceremony"


async def test_rate_limited_passkey_sign_in_is_recorded(
    live: Services, alice: tuple[WebClient, str]
) -> None:
    client, _ = alice
    await _exhaust(live, rate_limit.WEBAUTHN)
    finish = await client.post_json("/api/webauthn/login/finish", {"credential": {}})
    assert finish.status_code == 429
    row = last(live, "sign_in")
    assert not row["success"] and row["reason"] == "rate limited"


async def test_signup_with_a_bad_token_is_recorded(
    make_settings: Callable[..., Settings],
) -> None:
    built = build_services(make_settings(db_provider="sqlite", allow_user_signups="withToken"))
    try:
        built.users.create_user("alice")
        async with WebClient(built) as client:
            begin = await client.post_json(
                "/api/webauthn/register/begin",
                {"flow": "signup", "username": "mallory", "token": "not-a-token"},
            )
        assert begin.status_code == 403
        row = last(built, "sign_in")
        assert not row["success"] and row["details"] == {"method": "signup"}
        assert row["reason"] == "this signup link is invalid, expired or used up"
    finally:
        await built.close()


# --- login codes and one-time links ------------------------------------------------------------


async def test_login_code_sign_in_is_recorded_with_method_login_code(
    live: Services, alice: tuple[WebClient, str]
) -> None:
    client, user_id = alice
    code = live.login_codes.issue("alice")
    assert (await client.post_form("/login/code", {"code": code})).status_code == 303
    row = last(live, "sign_in")
    assert row["success"] and row["user_id"] == user_id
    assert row["details"]["method"] == "login_code"  # type: ignore[index]


async def test_one_time_link_sign_in_is_recorded_with_method_one_time_link(
    live: Services, alice: tuple[WebClient, str]
) -> None:
    client, _ = alice
    code = live.login_codes.issue("alice")
    page = await client.http.get(f"/lc/{code}")
    assert 'name="via" value="link"' in page.text
    form = {"code": code, "via": "link"}
    assert (await client.post_form("/login/code", form)).status_code == 303
    assert last(live, "sign_in")["details"]["method"] == "one_time_link"  # type: ignore[index]


async def test_wrong_login_code_is_recorded_without_the_code(
    live: Services, alice: tuple[WebClient, str]
) -> None:
    client, _ = alice
    wrong = "WRONGCODE2345678"
    assert (await client.post_form("/login/code", {"code": wrong})).status_code == 400
    row = last(live, "sign_in")
    assert not row["success"] and row["reason"] == "unknown or already used code"
    assert row["user_id"] is None and wrong not in str(row)


async def test_expired_login_code_is_recorded_against_its_user(
    live: Services, alice: tuple[WebClient, str]
) -> None:
    client, user_id = alice
    code = live.login_codes.issue("alice", lifetime=-1)
    assert (await client.post_form("/login/code", {"code": code})).status_code == 400
    row = last(live, "sign_in")
    assert not row["success"] and row["reason"] == "expired code"
    assert row["user_id"] == user_id


async def test_login_code_for_a_disabled_account_is_recorded(
    live: Services, alice: tuple[WebClient, str]
) -> None:
    client, _ = alice
    code = live.login_codes.issue("alice")
    live.users.set_disabled("alice", True)
    assert (await client.post_form("/login/code", {"code": code})).status_code == 400
    assert last(live, "sign_in")["reason"] == "disabled account"


async def test_rate_limited_login_code_is_recorded(
    live: Services, alice: tuple[WebClient, str]
) -> None:
    client, _ = alice
    await _exhaust(live, rate_limit.LOGIN_CODE)
    assert (await client.post_form("/login/code", {"code": "X"})).status_code == 429
    row = last(live, "sign_in")
    assert row["reason"] == "rate limited" and row["details"] == {"method": "login_code"}


# --- sign-out and sessions ----------------------------------------------------------------------


async def test_logout_records_sign_out(live: Services, alice: tuple[WebClient, str]) -> None:
    client, user_id = alice
    assert (await client.post_form("/logout", {})).status_code == 303
    row = last(live, "sign_out")
    assert row["user_id"] == user_id and row["actor_name"] == "alice"
    assert row["details"] == {"via": "logout"}  # type: ignore[comparison-overlap]


async def test_logout_without_a_session_records_nothing(live: Services) -> None:
    live.users.create_user("alice")
    async with WebClient(live) as client:
        assert (await client.post_form("/logout", {})).status_code == 303
    assert audit_rows(live, "sign_out") == []


async def test_sign_out_everywhere_is_recorded_with_the_session_count(
    live: Services, alice: tuple[WebClient, str]
) -> None:
    client, user_id = alice
    assert (await client.sign_in()).status_code == 200  # replaces the setup session
    async with WebClient(live, "198.51.100.9", client.auth) as phone:
        assert (await phone.sign_in()).status_code == 200
    assert (await client.post_form("/account/sessions/end-all", {})).status_code == 303
    row = last(live, "sign_out_everywhere")
    assert row["user_id"] == user_id and row["details"] == {"sessions": 2}


async def test_revoking_another_session_is_recorded(
    live: Services, alice: tuple[WebClient, str]
) -> None:
    client, user_id = alice
    async with WebClient(live, "198.51.100.9", client.auth) as phone:
        assert (await phone.sign_in()).status_code == 200
    other = next(s for s in await live.sessions.list_for_user(user_id) if s.ip == "198.51.100.9")
    form = {"key": other.key}
    assert (await client.post_form("/account/sessions/end", form)).status_code == 303
    row = last(live, "session_revoked")
    assert row["user_id"] == user_id
    assert row["details"]["session_ip"] == "198.51.100.9"  # type: ignore[index]
    assert other.key not in str(row)


# --- passkeys -----------------------------------------------------------------------------------


async def test_passkey_added_renamed_and_removed_are_recorded(
    live: Services, alice: tuple[WebClient, str]
) -> None:
    client, user_id = alice
    first = client.auth.credential().id
    assert (await client.enrol("add")).status_code == 200
    second = client.auth.credential().id
    added = last(live, "passkey_added")
    assert added["success"] and added["user_id"] == user_id and added["actor_name"] == "alice"
    assert added["details"]["passkey"] == second[:12]  # type: ignore[index]

    rename = {"id": second, "name": "Work phone"}
    assert (await client.post_form("/account/passkeys/rename", rename)).status_code == 303
    renamed = last(live, "passkey_renamed")
    assert renamed["details"]["old_name"] == "Laptop"  # type: ignore[index]
    assert renamed["details"]["passkey_name"] == "Work phone"  # type: ignore[index]

    assert (await client.post_form("/account/passkeys/delete", {"id": first})).status_code == 303
    removed = last(live, "passkey_removed")
    assert removed["user_id"] == user_id and removed["details"]["passkey"] == first[:12]  # type: ignore[index]


async def test_adding_a_passkey_after_signing_out_is_recorded_as_failed(
    live: Services, alice: tuple[WebClient, str]
) -> None:
    client, user_id = alice
    begin = await client.post_json("/api/webauthn/register/begin", {"flow": "add"})
    credential = client.auth.create(begin.text, ORIGIN)
    await client.post_form("/logout", {})
    finish = await client.post_json("/api/webauthn/register/finish", {"credential": credential})
    assert finish.status_code == 400
    row = last(live, "passkey_added")
    assert not row["success"] and row["user_id"] == user_id
    assert row["reason"] == "expired or replayed ceremony"


# --- OpenID Connect -----------------------------------------------------------------------------


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


async def _authorize(client: WebClient, client_id: str, challenge: str) -> str:
    """Consent in the browser and return the authorization code."""
    query = {
        "client_id": client_id,
        "redirect_uri": CALLBACK,
        "response_type": "code",
        "scope": "openid profile offline_access",
        "state": "st",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    consent = await client.http.get("/authorize", params=query)
    assert consent.status_code == 200, consent.text
    allowed = await client.post_form("/authorize", {"decision": "allow"}, params=query)
    assert allowed.status_code in (302, 303), allowed.text
    return parse_qs(urlsplit(allowed.headers["location"]).query)["code"][0]


async def test_oidc_consent_tokens_refresh_revocation_and_withdrawal_are_recorded(
    live: Services, alice: tuple[WebClient, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client, user_id = alice
    app, secret = live.clients.create("Memos", [CALLBACK])
    assert secret is not None
    verifier, challenge = _pkce()
    code = await _authorize(client, app.client_id, challenge)
    consent = last(live, "consent_given")
    assert consent["success"] and consent["user_id"] == user_id
    assert consent["details"] == {  # type: ignore[comparison-overlap]
        "client_id": app.client_id,
        "client_name": "Memos",
        "scope": "offline_access openid profile",
    }

    auth = (app.client_id, secret)
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK}
    token = await client.http.post(
        "/api/oidc/token", data={**form, "code_verifier": verifier}, auth=auth
    )
    assert token.status_code == 200, token.text
    tokens = token.json()
    issued = last(live, "token_issued")
    assert issued["user_id"] == user_id and issued["actor_kind"] == "system"
    assert issued["actor_id"] == app.client_id and issued["ip"] == IP
    assert issued["details"] == {  # type: ignore[comparison-overlap]
        "client_id": app.client_id,
        "client_name": "Memos",
        "grant_type": "authorization_code",
        "scope": "openid profile offline_access",
        "refresh_token": True,
        "access_token_format": "opaque",
        "audience": app.client_id,
        "token_type": "Bearer",
    }

    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    refreshed = await client.http.post("/api/oidc/token", data=refresh, auth=auth)
    assert refreshed.status_code == 200, refreshed.text
    assert last(live, "token_refreshed")["details"]["grant_type"] == "refresh_token"  # type: ignore[index]

    revoke = {"token": refreshed.json()["access_token"], "token_type_hint": "access_token"}
    assert (await client.http.post("/api/oidc/revoke", data=revoke, auth=auth)).status_code == 200
    revoked = last(live, "token_revoked")
    assert revoked["user_id"] == user_id
    assert revoked["details"]["cause"] == "revoked by the app (access token)"  # type: ignore[index]

    withdraw = {"client_id": app.client_id}
    assert (await client.post_form("/account/apps/revoke", withdraw)).status_code == 303
    withdrawn = last(live, "consent_withdrawn")
    assert withdrawn["user_id"] == user_id and withdrawn["details"]["client_name"] == "Memos"  # type: ignore[index]

    secrets_seen = [
        secret,
        code,
        verifier,
        tokens["access_token"],
        tokens["refresh_token"],
        tokens["id_token"],
        refreshed.json()["access_token"],
        refreshed.json()["refresh_token"],
    ]
    _assert_nothing_secret(live, caplog, secrets_seen)


async def test_declined_consent_is_recorded_as_failed(
    live: Services, alice: tuple[WebClient, str]
) -> None:
    client, user_id = alice
    app, _ = live.clients.create("Memos", [CALLBACK])
    _, challenge = _pkce()
    query = {
        "client_id": app.client_id,
        "redirect_uri": CALLBACK,
        "response_type": "code",
        "scope": "openid",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    denied = await client.post_form("/authorize", {"decision": "deny"}, params=query)
    assert "access_denied" in denied.headers["location"]
    row = last(live, "consent_given")
    assert not row["success"] and row["reason"] == "declined by the user"
    assert row["user_id"] == user_id


async def test_replayed_authorization_code_is_recorded_as_token_revocation(
    live: Services, alice: tuple[WebClient, str]
) -> None:
    client, user_id = alice
    app, secret = live.clients.create("Memos", [CALLBACK])
    verifier, challenge = _pkce()
    code = await _authorize(client, app.client_id, challenge)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": CALLBACK,
        "code_verifier": verifier,
    }
    auth = (app.client_id, secret or "")
    assert (await client.http.post("/api/oidc/token", data=form, auth=auth)).status_code == 200
    assert (await client.http.post("/api/oidc/token", data=form, auth=auth)).status_code == 400
    row = last(live, "token_revoked")
    assert row["user_id"] == user_id
    assert row["details"]["cause"] == "authorization code replayed"  # type: ignore[index]


# --- failures of the audit log itself, and secrets -------------------------------------------


async def test_failed_audit_write_is_logged_and_the_sign_in_goes_ahead(
    live: Services, alice: tuple[WebClient, str], caplog: pytest.LogCaptureFixture
) -> None:
    client, _ = alice
    live.db.execute("DROP TABLE audit_log")
    with caplog.at_level(logging.ERROR, logger="passgate.audit"):
        response = await client.sign_in()
    assert response.status_code == 200 and client.session_cookie()
    assert "audit event sign_in" in caplog.text and "not recorded" in caplog.text


async def test_failed_audit_write_does_not_turn_a_refusal_into_a_sign_in(
    live: Services, alice: tuple[WebClient, str], caplog: pytest.LogCaptureFixture
) -> None:
    client, _ = alice
    await client.post_form("/logout", {})
    live.db.execute("DROP TABLE audit_log")
    with caplog.at_level(logging.ERROR, logger="passgate.audit"):
        refused = await client.sign_in(origin="https://evil.example.net")
        wrong_code = await client.post_form("/login/code", {"code": "WRONGCODE2345678"})
    assert refused.status_code == 400 and wrong_code.status_code == 400
    assert client.session_cookie() is None
    assert "reason='wrong origin or RP ID'" in caplog.text


async def test_no_cookie_code_or_passkey_secret_reaches_the_audit_log_or_logs(
    live: Services, make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with WebClient(live, IP) as client:
        await client.set_up("alice")
        seen: list[str] = []
        options = await client.begin_sign_in()
        answer = client.auth.get(options, ORIGIN)
        seen += [answer["response"]["signature"], answer["response"]["authenticatorData"]]
        finish = await client.post_json("/api/webauthn/login/finish", {"credential": answer})
        assert finish.status_code == 200
        code = live.login_codes.issue("alice")
        await client.post_form("/login/code", {"code": code})
        await client.post_form("/login/code", {"code": code})  # used: refused
        await client.post_form("/account/sessions/end-all", {})
        seen += [code, *[c.value for c in client.http.cookies.jar if c.value]]
    public_keys = [
        p.public_key for p in live.passkeys.list_for_user(live.users.get_user_by_name("alice").id)
    ]
    assert len(audit_rows(live)) >= 5
    _assert_nothing_secret(live, caplog, seen + public_keys)


def _assert_nothing_secret(
    services: Services, caplog: pytest.LogCaptureFixture, values: list[str]
) -> None:
    rows = str(services.db.fetchall("SELECT * FROM audit_log"))
    # httpx is the test's browser and app (it logs the URLs it fetches), not Passgate.
    logged = "\n".join(
        r.getMessage() for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))
    )
    for value in values:
        assert len(value) >= 12, value
        assert value not in rows, f"secret {value[:6]}… in the audit log"
        assert value not in logged, f"secret {value[:6]}… in a log line"


async def test_reused_refresh_token_is_recorded_as_family_revocation(
    live: Services, alice: tuple[WebClient, str]
) -> None:
    client, user_id = alice
    app, secret = live.clients.create("Memos", [CALLBACK])
    verifier, challenge = _pkce()
    code = await _authorize(client, app.client_id, challenge)
    auth = (app.client_id, secret or "")
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK}
    tokens = await client.http.post(
        "/api/oidc/token", data={**form, "code_verifier": verifier}, auth=auth
    )
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens.json()["refresh_token"]}
    assert (await client.http.post("/api/oidc/token", data=refresh, auth=auth)).status_code == 200
    assert (await client.http.post("/api/oidc/token", data=refresh, auth=auth)).status_code == 400
    row = last(live, "token_revoked")
    assert row["user_id"] == user_id and row["actor_id"] == app.client_id
    assert row["details"]["cause"] == "refresh token reused"  # type: ignore[index]


async def test_rp_initiated_logout_records_sign_out_with_the_client(
    live: Services, alice: tuple[WebClient, str]
) -> None:
    client, user_id = alice
    form = {"client_id": "memos-client", "target": ""}
    assert (await client.post_form("/api/oidc/end-session/confirm", form)).status_code == 303
    row = last(live, "sign_out")
    assert row["user_id"] == user_id
    assert row["details"] == {"via": "oidc_end_session", "client_id": "memos-client"}  # type: ignore[comparison-overlap]
