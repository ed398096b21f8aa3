"""Passkeys in a real browser: headless Chromium with its virtual authenticator (over CDP),
a real Passgate, a real Caddy and a real Redis. Also takes the README's screenshots."""

from __future__ import annotations

import json
import re

import httpx

from tests.browser import DOCS, DOMAIN, Gate


def test_setup_passkey_then_usernameless_sign_in_reaches_the_service(gate: Gate) -> None:
    alice = gate.person()
    alice.page.goto(gate.url("app", "/whoami"))
    alice.page.wait_for_url("**/setup")  # no users yet: the login page sends us to setup
    DOCS.mkdir(exist_ok=True)
    alice.page.screenshot(path=str(DOCS / "setup.png"), full_page=True)
    alice.set_up_account("alice", "Alice Liddell")
    assert "alice" in alice.page.inner_text("main")

    headers = alice.upstream_headers()
    assert headers["remote-user"] == "alice"
    assert headers["remote-name"] == "Alice Liddell"
    assert headers["remote-groups"] == "admins"

    alice.sign_out()
    # Autofill (conditional mediation) finds the passkey: no username typed, back where we were.
    alice.page.goto(gate.url("app", "/whoami?from=autofill"))
    alice.page.wait_for_url(re.compile(r".*app\.passgate\.test.*/whoami\?from=autofill$"))
    assert json.loads(alice.page.inner_text("body"))["headers"]["remote-user"] == "alice"


def test_sign_in_button_returns_to_the_exact_page(gate: Gate) -> None:
    alice = gate.person(autofill=False)
    alice.set_up_account("alice", "Alice")
    alice.sign_out()
    alice.page.goto(gate.url("app", "/photos/2024?sort=date"))
    alice.page.wait_for_url("**/login?rd=*")
    alice.page.screenshot(path=str(DOCS / "login.png"), full_page=True)
    alice.sign_in_with_button(expect_url="**/photos/2024?sort=date")
    assert json.loads(alice.page.inner_text("body"))["path"] == "/photos/2024?sort=date"


def test_each_of_two_passkeys_signs_in(gate: Gate) -> None:
    alice = gate.person(autofill=False)
    alice.set_up_account("alice", "Alice")
    first, second = alice.add_passkey_from_another_device()
    alice.page.screenshot(path=str(DOCS / "account.png"), full_page=True)
    for credential in (first, second):
        alice.sign_out()
        alice.keep_only(credential)
        alice.sign_in_with_button()
        assert alice.page.url.endswith("/account")


def test_deleted_passkey_is_refused(gate: Gate) -> None:
    alice = gate.person(autofill=False)
    alice.set_up_account("alice", "Alice")
    kept, doomed = alice.add_passkey_from_another_device()
    # CDP speaks standard base64; Passgate stores credential ids as base64url.
    doomed_id = doomed["credentialId"].replace("+", "-").replace("/", "_").rstrip("=")
    alice.page.click(f"#passkeys li:has(input[value='{doomed_id}']) summary")
    alice.page.click(
        f"form[action='/account/passkeys/delete']:has(input[value='{doomed_id}']) button"
    )
    alice.page.wait_for_url("**/account?notice=Passkey+deleted")
    assert alice.page.locator("#passkeys li").count() == 1
    alice.sign_out()
    alice.keep_only(doomed)
    alice.page.click("#passkey-button")
    alert = alice.page.locator("#passkey-error")
    alert.wait_for(state="visible")
    assert "not registered here" in alert.inner_text()
    alice.keep_only(kept)
    alice.sign_in_with_button()


def test_signup_with_a_token_creates_an_account_with_a_passkey(gate: Gate) -> None:
    admin = gate.person()
    admin.set_up_account("alice", "Alice")
    link = gate.passgate.cli("signup-token", "create", "--uses", "1")
    assert link.returncode == 0, link.stderr
    bob = gate.person()
    bob.page.goto(link.stdout.strip())
    bob.page.fill("#username", "bob")
    bob.page.fill("#display_name", "Bob")
    bob.page.click("#passkey-button")
    bob.page.wait_for_url("**/account")
    assert bob.upstream_headers()["remote-user"] == "bob"
    # The token was single-use: a third person cannot sign up with it.
    carol = gate.person()
    carol.page.goto(link.stdout.strip())
    assert "invalid, expired or used up" in carol.page.inner_text("main")


def test_replayed_assertion_is_refused(gate: Gate) -> None:
    alice = gate.person(autofill=False)
    alice.set_up_account("alice", "Alice")
    alice.sign_out()
    captured: list[str] = []
    alice.page.on(
        "request",
        lambda request: (
            captured.append(request.post_data or "")
            if request.url.endswith("/api/webauthn/login/finish")
            else None
        ),
    )
    alice.sign_in_with_button()
    assert captured
    cookies = {c["name"]: c["value"] for c in alice.context.cookies(gate.url("auth"))}
    replay = httpx.post(
        f"http://127.0.0.1:{gate.port}/api/webauthn/login/finish",
        content=captured[0],
        headers={
            "Host": f"auth.{DOMAIN}:{gate.port}",
            "Content-Type": "application/json",
            "Origin": gate.url("auth")[:-1],
            "X-CSRF-Token": cookies["passgate_csrf"],
            "Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items()),
        },
    )
    assert replay.status_code == 400
    assert replay.json()["error"] == "expired"
    assert "passgate_session" not in replay.headers.get("set-cookie", "")


def test_setup_page_is_gone_once_a_user_exists(gate: Gate) -> None:
    alice = gate.person()
    alice.set_up_account("alice", "Alice")
    response = httpx.get(
        f"http://127.0.0.1:{gate.port}/setup", headers={"Host": f"auth.{DOMAIN}:{gate.port}"}
    )
    assert response.status_code == 404
