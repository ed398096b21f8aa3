"""What the OIDC tests' relying parties share: the callback, registering a client with the CLI and
following an authorization URL in a signed-in browser."""

from __future__ import annotations

import re

from tests.browser import DOMAIN, Person
from tests.conftest import PassgateProcess

RP_CALLBACK = f"https://rp.{DOMAIN}/callback"


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
