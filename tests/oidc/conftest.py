"""Fixtures for the OIDC tests: a real Passgate as identity provider with headless Chromium."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.browser import CHROMIUM_FLAGS, DOMAIN
from tests.conftest import PassgateProcess, free_port, require_binary


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
