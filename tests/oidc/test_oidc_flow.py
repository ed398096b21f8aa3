"""OpenID Connect end to end: authlib's OAuth client (an independent relying party library)
discovers Passgate, runs the code flow with PKCE through a browser signed in with a passkey,
checks the ID token against the JWKS, calls userinfo, refreshes, introspects, revokes and logs
out. Real Passgate process, real Chromium with a virtual authenticator."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import OAuth2Client
from joserfc import jwt
from joserfc.jwk import KeySet
from playwright.sync_api import Browser, sync_playwright

from tests.conftest import PassgateProcess, free_port, require_binary
from tests.passkeys.test_browser_passkeys import CHROMIUM_FLAGS, DOMAIN, Gate, Person

RP_CALLBACK = f"https://rp.{DOMAIN}/callback"


@pytest.fixture
def idp(start_passgate, redis_url: str) -> Iterator[tuple[PassgateProcess, Browser, int]]:  # type: ignore[no-untyped-def]
    chromium = require_binary("chromium", "apt-get install -y chromium")
    port = free_port()
    passgate = start_passgate(
        port=str(port),
        app_url=f"http://auth.{DOMAIN}:{port}",
        cookie_domain=DOMAIN,
        redis_url=redis_url,
    )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium,
            args=[
                *CHROMIUM_FLAGS,
                f"--unsafely-treat-insecure-origin-as-secure=http://auth.{DOMAIN}:{port}",
            ],
        )
        yield passgate, browser, port
        browser.close()


def add_client(passgate: PassgateProcess, *args: str) -> tuple[str, str | None]:
    result = passgate.cli("clients", "add", "Memos", "--redirect-uri", RP_CALLBACK, *args)
    assert result.returncode == 0, result.stderr
    client_id = re.search(r"client[ _]id:?\s+(\S+)", result.stdout, re.I)
    secret = re.search(r"secret:?\s+(\S+)", result.stdout, re.I)
    assert client_id is not None, result.stdout
    return client_id.group(1), secret.group(1) if secret else None


def browser_login(idp_url: str, person: Person, authorization_url: str) -> str:
    """Follow the authorization URL in the browser; return the callback URL with the code."""
    callback: list[str] = []
    person.page.route(
        f"{RP_CALLBACK}*",
        lambda route: (callback.append(route.request.url), route.fulfill(status=200, body="ok")),
    )
    person.page.goto(authorization_url)
    if "/authorize" in person.page.url and not callback:
        person.page.click("button[value=allow]")
    person.page.wait_for_url(f"{RP_CALLBACK}*")
    assert callback
    return callback[0]


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
