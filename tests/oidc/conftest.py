"""Fixtures for the OIDC tests: a real Passgate as identity provider with headless Chromium
(`idp`), npm's openid-client installed (`openid_client`), and the provider in-process (`op`)
with a user to sign in (`alice`)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from gateway.accounts.users import User
from gateway.services import Services
from tests.browser import CHROMIUM_FLAGS, DOMAIN
from tests.conftest import PassgateProcess, exclusive, free_port, require_binary
from tests.oidc import node_rp
from tests.oidc.in_process import Op


@pytest.fixture
def idp(start_passgate, redis_url: str) -> Iterator[tuple[PassgateProcess, Browser, int]]:  # type: ignore[no-untyped-def]
    chromium = require_binary("chromium", "apt-get install -y chromium")
    port = free_port()
    passgate = start_passgate(
        port=str(port),
        app_url=f"http://auth.{DOMAIN}:{port}",
        cookie_domain=DOMAIN,
        redis_url=redis_url,
    )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium,
            args=[
                *CHROMIUM_FLAGS,
                f"--unsafely-treat-insecure-origin-as-secure=http://auth.{DOMAIN}:{port}",
            ],
        )
        yield passgate, browser, port
        browser.close()


@pytest.fixture
def op(services: Services) -> Iterator[Op]:
    yield Op(services)


@pytest.fixture
def alice(services: Services) -> User:
    services.users.create_group("family")
    return services.users.create_user(
        "alice", display_name="Alice Liddell", email="alice@example.com", groups=("family",)
    )


@pytest.fixture(scope="session")
def openid_client() -> Path:
    """tests/rp_node with its locked npm dependencies installed (node_modules is not committed)."""
    npm = require_binary("npm", "apt-get install -y nodejs npm")
    require_binary("node", "apt-get install -y nodejs")
    with exclusive("npm-ci"):  # one worker installs; the others wait for it, then find it there
        if not node_rp.installed():
            subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund"], cwd=node_rp.RP_DIR, check=True, timeout=300
            )
    return node_rp.RP_DIR
