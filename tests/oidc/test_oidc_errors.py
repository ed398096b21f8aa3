"""OpenID Connect when things go wrong: every bad request gets the error the specs name, in the
place they name (a page when the client or redirect URI is unknown, a redirect to the app
otherwise, JSON from the token endpoint), and nothing is issued that should not be.

The real ASGI app runs in-process; a browser is "signed in" by starting a session through the
session service and setting its cookie, as a passkey sign-in would.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import html
import re
import time
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit

import httpx
import pytest
from authlib.common.security import generate_token

from gateway.accounts.users import User
from gateway.audit.log import CLI
from tests.oidc.in_process import (
    APP,
    CALLBACK,
    LOGOUT,
    OTHER_CALLBACK,
    Flow,
    Op,
    Rp,
    assert_error_page,
    assert_token_error,
    redirect_query,
)

# --- /authorize: errors shown on a page -------------------------------------------------------


def test_unregistered_redirect_uri_is_shown_on_a_page_never_redirected_to(
    op: Op, alice: User
) -> None:
    rp = op.client()
    op.sign_in(alice)
    op.consent(alice, rp)
    evil = "https://evil.example.net/steal"
    response = op.authorize(op.flow(rp).params(redirect_uri=evil))
    assert_error_page(response, op)
    assert "not supported by client" in response.text


def test_redirect_uri_that_only_shares_a_prefix_is_refused(op: Op, alice: User) -> None:
    rp = op.client()
    op.sign_in(alice)
    op.consent(alice, rp)
    assert_error_page(op.authorize(op.flow(rp).params(redirect_uri=CALLBACK + "/../x")), op)
    assert_error_page(op.authorize(op.flow(rp).params(redirect_uri=CALLBACK + "?a=1")), op)


def test_unknown_client_id_is_shown_on_a_page(op: Op, alice: User) -> None:
    op.sign_in(alice)
    flow = op.flow(Rp("no-such-client", None))
    response = op.authorize(flow.params())
    assert_error_page(response, op)
    assert "does not exist" in response.text


def test_missing_client_id_is_shown_on_a_page(op: Op, alice: User) -> None:
    rp = op.client()
    op.sign_in(alice)
    assert_error_page(op.authorize(op.flow(rp).params(client_id=None)), op)


# --- /authorize: errors sent back to the app, with state and iss ------------------------------


def assert_redirected_error(response: httpx.Response, flow: Flow, error: str) -> None:
    assert response.status_code == 302, response.text
    query = redirect_query(response, flow.rp.redirect_uri)
    assert query["error"] == error, query
    assert query["state"] == flow.state
    assert query["iss"] == APP
    assert "code" not in query


def test_discovery_promises_the_iss_parameter(op: Op) -> None:
    meta = op.backend.get("/.well-known/openid-configuration").json()
    assert meta["authorization_response_iss_parameter_supported"] is True


def test_successful_authorization_response_carries_iss(op: Op, alice: User) -> None:
    rp = op.client()
    op.sign_in(alice)
    op.consent(alice, rp)
    flow = op.flow(rp)
    query = redirect_query(op.authorize(flow.params()), CALLBACK)
    assert query["iss"] == APP and query["state"] == flow.state and query["code"]


def test_public_client_without_pkce_gets_invalid_request(op: Op, alice: User) -> None:
    rp = op.client(public=True)
    op.sign_in(alice)
    op.consent(alice, rp)
    flow = op.flow(rp)
    response = op.authorize(flow.params(code_challenge=None, code_challenge_method=None))
    assert_redirected_error(response, flow, "invalid_request")


def test_client_flagged_pkce_required_without_pkce_gets_invalid_request(
    op: Op, alice: User
) -> None:
    rp = op.client(pkce_required=True)
    op.sign_in(alice)
    op.consent(alice, rp)
    flow = op.flow(rp)
    response = op.authorize(flow.params(code_challenge=None, code_challenge_method=None))
    assert_redirected_error(response, flow, "invalid_request")


@pytest.mark.parametrize("method", ["plain", None])
def test_pkce_other_than_s256_is_refused(op: Op, alice: User, method: str | None) -> None:
    """Only S256: `plain` (and a challenge without a method, which means plain) are refused."""
    rp = op.client(public=True)
    op.sign_in(alice)
    op.consent(alice, rp)
    flow = op.flow(rp)
    response = op.authorize(flow.params(code_challenge=flow.verifier, code_challenge_method=method))
    assert_redirected_error(response, flow, "invalid_request")


def test_unsupported_response_type_is_sent_back_to_the_app(op: Op, alice: User) -> None:
    rp = op.client()
    op.sign_in(alice)
    op.consent(alice, rp)
    flow = op.flow(rp)
    response = op.authorize(flow.params(response_type="token"))
    assert_redirected_error(response, flow, "unsupported_response_type")


def test_unknown_scope_is_sent_back_to_the_app(op: Op, alice: User) -> None:
    rp = op.client()
    op.sign_in(alice)
    op.consent(alice, rp)
    flow = op.flow(rp)
    response = op.authorize(flow.params(scope="openid admin"))
    assert_redirected_error(response, flow, "invalid_scope")


def test_unsupported_response_type_with_bad_redirect_uri_stays_on_a_page(
    op: Op, alice: User
) -> None:
    rp = op.client()
    op.sign_in(alice)
    flow = op.flow(rp)
    response = op.authorize(
        flow.params(response_type="token", redirect_uri="https://evil.example.net/")
    )
    assert_error_page(response, op)


def test_malformed_max_age_is_sent_back_as_invalid_request(op: Op, alice: User) -> None:
    rp = op.client()
    op.sign_in(alice)
    op.consent(alice, rp)
    flow = op.flow(rp)
    assert_redirected_error(op.authorize(flow.params(max_age="-5")), flow, "invalid_request")


@pytest.mark.parametrize(
    ("parameter", "error"),
    [("request", "request_not_supported"), ("request_uri", "request_uri_not_supported")],
)
def test_request_objects_are_refused(op: Op, alice: User, parameter: str, error: str) -> None:
    """Discovery disclaims request objects, and one sent anyway is not silently ignored."""
    meta = op.backend.get("/.well-known/openid-configuration").json()
    assert meta[f"{parameter}_parameter_supported"] is False
    rp = op.client()
    op.sign_in(alice)
    op.consent(alice, rp)
    flow = op.flow(rp)
    response = op.authorize(flow.params(**{parameter: "eyJhbGciOiJub25lIn0.e30."}))
    assert_redirected_error(response, flow, error)


# --- /authorize: prompt, max_age, auth_time -------------------------------------------------


def test_prompt_none_without_a_session_is_login_required(op: Op, alice: User) -> None:
    rp = op.client()
    flow = op.flow(rp)
    assert_redirected_error(op.authorize(flow.params(prompt="none")), flow, "login_required")


def test_prompt_none_without_consent_is_consent_required(op: Op, alice: User) -> None:
    rp = op.client()
    op.sign_in(alice)
    flow = op.flow(rp)
    response = op.authorize(flow.params(prompt="none"))
    assert_redirected_error(response, flow, "consent_required")


def test_prompt_none_with_a_stale_sign_in_is_login_required(op: Op, alice: User) -> None:
    rp = op.client()
    op.sign_in(alice, age=600)
    op.consent(alice, rp)
    flow = op.flow(rp)
    response = op.authorize(flow.params(prompt="none", max_age="300"))
    assert_redirected_error(response, flow, "login_required")


def test_prompt_none_outside_the_allowed_groups_is_access_denied(op: Op, alice: User) -> None:
    op.services.users.create_group("admins")
    rp = op.client(allowed_groups=["admins"])
    op.sign_in(alice)
    op.consent(alice, rp)
    flow = op.flow(rp)
    assert_redirected_error(op.authorize(flow.params(prompt="none")), flow, "access_denied")


def test_prompt_none_signed_in_with_consent_issues_a_code_silently(op: Op, alice: User) -> None:
    rp = op.client()
    op.sign_in(alice)
    op.consent(alice, rp)
    flow = op.flow(rp)
    assert op.code(flow, prompt="none")


def test_prompt_consent_asks_again_even_with_consent_on_record(op: Op, alice: User) -> None:
    rp = op.client()
    op.sign_in(alice)
    op.consent(alice, rp)
    response = op.authorize(op.flow(rp).params(prompt="consent"))
    assert response.status_code == 200 and "Allow Memos?" in response.text


def consent_form(op: Op, flow: Flow) -> tuple[str, dict[str, str]]:
    """The consent page's form: where it posts and its CSRF token."""
    page = op.authorize(flow.params())
    assert page.status_code == 200 and "Allow Memos?" in page.text
    action = re.search(r'action="([^"]+)"', page.text)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert action is not None and token is not None
    return html.unescape(action.group(1)), {"csrf_token": token.group(1)}


def test_denying_consent_sends_access_denied_to_the_app(op: Op, alice: User) -> None:
    rp = op.client()
    op.sign_in(alice)
    flow = op.flow(rp)
    action, form = consent_form(op, flow)
    response = op.browser.post(action, data={**form, "decision": "deny"}, headers={"Origin": APP})
    assert_redirected_error(response, flow, "access_denied")
    assert op.services.oauth.consented_scope(alice.id, rp.client_id) == set()


def test_allowing_consent_issues_a_code_and_remembers_it(op: Op, alice: User) -> None:
    rp = op.client()
    op.sign_in(alice)
    flow = op.flow(rp)
    action, form = consent_form(op, flow)
    response = op.browser.post(action, data={**form, "decision": "allow"}, headers={"Origin": APP})
    assert redirect_query(response, CALLBACK)["code"]
    assert "openid" in op.services.oauth.consented_scope(alice.id, rp.client_id)


def test_consent_from_another_site_is_refused(op: Op, alice: User) -> None:
    rp = op.client()
    op.sign_in(alice)
    flow = op.flow(rp)
    action, form = consent_form(op, flow)
    response = op.browser.post(
        action, data={**form, "decision": "allow"}, headers={"Origin": "https://evil.example.net"}
    )
    assert response.status_code == 403 and "location" not in response.headers
    assert op.services.oauth.consented_scope(alice.id, rp.client_id) == set()


def sign_in_again(op: Op, user: User, response: httpx.Response) -> httpx.Response:
    """Follow a redirect to the sign-in page as a browser would after a fresh passkey sign-in."""
    assert response.status_code == 303
    login = urlsplit(response.headers["location"])
    assert login.path == "/login"
    params = parse_qs(login.query)
    assert params["force"] == ["1"]
    op.sign_in(user)
    back = urlsplit(params["rd"][0])
    return op.browser.get(f"{back.path}?{back.query}")


def test_prompt_login_forces_a_fresh_sign_in_and_auth_time_shows_it(op: Op, alice: User) -> None:
    rp = op.client()
    op.sign_in(alice, age=3600)
    op.consent(alice, rp)
    flow = op.flow(rp)
    first = op.authorize(flow.params(prompt="login"))
    before = time.time()
    callback = sign_in_again(op, alice, first)
    code = redirect_query(callback, CALLBACK)["code"]
    tokens = op.exchange(flow, code).json()
    assert op.id_token_claims(tokens["id_token"])["auth_time"] >= int(before)


def test_prompt_login_keeps_asking_for_consent_when_also_asked(op: Op, alice: User) -> None:
    rp = op.client()
    op.sign_in(alice, age=3600)
    op.consent(alice, rp)
    first = op.authorize(op.flow(rp).params(prompt="login consent"))
    page = sign_in_again(op, alice, first)
    assert page.status_code == 200 and "Allow Memos?" in page.text


@pytest.mark.parametrize("max_age", ["0", "30"])
def test_max_age_exceeded_forces_a_fresh_sign_in_once(op: Op, alice: User, max_age: str) -> None:
    rp = op.client()
    op.sign_in(alice, age=600)
    op.consent(alice, rp)
    flow = op.flow(rp)
    before = time.time()
    callback = sign_in_again(op, alice, op.authorize(flow.params(max_age=max_age)))
    code = redirect_query(callback, CALLBACK)["code"]
    claims = op.id_token_claims(op.exchange(flow, code).json()["id_token"])
    assert claims["auth_time"] >= int(before)


def test_max_age_met_issues_a_code_with_the_sessions_auth_time(op: Op, alice: User) -> None:
    rp = op.client()
    op.sign_in(alice, age=100)
    op.consent(alice, rp)
    flow = op.flow(rp)
    code = op.code(flow, max_age="3600")
    claims = op.id_token_claims(op.exchange(flow, code).json()["id_token"])
    assert time.time() - 110 < claims["auth_time"] <= time.time() - 99


@pytest.mark.parametrize(
    ("method", "amr"),
    [("passkey", ["hwk", "user"]), ("setup", ["hwk", "user"]), ("login_code", ["otp"])],
)
def test_amr_says_how_the_session_signed_in(
    op: Op, alice: User, method: str, amr: list[str]
) -> None:
    rp = op.client()
    op.sign_in(alice, method=method)
    op.consent(alice, rp)
    claims = op.id_token_claims(op.tokens(op.flow(rp))["id_token"])
    assert claims["amr"] == amr


def test_amr_is_left_out_when_the_sign_in_method_is_unknown(op: Op, alice: User) -> None:
    rp = op.client()
    op.sign_in(alice, method="")
    op.consent(alice, rp)
    assert "amr" not in op.id_token_claims(op.tokens(op.flow(rp))["id_token"])


# --- /authorize: who may sign in ------------------------------------------------------------


def test_user_outside_the_allowed_groups_sees_not_allowed_and_gets_no_code(
    op: Op, alice: User
) -> None:
    op.services.users.create_group("admins")
    rp = op.client(allowed_groups=["admins"])
    op.sign_in(alice)
    op.consent(alice, rp)
    response = op.authorize(op.flow(rp).params())
    assert response.status_code == 403 and "Not allowed" in response.text
    assert "location" not in response.headers
    assert not op.services.db.fetchall("SELECT code_hash FROM oauth_codes")


def test_disabled_user_is_sent_to_sign_in_and_gets_no_code(op: Op, alice: User) -> None:
    rp = op.client()
    op.sign_in(alice)
    op.consent(alice, rp)
    asyncio.run(op.services.admin.set_disabled(CLI, "alice", True))
    response = op.authorize(op.flow(rp).params())
    assert response.status_code == 303 and urlsplit(response.headers["location"]).path == "/login"
    assert not op.services.db.fetchall("SELECT code_hash FROM oauth_codes")


def test_user_disabled_after_the_code_gets_no_tokens(op: Op, alice: User) -> None:
    rp = op.client()
    op.sign_in(alice)
    op.consent(alice, rp)
    flow = op.flow(rp)
    code = op.code(flow)
    asyncio.run(op.services.admin.set_disabled(CLI, "alice", True))
    assert_token_error(op.exchange(flow, code), "invalid_grant")


# --- /authorize by POST (OpenID Connect Core 3.1.2.1) -----------------------------------------

APP_SITE = "https://memos.example.com"  # where an app's auto-submitted form comes from
EVERY_PARAMETER = {
    "prompt": "consent",
    "max_age": "3600",
    "login_hint": "alice",
    "display": "page",
    "ui_locales": "en",
    "claims_locales": "en",
    "acr_values": "passkey",
}


def authorize_by_post(op: Op, params: dict[str, str]) -> httpx.Response:
    """Send the authorization request as a form from the app's site, as mod_auth_openidc's
    `OIDCProviderAuthRequestMethod POST` does (no CSRF token: it is not our form), and follow
    Passgate's redirect to the same request as a GET."""
    posted = op.browser.post("/authorize", data=params, headers={"Origin": APP_SITE})
    assert posted.status_code == 303, posted.text
    location = posted.headers["location"]
    assert urlsplit(location).path == "/authorize"
    return op.browser.get(location.removeprefix(APP))


def test_authorization_request_by_post_becomes_the_same_request_as_a_get(op: Op) -> None:
    rp = op.client()
    params = op.flow(rp).params(**EVERY_PARAMETER)
    posted = op.browser.post("/authorize", data=params, headers={"Origin": APP_SITE})
    assert posted.status_code == 303
    location = urlsplit(posted.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == f"{APP}/authorize"
    assert parse_qsl(location.query) == list(params.items())


def test_authorization_request_by_post_issues_a_code_the_token_endpoint_takes(
    op: Op, alice: User
) -> None:
    rp = op.client()
    op.sign_in(alice)
    op.consent(alice, rp)
    flow = op.flow(rp)
    query = redirect_query(authorize_by_post(op, flow.params()), CALLBACK)
    assert query["state"] == flow.state and query["iss"] == APP
    tokens = op.exchange(flow, query["code"]).json()
    assert op.id_token_claims(tokens["id_token"])["nonce"] == flow.nonce


@pytest.mark.parametrize(
    ("signed_in", "overrides"),
    [
        (False, {"prompt": "none"}),
        (False, {"login_hint": "alice"}),
        (True, {"prompt": "consent"}),
        (True, {"prompt": "login", "max_age": "0"}),
        (True, {"request": "eyJhbGciOiJub25lIn0.e30."}),
        (True, {"code_challenge_method": "plain"}),
        (True, {"redirect_uri": "https://evil.example.net/steal"}),
    ],
    ids=[
        "prompt-none",
        "login-hint",
        "prompt-consent",
        "max-age",
        "request-object",
        "pkce",
        "bad-redirect",
    ],
)
def test_authorization_request_by_post_is_answered_as_by_get(
    op: Op, alice: User, signed_in: bool, overrides: dict[str, str]
) -> None:
    rp = op.client()
    op.consent(alice, rp)
    if signed_in:
        op.sign_in(alice)
    params = op.flow(rp).params(**overrides)
    by_get, by_post = op.authorize(params), authorize_by_post(op, params)
    assert by_post.status_code == by_get.status_code
    assert by_post.headers.get("location") == by_get.headers.get("location")
    title = re.compile(r"<h1>(.*?)</h1>")
    assert title.findall(by_post.text) == title.findall(by_get.text)


def test_authorization_request_by_post_must_be_a_form(op: Op) -> None:
    rp = op.client()
    response = op.browser.post("/authorize", json=op.flow(rp).params())
    assert response.status_code == 400 and "location" not in response.headers
    assert "application/x-www-form-urlencoded" in response.text


def test_consent_decision_without_its_csrf_token_is_refused(op: Op, alice: User) -> None:
    """A cross-site POST that carries the consent form's field is taken for a decision, and a
    decision needs the consent page's CSRF token: it cannot pass for an app's request."""
    rp = op.client()
    op.sign_in(alice)
    query = urlencode(op.flow(rp).params())
    response = op.browser.post(
        f"/authorize?{query}", data={"decision": "allow"}, headers={"Origin": APP_SITE}
    )
    assert response.status_code == 403 and "location" not in response.headers
    assert op.services.oauth.consented_scope(alice.id, rp.client_id) == set()


# --- token endpoint: codes ------------------------------------------------------------------


@pytest.fixture
def signed_in_flow(op: Op, alice: User) -> Flow:
    rp = op.client(public=True, refresh_tokens=True)
    op.sign_in(alice)
    op.consent(alice, rp)
    return op.flow(rp)


def test_wrong_pkce_verifier_is_invalid_grant(op: Op, signed_in_flow: Flow) -> None:
    code = op.code(signed_in_flow)
    response = op.exchange(signed_in_flow, code, verifier=generate_token(48))
    assert_token_error(response, "invalid_grant")


def test_missing_pkce_verifier_is_invalid_request(op: Op, signed_in_flow: Flow) -> None:
    code = op.code(signed_in_flow)
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK}
    assert_token_error(op.token_request(signed_in_flow.rp, data), "invalid_request")


def test_replayed_code_is_refused_and_revokes_the_tokens_it_gave(
    op: Op, signed_in_flow: Flow
) -> None:
    code = op.code(signed_in_flow)
    first = op.exchange(signed_in_flow, code)
    assert first.status_code == 200
    assert op.userinfo(first.json()["access_token"]).status_code == 200
    assert_token_error(op.exchange(signed_in_flow, code), "invalid_grant")
    assert op.userinfo(first.json()["access_token"]).status_code == 401
    refresh = {"grant_type": "refresh_token", "refresh_token": first.json()["refresh_token"]}
    assert_token_error(op.token_request(signed_in_flow.rp, refresh), "invalid_grant")


def test_replayed_code_also_revokes_tokens_refreshed_from_it(op: Op, signed_in_flow: Flow) -> None:
    code = op.code(signed_in_flow)
    first = op.exchange(signed_in_flow, code).json()
    refreshed = refresh(op, signed_in_flow.rp, first["refresh_token"]).json()
    assert op.userinfo(refreshed["access_token"]).status_code == 200
    assert_token_error(op.exchange(signed_in_flow, code), "invalid_grant")
    assert op.userinfo(refreshed["access_token"]).status_code == 401
    assert_token_error(refresh(op, signed_in_flow.rp, refreshed["refresh_token"]), "invalid_grant")


def test_code_issued_to_another_client_is_invalid_grant(op: Op, signed_in_flow: Flow) -> None:
    code = op.code(signed_in_flow)
    other = op.client(public=True)
    assert_token_error(op.exchange(signed_in_flow, code, rp=other), "invalid_grant")
    # The rightful client can still use it: a stranger's attempt does not burn it.
    assert op.exchange(signed_in_flow, code).status_code == 200


def test_code_with_a_different_redirect_uri_is_invalid_grant(op: Op, alice: User) -> None:
    rp = op.client(redirect_uris=[CALLBACK, OTHER_CALLBACK])
    op.sign_in(alice)
    op.consent(alice, rp)
    flow = op.flow(rp)
    code = op.code(flow)
    assert_token_error(op.exchange(flow, code, redirect_uri=OTHER_CALLBACK), "invalid_grant")


def test_codes_live_sixty_seconds(op: Op, signed_in_flow: Flow) -> None:
    op.code(signed_in_flow)
    row = op.services.db.fetchone("SELECT created_at, expires_at FROM oauth_codes")
    assert row is not None and float(row[1]) - float(row[0]) == 60


def test_expired_code_is_invalid_grant(op: Op, signed_in_flow: Flow) -> None:
    code = op.code(signed_in_flow)
    op.expire("oauth_codes", "expires_at")
    assert_token_error(op.exchange(signed_in_flow, code), "invalid_grant")


def test_redirect_uri_may_be_left_out_of_both_requests(op: Op, alice: User) -> None:
    """RFC 6749 4.1.3: redirect_uri is required at the token endpoint only if it was sent to
    /authorize; a client with one callback may leave it out of both."""
    rp = op.client()
    op.sign_in(alice)
    op.consent(alice, rp)
    flow = op.flow(rp)
    code = op.code(flow, redirect_uri=None)
    data = {"grant_type": "authorization_code", "code": code, "code_verifier": flow.verifier}
    assert op.token_request(rp, data).status_code == 200


# --- token endpoint: refresh tokens ---------------------------------------------------------


def refresh(op: Op, rp: Rp, token: str) -> httpx.Response:
    return op.token_request(rp, {"grant_type": "refresh_token", "refresh_token": token})


def test_reused_refresh_token_is_refused_and_revokes_the_whole_family(
    op: Op, signed_in_flow: Flow
) -> None:
    rp = signed_in_flow.rp
    first = op.tokens(signed_in_flow)
    second = refresh(op, rp, first["refresh_token"])
    assert second.status_code == 200
    third = refresh(op, rp, second.json()["refresh_token"]).json()
    assert op.userinfo(third["access_token"]).status_code == 200

    assert_token_error(refresh(op, rp, first["refresh_token"]), "invalid_grant")
    assert op.userinfo(third["access_token"]).status_code == 401
    assert_token_error(refresh(op, rp, third["refresh_token"]), "invalid_grant")


def test_refresh_token_of_another_client_is_invalid_grant(op: Op, signed_in_flow: Flow) -> None:
    tokens = op.tokens(signed_in_flow)
    other = op.client(public=True)
    assert_token_error(refresh(op, other, tokens["refresh_token"]), "invalid_grant")


def test_refresh_cannot_widen_the_scope(op: Op, alice: User) -> None:
    rp = op.client(public=True, refresh_tokens=True)
    op.sign_in(alice)
    op.consent(alice, rp)
    tokens = op.tokens(op.flow(rp))  # public client's flow: PKCE, no secret
    data = {
        "grant_type": "refresh_token",
        "refresh_token": tokens["refresh_token"],
        "scope": "openid profile email groups offline_access",
    }
    assert tokens["scope"] == "openid profile email groups"
    assert_token_error(op.token_request(rp, data), "invalid_scope")


def test_refresh_for_a_disabled_user_is_invalid_grant(op: Op, signed_in_flow: Flow) -> None:
    tokens = op.tokens(signed_in_flow)
    asyncio.run(op.services.admin.set_disabled(CLI, "alice", True))
    assert_token_error(refresh(op, signed_in_flow.rp, tokens["refresh_token"]), "invalid_grant")


def test_expired_refresh_token_is_invalid_grant(op: Op, signed_in_flow: Flow) -> None:
    tokens = op.tokens(signed_in_flow)
    op.expire("oauth_tokens", "refresh_expires_at")
    assert_token_error(refresh(op, signed_in_flow.rp, tokens["refresh_token"]), "invalid_grant")


# --- token endpoint: client authentication and malformed requests -----------------------------


@pytest.fixture
def confidential_flow(op: Op, alice: User) -> Flow:
    rp = op.client()
    op.sign_in(alice)
    op.consent(alice, rp)
    return op.flow(rp)


def test_wrong_client_secret_with_basic_auth_is_401_with_www_authenticate(
    op: Op, confidential_flow: Flow
) -> None:
    code = op.code(confidential_flow)
    wrong = dataclasses.replace(confidential_flow.rp, secret="not-the-secret")
    response = op.exchange(confidential_flow, code, rp=wrong)
    assert_token_error(response, "invalid_client", 401)
    assert response.headers["www-authenticate"].startswith("Basic")
    # The code was not spent on a failed client authentication.
    assert op.exchange(confidential_flow, code).status_code == 200


def test_wrong_client_secret_in_the_form_is_invalid_client(op: Op, confidential_flow: Flow) -> None:
    code = op.code(confidential_flow)
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": CALLBACK,
        "code_verifier": confidential_flow.verifier,
        "client_id": confidential_flow.rp.client_id,
        "client_secret": "not-the-secret",
    }
    response = op.backend.post("/api/oidc/token", data=data)
    assert_token_error(response, "invalid_client", 401)


def test_confidential_client_without_a_secret_is_invalid_client(
    op: Op, confidential_flow: Flow
) -> None:
    code = op.code(confidential_flow)
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": CALLBACK,
        "code_verifier": confidential_flow.verifier,
        "client_id": confidential_flow.rp.client_id,
    }
    assert_token_error(op.backend.post("/api/oidc/token", data=data), "invalid_client", 401)


def test_client_secret_post_works(op: Op, confidential_flow: Flow) -> None:
    code = op.code(confidential_flow)
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": CALLBACK,
        "code_verifier": confidential_flow.verifier,
        "client_id": confidential_flow.rp.client_id,
        "client_secret": confidential_flow.rp.secret or "",
    }
    response = op.backend.post("/api/oidc/token", data=data)
    assert response.status_code == 200 and response.json()["id_token"]
    assert response.headers["cache-control"] == "no-store"


def test_client_secret_basic_works(op: Op, confidential_flow: Flow) -> None:
    response = op.exchange(confidential_flow, op.code(confidential_flow))
    assert response.status_code == 200 and response.json()["token_type"] == "Bearer"


def test_confidential_client_may_skip_pkce(op: Op, confidential_flow: Flow) -> None:
    code = op.code(confidential_flow, code_challenge=None, code_challenge_method=None)
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK}
    assert op.token_request(confidential_flow.rp, data).status_code == 200


@pytest.mark.parametrize(
    "grant_type", ["password", "urn:ietf:params:oauth:grant-type:saml2-bearer", "implicit", ""]
)
def test_unsupported_grant_type_is_json_error(
    op: Op, confidential_flow: Flow, grant_type: str
) -> None:
    data = {"grant_type": grant_type, "username": "alice", "password": "x"}
    response = op.token_request(confidential_flow.rp, data)
    assert_token_error(response, "unsupported_grant_type")


def test_repeated_parameter_at_the_token_endpoint_is_invalid_request(
    op: Op, confidential_flow: Flow
) -> None:
    code = op.code(confidential_flow)
    body = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("code", "another"),
        ("redirect_uri", CALLBACK),
        ("code_verifier", confidential_flow.verifier),
    ]
    response = op.backend.post(
        "/api/oidc/token",
        content=urlencode(body),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        auth=confidential_flow.rp.basic,
    )
    assert_token_error(response, "invalid_request")


def code_request(op: Op, flow: Flow, **extra: str) -> dict[str, str]:
    """A token request for a fresh code of `flow`, with `extra` parameters in the body."""
    return {
        "grant_type": "authorization_code",
        "code": op.code(flow),
        "redirect_uri": CALLBACK,
        "code_verifier": flow.verifier,
        **extra,
    }


def assert_two_methods_refused(response: httpx.Response, *named: str) -> None:
    assert_token_error(response, "invalid_request")
    description = response.json()["error_description"]
    assert "one way only" in description and all(name in description for name in named)


def test_basic_and_client_secret_together_is_invalid_request_and_issues_nothing(
    op: Op, confidential_flow: Flow
) -> None:
    """RFC 6749 2.3: one client authentication method per request, even when both are right."""
    rp = confidential_flow.rp
    data = code_request(
        op, confidential_flow, client_id=rp.client_id, client_secret=rp.secret or ""
    )
    response = op.backend.post("/api/oidc/token", data=data, auth=rp.basic)
    assert_two_methods_refused(response, "HTTP Basic", "client_secret")
    assert not op.services.db.fetchall("SELECT id FROM oauth_tokens")


def test_basic_and_a_wrong_client_secret_together_is_invalid_request(
    op: Op, confidential_flow: Flow
) -> None:
    """The right Basic credentials do not make a wrong secret beside them count for nothing."""
    rp = confidential_flow.rp
    data = code_request(op, confidential_flow, client_secret="not-the-secret")
    response = op.backend.post("/api/oidc/token", data=data, auth=rp.basic)
    assert_two_methods_refused(response, "HTTP Basic", "client_secret")
    assert not op.services.db.fetchall("SELECT id FROM oauth_tokens")


def test_basic_and_client_assertion_together_is_invalid_request(
    op: Op, confidential_flow: Flow
) -> None:
    data = code_request(
        op,
        confidential_flow,
        client_assertion_type="urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        client_assertion="eyJhbGciOiJIUzI1NiJ9.e30.c2lnbmF0dXJl",
    )
    response = op.backend.post("/api/oidc/token", data=data, auth=confidential_flow.rp.basic)
    assert_two_methods_refused(response, "HTTP Basic", "client_assertion")
    assert not op.services.db.fetchall("SELECT id FROM oauth_tokens")


def test_refresh_with_two_client_authentication_methods_is_invalid_request(
    op: Op, alice: User
) -> None:
    rp = op.client(refresh_tokens=True)
    op.sign_in(alice)
    op.consent(alice, rp)
    tokens = op.tokens(op.flow(rp))
    data = {
        "grant_type": "refresh_token",
        "refresh_token": tokens["refresh_token"],
        "client_secret": rp.secret or "",
    }
    response = op.backend.post("/api/oidc/token", data=data, auth=rp.basic)
    assert_two_methods_refused(response, "HTTP Basic", "client_secret")
    assert refresh(op, rp, tokens["refresh_token"]).status_code == 200  # not spent


def test_client_id_beside_basic_credentials_is_not_a_second_method(
    op: Op, confidential_flow: Flow
) -> None:
    rp = confidential_flow.rp
    data = code_request(op, confidential_flow, client_id=rp.client_id)
    assert op.backend.post("/api/oidc/token", data=data, auth=rp.basic).status_code == 200


def test_basic_credentials_that_are_not_utf8_are_invalid_client(
    op: Op, confidential_flow: Flow
) -> None:
    data = code_request(op, confidential_flow)
    garbled = base64.b64encode(b"\xff\xfe:\xff").decode()
    response = op.backend.post(
        "/api/oidc/token", data=data, headers={"Authorization": f"Basic {garbled}"}
    )
    assert_token_error(response, "invalid_client", 401)
    assert "codec" not in response.text


def test_missing_code_is_invalid_request(op: Op, confidential_flow: Flow) -> None:
    data = {"grant_type": "authorization_code", "redirect_uri": CALLBACK}
    assert_token_error(op.token_request(confidential_flow.rp, data), "invalid_request")


def test_discovery_advertises_only_the_grants_that_work(op: Op) -> None:
    meta = op.backend.get("/.well-known/openid-configuration").json()
    assert meta["grant_types_supported"] == [
        "authorization_code",
        "refresh_token",
        "client_credentials",
        "urn:ietf:params:oauth:grant-type:device_code",
    ]
    assert meta["response_types_supported"] == ["code"]
    assert meta["code_challenge_methods_supported"] == ["S256"]


# --- userinfo -------------------------------------------------------------------------------


def test_userinfo_answers_get_and_post(op: Op, confidential_flow: Flow) -> None:
    access = op.tokens(confidential_flow)["access_token"]
    by_get = op.userinfo(access)
    by_post = op.backend.post("/api/oidc/userinfo", headers={"Authorization": f"Bearer {access}"})
    by_form = op.backend.post("/api/oidc/userinfo", data={"access_token": access})
    assert by_get.status_code == by_post.status_code == by_form.status_code == 200
    assert by_get.json() == by_post.json() == by_form.json()
    assert by_get.json()["preferred_username"] == "alice"


def test_token_sent_two_ways_to_userinfo_is_invalid_request(
    op: Op, confidential_flow: Flow
) -> None:
    access = op.tokens(confidential_flow)["access_token"]
    response = op.backend.post(
        "/api/oidc/userinfo",
        data={"access_token": access},
        headers={"Authorization": f"Bearer {access}"},
    )
    assert response.status_code == 400
    assert 'error="invalid_request"' in response.headers["www-authenticate"]


def test_expired_access_token_at_userinfo_is_401_invalid_token(
    op: Op, confidential_flow: Flow
) -> None:
    access = op.tokens(confidential_flow)["access_token"]
    op.expire("oauth_tokens", "access_expires_at")
    response = op.userinfo(access)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')


def test_unknown_access_token_at_userinfo_is_401_invalid_token(op: Op) -> None:
    response = op.userinfo("made-up")
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_userinfo_without_a_token_asks_for_one(op: Op) -> None:
    """RFC 6750 3.1: a request with no credentials gets a bare Bearer challenge, no error code."""
    response = op.backend.get("/api/oidc/userinfo")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "error=" not in response.headers["www-authenticate"]


def test_access_token_of_a_disabled_user_is_401(op: Op, confidential_flow: Flow) -> None:
    access = op.tokens(confidential_flow)["access_token"]
    asyncio.run(op.services.admin.set_disabled(CLI, "alice", True))
    assert op.userinfo(access).status_code == 401


# --- introspection and revocation -----------------------------------------------------------


def test_introspection_requires_client_authentication(op: Op, confidential_flow: Flow) -> None:
    access = op.tokens(confidential_flow)["access_token"]
    response = op.backend.post("/api/oidc/introspect", data={"token": access})
    assert_token_error(response, "invalid_client", 401)
    wrong = (confidential_flow.rp.client_id, "not-the-secret")
    response = op.backend.post("/api/oidc/introspect", data={"token": access}, auth=wrong)
    assert_token_error(response, "invalid_client", 401)


def test_introspection_with_two_client_authentication_methods_is_invalid_request(
    op: Op, confidential_flow: Flow
) -> None:
    rp = confidential_flow.rp
    access = op.tokens(confidential_flow)["access_token"]
    data = {"token": access, "client_id": rp.client_id, "client_secret": rp.secret or ""}
    response = op.backend.post("/api/oidc/introspect", data=data, auth=rp.basic)
    assert_two_methods_refused(response, "HTTP Basic", "client_secret")
    assert "active" not in response.json()


def test_client_cannot_introspect_another_clients_token(op: Op, confidential_flow: Flow) -> None:
    access = op.tokens(confidential_flow)["access_token"]
    other = op.client()
    response = op.backend.post("/api/oidc/introspect", data={"token": access}, auth=other.basic)
    assert response.status_code == 200 and response.json() == {"active": False}
    own = op.backend.post(
        "/api/oidc/introspect", data={"token": access}, auth=confidential_flow.rp.basic
    )
    assert own.json()["active"] is True


def test_introspecting_a_refresh_token_reports_its_own_lifetime(op: Op, alice: User) -> None:
    rp = op.client(refresh_tokens=True)
    op.sign_in(alice)
    op.consent(alice, rp)
    tokens = op.tokens(op.flow(rp))
    op.expire("oauth_tokens", "access_expires_at")
    data = {"token": tokens["refresh_token"], "token_type_hint": "refresh_token"}
    body = op.backend.post("/api/oidc/introspect", data=data, auth=rp.basic).json()
    assert body["active"] is True and body["exp"] > time.time() + 86400
    access = op.backend.post(
        "/api/oidc/introspect", data={"token": tokens["access_token"]}, auth=rp.basic
    )
    assert access.json() == {"active": False}


def test_revocation_requires_client_authentication(op: Op, confidential_flow: Flow) -> None:
    access = op.tokens(confidential_flow)["access_token"]
    response = op.backend.post("/api/oidc/revoke", data={"token": access})
    assert_token_error(response, "invalid_client", 401)
    assert op.userinfo(access).status_code == 200


def test_revocation_with_two_client_authentication_methods_is_refused_and_revokes_nothing(
    op: Op, confidential_flow: Flow
) -> None:
    rp = confidential_flow.rp
    access = op.tokens(confidential_flow)["access_token"]
    data = {"token": access, "client_secret": rp.secret or ""}
    response = op.backend.post("/api/oidc/revoke", data=data, auth=rp.basic)
    assert_two_methods_refused(response, "HTTP Basic", "client_secret")
    assert op.userinfo(access).status_code == 200


def test_client_cannot_revoke_another_clients_token(op: Op, confidential_flow: Flow) -> None:
    access = op.tokens(confidential_flow)["access_token"]
    other = op.client()
    response = op.backend.post("/api/oidc/revoke", data={"token": access}, auth=other.basic)
    assert response.status_code == 400
    assert op.userinfo(access).status_code == 200


def test_revoking_an_unknown_token_is_200(op: Op, confidential_flow: Flow) -> None:
    response = op.backend.post(
        "/api/oidc/revoke", data={"token": "never-issued"}, auth=confidential_flow.rp.basic
    )
    assert response.status_code == 200


def test_revoking_a_refresh_token_revokes_its_access_tokens(op: Op, alice: User) -> None:
    rp = op.client(refresh_tokens=True)
    op.sign_in(alice)
    op.consent(alice, rp)
    tokens = op.tokens(op.flow(rp))
    data = {"token": tokens["refresh_token"], "token_type_hint": "refresh_token"}
    assert op.backend.post("/api/oidc/revoke", data=data, auth=rp.basic).status_code == 200
    assert op.userinfo(tokens["access_token"]).status_code == 401
    assert_token_error(refresh(op, rp, tokens["refresh_token"]), "invalid_grant")


def test_public_client_revokes_its_own_token_without_a_secret(op: Op, signed_in_flow: Flow) -> None:
    access = op.tokens(signed_in_flow)["access_token"]
    data = {"token": access, "client_id": signed_in_flow.rp.client_id}
    assert op.backend.post("/api/oidc/revoke", data=data).status_code == 200
    assert op.userinfo(access).status_code == 401


# --- end-session ----------------------------------------------------------------------------


def end_session(op: Op, **params: str) -> httpx.Response:
    return op.browser.get("/api/oidc/end-session", params=params)


def confirm_sign_out(op: Op, page: httpx.Response, **changes: str) -> httpx.Response:
    """Press "Sign out" on the confirmation page (with `changes` to its hidden fields, as a
    browser could make them)."""
    assert page.status_code == 200, page.text
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page.text))
    fields = {name: html.unescape(value) for name, value in {**fields, **changes}.items()}
    return op.browser.post("/api/oidc/end-session/confirm", data=fields, headers={"Origin": APP})


def assert_signed_out(op: Op) -> None:
    account = op.browser.get("/account")
    assert account.status_code == 303 and "/login" in account.headers["location"]


def assert_refused(response: httpx.Response, reason: str) -> None:
    assert response.status_code == 400 and "location" not in response.headers
    assert reason in html.unescape(response.text), response.text


def test_end_session_with_id_token_hint_returns_to_a_registered_address(
    op: Op, confidential_flow: Flow
) -> None:
    id_token = op.tokens(confidential_flow)["id_token"]
    page = end_session(op, id_token_hint=id_token, post_logout_redirect_uri=LOGOUT, state="s")
    assert "Memos</strong> asks to sign you out" in page.text
    response = confirm_sign_out(op, page)
    assert response.status_code == 303 and response.headers["location"] == f"{LOGOUT}?state=s"
    assert_signed_out(op)


def test_end_session_with_client_id_returns_to_a_registered_address(
    op: Op, confidential_flow: Flow
) -> None:
    """mod_auth_openidc's client-cookie sessions keep no ID token: client_id names the app."""
    client_id = confidential_flow.rp.client_id
    page = end_session(op, client_id=client_id, post_logout_redirect_uri=LOGOUT, state="s")
    response = confirm_sign_out(op, page)
    assert response.status_code == 303 and response.headers["location"] == f"{LOGOUT}?state=s"
    assert_signed_out(op)


@pytest.mark.parametrize("names_itself", ["id_token_hint", "client_id"])
def test_end_session_with_unregistered_return_address_does_not_go_there(
    op: Op, confidential_flow: Flow, names_itself: str
) -> None:
    tokens = op.tokens(confidential_flow)
    app = {"id_token_hint": tokens["id_token"], "client_id": confidential_flow.rp.client_id}
    response = end_session(
        op,
        **{names_itself: app[names_itself]},
        post_logout_redirect_uri="https://evil.example.net/",
    )
    assert_refused(response, "Memos asked to return to an address that is not one of its")
    assert "evil.example.net" not in response.text


@pytest.mark.parametrize("requested", [LOGOUT, "https://evil.example.net/"])
def test_end_session_naming_no_app_signs_out_without_redirecting(
    op: Op, confidential_flow: Flow, requested: str
) -> None:
    """No hint, no client_id: the address cannot be tied to an app, so the user is signed out
    and stays on Passgate's signed-out page (RP-Initiated Logout 1.0, section 3)."""
    op.tokens(confidential_flow)
    page = end_session(op, post_logout_redirect_uri=requested, state="s")
    assert "will not send you back" in page.text and requested not in page.text
    response = confirm_sign_out(op, page)
    assert response.status_code == 200 and "location" not in response.headers
    assert "You are signed out" in response.text and requested not in response.text
    assert_signed_out(op)


def test_end_session_without_a_return_address_goes_to_the_sign_in_page(
    op: Op, confidential_flow: Flow
) -> None:
    id_token = op.tokens(confidential_flow)["id_token"]
    response = confirm_sign_out(op, end_session(op, id_token_hint=id_token))
    assert response.status_code == 303 and response.headers["location"] == f"{APP}/login"
    assert_signed_out(op)


def test_end_session_with_a_forged_id_token_hint_is_refused(
    op: Op, confidential_flow: Flow
) -> None:
    """A hint we did not sign names no client, so no client's return address is trusted."""
    id_token = op.tokens(confidential_flow)["id_token"]
    header, payload, _ = id_token.split(".")
    forged = f"{header}.{payload}.{base64.urlsafe_b64encode(b'x' * 256).decode().rstrip('=')}"
    response = end_session(op, id_token_hint=forged, post_logout_redirect_uri=LOGOUT)
    assert_refused(response, "an ID token (id_token_hint) that Passgate did not sign")


def test_end_session_with_a_hint_and_another_client_id_is_refused(
    op: Op, confidential_flow: Flow
) -> None:
    id_token = op.tokens(confidential_flow)["id_token"]
    other = op.client()
    response = end_session(
        op, id_token_hint=id_token, client_id=other.client_id, post_logout_redirect_uri=LOGOUT
    )
    assert_refused(response, "client_id does not match the app the ID token")


def test_end_session_with_an_unknown_client_id_is_refused(op: Op) -> None:
    response = end_session(op, client_id="no-such-app", post_logout_redirect_uri=LOGOUT)
    assert_refused(response, "The client_id is not registered in this Passgate")


def test_end_session_with_a_hint_for_a_deleted_app_is_refused(
    op: Op, confidential_flow: Flow
) -> None:
    id_token = op.tokens(confidential_flow)["id_token"]
    op.services.clients.delete(confidential_flow.rp.client_id)
    response = end_session(op, id_token_hint=id_token, post_logout_redirect_uri=LOGOUT)
    assert_refused(response, "issued to is not registered in this Passgate")


def test_end_session_confirmation_edited_to_another_address_does_not_go_there(
    op: Op, confidential_flow: Flow
) -> None:
    client_id = confidential_flow.rp.client_id
    page = end_session(op, client_id=client_id, post_logout_redirect_uri=LOGOUT)
    response = confirm_sign_out(op, page, target="https://evil.example.net/")
    assert response.status_code == 303 and response.headers["location"] == f"{APP}/login"
    assert_signed_out(op)


# --- claims and discovery -------------------------------------------------------------------


def test_profile_scope_gives_no_picture_since_there_is_none(
    op: Op, confidential_flow: Flow
) -> None:
    tokens = op.tokens(confidential_flow)
    assert "picture" not in op.id_token_claims(tokens["id_token"])
    assert "picture" not in op.userinfo(tokens["access_token"]).json()


def test_profile_claims_without_a_value_are_left_out(op: Op) -> None:
    user = op.services.users.create_user("bob", display_name="Bob")
    claims = op.services.oidc.claims(user, "openid profile email")
    assert claims["name"] == "Bob" and claims["given_name"] == "Bob"
    assert "family_name" not in claims and "email" not in claims


def test_discovery_claims_are_all_issued(op: Op, confidential_flow: Flow) -> None:
    meta = op.backend.get("/.well-known/openid-configuration").json()
    tokens = op.tokens(confidential_flow)
    issued = set(op.id_token_claims(tokens["id_token"])) | set(
        op.userinfo(tokens["access_token"]).json()
    )
    assert set(meta["claims_supported"]) <= issued
    assert "picture" not in meta["claims_supported"]


def test_discovery_paths_are_pocket_ids(op: Op) -> None:
    meta = op.backend.get("/.well-known/openid-configuration").json()
    assert meta["issuer"] == APP
    assert {
        k: v.removeprefix(APP) for k, v in meta.items() if k.endswith(("_endpoint", "_uri"))
    } == {
        "authorization_endpoint": "/authorize",
        "token_endpoint": "/api/oidc/token",
        "userinfo_endpoint": "/api/oidc/userinfo",
        "end_session_endpoint": "/api/oidc/end-session",
        "introspection_endpoint": "/api/oidc/introspect",
        "revocation_endpoint": "/api/oidc/revoke",
        "jwks_uri": "/.well-known/jwks.json",
        "device_authorization_endpoint": "/api/oidc/device/authorize",
        "pushed_authorization_request_endpoint": "/api/oidc/par",
    }
