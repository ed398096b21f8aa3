"""The admin console in a real browser: headless Chromium with a virtual authenticator, a real
Passgate process and a real Redis. An administrator runs the whole story (a user, a signup
link, a group, an OIDC client) and sees each step in the audit log. Also takes the README's
console screenshots."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.browser import CHROMIUM_FLAGS, DOCS, DOMAIN, Gate, Person
from tests.conftest import PassgateProcess, free_port, require_binary

RULES = f"""
default_policy: deny
rules:
  - name: passgate
    domain: auth.{DOMAIN}
    policy: bypass
  - name: family photos
    domain: photos.{DOMAIN}
    subject: ["group:family"]
    policy: allow
  - name: admin tools
    domain: "*.{DOMAIN}"
    resources: ["^/admin"]
    subject: ["group:admins"]
    policy: allow
"""


@pytest.fixture
def console_gate(
    start_passgate: Callable[..., PassgateProcess], redis_url: str, tmp_path: Path
) -> Iterator[Gate]:
    """Passgate alone (the console needs no proxy in front), with access rules and signups by
    token; the browser reaches it at auth.passgate.test."""
    chromium = require_binary("chromium", "apt-get install -y chromium")
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    port = free_port()
    passgate = start_passgate(
        port=str(port),
        app_url=f"http://auth.{DOMAIN}:{port}",
        cookie_domain=DOMAIN,
        redis_url=redis_url,
        allow_user_signups="withToken",
        config_file=str(rules),
    )
    with sync_playwright() as playwright:
        origin = f"http://auth.{DOMAIN}:{port}"
        browser = playwright.chromium.launch(
            executable_path=chromium,
            args=[*CHROMIUM_FLAGS, f"--unsafely-treat-insecure-origin-as-secure={origin}"],
        )
        yield Gate(passgate, port, browser)
        browser.close()


def shoot(person: Person, name: str) -> None:
    DOCS.mkdir(exist_ok=True)
    person.page.screenshot(path=str(DOCS / f"admin-{name}.png"), full_page=True)


def go(person: Person, path: str) -> None:
    person.page.goto(person.gate.url("auth", path))


def audit_rows(person: Person) -> list[str]:
    go(person, "/admin/audit")
    return [row.inner_text() for row in person.page.locator("#audit tbody tr").all()]


def test_admin_creates_user_invites_groups_and_client_and_sees_each_step_audited(
    console_gate: Gate,
) -> None:
    gate = console_gate
    alice = gate.person(autofill=False)
    alice.set_up_account("alice", "Alice Admin")

    # A user, and a one-time sign-in link for them.
    go(alice, "/admin/users")
    alice.page.fill("#new-username", "bob")
    alice.page.fill("#new-display-name", "Bob Builder")
    alice.page.fill("#new-email", "bob@example.com")
    alice.page.click("#user-create button[type=submit]")
    alice.page.wait_for_url("**/admin/users/bob?notice=*")
    alice.page.click("#login-link-create button")
    login_link = alice.page.inner_text("#login-link code")
    assert login_link.startswith(f"http://auth.{DOMAIN}:{gate.port}/lc/")

    # Bob opens it in his own browser, lands on his account and adds a passkey.
    bob = gate.person(autofill=False)
    bob.page.goto(login_link)
    bob.page.click("#login-code-form button")
    bob.page.wait_for_url("**/account")
    bob.page.click("#passkey-button")
    bob.page.locator("#passkeys li").first.wait_for()

    # A signup link; Carol signs up with a passkey in a third browser.
    go(alice, "/admin/users")
    alice.page.fill("#invite-uses", "1")
    alice.page.click("#signup-token-create button")
    signup_link = alice.page.inner_text("#signup-link code")
    carol = gate.person(autofill=False)
    carol.page.goto(signup_link)
    carol.page.fill("#username", "carol")
    carol.page.fill("#display_name", "Carol")
    carol.page.click("#passkey-button")
    carol.page.wait_for_url("**/account")

    # A group with both of them in it.
    go(alice, "/admin/groups")
    alice.page.fill("#group-name", "family")
    alice.page.click("#group-create button")
    alice.page.wait_for_url("**/admin/groups/family?notice=*")
    for name in ("bob", "carol"):
        alice.page.select_option("#member", name)
        alice.page.click("#member-add button")
        alice.page.wait_for_url("**/admin/groups/family?notice=*")
    expect(alice.page.locator("#members")).to_contain_text("carol")

    # An OIDC client: the secret once, and the values to paste into the app.
    go(alice, "/admin/clients")
    alice.page.fill("#name", "Memos")
    alice.page.fill("#redirect_uris", f"https://memos.{DOMAIN}/auth/callback")
    alice.page.click("#client-create button[type=submit]")
    secret = alice.page.inner_text("#client-secret-value")
    assert len(secret) >= 32
    details = alice.page.inner_text("#client-details")
    assert f"http://auth.{DOMAIN}:{gate.port}/.well-known/openid-configuration" in details
    go(alice, "/admin/clients")
    alice.page.click("#clients a:has-text('Memos')")
    alice.page.locator("#client-details").wait_for()
    assert secret not in alice.page.content()  # shown exactly once

    rows = audit_rows(alice)
    for event, subject in (
        ("user_created", "bob"),
        ("login_link_created", "bob"),
        ("signup_token_created", ""),
        ("group_created", "family"),
        ("group_member_added", "carol"),
        ("client_created", "Memos"),
    ):
        assert any(event in row and subject in row and "alice" in row for row in rows), event
    # ...and the users' own steps: Bob's sign-in by link and new passkey, Carol's signup.
    for event, who in (
        ("sign_in", "bob"),
        ("passkey_added", "bob"),
        ("signup_completed", "carol"),
        ("sign_in", "carol"),
    ):
        assert any(event in row and who in row for row in rows), (event, who)
    assert not any(secret in row or login_link in row for row in rows)


def test_console_screenshots(console_gate: Gate) -> None:
    gate = console_gate
    alice = gate.person(autofill=False)
    alice.set_up_account("alice", "Alice Admin")
    go(alice, "/admin/groups")
    alice.page.fill("#group-name", "family")
    alice.page.click("#group-create button")
    go(alice, "/admin/users")
    alice.page.fill("#new-username", "bob")
    alice.page.fill("#new-display-name", "Bob Builder")
    alice.page.fill("#new-email", "bob@example.com")
    alice.page.check("#user-create input[value=family]")
    alice.page.click("#user-create button[type=submit]")
    alice.page.wait_for_url("**/admin/users/bob?notice=*")
    alice.page.fill("#claim", "department")
    alice.page.fill("#value", "engineering")
    alice.page.click(".claim-form button")
    alice.page.wait_for_url("**/admin/users/bob?notice=*")
    alice.page.click("#login-link-create button")
    bob = gate.person(autofill=False)
    bob.page.goto(alice.page.inner_text("#login-link code"))
    bob.page.click("#login-code-form button")
    bob.page.wait_for_url("**/account")
    bob.page.click("#passkey-button")
    bob.page.locator("#passkeys li").first.wait_for()
    go(alice, "/admin/users/bob")
    expect(alice.page.locator("#user-passkeys")).to_contain_text("added")
    expect(alice.page.locator("#user-sessions")).to_contain_text("127.0.0.1")
    shoot(alice, "user")
    go(alice, "/admin/users")
    shoot(alice, "users")

    go(alice, "/admin/clients")
    alice.page.fill("#name", "Grafana")
    alice.page.fill("#redirect_uris", f"https://grafana.{DOMAIN}/login/generic_oauth")
    alice.page.check("#client-create input[value=family]")
    alice.page.click("#client-create button[type=submit]")
    alice.page.locator("#client-secret").wait_for()
    shoot(alice, "client")

    go(alice, f"/admin/rules?url=https://photos.{DOMAIN}/album/2024&username=bob")
    expect(alice.page.locator("#verdict")).to_contain_text("ALLOW")
    shoot(alice, "rules")
    go(alice, "/admin/audit")
    shoot(alice, "audit")
    go(alice, "/admin/settings")
    assert "test-encryption-key" not in alice.page.content()
    shoot(alice, "settings")
