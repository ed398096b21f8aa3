"""OpenID Connect end to end: authlib's OAuth client (an independent relying party library)
discovers Passgate, runs the code flow with PKCE through a browser signed in with a passkey,
checks the ID token against the JWKS, calls userinfo, refreshes, introspects, revokes and logs
out. Real Passgate process, real Chromium with a virtual authenticator."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import OAuth2Client
from joserfc import jwt
from joserfc.jwk import KeySet
from playwright.sync_api import Browser

from tests.browser import DOMAIN, Gate
from tests.conftest import PassgateProcess
from tests.oidc.relying_party import RP_CALLBACK, add_client, browser_login


def test_code_flow_with_pkce_end_to_end(idp: tuple[PassgateProcess, Browser, int]) -> None:
    passgate, browser, port = idp
    base = f"http://auth.{DOMAIN}:{port}"
    client_id, secret = add_client(passgate, "--refresh-tokens")
    gate = Gate(passgate, port, browser)
    alice = gate.person()
    alice.set_up_account("alice", "Alice Liddell")

    # An independent client library reads the discovery document...
    http = httpx.Client(base_url=f"http://127.0.0.1:{passgate.port}")
    meta = http.get("/.well-known/openid-configuration").json()
    assert meta["issuer"] == base
    assert meta["userinfo_endpoint"] == f"{base}/api/oidc/userinfo"
    local = lambda url: url.replace(base, f"http://127.0.0.1:{passgate.port}")  # noqa: E731

    rp = OAuth2Client(
        client_id,
        secret,
        scope="openid profile email groups",
        redirect_uri=RP_CALLBACK,
        code_challenge_method="S256",
    )
    verifier = generate_token(48)
    nonce = generate_token(16)
    url, state = rp.create_authorization_url(
        meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce
    )
    callback = browser_login(base, alice, url)
    assert parse_qs(urlsplit(callback).query)["state"] == [state]
    token = rp.fetch_token(
        local(meta["token_endpoint"]), authorization_response=callback, code_verifier=verifier
    )

    # ...checks the ID token's signature against the JWKS and its claims...
    keys = KeySet.import_key_set(http.get("/.well-known/jwks.json").json())
    id_token = jwt.decode(token["id_token"], keys)
    claims = id_token.claims
    assert claims["iss"] == base and claims["aud"] in (client_id, [client_id])
    assert claims["nonce"] == nonce
    assert claims["preferred_username"] == "alice" and claims["name"] == "Alice Liddell"
    assert claims["groups"] == ["admins"]
    assert claims["sub"] != "alice"
    assert id_token.header["kid"] in {k.kid for k in keys}

    # ...calls userinfo, refreshes (the refresh token rotates), introspects, revokes.
    info = rp.get(local(meta["userinfo_endpoint"])).json()
    assert info["sub"] == claims["sub"] and info["email"] == "alice@example.com"
    refreshed = rp.refresh_token(
        local(meta["token_endpoint"]), refresh_token=token["refresh_token"]
    )
    assert refreshed["refresh_token"] != token["refresh_token"]
    auth = (client_id, secret or "")
    active = http.post("/api/oidc/introspect", data={"token": refreshed["access_token"]}, auth=auth)
    assert active.json()["active"] is True and active.json()["sub"] == claims["sub"]
    assert (
        http.post(
            "/api/oidc/revoke", data={"token": refreshed["access_token"]}, auth=auth
        ).status_code
        == 200
    )
    gone = http.post("/api/oidc/introspect", data={"token": refreshed["access_token"]}, auth=auth)
    assert gone.json() == {"active": False}

    # RP-initiated logout ends the Passgate session and returns to the app.
    logout = f"{meta['end_session_endpoint']}?id_token_hint={token['id_token']}"
    alice.page.goto(logout)
    alice.page.click("form[action='/api/oidc/end-session/confirm'] button")
    alice.page.wait_for_url("**/login")
    alice.page.goto(f"{base}/account")
    alice.page.wait_for_url("**/login?*")
