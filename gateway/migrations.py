"""Versioned schema migrations, applied in order at start-up. Never edit a released migration:
append a new one. Types are chosen to mean the same in SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import time

from gateway.db import Database

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
