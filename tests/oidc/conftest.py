"""Fixtures for the OIDC tests: a real Passgate as identity provider with headless Chromium
(`idp`), and the provider in-process (`op`) with a user to sign in (`alice`). npm's
openid-client (`openid_client`) is installed by tests/conftest.py, for the import tests too."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, sync_playwright

from gateway.accounts.users import User
from gateway.services import Services
from tests.browser import CHROMIUM_FLAGS, DOMAIN
from tests.conftest import PassgateProcess, free_port, require_binary
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
