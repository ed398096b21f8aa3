"""Response modes at /authorize: `query` (the default for code), `fragment`, and `form_post`,
a page that posts the answer to the app under a strict CSP (a nonce'd script, a button when
scripts are off) and is never cached. Errors, once the redirect URI is verified, travel in the
same mode; an unknown mode is an error in the query.

In-process first; then npm openid-client completing a form_post flow in Chromium, with
ClientSecretJwt at the token endpoint, against a real Passgate process."""

from __future__ import annotations

import html
import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.sync_api import Browser

from gateway.accounts.users import User
from tests.browser import DOMAIN, Gate
from tests.conftest import PassgateProcess
from tests.oidc.in_process import APP, CALLBACK, Op, Rp, redirect_query
from tests.oidc.node_rp import run_rp
from tests.oidc.relying_party import RP_CALLBACK, add_client, browser_callback


@pytest.fixture
def ready(op: Op, alice: User) -> tuple[Op, Rp]:
    rp = op.client()
    op.sign_in(alice)
    op.consent(alice, rp)
    return op, rp


def posted_fields(response: httpx.Response) -> dict[str, str]:
    """The hidden fields of a form_post page."""
    fields = re.findall(r'<input type="hidden" name="([^"]*)" value="([^"]*)">', response.text)
    return {html.unescape(name): html.unescape(value) for name, value in fields}


def test_discovery_lists_the_response_modes(op: Op) -> None:
    meta = op.backend.get("/.well-known/openid-configuration").json()
    assert meta["response_modes_supported"] == ["query", "fragment", "form_post"]


def test_query_stays_the_default(ready: tuple[Op, Rp]) -> None:
    op, rp = ready
    assert "code" in redirect_query(op.authorize(op.flow(rp).params()), CALLBACK)


def test_fragment_mode_puts_the_answer_in_the_fragment(ready: tuple[Op, Rp]) -> None:
    op, rp = ready
    flow = op.flow(rp)
    response = op.authorize(flow.params(response_mode="fragment"))
    assert response.status_code == 302
    location = urlsplit(response.headers["location"])
    assert not location.query and location.path == urlsplit(CALLBACK).path
    answer = {k: v[0] for k, v in parse_qs(location.fragment).items()}
    assert answer["state"] == flow.state and answer["iss"] == APP
    assert op.exchange(flow, answer["code"]).status_code == 200


def test_form_post_page_posts_the_answer_to_the_redirect_uri(ready: tuple[Op, Rp]) -> None:
    op, rp = ready
    flow = op.flow(rp)
    response = op.authorize(flow.params(response_mode="form_post"))
    assert response.status_code == 200
    assert f'<form method="post" action="{CALLBACK}">' in response.text
    fields = posted_fields(response)
    assert fields["state"] == flow.state and fields["iss"] == APP
    assert op.exchange(flow, fields["code"]).status_code == 200


def test_form_post_page_is_locked_down_and_never_cached(ready: tuple[Op, Rp]) -> None:
    op, rp = ready
    response = op.authorize(op.flow(rp).params(response_mode="form_post"))
    csp = response.headers["content-security-policy"]
    nonce = re.search(r"script-src 'nonce-([^']+)'", csp)
    assert nonce is not None and f'<script nonce="{nonce.group(1)}">' in response.text
    assert "default-src 'none'" in csp and "form-action https://memos.example.com" in csp
    assert "unsafe-inline" not in csp
    assert response.headers["cache-control"] == "no-store"
    assert "<noscript>" in response.text and '<button type="submit">' in response.text


def test_form_post_nonce_changes_every_time(ready: tuple[Op, Rp]) -> None:
    op, rp = ready
    csps = {
        op.authorize(op.flow(rp).params(response_mode="form_post")).headers[
            "content-security-policy"
        ]
        for _ in range(2)
    }
    assert len(csps) == 2


def test_errors_travel_in_the_requested_mode(op: Op) -> None:
    """prompt=none without a session: login_required, posted as the app asked."""
    rp = op.client()
    flow = op.flow(rp)
    response = op.authorize(flow.params(response_mode="form_post", prompt="none"))
    assert response.status_code == 200
    fields = posted_fields(response)
    assert fields["error"] == "login_required" and fields["state"] == flow.state


def test_unknown_response_mode_is_an_error_in_the_query(ready: tuple[Op, Rp]) -> None:
    op, rp = ready
    flow = op.flow(rp)
    query = redirect_query(op.authorize(flow.params(response_mode="web_message")), CALLBACK)
    assert query["error"] == "invalid_request" and "response_mode" in query["error_description"]


def test_form_post_to_an_app_scheme_is_refused(op: Op, alice: User) -> None:
    rp = op.client(public=True, redirect_uris=["com.example.app:/callback"])
    op.sign_in(alice)
    op.consent(alice, rp)
    response = op.authorize(op.flow(rp).params(response_mode="form_post"))
    assert response.status_code == 302
    assert response.headers["location"].startswith("com.example.app:/callback?error=")


def test_unverified_redirect_uri_never_gets_a_form(ready: tuple[Op, Rp]) -> None:
    op, rp = ready
    flow = op.flow(rp)
    evil = "https://evil.example.net/steal"
    response = op.authorize(flow.params(response_mode="form_post", redirect_uri=evil))
    assert response.status_code == 400 and '<form method="post" action' not in response.text
    assert (
        "content-security-policy" not in response.headers
        or "nonce" not in (response.headers["content-security-policy"])
    )


# --- npm openid-client through Chromium ----------------------------------------------------


def test_openid_client_completes_a_form_post_flow_with_client_secret_jwt(
    idp: tuple[PassgateProcess, Browser, int], openid_client: Path
) -> None:
    passgate, browser, port = idp
    issuer = f"http://auth.{DOMAIN}:{port}"
    client_id, secret = add_client(passgate, "--auth-method", "client_secret_jwt")
    alice = Gate(passgate, port, browser).person()
    alice.set_up_account("alice", "Alice Liddell")
    settings = {
        "issuer": issuer,
        "local_url": passgate.url,
        "client_id": client_id,
        "client_secret": secret or "",
        "auth": "client_secret_jwt",
        "response_mode": "form_post",
        "redirect_uri": RP_CALLBACK,
    }

    started = run_rp(openid_client, "start-par", **settings)
    callback = browser_callback(alice, started["url"])
    assert callback.method == "POST" and callback.url == RP_CALLBACK
    done = run_rp(
        openid_client,
        "exchange",
        **settings,
        callback=callback.url,
        callback_body=callback.body,
        verifier=started["verifier"],
        state=started["state"],
        nonce=started["nonce"],
    )

    assert done["claims"]["preferred_username"] == "alice"
    assert done["userinfo"]["sub"] == done["claims"]["sub"]
    assert done["introspection"]["active"] is True
