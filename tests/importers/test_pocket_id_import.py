"""`passgate import pocket-id`: a stopped Pocket-ID's people, passkeys and apps come over in one
command. Proof by the real things: a passkey registered in Chromium's virtual authenticator
against a py_webauthn relying party (as Pocket-ID registers them) signs in to Passgate through
Caddy after the import, and npm openid-client with the app's old client id and secret gets the
same `sub` as before."""

from __future__ import annotations

import base64
import sqlite3
from pathlib import Path

import bcrypt
import httpx
import pytest

from gateway.core.crypto import hash_token
from gateway.oidc.client_service import IMPORTED_BCRYPT_PREFIX
from gateway.oidc.clients import ClientSecret, OidcClient
from gateway.services import Services
from tests.browser import DOMAIN, Gate
from tests.cli.command import run
from tests.conftest import postgres_schema
from tests.importers.pocket_id_db import (
    ENCRYPTION_KEY,
    LOGO,
    SIGNED_AT,
    SQLITE_SCHEMA,
    SQLITE_SCHEMA_V2_0,
    V2_0,
    VERSION,
    PocketId,
    count_rows,
    register_passkey,
    rows,
    sealed_signing_key,
    write_postgres,
    write_sqlite,
)
from tests.oidc.node_rp import run_rp
from tests.oidc.relying_party import RP_CALLBACK, browser_login

KEY_ENV = {"APP_URL": "https://auth.example.com", "POCKET_ID_KEY": ENCRYPTION_KEY}


def pocket_id_file(tmp_path: Path, facts: PocketId, version: int = VERSION) -> Path:
    sealed, _ = sealed_signing_key(facts.kid)
    path = tmp_path / "pocket-id.db"
    schema = SQLITE_SCHEMA_V2_0 if version <= V2_0 else SQLITE_SCHEMA
    write_sqlite(path, rows(facts, sealed, version), schema)
    return path


def passgate_db(tmp_path: Path) -> sqlite3.Connection:
    return sqlite3.connect(tmp_path / "data" / "passgate.db")


def test_passkey_and_app_keep_working_after_the_import(
    gate: Gate, openid_client: Path, tmp_path: Path
) -> None:
    facts = PocketId()
    alice = gate.person(autofill=False)  # signs in with the button, not by autofill
    # Pocket-ID served at the RP ID's host: the passkey is bound to that RP ID.
    facts.passkey = register_passkey(alice.page, DOMAIN, facts.alice_id, "alice")
    sealed, public_jwk = sealed_signing_key(facts.kid)
    source = tmp_path / "pocket-id.db"
    write_sqlite(source, rows(facts, sealed))
    passgate = gate.passgate

    passgate.env["POCKET_ID_KEY"] = ENCRYPTION_KEY
    imported = passgate.cli(
        "import", "pocket-id", "--sqlite", str(source), "--encryption-key-env", "POCKET_ID_KEY"
    )
    assert imported.returncode == 0, imported.stderr
    passgate.stop()  # the documented way: import, then (re)start Passgate
    passgate.start()

    # The same authenticator, same Chromium context, signs in through Caddy.
    alice.page.goto(gate.url("app", "/whoami"))
    alice.page.wait_for_url("**/login?*")
    alice.sign_in_with_button(expect_url=gate.url("app", "/whoami"))
    assert alice.upstream_headers()["remote-user"] == "alice"

    # The app signs in with its old client id and secret, and knows Alice by the same sub.
    issuer = gate.url("auth", "").rstrip("/")
    settings = {
        "issuer": issuer,
        "local_url": passgate.url,
        "client_id": facts.client_id,
        "client_secret": facts.client_secret,
        "redirect_uri": RP_CALLBACK,
    }
    started = run_rp(openid_client, "start", **settings)
    callback = browser_login(issuer, alice, started["url"])
    done = run_rp(
        openid_client,
        "exchange",
        **settings,
        callback=callback,
        verifier=started["verifier"],
        state=started["state"],
        nonce=started["nonce"],
    )
    assert done["claims"]["sub"] == facts.alice_id
    assert done["userinfo"]["groups"] == ["admins", "family"]
    assert done["claims"]["department"] == "wonderland"
    assert done["claims"]["household"] == "liddell"
    # Signed with Pocket-ID's own key, so tokens it issued before keep verifying too.
    jwks = run_jwks(passgate.url)
    assert public_jwk["n"] in {k.get("n") for k in jwks if k["kid"] == facts.kid}
    # The bcrypt secret was re-hashed into Passgate's own storage on that first use.
    with sqlite3.connect(Path(passgate.env["DATA_DIR"]) / "passgate.db") as db:
        (stored,) = db.execute(
            "SELECT secret_hash FROM oidc_client_secrets WHERE client_id = ?", (facts.client_id,)
        ).fetchone()
    assert not stored.startswith("bcrypt:") and len(stored) == 64


def run_jwks(url: str) -> list[dict[str, str]]:
    keys: list[dict[str, str]] = httpx.get(f"{url}/.well-known/jwks.json", timeout=10).json()[
        "keys"
    ]
    return keys


def test_everything_comes_over_with_the_same_ids(tmp_path: Path) -> None:
    facts = PocketId()
    source = pocket_id_file(tmp_path, facts)

    result = run(
        tmp_path,
        "import",
        "pocket-id",
        "--sqlite",
        str(source),
        "--encryption-key-env",
        "POCKET_ID_KEY",
        **KEY_ENV,
    )

    assert result.returncode == 0, result.stderr
    with passgate_db(tmp_path) as db:
        users = dict(db.execute("SELECT id, username FROM users").fetchall())
        assert users == {facts.alice_id: "alice", facts.bob_id: "bob"}
        disabled = db.execute("SELECT disabled FROM users WHERE id = ?", (facts.bob_id,))
        assert disabled.fetchone() == (1,)
        groups = db.execute(
            "SELECT g.name FROM user_groups ug JOIN groups g ON g.id = ug.group_id "
            "WHERE ug.user_id = ? ORDER BY g.name",
            (facts.alice_id,),
        ).fetchall()
        assert groups == [("admins",), ("family",)]
        client = db.execute(
            "SELECT redirect_uris, post_logout_redirect_uris, allowed_groups, pkce_required, "
            "public FROM oidc_clients WHERE client_id = ?",
            (facts.client_id,),
        ).fetchone()
        assert client == (
            '["https://rp.passgate.test/callback"]',
            '["https://rp.passgate.test/signed-out"]',
            '["family"]',
            1,
            0,
        )
        (details,) = db.execute(
            "SELECT details FROM audit_log WHERE event = 'pocket_id_imported'"
        ).fetchone()
        history = db.execute(
            "SELECT at, ip, user_id FROM audit_log WHERE event = 'pocket_id_sign_in'"
        ).fetchall()
        kids = [r[0] for r in db.execute("SELECT kid FROM signing_keys WHERE retired_at IS NULL")]
        logo = db.execute("SELECT content_type, image FROM oidc_client_logos").fetchall()
    assert '"users": 2' in details and '"clients": 1' in details
    assert history == [(SIGNED_AT.timestamp(), "192.0.2.7", facts.alice_id)]
    assert facts.kid in kids
    assert logo == [("image/png", base64.b64encode(LOGO).decode())]


def test_dry_run_prints_the_plan_and_changes_nothing(tmp_path: Path) -> None:
    facts = PocketId()
    source = pocket_id_file(tmp_path, facts)
    assert run(tmp_path, "users", "list", **KEY_ENV).returncode == 0  # the database exists
    before = count_rows(tmp_path / "data" / "passgate.db")

    result = run(tmp_path, "import", "pocket-id", "--sqlite", str(source), "--dry-run", **KEY_ENV)

    assert result.returncode == 0, result.stderr
    assert "users: 2" in result.stdout and "clients: 1" in result.stdout
    assert f"user alice (sub {facts.alice_id}), groups: family, admins" in result.stdout
    assert "client Memos (client_id memos)" in result.stdout
    # Without the ENCRYPTION_KEY the signing key stays behind, and the plan says why.
    assert "the signing key (no Pocket-ID ENCRYPTION_KEY given" in result.stdout
    assert "dry run: nothing was changed" in result.stderr
    assert count_rows(tmp_path / "data" / "passgate.db") == before


def test_a_database_that_holds_data_is_refused_without_merge(tmp_path: Path) -> None:
    source = pocket_id_file(tmp_path, PocketId())
    assert run(tmp_path, "users", "add", "carol", **KEY_ENV).returncode == 0

    refused = run(tmp_path, "import", "pocket-id", "--sqlite", str(source), **KEY_ENV)
    merged = run(tmp_path, "import", "pocket-id", "--sqlite", str(source), "--merge", **KEY_ENV)

    assert refused.returncode == 2
    assert "already holds 1 users" in refused.stderr and "--merge" in refused.stderr
    assert merged.returncode == 0, merged.stderr
    with passgate_db(tmp_path) as db:
        assert db.execute("SELECT COUNT(*) FROM users").fetchone() == (3,)


@pytest.mark.parametrize("version", [20251115000000, 20260901000000])
def test_a_schema_version_outside_the_supported_range_is_refused(
    tmp_path: Path, version: int
) -> None:
    source = pocket_id_file(tmp_path, PocketId(), version=version)

    result = run(tmp_path, "import", "pocket-id", "--sqlite", str(source), **KEY_ENV)

    assert result.returncode == 2
    assert f"schema version {version} is not supported" in result.stderr
    assert "20251229173100 to 20260814120000" in result.stderr


def test_a_wrong_encryption_key_leaves_the_signing_key_behind_and_says_so(
    tmp_path: Path,
) -> None:
    source = pocket_id_file(tmp_path, PocketId())
    env = {**KEY_ENV, "POCKET_ID_KEY": "not-the-key-0123456789"}

    result = run(
        tmp_path,
        "import",
        "pocket-id",
        "--sqlite",
        str(source),
        "--encryption-key-env",
        "POCKET_ID_KEY",
        "--dry-run",
        **env,
    )

    assert result.returncode == 0, result.stderr
    assert "does not decrypt with that ENCRYPTION_KEY" in result.stdout


def test_postgresql_pocket_id_comes_over(tmp_path: Path) -> None:
    facts = PocketId()
    sealed, _ = sealed_signing_key(facts.kid)
    with postgres_schema("pocket_") as url:
        write_postgres(url, rows(facts, sealed))

        result = run(
            tmp_path,
            "import",
            "pocket-id",
            "--postgres",
            url,
            "--encryption-key-env",
            "POCKET_ID_KEY",
            **KEY_ENV,
        )

    assert result.returncode == 0, result.stderr
    assert "signing key pocket-id-key-1 becomes the active key" in result.stdout
    with passgate_db(tmp_path) as db:
        users = dict(db.execute("SELECT id, username FROM users").fetchall())
        claims = db.execute("SELECT claim, value FROM custom_claims ORDER BY claim").fetchall()
    assert users == {facts.alice_id: "alice", facts.bob_id: "bob"}
    assert claims == [("department", "wonderland"), ("household", "liddell")]


def test_the_oldest_supported_version_comes_over_with_its_secret_and_key(tmp_path: Path) -> None:
    facts = PocketId()
    sealed, _ = sealed_signing_key(facts.kid)
    source = tmp_path / "pocket-id-v2.0.db"
    write_sqlite(source, rows(facts, sealed, V2_0), SQLITE_SCHEMA_V2_0)

    result = run(
        tmp_path, "import", "pocket-id", "--sqlite", str(source), "--encryption-key-env",
        "POCKET_ID_KEY", **KEY_ENV,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert f"schema version {V2_0}" in result.stdout
    assert "signing key pocket-id-key-1 becomes the active key" in result.stdout
    with passgate_db(tmp_path) as db:
        (stored,) = db.execute(
            "SELECT secret_hash FROM oidc_client_secrets WHERE client_id = ?", (facts.client_id,)
        ).fetchone()
    assert stored.startswith("bcrypt:$2")


def test_an_imported_bcrypt_secret_is_checked_then_rehashed(services: Services) -> None:
    hashed = bcrypt.hashpw(b"old-secret", bcrypt.gensalt(rounds=4)).decode()
    with services.db.transaction() as tx:
        services.clients.insert(
            tx,
            OidcClient(
                client_id="memos", name="Memos", public=False,
                redirect_uris=(RP_CALLBACK,), post_logout_redirect_uris=(), allowed_groups=(),
                pkce_required=True, wildcard_callbacks=False, id_token_alg="RS256",
                access_token_lifetime=3600, refresh_token_lifetime=86400, refresh_tokens=False,
                logo_url="", declared=False, created_at=0.0,
                secrets=(ClientSecret("s1", "pocket-id", IMPORTED_BCRYPT_PREFIX + hashed, 0.0),),
            ),
        )  # fmt: skip
    client = services.clients.get("memos")

    assert not services.clients.verify_secret(client, "wrong-secret")
    assert services.clients.verify_secret(client, "old-secret")
    (secret,) = services.clients.get("memos").secrets
    assert secret.secret_hash == hash_token("old-secret")
    assert services.clients.verify_secret(services.clients.get("memos"), "old-secret")


def test_with_pocket_ids_env_file_its_encryption_key_is_already_there(tmp_path: Path) -> None:
    source = pocket_id_file(tmp_path, PocketId())
    env = {"APP_URL": "https://auth.example.com", "ENCRYPTION_KEY": ENCRYPTION_KEY}

    result = run(tmp_path, "import", "pocket-id", "--sqlite", str(source), "--dry-run", **env)

    assert result.returncode == 0, result.stderr
    assert "signing key pocket-id-key-1 becomes the active key" in result.stdout
