"""What the OIDC tests' relying parties share: the callback, registering a client with the CLI and
following an authorization URL in a signed-in browser."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

from tests.browser import DOMAIN, Person
from tests.conftest import PassgateProcess

RP_CALLBACK = f"https://rp.{DOMAIN}/callback"
RP_DIR = Path(__file__).resolve().parent.parent / "rp_node"  # npm openid-client (rp.mjs)


def rp_command(rp_dir: Path, step: str, **settings: str) -> dict[str, Any]:
    """How to run one step of rp.mjs: its command line, directory and environment."""
    return {
        "args": ["node", "rp.mjs", step],
        "cwd": rp_dir,
        "env": {**os.environ, **{k.upper(): v for k, v in settings.items()}},
        "text": True,
    }


def run_rp(rp_dir: Path, step: str, **settings: str) -> dict[str, Any]:
    """Run one step of rp.mjs to the end; what it printed, parsed."""
    result = subprocess.run(
        **rp_command(rp_dir, step, **settings), capture_output=True, timeout=60, check=False
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
