"""Reading a stopped Pocket-ID's database (SQLite or PostgreSQL) into plain records.

The facts used here come from Pocket-ID's migrations and models: golang-migrate keeps the schema
version in `schema_migrations`; times are Unix seconds on SQLite and timestamptz on PostgreSQL;
JSON lists are TEXT/BLOB on SQLite and jsonb on PostgreSQL. A user's WebAuthn user handle is the
bytes of their id. Client secrets are bcrypt hashes: the `secret` column until 20260807120000,
then entries of the `credentials` document's `secrets` list. The ID-token signing key is a JWK
in `kv` under `jwt_private_key.json`: base64 of nonce || AES-256-GCM ciphertext, keyed with
HMAC-SHA3-256(ENCRYPTION_KEY, "pocketid/<instance id>/jwk-kek").
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.core.errors import PassgateError

# The schema versions of the last year: Pocket-ID v2.0.0 (January 2026) to v2.14.0.
MIN_VERSION = 20251229173100
MAX_VERSION = 20260814120000
_SECRETS_IN_CREDENTIALS = 20260807120000  # the `secret` column moved into credentials.secrets
_PAR = 20260601154900
_SKIP_CONSENT = 20260626120000
_TOKEN_LIFETIMES = 20260802120000
_INSTANCE_ID_IN_KV = 20260708130000
_KEY_NAME = "jwt_private_key.json"
_NONCE = 12  # AES-GCM nonce length Pocket-ID uses (Go's cipher.NewGCM default)


class PocketIdUnreadable(PassgateError):
    """The Pocket-ID database cannot be read or is of a schema version Passgate cannot import."""


@dataclass(frozen=True, slots=True)
class User:
    id: str
    username: str
    email: str
    display_name: str
    disabled: bool
    is_admin: bool
    created_at: float | None


@dataclass(frozen=True, slots=True)
class Group:
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class Claim:
    key: str
    value: str
    user_id: str | None
    group_id: str | None


@dataclass(frozen=True, slots=True)
class Passkey:
    user_id: str
    name: str
    credential_id: bytes
    public_key: bytes  # COSE
    transports: tuple[str, ...]
    backup_eligible: bool
    backed_up: bool


@dataclass(frozen=True, slots=True)
class Secret:
    id: str
    bcrypt_hash: str
    created_at: float | None


@dataclass(frozen=True, slots=True)
class Client:
    id: str
    name: str
    callback_urls: tuple[str, ...]
    logout_callback_urls: tuple[str, ...]
    public: bool
    pkce: bool
    secrets: tuple[Secret, ...]
    group_restricted: bool
    allowed_group_ids: tuple[str, ...]
    launch_url: str
    requires_reauthentication: bool
    skip_consent: bool
    requires_par: bool
    access_token_minutes: int
    refresh_token_minutes: int
    logo: bytes | None
    logo_type: str  # Pocket-ID's image_type (png, jpg, svg...), "" without a logo
    federated: bool  # uses Pocket-ID's federated client credentials
    created_at: float | None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: str
    at: float
    event: str
    ip: str
    user_agent: str
    user_id: str | None
    data: dict[str, str]
    country: str
    city: str


@dataclass
class PocketIdData:
    """Everything read from one Pocket-ID database."""

    version: int
    users: list[User] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)
    memberships: list[tuple[str, str]] = field(default_factory=list)  # (user id, group id)
    claims: list[Claim] = field(default_factory=list)
    passkeys: list[Passkey] = field(default_factory=list)
    clients: list[Client] = field(default_factory=list)
    audit: list[AuditEntry] = field(default_factory=list)
    signing_key: dict[str, Any] | None = None  # the private JWK, when it could be decrypted
    signing_key_note: str = ""  # why not, otherwise


def open_sqlite(path: Path) -> sqlite3.Connection:
    """The database file, opened read-only. PocketIdUnreadable if it cannot be."""
    if not path.is_file():
        raise PocketIdUnreadable(f"{path} is not a file")
    try:
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise PocketIdUnreadable(f"cannot open {path}: {exc}") from None


def open_postgres(url: str) -> psycopg.Connection[Any]:
    """A read-only session on Pocket-ID's PostgreSQL database. PocketIdUnreadable if refused."""
    try:
        conn = psycopg.connect(url, connect_timeout=10)
        conn.read_only = True
        return conn
    except psycopg.Error as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise PocketIdUnreadable(f"cannot connect to Pocket-ID's PostgreSQL: {first}") from None


Connection = sqlite3.Connection | psycopg.Connection[Any]


def read(conn: Connection, encryption_key: bytes | None) -> PocketIdData:
    """Read users, groups, claims, passkeys, clients, audit history and (with Pocket-ID's
    ENCRYPTION_KEY) the signing key. PocketIdUnreadable for another schema version or a
    database that is not Pocket-ID's."""
    source = _Source(conn)
    version = schema_version(source)
    data = PocketIdData(version=version)
    groups = source.rows("SELECT id, name FROM user_groups ORDER BY name")
    data.groups = [Group(_text(g["id"]), _text(g["name"])) for g in groups]
    for row in source.rows(
        "SELECT id, username, email, display_name, first_name, last_name, is_admin, disabled, "
        "created_at FROM users ORDER BY created_at, id"
    ):
        full = " ".join(_text(row[k]) for k in ("first_name", "last_name") if row[k]).strip()
        data.users.append(
            User(
                id=_text(row["id"]),
                username=_text(row["username"]),
                email=_text(row["email"]),
                display_name=_text(row["display_name"]) or full,
                disabled=bool(row["disabled"]),
                is_admin=bool(row["is_admin"]),
                created_at=_time(row["created_at"]),
            )
        )
    data.memberships = [
        (_text(r["user_id"]), _text(r["user_group_id"]))
        for r in source.rows("SELECT user_id, user_group_id FROM user_groups_users")
    ]
    data.claims = [
        Claim(
            _text(r["key"]),
            _text(r["value"]),
            _text(r["user_id"]) or None,
            _text(r["user_group_id"]) or None,
        )
        for r in source.rows(
            "SELECT key, value, user_id, user_group_id FROM custom_claims ORDER BY key"
        )
    ]
    for row in source.rows(
        "SELECT user_id, name, credential_id, public_key, transport, backup_eligible, "
        "backup_state FROM webauthn_credentials WHERE user_id IS NOT NULL ORDER BY created_at"
    ):
        data.passkeys.append(
            Passkey(
                user_id=_text(row["user_id"]),
                name=_text(row["name"]),
                credential_id=bytes(row["credential_id"]),
                public_key=bytes(row["public_key"]),
                transports=tuple(str(t) for t in _json(row["transport"]) or ()),
                backup_eligible=bool(row["backup_eligible"]),
                backed_up=bool(row["backup_state"]),
            )
        )
    data.clients = _clients(source, version)
    data.audit = _audit(source)
    data.signing_key, data.signing_key_note = _signing_key(source, version, encryption_key)
    return data


def schema_version(source: _Source) -> int:
    """Pocket-ID's schema version; PocketIdUnreadable outside MIN_VERSION..MAX_VERSION."""
    try:
        rows = source.rows("SELECT version, dirty FROM schema_migrations")
    except PocketIdUnreadable:
        raise PocketIdUnreadable(
            "no schema_migrations table: this is not a Pocket-ID database"
        ) from None
    if not rows:
        raise PocketIdUnreadable("schema_migrations is empty: Pocket-ID never started on it")
    version = max(int(r["version"]) for r in rows)
    if any(bool(r["dirty"]) for r in rows):
        raise PocketIdUnreadable(
            f"Pocket-ID's migration {version} did not finish (dirty): start Pocket-ID once "
            "to repair it, stop it, then import"
        )
    if not MIN_VERSION <= version <= MAX_VERSION:
        raise PocketIdUnreadable(
            f"Pocket-ID schema version {version} is not supported: Passgate imports versions "
            f"{MIN_VERSION} to {MAX_VERSION} (Pocket-ID v2.0.0 to v2.14.0); "
            + (
                "upgrade Pocket-ID first, start and stop it, then import"
                if version < MIN_VERSION
                else "this Pocket-ID is newer than this Passgate knows"
            )
        )
    return version


def _clients(source: _Source, version: int) -> list[Client]:
    allowed: dict[str, list[str]] = {}
    for row in source.rows(
        "SELECT oidc_client_id, user_group_id FROM oidc_clients_allowed_user_groups"
    ):
        allowed.setdefault(_text(row["oidc_client_id"]), []).append(_text(row["user_group_id"]))
    logos = {
        _text(r["path"]): bytes(r["data"])
        for r in source.rows(
            "SELECT path, data FROM storage WHERE path LIKE 'oidc-client-images/%'"
        )
    }
    extra = ["secret" if version < _SECRETS_IN_CREDENTIALS else "NULL AS secret"]
    extra.append(
        "requires_pushed_authorization_requests"
        if version >= _PAR
        else "0 AS requires_pushed_authorization_requests"
    )
    extra.append("skip_consent" if version >= _SKIP_CONSENT else "0 AS skip_consent")
    extra.append(
        "access_token_duration_minutes, refresh_token_duration_minutes"
        if version >= _TOKEN_LIFETIMES
        else "60 AS access_token_duration_minutes, 43200 AS refresh_token_duration_minutes"
    )
    clients = []
    for row in source.rows(
        "SELECT id, name, callback_urls, logout_callback_urls, is_public, pkce_enabled, "
        "credentials, launch_url, requires_reauthentication, is_group_restricted, image_type, "
        f"created_at, {', '.join(extra)} FROM oidc_clients ORDER BY created_at, id"
    ):
        client_id = _text(row["id"])
        credentials = _json(row["credentials"]) or {}
        if not isinstance(credentials, dict):
            credentials = {}
        secrets: list[Secret] = []
        if row["secret"]:
            secrets.append(Secret(f"pocket-id-{client_id}", _text(row["secret"]), None))
        for entry in credentials.get("secrets") or ():
            if isinstance(entry, dict) and entry.get("alg") == "bcrypt" and entry.get("hash"):
                secrets.append(
                    Secret(
                        str(entry.get("id") or f"pocket-id-{client_id}-{len(secrets)}"),
                        str(entry["hash"]),
                        _time(entry.get("createdAt")),
                    )
                )
        image_type = _text(row["image_type"])
        clients.append(
            Client(
                id=client_id,
                name=_text(row["name"]) or client_id,
                callback_urls=tuple(str(u) for u in _json(row["callback_urls"]) or ()),
                logout_callback_urls=tuple(
                    str(u) for u in _json(row["logout_callback_urls"]) or ()
                ),
                public=bool(row["is_public"]),
                pkce=bool(row["pkce_enabled"]),
                secrets=tuple(secrets),
                group_restricted=bool(row["is_group_restricted"]),
                allowed_group_ids=tuple(allowed.get(client_id, ())),
                launch_url=_text(row["launch_url"]),
                requires_reauthentication=bool(row["requires_reauthentication"]),
                skip_consent=bool(row["skip_consent"]),
                requires_par=bool(row["requires_pushed_authorization_requests"]),
                access_token_minutes=int(row["access_token_duration_minutes"]),
                refresh_token_minutes=int(row["refresh_token_duration_minutes"]),
                logo=logos.get(f"oidc-client-images/{client_id}.{image_type}")
                if image_type
                else None,
                logo_type=image_type,
                federated=bool(credentials.get("federatedIdentities")),
                created_at=_time(row["created_at"]),
            )
        )
    return clients


def _audit(source: _Source) -> list[AuditEntry]:
    entries = []
    for row in source.rows(
        "SELECT id, created_at, event, ip_address, user_agent, data, user_id, country, city "
        "FROM audit_logs ORDER BY created_at"
    ):
        data = _json(row["data"]) or {}
        entries.append(
            AuditEntry(
                id=_text(row["id"]),
                at=_time(row["created_at"]) or 0.0,
                event=_text(row["event"]),
                ip=_text(row["ip_address"]),
                user_agent=_text(row["user_agent"]),
                user_id=_text(row["user_id"]) or None,
                data={str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {},
                country=_text(row["country"]),
                city=_text(row["city"]),
            )
        )
    return entries


def _signing_key(
    source: _Source, version: int, encryption_key: bytes | None
) -> tuple[dict[str, Any] | None, str]:
    stored = source.value("SELECT value FROM kv WHERE key = 'jwt_private_key.json'")
    if not stored:
        return None, "Pocket-ID keeps no signing key in its database"
    if not encryption_key:
        return None, "no Pocket-ID ENCRYPTION_KEY given (--encryption-key-env VAR)"
    instance = (
        source.value("SELECT value FROM kv WHERE key = 'instance_id'")
        if version >= _INSTANCE_ID_IN_KV
        else source.value("SELECT value FROM app_config_variables WHERE key = 'instanceId'")
    )
    if not instance:
        return None, "Pocket-ID's instance id is missing, so its key cannot be derived"
    kek = hmac.new(encryption_key, f"pocketid/{instance}/jwk-kek".encode(), hashlib.sha3_256)
    try:
        sealed = base64.b64decode(stored, validate=True)
        plain = AESGCM(kek.digest()).decrypt(sealed[:_NONCE], sealed[_NONCE:], None)
        key = json.loads(plain)
    except (ValueError, InvalidTag):
        return None, "the signing key does not decrypt with that ENCRYPTION_KEY"
    if not isinstance(key, dict):
        return None, "the decrypted signing key is not a JWK"
    return key, ""


class _Source:
    """Rows as dicts from either database; PocketIdUnreadable for any database error."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def rows(self, sql: str) -> list[dict[str, Any]]:
        try:
            cursor = self._conn.cursor()
            cursor.execute(sql)
            names = [column[0] for column in cursor.description or ()]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        except (sqlite3.Error, psycopg.Error) as exc:
            if isinstance(self._conn, psycopg.Connection):
                self._conn.rollback()
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise PocketIdUnreadable(f"reading Pocket-ID's database failed: {first}") from None

    def value(self, sql: str) -> str:
        found = self.rows(sql)
        return _text(found[0]["value"]) if found else ""


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes | memoryview):
        return bytes(value).decode("utf-8")
    return str(value)


def _json(value: object) -> Any:
    """A JSON column: already decoded (jsonb) or TEXT/BLOB to parse; None when empty."""
    if value is None or isinstance(value, dict | list):
        return value
    text = _text(value)
    return json.loads(text) if text.strip() else None


def _time(value: object) -> float | None:
    """Unix seconds (SQLite), a datetime (PostgreSQL) or RFC 3339 text, as Unix seconds."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, int | float):
        return float(value)
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
