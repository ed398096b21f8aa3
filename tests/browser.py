"""Headless Chromium with a virtual passkey authenticator (over CDP) in front of a real Passgate
and a real Caddy: the people and the gate the browser tests drive. The `gate` fixture that builds
one lives in tests/conftest.py."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from playwright.sync_api import Browser, BrowserContext, CDPSession, Page

from tests.conftest import ROOT, PassgateProcess

DOMAIN = "passgate.test"
DOCS = ROOT / "docs"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    f"--host-resolver-rules=MAP *.{DOMAIN} 127.0.0.1",
]
NO_AUTOFILL = "PublicKeyCredential.isConditionalMediationAvailable = async () => false;"


@dataclass
class Gate:
    passgate: PassgateProcess
    port: int
    browser: Browser

    def url(self, host: str, path: str = "/") -> str:
        return f"http://{host}.{DOMAIN}:{self.port}{path}"

    def person(self, autofill: bool = True) -> Person:
        """A fresh browser profile with its own virtual authenticator."""
        context = self.browser.new_context()
        if not autofill:
            context.add_init_script(NO_AUTOFILL)
        page = context.new_page()
        cdp = context.new_cdp_session(page)
        cdp.send("WebAuthn.enable")
        authenticator = cdp.send(
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
        )["authenticatorId"]
        return Person(self, context, page, cdp, authenticator)


@dataclass
class Person:
    gate: Gate
    context: BrowserContext
    page: Page
    cdp: CDPSession
    authenticator: str

    def credentials(self) -> list[dict[str, Any]]:
        """The authenticator's credentials, in the form WebAuthn.addCredential takes back."""
        result = self.cdp.send("WebAuthn.getCredentials", {"authenticatorId": self.authenticator})
        keys = (
            "credentialId",
            "isResidentCredential",
            "rpId",
            "privateKey",
            "userHandle",
            "signCount",
            "userName",
            "userDisplayName",
        )
        return [{k: c[k] for k in keys if k in c} for c in result["credentials"]]

    def keep_only(self, credential: dict[str, Any]) -> None:
        """Leave exactly this credential in the authenticator."""
        self.cdp.send("WebAuthn.clearCredentials", {"authenticatorId": self.authenticator})
        self.cdp.send(
            "WebAuthn.addCredential",
            {"authenticatorId": self.authenticator, "credential": credential},
        )

    def add_passkey_from_another_device(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """Click "Add a passkey" as a second device would (this authenticator's credential is
        in the exclude list, and a resident key per user fits one per authenticator).
        Return (first, second) credentials; the authenticator is left holding the first."""
        (first,) = self.credentials()
        self.cdp.send("WebAuthn.clearCredentials", {"authenticatorId": self.authenticator})
        count = self.page.locator("#passkeys li").count()
        self.page.click("#passkey-button")
        self.page.locator("#passkeys li").nth(count).wait_for()
        (second,) = self.credentials()
        self.keep_only(first)
        return first, second

    def set_up_account(self, username: str, name: str) -> None:
        self.page.goto(self.gate.url("auth", "/setup"))
        self.page.fill("#username", username)
        self.page.fill("#display_name", name)
        self.page.fill("#email", f"{username}@example.com")
        self.page.click("#passkey-button")
        self.page.wait_for_url("**/account")

    def sign_out(self) -> None:
        self.page.goto(self.gate.url("auth", "/account"))
        self.page.click("form[action='/logout'] button")
        self.page.wait_for_url("**/login")

    def sign_in_with_button(self, expect_url: str = "**/account") -> None:
        self.page.click("#passkey-button")
        self.page.wait_for_url(expect_url)

    def upstream_headers(self) -> dict[str, str]:
        self.page.goto(self.gate.url("app", "/whoami"))
        return dict(json.loads(self.page.inner_text("body"))["headers"])
