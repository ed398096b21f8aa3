"""A second, independent relying party: npm's openid-client (a certified OpenID Connect RP
library, tests/rp_node/rp.mjs) discovers a real Passgate process, runs the code flow with PKCE
through Chromium signed in with a passkey, checks the authorization response's `iss`, the ID
token's signature (against the JWKS), nonce, max_age/auth_time, then calls userinfo, refreshes,
introspects, revokes, and meets the refusals for a reused refresh token and a replayed code."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Browser

from tests.browser import DOMAIN, Gate
from tests.conftest import PassgateProcess, exclusive, require_binary
from tests.oidc.relying_party import RP_CALLBACK, add_client, browser_login

RP_DIR = Path(__file__).resolve().parent.parent / "rp_node"
LOGOUT = f"https://rp.{DOMAIN}/signed-out"


@pytest.fixture(scope="session")
def openid_client() -> Path:
    """tests/rp_node with its locked npm dependencies installed (node_modules is not committed)."""
    npm = require_binary("npm", "apt-get install -y nodejs npm")
    require_binary("node", "apt-get install -y nodejs")
    with exclusive("npm-ci"):  # one worker installs; the others wait for it, then find it there
        if not (RP_DIR / "node_modules" / "openid-client").is_dir():
            subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund"], cwd=RP_DIR, check=True, timeout=300
            )
    return RP_DIR


def run_rp(rp_dir: Path, step: str, **settings: str) -> dict[str, Any]:
    result = subprocess.run(
        ["node", "rp.mjs", step],
        cwd=rp_dir,
        env={**os.environ, **{k.upper(): v for k, v in settings.items()}},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


def test_openid_client_signs_in_and_manages_tokens(
    idp: tuple[PassgateProcess, Browser, int],
    openid_client: Path,
) -> None:
    passgate, browser, port = idp
    issuer = f"http://auth.{DOMAIN}:{port}"
    client_id, secret = add_client(passgate, "--post-logout-uri", LOGOUT)
    alice = Gate(passgate, port, browser).person()
    alice.set_up_account("alice", "Alice Liddell")
    settings = {
        "issuer": issuer,
        "local_url": passgate.url,
        "client_id": client_id,
        "client_secret": secret or "",
        "redirect_uri": RP_CALLBACK,
        "logout_uri": LOGOUT,
    }

    started = run_rp(openid_client, "start", **settings)
    callback = browser_login(issuer, alice, started["url"])
    assert parse_qs(urlsplit(callback).query)["iss"] == [issuer]
    done = run_rp(
        openid_client,
        "finish",
        **settings,
        callback=callback,
        verifier=started["verifier"],
        state=started["state"],
        nonce=started["nonce"],
    )

    claims = done["claims"]
    assert claims["iss"] == issuer and claims["nonce"] == started["nonce"]
    assert claims["preferred_username"] == "alice" and claims["name"] == "Alice Liddell"
    assert isinstance(claims["auth_time"], int) and claims["amr"]
    assert done["userinfo"]["sub"] == claims["sub"] and done["userinfo"]["groups"] == ["admins"]
    assert done["rotated"] is True
    assert done["introspection"]["active"] is True
    assert done["introspection"]["client_id"] == client_id
    assert done["afterRevocation"] == {"active": False}
    assert done["reusedRefresh"] == "invalid_grant"
    assert done["replayedCode"] == "invalid_grant"

    # RP-initiated logout to the registered address, with the app's state.
    alice.page.route(f"{LOGOUT}*", lambda route: route.fulfill(status=200, body="bye"))
    alice.page.goto(done["logout"])
    alice.page.click("form[action='/api/oidc/end-session/confirm'] button")
    alice.page.wait_for_url(f"{LOGOUT}?state=bye")
    alice.page.goto(f"{issuer}/account")
    alice.page.wait_for_url("**/login?*")
