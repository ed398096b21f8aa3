"""What the OIDC tests' relying parties share: the callback, registering a client with the CLI,
following an authorization URL in a signed-in browser."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.browser import DOMAIN, Person
from tests.conftest import PassgateProcess
from tests.oidc.node_rp import run_rp

RP_CALLBACK = f"https://rp.{DOMAIN}/callback"


def add_client(passgate: PassgateProcess, *args: str) -> tuple[str, str | None]:
    result = passgate.cli("clients", "add", "Memos", "--redirect-uri", RP_CALLBACK, *args)
    assert result.returncode == 0, result.stderr
    client_id = re.search(r"client[ _]id:?\s+(\S+)", result.stdout, re.I)
    secret = re.search(r"secret:?\s+(\S+)", result.stdout, re.I)
    assert client_id is not None, result.stdout
    return client_id.group(1), secret.group(1) if secret else None


@dataclass(frozen=True)
class Callback:
    """How the browser came back to the app: the URL, and the form it posted (form_post)."""

    url: str
    method: str
    body: str


def browser_callback(person: Person, authorization_url: str, passkey: bool = False) -> Callback:
    """Follow the authorization URL in the browser (signing in with the passkey button first
    when `passkey`), consent if asked; return the request that reached the callback."""
    callback: list[Callback] = []

    def arrive(route: Any) -> None:
        request = route.request
        callback.append(Callback(request.url, request.method, request.post_data or ""))
        route.fulfill(status=200, body="ok")

    person.page.route(f"{RP_CALLBACK}*", arrive)
    person.page.goto(authorization_url)
    if passkey:
        person.page.wait_for_url("**/login?*")
        person.page.click("#passkey-button")
        person.page.wait_for_url(lambda url: "/authorize?" in url or url.startswith(RP_CALLBACK))
    if "/authorize" in person.page.url and not callback:
        person.page.click("button[value=allow]")
    person.page.wait_for_url(f"{RP_CALLBACK}*")
    assert callback
    return callback[0]


def browser_login(
    idp_url: str, person: Person, authorization_url: str, passkey: bool = False
) -> str:
    """Follow the authorization URL in the browser; return the callback URL with the code."""
    return browser_callback(person, authorization_url, passkey).url


def openid_client_code_flow(
    rp_dir: Path,
    person: Person,
    finish: str = "finish",
    start: str = "start",
    passkey: bool = False,
    **settings: str,
) -> tuple[str, dict[str, Any]]:
    """A code flow driven by npm openid-client: its `start` step, `person` signing in (and
    consenting) in the browser, then its `finish` step with the callback. Returns the callback
    URL and what the finish step printed."""
    started = run_rp(rp_dir, start, **settings)
    callback = browser_login(settings["issuer"], person, started["url"], passkey=passkey)
    done = run_rp(
        rp_dir,
        finish,
        **settings,
        callback=callback,
        verifier=started["verifier"],
        state=started["state"],
        nonce=started["nonce"],
    )
    return callback, done
