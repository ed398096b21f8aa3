"""A Pocket-ID database for the import tests, built from the schema facts of Pocket-ID v2.14.0
(migration 20260814120000), on SQLite or PostgreSQL, plus a passkey registered the way
Pocket-ID registers one (py_webauthn as the relying party, Chromium's virtual authenticator).

The CREATE TABLE statements are written here from those facts (column names, types, how values
are stored), only for the tables and columns the importer reads; they are not Pocket-ID's files.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import sqlite3
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bcrypt
import psycopg
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from joserfc.jwk import RSAKey
from playwright.sync_api import Page
from webauthn import generate_registration_options, options_to_json, verify_registration_response
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

VERSION = 20260814120000  # Pocket-ID v2.14.0

# SQLite: times are Unix seconds (INTEGER in DATETIME columns), JSON lists TEXT/BLOB.
SQLITE_SCHEMA = (
    "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, dirty BOOLEAN NOT NULL)",
    """CREATE TABLE users (id TEXT PRIMARY KEY, created_at DATETIME, updated_at DATETIME,
        username TEXT COLLATE NOCASE NOT NULL UNIQUE, email TEXT UNIQUE,
        first_name TEXT NOT NULL, last_name TEXT NOT NULL, display_name TEXT NOT NULL,
        is_admin BOOLEAN NOT NULL DEFAULT FALSE, ldap_id TEXT UNIQUE, locale TEXT,
        disabled BOOLEAN NOT NULL DEFAULT FALSE, email_verified BOOLEAN NOT NULL DEFAULT FALSE)""",
    """CREATE TABLE user_groups (id TEXT PRIMARY KEY, created_at DATETIME,
        friendly_name TEXT NOT NULL, name TEXT NOT NULL UNIQUE, ldap_id TEXT,
        updated_at DATETIME)""",
    """CREATE TABLE user_groups_users (user_id TEXT NOT NULL, user_group_id TEXT NOT NULL,
        PRIMARY KEY (user_id, user_group_id))""",
    """CREATE TABLE custom_claims (id TEXT PRIMARY KEY, created_at DATETIME, key TEXT NOT NULL,
        value TEXT NOT NULL, user_id TEXT, user_group_id TEXT)""",
    """CREATE TABLE webauthn_credentials (id TEXT PRIMARY KEY, created_at DATETIME NOT NULL,
        name TEXT NOT NULL, credential_id BLOB NOT NULL UNIQUE, public_key BLOB NOT NULL,
        attestation_type TEXT NOT NULL, transport BLOB NOT NULL, user_id TEXT,
        backup_eligible BOOLEAN NOT NULL DEFAULT FALSE,
        backup_state BOOLEAN NOT NULL DEFAULT FALSE)""",
    """CREATE TABLE oidc_clients (id TEXT PRIMARY KEY, created_at DATETIME NOT NULL, name TEXT,
        callback_urls BLOB, image_type TEXT, created_by_id TEXT, is_public BOOLEAN DEFAULT FALSE,
        pkce_enabled BOOLEAN DEFAULT FALSE, logout_callback_urls BLOB, credentials BLOB,
        launch_url TEXT, requires_reauthentication BOOLEAN NOT NULL DEFAULT FALSE,
        dark_image_type TEXT, is_group_restricted BOOLEAN NOT NULL DEFAULT 0,
        requires_pushed_authorization_requests BOOLEAN NOT NULL DEFAULT FALSE,
        skip_consent BOOLEAN NOT NULL DEFAULT FALSE, pkce_supported BOOLEAN NOT NULL DEFAULT 0,
        description TEXT NOT NULL DEFAULT '', client_type TEXT NOT NULL DEFAULT 'standard',
        access_token_duration_minutes INTEGER NOT NULL DEFAULT 60,
        refresh_token_duration_minutes INTEGER NOT NULL DEFAULT 43200)""",
    """CREATE TABLE oidc_clients_allowed_user_groups (user_group_id TEXT NOT NULL,
        oidc_client_id TEXT NOT NULL, PRIMARY KEY (oidc_client_id, user_group_id))""",
    """CREATE TABLE audit_logs (id TEXT PRIMARY KEY, created_at DATETIME NOT NULL,
        event TEXT NOT NULL, ip_address TEXT, user_agent TEXT NOT NULL, data BLOB NOT NULL,
        user_id TEXT, country TEXT, city TEXT)""",
    'CREATE TABLE kv ("key" TEXT NOT NULL PRIMARY KEY, "value" TEXT NOT NULL)',
    """CREATE TABLE storage (path TEXT NOT NULL PRIMARY KEY, data BLOB NOT NULL,
        size INTEGER NOT NULL, mod_time DATETIME NOT NULL, created_at DATETIME NOT NULL)""",
)

# Pocket-ID v2.0.0 (migration 20251229173100), the oldest version imported: the one client
# secret in its own column, the instance id among the application settings.
V2_0 = 20251229173100
SQLITE_SCHEMA_V2_0 = (
    *(s for s in SQLITE_SCHEMA if "TABLE oidc_clients (" not in s),
    """CREATE TABLE oidc_clients (id TEXT PRIMARY KEY, created_at DATETIME NOT NULL, name TEXT,
        secret TEXT, callback_urls BLOB, image_type TEXT, created_by_id TEXT,
        is_public BOOLEAN DEFAULT FALSE, pkce_enabled BOOLEAN DEFAULT FALSE,
        logout_callback_urls BLOB, credentials TEXT, launch_url TEXT,
        requires_reauthentication BOOLEAN NOT NULL DEFAULT FALSE, dark_image_type TEXT,
        is_group_restricted BOOLEAN NOT NULL DEFAULT 0)""",
    "CREATE TABLE app_config_variables (key TEXT NOT NULL PRIMARY KEY, value TEXT NOT NULL)",
)

# PostgreSQL: uuid ids, timestamptz, jsonb, bytea, inet (username is citext there; TEXT here).
POSTGRES_SCHEMA = (
    "CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, dirty BOOLEAN NOT NULL)",
    """CREATE TABLE users (id UUID PRIMARY KEY, created_at TIMESTAMPTZ, updated_at TIMESTAMPTZ,
        username TEXT NOT NULL UNIQUE, email VARCHAR(255) UNIQUE, first_name VARCHAR(50),
        last_name VARCHAR(50), display_name TEXT NOT NULL, is_admin BOOLEAN NOT NULL DEFAULT FALSE,
        ldap_id TEXT, locale TEXT, disabled BOOLEAN NOT NULL DEFAULT FALSE,
        email_verified BOOLEAN NOT NULL DEFAULT FALSE)""",
    """CREATE TABLE user_groups (id UUID PRIMARY KEY, created_at TIMESTAMPTZ,
        friendly_name VARCHAR(50) NOT NULL, name VARCHAR(255) NOT NULL UNIQUE, ldap_id TEXT,
        updated_at TIMESTAMPTZ)""",
    """CREATE TABLE user_groups_users (user_id UUID NOT NULL, user_group_id UUID NOT NULL,
        PRIMARY KEY (user_id, user_group_id))""",
    """CREATE TABLE custom_claims (id UUID PRIMARY KEY, created_at TIMESTAMPTZ,
        key VARCHAR(255) NOT NULL, value TEXT NOT NULL, user_id UUID, user_group_id UUID)""",
    """CREATE TABLE webauthn_credentials (id UUID PRIMARY KEY, created_at TIMESTAMPTZ,
        name VARCHAR(50) NOT NULL, credential_id BYTEA NOT NULL UNIQUE, public_key BYTEA NOT NULL,
        attestation_type VARCHAR(20) NOT NULL, transport JSONB NOT NULL, user_id UUID,
        backup_eligible BOOLEAN NOT NULL DEFAULT FALSE,
        backup_state BOOLEAN NOT NULL DEFAULT FALSE)""",
    """CREATE TABLE oidc_clients (id TEXT PRIMARY KEY, created_at TIMESTAMPTZ,
        name VARCHAR(50), callback_urls JSONB, image_type VARCHAR(10), created_by_id UUID,
        is_public BOOLEAN DEFAULT FALSE, pkce_enabled BOOLEAN DEFAULT FALSE,
        logout_callback_urls JSONB, credentials JSONB, launch_url TEXT,
        requires_reauthentication BOOLEAN NOT NULL DEFAULT FALSE, dark_image_type TEXT,
        is_group_restricted BOOLEAN NOT NULL DEFAULT FALSE,
        requires_pushed_authorization_requests BOOLEAN NOT NULL DEFAULT FALSE,
        skip_consent BOOLEAN NOT NULL DEFAULT FALSE, pkce_supported BOOLEAN NOT NULL DEFAULT FALSE,
        description TEXT NOT NULL DEFAULT '', client_type TEXT NOT NULL DEFAULT 'standard',
        access_token_duration_minutes BIGINT NOT NULL DEFAULT 60,
        refresh_token_duration_minutes BIGINT NOT NULL DEFAULT 43200)""",
    """CREATE TABLE oidc_clients_allowed_user_groups (user_group_id UUID NOT NULL,
        oidc_client_id TEXT NOT NULL, PRIMARY KEY (oidc_client_id, user_group_id))""",
    """CREATE TABLE audit_logs (id UUID PRIMARY KEY, created_at TIMESTAMPTZ,
        event VARCHAR(100) NOT NULL, ip_address INET, user_agent TEXT, data JSONB NOT NULL,
        user_id UUID, country VARCHAR(100), city VARCHAR(100))""",
    "CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT)",
    """CREATE TABLE storage (path TEXT PRIMARY KEY, data BYTEA NOT NULL, size BIGINT NOT NULL,
        mod_time TIMESTAMPTZ NOT NULL, created_at TIMESTAMPTZ NOT NULL)""",
)

ENCRYPTION_KEY = "pocket-id-encryption-key-0123456789"
INSTANCE_ID = "6f4c1c8e-4a3b-4a53-9d5e-0b1d2c3e4f50"
SIGNED_AT = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
LOGO = b"\x89PNG\r\n\x1a\n" + bytes(64)  # a PNG's signature is what Passgate checks


@dataclass
class RegisteredPasskey:
    """A credential as py_webauthn verified it (what Pocket-ID stores of it)."""

    credential_id: bytes
    public_key: bytes
    transports: list[str]
    backup_eligible: bool
    backed_up: bool


@dataclass
class PocketId:
    """What the fixture database holds, to check the import against."""

    alice_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    bob_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    group_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    client_id: str = "memos"
    client_secret: str = "pocket-id-memos-secret-0123456789"
    kid: str = "pocket-id-key-1"
    passkey: RegisteredPasskey | None = None


def register_passkey(page: Page, rp_id: str, user_id: str, username: str) -> RegisteredPasskey:
    """Register a discoverable passkey in the page's virtual authenticator as Pocket-ID does
    (the user handle is the bytes of the user id), on a page of the RP ID's origin."""
    origin = f"https://{rp_id}"
    page.route(
        f"{origin}/**", lambda route: route.fulfill(status=200, body="<title>Pocket ID</title>")
    )
    page.goto(f"{origin}/settings/account")
    options = generate_registration_options(
        rp_id=rp_id,
        rp_name="Pocket ID",
        user_id=user_id.encode("utf-8"),
        user_name=username,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED,
            user_verification=UserVerificationRequirement.PREFERRED,
        ),
    )
    answer = page.evaluate(
        """async (json) => {
            const publicKey = PublicKeyCredential.parseCreationOptionsFromJSON(JSON.parse(json))
            const credential = await navigator.credentials.create({ publicKey })
            return JSON.stringify(credential.toJSON())
        }""",
        options_to_json(options),
    )
    verified = verify_registration_response(
        credential=answer,
        expected_challenge=options.challenge,
        expected_origin=origin,
        expected_rp_id=rp_id,
    )
    page.unroute(f"{origin}/**")
    return RegisteredPasskey(
        credential_id=verified.credential_id,
        public_key=verified.credential_public_key,
        transports=list(json.loads(answer)["response"].get("transports", [])),
        backup_eligible=verified.credential_device_type == "multi_device",
        backed_up=verified.credential_backed_up,
    )


def sealed_signing_key(kid: str) -> tuple[str, dict[str, Any]]:
    """An RSA private JWK sealed as Pocket-ID keeps it in kv, and its public JWK."""
    key = RSAKey.generate_key(2048, parameters={"kid": kid, "alg": "RS256", "use": "sig"})
    kek = hmac.new(
        ENCRYPTION_KEY.encode(), f"pocketid/{INSTANCE_ID}/jwk-kek".encode(), hashlib.sha3_256
    ).digest()
    nonce = os.urandom(12)
    plain = json.dumps(key.as_dict(private=True)).encode()
    sealed = base64.b64encode(nonce + AESGCM(kek).encrypt(nonce, plain, None)).decode()
    return sealed, key.as_dict(private=False)


def rows(
    facts: PocketId, sealed_key: str, version: int = VERSION
) -> dict[str, list[tuple[Any, ...]]]:
    """The rows of each table, with times as datetimes and JSON as text (see write_*)."""
    secret_hash = bcrypt.hashpw(facts.client_secret.encode(), bcrypt.gensalt(rounds=4)).decode()
    created = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    passkeys = []
    if facts.passkey is not None:
        p = facts.passkey
        passkeys.append(
            (
                str(uuid.uuid4()),
                created,
                "YubiKey",
                p.credential_id,
                p.public_key,
                "none",
                json.dumps(p.transports),
                facts.alice_id,
                p.backup_eligible,
                p.backed_up,
            )
        )
    credentials = json.dumps(
        {
            "secrets": [
                {
                    "id": str(uuid.uuid4()),
                    "alg": "bcrypt",
                    "hash": secret_hash,
                    "createdAt": "2026-03-01T12:00:00Z",
                }
            ]
        }
    )
    callback = json.dumps(["https://rp.passgate.test/callback"])
    logout = json.dumps(["https://rp.passgate.test/signed-out"])
    if version <= V2_0:
        old_style = {
            "oidc_clients": [
                (
                    facts.client_id,
                    created,
                    "Memos",
                    secret_hash,
                    callback,
                    None,
                    facts.alice_id,
                    False,
                    True,
                    logout,
                    "",
                    "",
                    False,
                    None,
                    True,
                )
            ],
            "kv": [("jwt_private_key.json", sealed_key)],
            "app_config_variables": [("instanceId", INSTANCE_ID)],
        }
        return {
            **rows(facts, sealed_key, VERSION),
            **old_style,
            "schema_migrations": [(version, False)],
        }
    return {
        "schema_migrations": [(version, False)],
        "users": [
            (
                facts.alice_id,
                created,
                None,
                "Alice",
                "alice@example.com",
                "Alice",
                "Liddell",
                "Alice Liddell",
                True,
                None,
                None,
                False,
                True,
            ),
            (
                facts.bob_id,
                created,
                None,
                "bob",
                None,
                "Bob",
                "",
                "Bob",
                False,
                None,
                None,
                True,
                False,
            ),
        ],
        "user_groups": [(facts.group_id, created, "Family", "family", None, None)],
        "user_groups_users": [(facts.alice_id, facts.group_id), (facts.bob_id, facts.group_id)],
        "custom_claims": [
            (str(uuid.uuid4()), created, "department", "wonderland", facts.alice_id, None),
            (str(uuid.uuid4()), created, "household", "liddell", None, facts.group_id),
        ],
        "webauthn_credentials": passkeys,
        "oidc_clients": [
            (
                facts.client_id,
                created,
                "Memos",
                callback,
                "png",
                facts.alice_id,
                False,
                True,
                logout,
                credentials,
                "",
                False,
                None,
                True,
                False,
                False,
                False,
                "",
                "standard",
                60,
                43200,
            ),
        ],
        "oidc_clients_allowed_user_groups": [(facts.group_id, facts.client_id)],
        "audit_logs": [
            (
                str(uuid.uuid4()),
                SIGNED_AT,
                "SIGN_IN",
                "192.0.2.7",
                "Firefox",
                json.dumps({}),
                facts.alice_id,
                "Netherlands",
                "Utrecht",
            ),
        ],
        "kv": [("instance_id", INSTANCE_ID), ("jwt_private_key.json", sealed_key)],
        # FILE_BACKEND=database: uploaded logos live in the storage table, by client id
        "storage": [
            (f"oidc-client-images/{facts.client_id}.png", LOGO, len(LOGO), created, created)
        ],
    }


def write_sqlite(
    path: Path, tables: dict[str, list[tuple[Any, ...]]], schema: tuple[str, ...] = SQLITE_SCHEMA
) -> None:
    """The Pocket-ID database as a SQLite file: times become Unix seconds, as Pocket-ID writes
    them there."""
    with sqlite3.connect(path) as conn:
        for statement in schema:
            conn.execute(statement)
        for table, values in tables.items():
            for row in values:
                cells = [int(v.timestamp()) if isinstance(v, datetime) else v for v in row]
                conn.execute(f"INSERT INTO {table} VALUES ({', '.join('?' * len(cells))})", cells)
    conn.close()


def write_postgres(url: str, tables: dict[str, list[tuple[Any, ...]]]) -> None:
    """The Pocket-ID database in the PostgreSQL schema `url` points at."""
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in POSTGRES_SCHEMA:
            conn.execute(statement)
        for table, values in tables.items():
            for row in values:
                marks = ", ".join(["%s"] * len(row))
                conn.execute(f"INSERT INTO {table} VALUES ({marks})", row)  # type: ignore[arg-type]


def count_rows(database: Path) -> dict[str, int]:
    """Passgate's tables and their row counts (to show that a dry run changed nothing)."""
    with sqlite3.connect(database) as conn:
        tables = [
            r[0]
            for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if not r[0].startswith("sqlite_")
        ]
        counts = {t: conn.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0] for t in tables}
    conn.close()
    return counts
