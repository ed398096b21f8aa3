"""What the OIDC tests' relying parties share: the callback, registering a client with the CLI,
following an authorization URL in a signed-in browser, and running npm openid-client
(tests/rp_node/rp.mjs)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.browser import DOMAIN, Person
from tests.conftest import PassgateProcess

RP_CALLBACK = f"https://rp.{DOMAIN}/callback"
RP_DIR = Path(__file__).resolve().parent.parent / "rp_node"


def run_rp(rp_dir: Path, step: str, **settings: str) -> dict[str, Any]:
    """One step of tests/rp_node/rp.mjs, settings as upper-case environment variables."""
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
