"""The move the README promises: a Passgate in use on SQLite is exported, imported into
PostgreSQL on an instance with another ENCRYPTION_KEY, and the same passkey (the same browser
profile, the same virtual authenticator) signs in through Caddy to a protected service.
An OpenID Connect client keeps its secret, its consent and its refresh token across the move.
Real Passgate processes, real Caddy, real PostgreSQL, headless Chromium."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import psycopg
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import OAuth2Client
from joserfc import jwt
from joserfc.jwk import KeySet
from playwright.sync_api import sync_playwright

from tests.browser import CHROMIUM_FLAGS, DOMAIN, Gate, Person
from tests.conftest import CaddyProcess, PassgateProcess, free_port, require_binary
from tests.upstream import EchoServer

PASSPHRASE = "a long passphrase for the move"


def authorize(person: Person, url: str, consent: bool) -> str:
    """Follow an authorization URL in the browser (answering the consent page only when
    `consent`); return the callback URL carrying the code (the echo service answers it)."""
    person.page.goto(url)
    if consent:
        person.page.click("button[value=allow]")
    person.page.wait_for_url("**/callback?*", timeout=10_000)
    return person.page.url


def test_sqlite_instance_moves_to_postgresql_and_the_same_passkey_signs_in_through_caddy(
    start_passgate: Callable[..., PassgateProcess],
    start_caddy: Callable[[str, int], CaddyProcess],
    postgres_url: str,
    tmp_path: Path,
) -> None:
    chromium = require_binary("chromium", "apt-get install -y chromium")
    port, passgate_port = free_port(), free_port()
    base = f"http://auth.{DOMAIN}:{port}"
    old = start_passgate(
        port=str(passgate_port),
        app_url=base,
        cookie_domain=DOMAIN,
        data_dir=str(tmp_path / "on-sqlite"),
        encryption_key="the-old-machine-key-0123456789",
    )
    assert old.env.get("DB_PROVIDER", "sqlite") == "sqlite"
    direct = f"http://127.0.0.1:{passgate_port}"
    local = lambda url: url.replace(base, direct)  # noqa: E731 - the RP talks to Passgate directly

    with EchoServer() as upstream, sync_playwright() as playwright:
        callback_url = f"http://127.0.0.1:{upstream.port}/callback"
        added = old.cli(
            "clients", "add", "Wiki", "--redirect-uri", callback_url, "--refresh-tokens"
        )
        assert added.returncode == 0, added.stderr
        client_id = re.search(r"client_id:\s+(\S+)", added.stdout).group(1)  # type: ignore[union-attr]
        secret = re.search(r"client_secret:\s+(\S+)", added.stdout).group(1)  # type: ignore[union-attr]
        backend = f"127.0.0.1:{passgate_port}"
        start_caddy(
            f"http://app.{DOMAIN}:{port} {{\n\timport passgate {backend}\n"
            f"\treverse_proxy 127.0.0.1:{upstream.port}\n}}\n"
            f"http://auth.{DOMAIN}:{port} {{\n\treverse_proxy {backend}\n}}\n",
            port,
        )
        browser = playwright.chromium.launch(
            executable_path=chromium,
            args=[
                *CHROMIUM_FLAGS,
                f"--unsafely-treat-insecure-origin-as-secure={base},http://app.{DOMAIN}:{port}",
            ],
        )
        alice = Gate(old, port, browser).person(autofill=False)
        alice.set_up_account("alice", "Alice Liddell")
        assert alice.upstream_headers()["remote-user"] == "alice"

        # The OIDC app is used once on SQLite: consent given, tokens issued.
        meta = httpx.get(f"{direct}/.well-known/openid-configuration").json()
        rp = OAuth2Client(
            client_id,
            secret,
            scope="openid profile",
            redirect_uri=callback_url,
            code_challenge_method="S256",
        )
        verifier = generate_token(48)
        url, _ = rp.create_authorization_url(meta["authorization_endpoint"], code_verifier=verifier)
        before = rp.fetch_token(
            local(meta["token_endpoint"]),
            authorization_response=authorize(alice, url, consent=True),
            code_verifier=verifier,
        )
        kid_before = jwt.decode(
            before["id_token"],
            KeySet.import_key_set(httpx.get(f"{direct}/.well-known/jwks.json").json()),
        ).header["kid"]

        # The move: stop, export, import into PostgreSQL under another key, start.
        old.stop()
        archive = tmp_path / "passgate.backup"
        old.env["BACKUP_PASSPHRASE"] = PASSPHRASE
        exported = old.cli("export", str(archive), "--passphrase-env", "BACKUP_PASSPHRASE")
        assert exported.returncode == 0, exported.stderr
        assert "users 1" in exported.stdout and "passkeys 1" in exported.stdout
        new_env = {
            **old.env,
            "DB_PROVIDER": "postgres",
            "DB_CONNECTION_STRING": postgres_url,
            "DATA_DIR": str(tmp_path / "on-postgres"),
            "ENCRYPTION_KEY": "the-new-machine-key-9876543210",
        }
        new = PassgateProcess(new_env, passgate_port)
        imported = new.cli("import", str(archive), "--passphrase-env", "BACKUP_PASSPHRASE")
        assert imported.returncode == 0, imported.stderr
        assert "on sqlite" in imported.stdout
        new.start()
        try:
            with psycopg.connect(postgres_url) as conn:
                users = conn.execute("SELECT username FROM users").fetchall()
            assert users == [("alice",)]

            # The old session does not survive the move (its cookie was signed with the old
            # key and sessions are not carried): Caddy sends the browser to sign in...
            alice.page.goto(alice.gate.url("app", "/whoami?after=move"))
            alice.page.wait_for_url("**/login?rd=*")
            # ...and the same passkey, from the same authenticator, signs in on PostgreSQL.
            alice.sign_in_with_button(expect_url="**/whoami?after=move")
            headers = alice.upstream_headers()
            assert headers["remote-user"] == "alice"
            assert headers["remote-name"] == "Alice Liddell"
            assert headers["remote-groups"] == "admins"
            with psycopg.connect(postgres_url) as conn:
                used = conn.execute("SELECT last_used_at, sign_count FROM passkeys").fetchone()
            assert used is not None and used[0] is not None

            # The OIDC client: consent remembered (no consent page), the same secret works, ID
            # tokens are signed with the moved key, the old refresh token still refreshes.
            verifier = generate_token(48)
            url, state = rp.create_authorization_url(
                meta["authorization_endpoint"], code_verifier=verifier
            )
            callback = authorize(alice, url, consent=False)
            assert parse_qs(urlsplit(callback).query)["state"] == [state]
            after = rp.fetch_token(
                local(meta["token_endpoint"]),
                authorization_response=callback,
                code_verifier=verifier,
            )
            keys = KeySet.import_key_set(httpx.get(f"{direct}/.well-known/jwks.json").json())
            id_token = jwt.decode(after["id_token"], keys)
            assert id_token.header["kid"] == kid_before
            assert id_token.claims["preferred_username"] == "alice"
            refreshed = rp.refresh_token(
                local(meta["token_endpoint"]), refresh_token=before["refresh_token"]
            )
            assert (
                refreshed["access_token"] and refreshed["refresh_token"] != before["refresh_token"]
            )
        finally:
            new.stop()
            browser.close()
