"""Pushed authorization requests (RFC 9126): the app posts its authorization request to
/api/oidc/par, authenticated as at the token endpoint; Passgate validates all of it up front and
answers 201 with a short-lived request_uri that /authorize takes instead of the parameters,
once, for that client only. A client may be required to push.

In-process first; then npm openid-client's buildAuthorizationUrlWithPAR, authenticating with
PrivateKeyJwt, through Chromium with a passkey sign-in against a real Passgate process."""

from __future__ import annotations

import html
import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc.jwk import ECKey
from playwright.sync_api import Browser

from gateway.accounts.users import User
from gateway.oidc import api, pushed_requests
from gateway.oidc.client_service import AppAuth
from tests.browser import DOMAIN, Gate
from tests.conftest import PassgateProcess
from tests.oidc.in_process import APP, CALLBACK, Flow, Op, Rp, assert_token_error, redirect_query
from tests.oidc.node_rp import run_rp
from tests.oidc.relying_party import RP_CALLBACK, add_client, browser_login

URN = "urn:ietf:params:oauth:request_uri:"


def push(op: Op, flow: Flow, auth: Rp | None = None, **overrides: str | None) -> httpx.Response:
    """Push `flow`'s authorization request, authenticated as `auth` (default: its client)."""
    rp = auth or flow.rp
    return op.backend.post("/api/oidc/par", data=flow.params(**overrides), auth=rp.basic)


def request_uri(op: Op, flow: Flow, **overrides: str | None) -> str:
    response = push(op, flow, **overrides)
    assert response.status_code == 201, response.text
    uri: str = response.json()["request_uri"]
    return uri


def authorize_pushed(op: Op, client_id: str, uri: str, **extra: str) -> httpx.Response:
    return op.authorize({"client_id": client_id, "request_uri": uri, **extra})


@pytest.fixture
def ready(op: Op, alice: User) -> tuple[Op, Rp]:
    """A signed-in browser that has consented to a confidential client."""
    rp = op.client()
    op.sign_in(alice)
    op.consent(alice, rp)
    return op, rp


def test_discovery_names_the_par_endpoint(op: Op) -> None:
    meta = op.backend.get("/.well-known/openid-configuration").json()
    assert meta["pushed_authorization_request_endpoint"] == f"{APP}/api/oidc/par"
    assert meta["require_pushed_authorization_requests"] is False


def test_pushed_request_gets_a_short_lived_request_uri(ready: tuple[Op, Rp]) -> None:
    op, rp = ready
    response = push(op, op.flow(rp))
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["request_uri"].startswith(URN) and 60 <= body["expires_in"] <= 90


def test_authorize_with_request_uri_answers_the_pushed_request(ready: tuple[Op, Rp]) -> None:
    op, rp = ready
    flow = op.flow(rp)
    uri = request_uri(op, flow)
    # RFC 9126 4: only the pushed parameters count; the query's others are ignored.
    response = authorize_pushed(op, rp.client_id, uri, state="from-the-query", scope="openid")
    assert response.status_code == 302, response.text
    query = redirect_query(response, CALLBACK)
    assert query["state"] == flow.state and query["iss"] == APP
    tokens = op.exchange(flow, query["code"])
    assert tokens.status_code == 200, tokens.text
    assert tokens.json()["scope"] == "openid profile email groups"


def test_request_uri_is_single_use(ready: tuple[Op, Rp]) -> None:
    op, rp = ready
    uri = request_uri(op, op.flow(rp))
    assert authorize_pushed(op, rp.client_id, uri).status_code == 302
    again = authorize_pushed(op, rp.client_id, uri)
    assert again.status_code == 400 and "location" not in again.headers
    assert "already used" in again.text


def test_expired_request_uri_is_refused(
    ready: tuple[Op, Rp], monkeypatch: pytest.MonkeyPatch
) -> None:
    op, rp = ready
    monkeypatch.setattr(pushed_requests, "LIFETIME", 1)
    uri = request_uri(op, op.flow(rp))
    time.sleep(1.2)
    response = authorize_pushed(op, rp.client_id, uri)
    assert response.status_code == 400 and "location" not in response.headers
    assert "expired" in response.text


def test_request_uri_of_another_client_is_refused(ready: tuple[Op, Rp], alice: User) -> None:
    op, rp = ready
    other = op.client()
    op.consent(alice, other)
    uri = request_uri(op, op.flow(rp))
    response = authorize_pushed(op, other.client_id, uri)
    assert response.status_code == 400 and "location" not in response.headers
    assert "another client" in response.text


def test_unknown_request_uri_is_refused(ready: tuple[Op, Rp]) -> None:
    op, rp = ready
    response = authorize_pushed(op, rp.client_id, URN + "made-up")
    assert response.status_code == 400 and "location" not in response.headers


def test_client_requiring_par_is_refused_without_a_request_uri(op: Op, alice: User) -> None:
    rp = op.client(app_auth=AppAuth(require_par=True))
    op.sign_in(alice)
    op.consent(alice, rp)
    flow = op.flow(rp)
    query = redirect_query(op.authorize(flow.params()), CALLBACK)
    assert query["error"] == "invalid_request" and "push" in query["error_description"]
    assert query["state"] == flow.state
    pushed = authorize_pushed(op, rp.client_id, request_uri(op, flow))
    assert "code" in redirect_query(pushed, CALLBACK)


def test_push_needs_client_authentication(ready: tuple[Op, Rp]) -> None:
    op, rp = ready
    wrong = Rp(rp.client_id, "not-the-secret")
    assert_token_error(push(op, op.flow(rp), auth=wrong), "invalid_client", 401)


def test_public_client_pushes_with_its_client_id(op: Op, alice: User) -> None:
    rp = op.client(public=True)
    response = op.backend.post("/api/oidc/par", data=op.flow(rp).params())
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"redirect_uri": "https://evil.example.net/cb"}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"response_mode": "web_message"}, "invalid_request"),
        ({"scope": "openid admin"}, "invalid_scope"),
        ({"request": "eyJhbGciOiJub25lIn0.e30."}, "request_not_supported"),
        ({"request_uri": URN + "nested"}, "invalid_request"),
    ],
)
def test_push_validates_the_whole_request_up_front(
    ready: tuple[Op, Rp], overrides: dict[str, str], error: str
) -> None:
    op, rp = ready
    response = push(op, op.flow(rp), **overrides)
    assert_token_error(response, error)
    assert "location" not in response.headers


def test_push_for_another_client_id_is_refused(ready: tuple[Op, Rp]) -> None:
    op, rp = ready
    other = op.client()
    response = push(op, op.flow(other), auth=rp)
    assert_token_error(response, "invalid_request")


def test_pushed_request_survives_the_sign_in_it_forces(op: Op, alice: User) -> None:
    """prompt=login sends the browser to sign in; back at /authorize with the same request_uri,
    the fresh session counts instead of forcing another sign-in."""
    rp = op.client()
    op.consent(alice, rp)
    flow = op.flow(rp)
    uri = request_uri(op, flow, prompt="login")
    to_login = authorize_pushed(op, rp.client_id, uri)
    assert to_login.status_code == 303 and to_login.headers["location"].startswith("/login")
    op.sign_in(alice)
    response = authorize_pushed(op, rp.client_id, uri)
    assert "code" in redirect_query(response, CALLBACK)


def test_consent_page_carries_the_request_uri_and_answers_once(op: Op, alice: User) -> None:
    rp = op.client()
    op.sign_in(alice)
    flow = op.flow(rp)
    uri = request_uri(op, flow)
    page = authorize_pushed(op, rp.client_id, uri)
    assert page.status_code == 200 and "Allow Memos?" in page.text
    action = re.search(r'action="([^"]+)"', page.text)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert action is not None and token is not None
    target = html.unescape(action.group(1))
    assert "request_uri=" in target and "code_challenge" not in target
    form = {"csrf_token": token.group(1), "decision": "allow"}
    allowed = op.browser.post(target, data=form, headers={"Origin": APP})
    assert redirect_query(allowed, CALLBACK)["state"] == flow.state
    again = op.browser.post(target, data=form, headers={"Origin": APP})
    assert again.status_code == 400 and "location" not in again.headers


def test_pushes_are_counted(ready: tuple[Op, Rp]) -> None:
    from prometheus_client import REGISTRY

    op, rp = ready
    before = REGISTRY.get_sample_value(
        "passgate_oidc_pushed_requests_total", {"result": "accepted"}
    )
    push(op, op.flow(rp))
    after = REGISTRY.get_sample_value("passgate_oidc_pushed_requests_total", {"result": "accepted"})
    assert (after or 0) == (before or 0) + 1


# --- npm openid-client through Chromium ----------------------------------------------------


def test_openid_client_pushes_with_private_key_jwt_and_signs_in_with_a_passkey(
    idp: tuple[PassgateProcess, Browser, int], openid_client: Path, tmp_path: Path
) -> None:
    passgate, browser, port = idp
    issuer = f"http://auth.{DOMAIN}:{port}"
    key = ECKey.generate_key("P-256", parameters={"kid": "rp-key"})
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [key.as_dict(private=False)]}))
    client_id, secret = add_client(
        passgate, "--auth-method", "private_key_jwt", "--jwks-file", str(jwks), "--require-par"
    )
    alice = Gate(passgate, port, browser).person(autofill=False)  # signs in by the button
    alice.set_up_account("alice", "Alice Liddell")
    alice.sign_out()
    settings: dict[str, Any] = {
        "issuer": issuer,
        "local_url": passgate.url,
        "client_id": client_id,
        "auth": "private_key_jwt",
        "private_jwk": json.dumps(key.as_dict(private=True)),
        "redirect_uri": RP_CALLBACK,
    }

    started = run_rp(openid_client, "start-par", **settings)
    assert "request_uri=urn%3Aietf%3Aparams%3Aoauth%3Arequest_uri%3A" in started["url"]
    assert "code_challenge" not in started["url"]  # the parameters went to /api/oidc/par
    callback = browser_login(issuer, alice, started["url"], passkey=True)
    done = run_rp(
        openid_client,
        "exchange",
        **settings,
        callback=callback,
        verifier=started["verifier"],
        state=started["state"],
        nonce=started["nonce"],
    )

    assert secret is not None  # every confidential client has one; this one never sends it
    assert done["claims"]["preferred_username"] == "alice"
    assert done["claims"]["nonce"] == started["nonce"]
    assert done["introspection"]["active"] is True


def test_pushes_are_limited_per_address(op: Op, alice: User) -> None:
    """Public clients push without a secret, and every push is stored for a while: past
    PAR_PER_ADDRESS pushes from one address the answer is 429 with Retry-After, before any
    work (even refused pushes count)."""
    rp = op.client(public=True)
    for _ in range(api.PAR_PER_ADDRESS.attempts):
        assert op.backend.post("/api/oidc/par", data=op.flow(rp).params()).status_code == 201
    refused = op.backend.post("/api/oidc/par", data=op.flow(rp).params())
    assert refused.status_code == 429
    assert refused.json()["error"] == "temporarily_unavailable"
    assert int(refused.headers["retry-after"]) > 0
