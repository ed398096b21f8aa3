"""Refusing a database that belongs to Pocket-ID.

A Pocket-ID env file may carry DB_CONNECTION_STRING pointing at Pocket-ID's own database. Both
keep a `schema_migrations` table (and a `users` table), so migrating there would fail halfway
with an error about columns; Passgate refuses first, saying what to do instead.
"""

from __future__ import annotations

from gateway.core.errors import StorageError
from gateway.storage.db import Database

# Tables only Pocket-ID creates (its WebAuthn credentials and its UI-editable settings).
POCKET_ID_TABLES = ("webauthn_credentials", "app_config_variables")


def _tables(db: Database) -> set[str]:
    if db.dialect == "postgres":
        rows = db.fetchall(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        )
    else:
        rows = db.fetchall("SELECT name FROM sqlite_master WHERE type = 'table'")
    return {str(row[0]).lower() for row in rows}


def refuse_pocket_id_database(db: Database) -> None:
    """Raise StorageError if `db` holds Pocket-ID's schema."""
    if _tables(db) & set(POCKET_ID_TABLES):
        raise StorageError(
            "DB_CONNECTION_STRING points at Pocket-ID's own database: give Passgate a database "
            "of its own (unset DB_CONNECTION_STRING for SQLite in DATA_DIR) and bring the users, "
            "passkeys and clients over with `passgate import pocket-id`"
        )
