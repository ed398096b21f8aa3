"""Versioned schema migrations, applied in order at start-up. Never edit a released migration:
append a new one. Types are chosen to mean the same in SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import time

from gateway.storage.db import Database

log = logging.getLogger("passgate.migrations")

MIGRATIONS: tuple[tuple[int, str, tuple[str, ...]], ...] = (
    (
        1,
        "users, groups, login codes, sessions",
        (
            """CREATE TABLE users (
                id TEXT PRIMARY KEY,
                username TEXT NOT NULL UNIQUE,
                email TEXT NOT NULL DEFAULT '',
                display_name TEXT NOT NULL DEFAULT '',
                disabled INTEGER NOT NULL DEFAULT 0,
                created_at DOUBLE PRECISION NOT NULL
            )""",
            """CREATE TABLE groups (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL UNIQUE,
                created_at DOUBLE PRECISION NOT NULL
            )""",
            """CREATE TABLE user_groups (
                user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                group_id TEXT NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
                PRIMARY KEY (user_id, group_id)
            )""",
            """CREATE TABLE login_codes (
                code_hash TEXT PRIMARY KEY,
                user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                created_at DOUBLE PRECISION NOT NULL,
                expires_at DOUBLE PRECISION NOT NULL
            )""",
            """CREATE TABLE sessions (
                id_hash TEXT PRIMARY KEY,
                user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                data TEXT NOT NULL,
                expires_at DOUBLE PRECISION NOT NULL
            )""",
            "CREATE INDEX sessions_user ON sessions(user_id)",
            "CREATE INDEX login_codes_user ON login_codes(user_id)",
        ),
    ),
    (
        2,
        "passkeys, signup tokens, short-lived state",
        (
            "ALTER TABLE users ADD COLUMN webauthn_handle TEXT",
            "CREATE UNIQUE INDEX users_webauthn_handle ON users(webauthn_handle)",
            """CREATE TABLE passkeys (
                credential_id TEXT PRIMARY KEY,
                user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                public_key TEXT NOT NULL,
                sign_count BIGINT NOT NULL DEFAULT 0,
                transports TEXT NOT NULL DEFAULT '',
                aaguid TEXT NOT NULL DEFAULT '',
                backup_eligible INTEGER NOT NULL DEFAULT 0,
                backed_up INTEGER NOT NULL DEFAULT 0,
                name TEXT NOT NULL DEFAULT '',
                created_at DOUBLE PRECISION NOT NULL,
                last_used_at DOUBLE PRECISION
            )""",
            "CREATE INDEX passkeys_user ON passkeys(user_id)",
            """CREATE TABLE signup_tokens (
                token_hash TEXT PRIMARY KEY,
                created_at DOUBLE PRECISION NOT NULL,
                expires_at DOUBLE PRECISION NOT NULL,
                usage_limit INTEGER NOT NULL,
                usage_count INTEGER NOT NULL DEFAULT 0
            )""",
            """CREATE TABLE ephemeral (
                key TEXT PRIMARY KEY,
                value TEXT NOT NULL,
                expires_at DOUBLE PRECISION NOT NULL
            )""",
            "CREATE INDEX ephemeral_expiry ON ephemeral(expires_at)",
        ),
    ),
    (
        3,
        "OpenID Connect: clients, signing keys, codes, tokens, consents",
        (
            """CREATE TABLE oidc_clients (
                client_id TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                secret_hash TEXT,
                public INTEGER NOT NULL DEFAULT 0,
                redirect_uris TEXT NOT NULL DEFAULT '[]',
                post_logout_redirect_uris TEXT NOT NULL DEFAULT '[]',
                allowed_groups TEXT NOT NULL DEFAULT '[]',
                pkce_required INTEGER NOT NULL DEFAULT 1,
                wildcard_callbacks INTEGER NOT NULL DEFAULT 0,
                id_token_alg TEXT NOT NULL DEFAULT 'RS256',
                access_token_lifetime INTEGER NOT NULL DEFAULT 3600,
                refresh_token_lifetime INTEGER NOT NULL DEFAULT 2592000,
                refresh_tokens INTEGER NOT NULL DEFAULT 0,
                logo_url TEXT NOT NULL DEFAULT '',
                declared INTEGER NOT NULL DEFAULT 0,
                created_at DOUBLE PRECISION NOT NULL
            )""",
            """CREATE TABLE signing_keys (
                kid TEXT PRIMARY KEY,
                alg TEXT NOT NULL,
                private_key TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL,
                retired_at DOUBLE PRECISION
            )""",
            """CREATE TABLE oauth_codes (
                code_hash TEXT PRIMARY KEY,
                client_id TEXT NOT NULL REFERENCES oidc_clients(client_id) ON DELETE CASCADE,
                user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                redirect_uri TEXT NOT NULL,
                scope TEXT NOT NULL,
                nonce TEXT,
                code_challenge TEXT,
                code_challenge_method TEXT,
                auth_time DOUBLE PRECISION NOT NULL,
                created_at DOUBLE PRECISION NOT NULL,
                expires_at DOUBLE PRECISION NOT NULL,
                used_at DOUBLE PRECISION
            )""",
            """CREATE TABLE oauth_tokens (
                id TEXT PRIMARY KEY,
                access_token_hash TEXT NOT NULL UNIQUE,
                refresh_token_hash TEXT UNIQUE,
                client_id TEXT NOT NULL REFERENCES oidc_clients(client_id) ON DELETE CASCADE,
                user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                scope TEXT NOT NULL,
                family_id TEXT NOT NULL,
                code_hash TEXT,
                auth_time DOUBLE PRECISION NOT NULL,
                issued_at DOUBLE PRECISION NOT NULL,
                access_expires_at DOUBLE PRECISION NOT NULL,
                refresh_expires_at DOUBLE PRECISION,
                refresh_used_at DOUBLE PRECISION,
                revoked_at DOUBLE PRECISION
            )""",
            "CREATE INDEX oauth_tokens_family ON oauth_tokens(family_id)",
            "CREATE INDEX oauth_tokens_code ON oauth_tokens(code_hash)",
            """CREATE TABLE oidc_consents (
                user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                client_id TEXT NOT NULL REFERENCES oidc_clients(client_id) ON DELETE CASCADE,
                scope TEXT NOT NULL,
                granted_at DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (user_id, client_id)
            )""",
        ),
    ),
    (
        4,
        "custom claims for users and groups",
        (
            """CREATE TABLE custom_claims (
                subject_type TEXT NOT NULL,
                subject_id TEXT NOT NULL,
                claim TEXT NOT NULL,
                value TEXT NOT NULL,
                PRIMARY KEY (subject_type, subject_id, claim)
            )""",
        ),
    ),
    (
        5,
        "audit log",
        (
            """CREATE TABLE audit_log (
                id TEXT PRIMARY KEY,
                at DOUBLE PRECISION NOT NULL,
                event TEXT NOT NULL,
                success INTEGER NOT NULL,
                actor_kind TEXT NOT NULL,
                actor_id TEXT NOT NULL DEFAULT '',
                actor_name TEXT NOT NULL DEFAULT '',
                ip TEXT NOT NULL DEFAULT '',
                user_agent TEXT NOT NULL DEFAULT '',
                user_id TEXT,
                reason TEXT NOT NULL DEFAULT '',
                details TEXT NOT NULL DEFAULT '{}'
            )""",
            "CREATE INDEX audit_log_at ON audit_log(at)",
            "CREATE INDEX audit_log_user ON audit_log(user_id, at)",
            "CREATE INDEX audit_log_event ON audit_log(event, at)",
        ),
    ),
    (
        6,
        "API keys",
        (
            """CREATE TABLE api_keys (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                scope TEXT NOT NULL,
                token_hash TEXT NOT NULL UNIQUE,
                created_by TEXT NOT NULL DEFAULT '',
                created_at DOUBLE PRECISION NOT NULL,
                expires_at DOUBLE PRECISION,
                last_used_at DOUBLE PRECISION,
                revoked_at DOUBLE PRECISION
            )""",
        ),
    ),
    (
        7,
        "known devices for new-device sign-in notices",
        (
            """CREATE TABLE known_devices (
                user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                device_hash TEXT NOT NULL,
                first_seen DOUBLE PRECISION NOT NULL,
                last_seen DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (user_id, device_hash)
            )""",
        ),
    ),
    (
        8,
        "authorization codes remember how the user signed in (amr)",
        ("ALTER TABLE oauth_codes ADD COLUMN amr TEXT NOT NULL DEFAULT ''",),
    ),
    (
        9,
        "machine and TV grants: client_credentials tokens (client as subject), device codes",
        (
            # Which opt-in grants a client may use, and its client_credentials scopes.
            "ALTER TABLE oidc_clients ADD COLUMN grant_types TEXT NOT NULL DEFAULT '[]'",
            "ALTER TABLE oidc_clients ADD COLUMN client_credentials_scopes "
            "TEXT NOT NULL DEFAULT '[]'",
            # user_id becomes nullable (NULL: the client itself is the subject). SQLite cannot
            # drop a NOT NULL, so the table is rebuilt, the same way on both databases.
            """CREATE TABLE oauth_tokens_v9 (
                id TEXT PRIMARY KEY,
                access_token_hash TEXT NOT NULL UNIQUE,
                refresh_token_hash TEXT UNIQUE,
                client_id TEXT NOT NULL REFERENCES oidc_clients(client_id) ON DELETE CASCADE,
                user_id TEXT REFERENCES users(id) ON DELETE CASCADE,
                scope TEXT NOT NULL,
                family_id TEXT NOT NULL,
                code_hash TEXT,
                auth_time DOUBLE PRECISION NOT NULL,
                issued_at DOUBLE PRECISION NOT NULL,
                access_expires_at DOUBLE PRECISION NOT NULL,
                refresh_expires_at DOUBLE PRECISION,
                refresh_used_at DOUBLE PRECISION,
                revoked_at DOUBLE PRECISION
            )""",
            "INSERT INTO oauth_tokens_v9 (id, access_token_hash, refresh_token_hash, client_id, "
            "user_id, scope, family_id, code_hash, auth_time, issued_at, access_expires_at, "
            "refresh_expires_at, refresh_used_at, revoked_at) SELECT id, access_token_hash, "
            "refresh_token_hash, client_id, user_id, scope, family_id, code_hash, auth_time, "
            "issued_at, access_expires_at, refresh_expires_at, refresh_used_at, revoked_at "
            "FROM oauth_tokens",
            "DROP TABLE oauth_tokens",
            "ALTER TABLE oauth_tokens_v9 RENAME TO oauth_tokens",
            "CREATE INDEX oauth_tokens_family ON oauth_tokens(family_id)",
            "CREATE INDEX oauth_tokens_code ON oauth_tokens(code_hash)",
            """CREATE TABLE oauth_device_codes (
                device_code_hash TEXT PRIMARY KEY,
                user_code_hash TEXT NOT NULL UNIQUE,
                client_id TEXT NOT NULL REFERENCES oidc_clients(client_id) ON DELETE CASCADE,
                scope TEXT NOT NULL,
                status TEXT NOT NULL DEFAULT 'pending',
                user_id TEXT REFERENCES users(id) ON DELETE CASCADE,
                auth_time DOUBLE PRECISION,
                amr TEXT NOT NULL DEFAULT '',
                poll_interval INTEGER NOT NULL,
                last_polled_at DOUBLE PRECISION,
                created_at DOUBLE PRECISION NOT NULL,
                expires_at DOUBLE PRECISION NOT NULL
            )""",
            "CREATE INDEX oauth_device_codes_expiry ON oauth_device_codes(expires_at)",
        ),
    ),
    (
        10,
        "clients: pushed authorization requests and signed client authentication",
        (
            "ALTER TABLE oidc_clients ADD COLUMN require_par INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE oidc_clients ADD COLUMN token_endpoint_auth_method TEXT NOT NULL "
            "DEFAULT ''",
            "ALTER TABLE oidc_clients ADD COLUMN jwks TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE oidc_clients ADD COLUMN jwks_uri TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE oidc_clients ADD COLUMN federated_identities TEXT NOT NULL DEFAULT '[]'",
            # The secret sealed with SecretBox, kept only for client_secret_jwt (HMAC needs it).
            "ALTER TABLE oidc_clients ADD COLUMN secret_sealed TEXT",
        ),
    ),
    (
        11,
        "JWT access tokens, resource indicators (audiences) and DPoP-bound tokens",
        (
            "ALTER TABLE oidc_clients ADD COLUMN access_token_format TEXT NOT NULL "
            "DEFAULT 'opaque'",
            "ALTER TABLE oidc_clients ADD COLUMN allowed_resources TEXT NOT NULL DEFAULT '[]'",
            "ALTER TABLE oidc_clients ADD COLUMN dpop_bound_access_tokens INTEGER NOT NULL "
            "DEFAULT 0",
            "ALTER TABLE oauth_tokens ADD COLUMN audience TEXT",
            "ALTER TABLE oauth_tokens ADD COLUMN dpop_jkt TEXT",
            "CREATE INDEX oauth_tokens_user ON oauth_tokens(user_id)",
        ),
    ),
    # oidc-client-options (issue 13): per-client options, several secrets, uploaded logos
    (
        12,
        "OIDC clients: several secrets with expiry, consent/re-auth options, launch URL, logo",
        (
            """CREATE TABLE oidc_client_secrets (
                id TEXT PRIMARY KEY,
                client_id TEXT NOT NULL REFERENCES oidc_clients(client_id) ON DELETE CASCADE,
                name TEXT NOT NULL,
                secret_hash TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL,
                expires_at DOUBLE PRECISION,
                last_used_at DOUBLE PRECISION,
                revoked_at DOUBLE PRECISION
            )""",
            "CREATE INDEX oidc_client_secrets_client ON oidc_client_secrets(client_id)",
            # The one secret each client had moves into the new table; the old column stays
            # (unread, cleared) so that the migration needs no table rebuild on SQLite.
            """INSERT INTO oidc_client_secrets (id, client_id, name, secret_hash, created_at)
                SELECT 'moved-' || client_id, client_id, 'secret', secret_hash, created_at
                FROM oidc_clients WHERE secret_hash IS NOT NULL""",
            "UPDATE oidc_clients SET secret_hash = NULL",
            "ALTER TABLE oidc_clients ADD COLUMN skip_consent INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE oidc_clients ADD COLUMN require_reauth INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE oidc_clients ADD COLUMN launch_url TEXT NOT NULL DEFAULT ''",
            """CREATE TABLE oidc_client_logos (
                client_id TEXT PRIMARY KEY
                    REFERENCES oidc_clients(client_id) ON DELETE CASCADE,
                content_type TEXT NOT NULL,
                image TEXT NOT NULL,
                etag TEXT NOT NULL,
                updated_at DOUBLE PRECISION NOT NULL
            )""",
        ),
    ),
)


def migrate(db: Database) -> int:
    """Apply every migration not yet applied; return how many ran. Safe to call concurrently:
    each migration runs in one transaction with its version row."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        "version INTEGER PRIMARY KEY, description TEXT NOT NULL, "
        "applied_at DOUBLE PRECISION NOT NULL)"
    )
    applied = {row[0] for row in db.fetchall("SELECT version FROM schema_migrations")}
    count = 0
    for version, description, statements in MIGRATIONS:
        if version in applied:
            continue
        with db.transaction() as tx:
            if tx.dialect == "postgres":
                # Several workers may start at once; one migrates, the others wait and skip.
                tx.execute("SELECT pg_advisory_xact_lock(1411)")
            if tx.fetchone("SELECT 1 FROM schema_migrations WHERE version = ?", (version,)):
                continue
            for statement in statements:
                tx.execute(statement)
            tx.execute(
                "INSERT INTO schema_migrations (version, description, applied_at) VALUES (?, ?, ?)",
                (version, description, time.time()),
            )
        log.info("applied migration %d: %s", version, description)
        count += 1
    return count


def schema_version(db: Database) -> int:
    row = db.fetchone("SELECT MAX(version) FROM schema_migrations")
    return int(row[0]) if row and row[0] is not None else 0
