"""Apache's mod_auth_openidc (Debian's libapache2-mod-auth-openidc) as a relying party of a real
Passgate, in front of a small CGI app, driven by Chromium with a passkey: the code flow with the
authorization request sent by GET and by POST, claims reaching the app, userinfo and token
refresh, key rotation, and logout with an ID token hint (server-cache sessions) and without one
(client-cookie sessions). The module must log no `auth_openidc:error` line.

Passgate is on `localhost`, the app on `127.0.0.1`: two sites, so the browser treats the app's
auto-submitted form as the cross-site POST it is in real life (no SameSite=Lax cookie on it)."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.browser import CHROMIUM_FLAGS, NO_AUTOFILL
from tests.conftest import PassgateProcess, free_port, require_binary
from tests.oidc.apache_rp import ApacheProcess, Site, claims_seen, require_apache

CONFIRM = "form[action='/api/oidc/end-session/confirm'] button"
# Server-cache sessions (the ID token is kept: logout sends id_token_hint), GET requests.
GET_SITE = {
    "OIDCSessionType": "server-cache",
    # Not "claims": the ID token's claims would then cover the refreshed userinfo's.
    "OIDCPassIDTokenAs": "serialized",
    "OIDCUserInfoRefreshInterval": "1",
    "OIDCRefreshAccessTokenBeforeExpiry": "3599",
}
# POST requests, client-cookie sessions (no ID token kept: logout sends no hint), and the
# README's rewrite that takes `iss` off error responses, which 2.4.12 mistakes for discovery.
POST_SITE = {"OIDCProviderAuthRequestMethod": "POST", "OIDCSessionType": "client-cookie"}
DENY_REWRITE = (
    "RewriteEngine On",
    "RewriteCond %{QUERY_STRING} (^|&)error=",
    "RewriteCond %{QUERY_STRING} ^(.*)&iss=[^&]*$",
    "RewriteRule ^/app/redirect_uri$ /app/redirect_uri?%1 [L]",
)


@dataclass
class Setup:
    passgate: PassgateProcess
    apache: ApacheProcess
    browser: Browser
    issuer: str
    sites: dict[str, Site]

    def person(self) -> Page:
        """A fresh browser profile with a virtual passkey authenticator."""
        context = self.browser.new_context()
        context.add_init_script(NO_AUTOFILL)  # sign in by the button, never on its own
        page = context.new_page()
        cdp = context.new_cdp_session(page)
        cdp.send("WebAuthn.enable")
        cdp.send(
            "WebAuthn.addVirtualAuthenticator",
            {
                "options": {
                    "protocol": "ctap2",
                    "transport": "internal",
                    "hasResidentKey": True,
                    "hasUserVerification": True,
                    "isUserVerified": True,
                }
            },
        )
        return page

    def set_up_account(self, page: Page, username: str, name: str) -> None:
        page.goto(f"{self.issuer}/setup")
        page.fill("#username", username)
        page.fill("#display_name", name)
        page.fill("#email", f"{username}@example.com")
        page.click("#passkey-button")
        page.wait_for_url("**/account")

    def sign_in_to(self, page: Page, site: Site) -> dict[str, str]:
        """Open the app, which sends the browser to Passgate (by a redirect, or by a form it
        submits); sign in and allow the app if asked; return what the app saw."""
        page.goto(f"{site.base}/app/whoami")
        page.wait_for_url(f"{self.issuer}/**")  # never silent: a sign-in or a consent page
        if page.url.startswith(f"{self.issuer}/login"):
            page.click("#passkey-button")
            page.wait_for_url(re.compile(f"^({re.escape(self.issuer)}/authorize|{site.base})"))
        if page.url.startswith(f"{self.issuer}/authorize"):
            page.click("button[value=allow]")
        page.wait_for_url(f"{site.base}/app/whoami")
        return claims_seen(page.inner_text("body"))

    def events(self, name: str) -> str:
        """Passgate's audit events of one kind, as the CLI exports them (JSON lines)."""
        exported = self.passgate.cli("audit", "export", "-", "--event", name)
        assert exported.returncode == 0, exported.stderr
        return exported.stdout

    def whoami(self, page: Page, site: Site) -> dict[str, str]:
        page.goto(f"{site.base}/app/whoami")
        return claims_seen(page.inner_text("body"))


@pytest.fixture
def setup(
    start_passgate: Callable[..., PassgateProcess], redis_url: str, tmp_path: Path
) -> Iterator[Setup]:
    require_apache()
    chromium = require_binary("chromium", "apt-get install -y chromium")
    port = free_port()
    issuer = f"http://localhost:{port}"
    passgate = start_passgate(port=str(port), app_url=issuer, redis_url=redis_url)
    sites = {
        "get": Site("get", GET_SITE),
        "post": Site("post", POST_SITE, DENY_REWRITE),
        "client_id": Site("client_id", {"OIDCSessionType": "client-cookie"}),
    }
    uris = [arg for s in sites.values() for arg in ("--redirect-uri", s.redirect_uri)]
    logout = [arg for s in sites.values() for arg in ("--post-logout-uri", s.signed_out)]
    added = passgate.cli("clients", "add", "Old App", *uris, *logout, "--refresh-tokens")
    assert added.returncode == 0, added.stderr
    client_id = re.search(r"client[ _]id:?\s+(\S+)", added.stdout, re.I)
    secret = re.search(r"secret:?\s+(\S+)", added.stdout, re.I)
    assert client_id is not None and secret is not None, added.stdout
    # The README's fix for logout from client-cookie sessions: the app names itself.
    sites["client_id"].directives["OIDCProviderEndSessionEndpoint"] = (
        f"{issuer}/api/oidc/end-session?client_id={client_id.group(1)}"
    )
    apache = ApacheProcess(
        tmp_path / "apache",
        list(sites.values()),
        f"http://127.0.0.1:{port}/.well-known/openid-configuration",
        client_id.group(1),
        secret.group(1),
    )
    apache.start()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
            yield Setup(passgate, apache, browser, issuer, sites)
            browser.close()
    finally:
        apache.stop()


def kid_of(id_token: str) -> str:
    header = id_token.split(".")[0]
    kid: str = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"]
    return kid


def test_get_requests_server_cache_refresh_rotation_and_logout_with_hint(setup: Setup) -> None:
    site = setup.sites["get"]
    page = setup.person()
    setup.set_up_account(page, "alice", "Alice Liddell")
    seen = setup.sign_in_to(page, site)

    # Claims reach the app as environment variables, the user also as a header. (Apache
    # gives a CGI no header whose name has an underscore, as the OIDC_CLAIM_* headers do.)
    assert seen["REMOTE_USER"] == "alice" and seen["HTTP_X_REMOTE_USER"] == "alice"
    assert seen["OIDC_CLAIM_email"] == "alice@example.com"
    assert seen["OIDC_CLAIM_preferred_username"] == "alice"
    assert seen["OIDC_CLAIM_groups"] == "admins"

    # Userinfo refresh picks up a changed name; the access token is refreshed before expiry.
    changed = setup.passgate.cli("users", "update", "alice", "--name", "Alice Hargreaves")
    assert changed.returncode == 0, changed.stderr
    time.sleep(1.5)
    again = setup.whoami(page, site)
    assert again["OIDC_CLAIM_name"] == "Alice Hargreaves"
    assert again["OIDC_access_token"] != seen["OIDC_access_token"]
    assert '"grant_type": "refresh_token"' in setup.events("token_refreshed")

    # Logout with id_token_hint returns to the app's registered signed-out page.
    page.goto(f"{site.redirect_uri}?logout={site.signed_out}")
    assert "id_token_hint=" in page.url and "Old App</strong> asks" in page.content()
    page.click(CONFIRM)
    page.wait_for_url(site.signed_out)
    page.goto(f"{setup.issuer}/account")
    page.wait_for_url("**/login?*")
    # ...and the module revoked its tokens on the way out.
    assert "revoked by the app" in setup.events("token_revoked")

    # After key rotation the next sign-in's ID token is signed with the new key, and accepted.
    rotated = setup.passgate.cli("keys", "rotate")
    assert rotated.returncode == 0, rotated.stderr
    fresh = setup.sign_in_to(page, site)
    assert kid_of(fresh["OIDC_id_token"]) != kid_of(seen["OIDC_id_token"])
    assert kid_of(fresh["OIDC_id_token"]) in rotated.stdout
    assert setup.apache.errors() == []


def test_post_requests_deny_and_logout_without_hint_with_client_cookie_sessions(
    setup: Setup,
) -> None:
    site = setup.sites["post"]
    page = setup.person()
    setup.set_up_account(page, "alice", "Alice Liddell")
    methods: list[str] = []
    authorize = f"{setup.issuer}/authorize"
    page.on("request", lambda r: methods.append(r.method) if r.url.startswith(authorize) else None)

    # Deny reaches the app as access_denied (with the README's rewrite for 2.4.12).
    page.goto(f"{site.base}/app/whoami")
    page.wait_for_url(f"{authorize}?*")
    page.click("button[value=deny]")
    page.wait_for_selector("text=access_denied")

    seen = setup.sign_in_to(page, site)
    assert methods[0] == "POST"
    assert seen["REMOTE_USER"] == "alice" and seen["OIDC_CLAIM_name"] == "Alice Liddell"

    # No ID token in a client-cookie session: only post_logout_redirect_uri is sent. Passgate
    # signs the user out and shows its own page, since the app did not say who it is.
    page.goto(f"{site.redirect_uri}?logout={site.signed_out}")
    assert "id_token_hint" not in page.url and "will not send you back" in page.content()
    page.click(CONFIRM)
    page.wait_for_selector("text=You are signed out")
    page.goto(f"{setup.issuer}/account")
    page.wait_for_url("**/login?*")
    page.goto(f"{site.base}/app/whoami")
    page.wait_for_url(f"{setup.issuer}/**")

    # With client_id in the end-session address, the same session type comes back to the app.
    other = setup.sites["client_id"]
    assert setup.sign_in_to(page, other)["REMOTE_USER"] == "alice"
    page.goto(f"{other.redirect_uri}?logout={other.signed_out}")
    assert "client_id=" in page.url and "Old App</strong> asks" in page.content()
    page.click(CONFIRM)
    page.wait_for_url(other.signed_out)
    assert setup.apache.errors() == []
