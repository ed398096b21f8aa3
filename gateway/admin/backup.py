"""Backups: every durable table in one passphrase-encrypted archive, restorable into SQLite or
PostgreSQL, onto a machine with another ENCRYPTION_KEY.

Which tables: all of them, read from the live schema, except the short-lived ones named in
`SHORT_LIVED` (so a table a later migration adds is backed up without a change here). Values the
instance sealed with its ENCRYPTION_KEY (found by their shape, see `SecretBox.looks_sealed`) are
opened on export and sealed again with the target's key on import; the archive as a whole is
encrypted with the passphrase (`gateway.admin.archive`). Import is one transaction, into an empty
database unless told to replace what is there.
"""

from __future__ import annotations

import base64
import binascii
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from gateway import __version__
from gateway.admin.archive import seal, unseal
from gateway.audit.log import CLI, AuditLog
from gateway.core.crypto import SecretBox
from gateway.core.errors import (
    ArchiveUnreadable,
    DecryptionFailed,
    ImportRefused,
    InvalidInput,
    StorageError,
)
from gateway.storage.db import Database, Transaction
from gateway.storage.schema import Column, Table, in_foreign_key_order, quoted, read_tables

# Tables left out of a backup, and why. Everything else in the schema goes in.
SHORT_LIVED: Mapping[str, str] = {
    "sessions": "sign-ins; their cookies are signed with ENCRYPTION_KEY, so people sign in "
    "again after a move (with the same passkeys)",
    "ephemeral": "passkey challenges and rate-limit counters, minutes long",
    "login_codes": "one-time sign-in codes, valid an hour at most: issue a new one",
    "oauth_codes": "OpenID Connect authorization codes, valid one minute",
    "oauth_device_codes": "device authorization codes (TVs, command-line tools), valid ten minutes",
    "schema_migrations": "the target's own migration record; the archive states its version",
}

# Rows a fresh instance makes by itself (table -> SQL condition, None for the whole table).
# They do not make a database "populated"; an import replaces them with the archive's.
SELF_MADE: Mapping[str, str | None] = {
    "signing_keys": None,  # generated at first start
    "audit_log": None,  # start-up and command-line events
    "oidc_clients": "declared = 1",  # synced from CONFIG_FILE at start
    "oidc_client_secrets": "client_id IN (SELECT client_id FROM oidc_clients WHERE declared = 1)",
}

# An archived value: JSON scalars as they are, bytes and sealed secrets tagged.
Cell = None | bool | int | float | str | dict[str, str]


class ArchivedTable(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    columns: list[str]
    rows: list[list[Cell]]

    @model_validator(mode="after")
    def _rows_fit_columns(self) -> ArchivedTable:
        if any(len(row) != len(self.columns) for row in self.rows):
            raise ValueError(f"a row of {self.name} does not match its columns")
        return self


class Snapshot(BaseModel):
    """What an archive holds: the rows of every durable table and where they came from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["passgate-backup"] = "passgate-backup"
    format_version: Literal[1] = 1
    passgate_version: str
    schema_version: int
    created_at: float
    source: str  # "sqlite" or "postgres"
    tables: list[ArchivedTable]

    def row_counts(self) -> dict[str, int]:
        return {table.name: len(table.rows) for table in self.tables}

    def describe(self) -> str:
        counts = ", ".join(f"{name} {count}" for name, count in self.row_counts().items())
        made = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(self.created_at))
        return (
            f"{sum(self.row_counts().values())} rows in {len(self.tables)} tables "
            f"({counts}); made {made} by Passgate {self.passgate_version} on {self.source}, "
            f"schema version {self.schema_version}"
        )


class Backups:
    """Export the durable store to an encrypted archive and import one back."""

    def __init__(self, db: Database, box: SecretBox, audit: AuditLog) -> None:
        self._db = db
        self._box = box
        self._audit = audit

    # export --------------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """Read every durable table at one point in time. DecryptionFailed if a sealed value does
        not open with this instance's ENCRYPTION_KEY."""
        with self._db.transaction() as tx:
            if tx.dialect == "postgres":  # one snapshot for every SELECT below
                tx.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            tables = []
            for table in durable_tables(tx):
                names = [column.name for column in table.columns]
                rows = tx.fetchall(
                    f"SELECT {', '.join(map(quoted, names))} FROM {quoted(table.name)}"
                )
                tables.append(
                    ArchivedTable(
                        name=table.name,
                        columns=names,
                        rows=[
                            [
                                self._archived(value, f"{table.name}.{name}")
                                for name, value in zip(names, row, strict=True)
                            ]
                            for row in rows
                        ],
                    )
                )
            return Snapshot(
                passgate_version=__version__,
                schema_version=_schema_version(tx),
                created_at=time.time(),
                source=tx.dialect,
                tables=tables,
            )

    def export_to(self, path: Path, passphrase: str) -> Snapshot:
        """Write an archive of every durable table to `path` (a new file, mode 0600).
        InvalidInput if the file exists or the passphrase is too short."""
        if path.exists():
            raise InvalidInput(f"{path} already exists: choose a new file name")
        snapshot = self.snapshot()
        data = seal(snapshot.model_dump_json().encode("utf-8"), passphrase)
        _write_new_file(path, data)
        self._audit.record(
            "backup_exported",
            actor=CLI,
            details={"tables": len(snapshot.tables), "rows": sum(snapshot.row_counts().values())},
        )
        return snapshot

    def _archived(self, value: object, where: str) -> Cell:
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, str):
            if not self._box.looks_sealed(value):
                return value
            try:
                plaintext = self._box.decrypt(value)
            except DecryptionFailed:
                raise DecryptionFailed(
                    f"{where} holds a secret this instance's ENCRYPTION_KEY cannot decrypt: "
                    "export with the key it was stored under"
                ) from None
            return {"sealed": base64.b64encode(plaintext).decode("ascii")}
        if isinstance(value, bytes | bytearray | memoryview):
            return {"bytes": base64.b64encode(bytes(value)).decode("ascii")}
        raise StorageError(f"{where}: cannot back up a value of type {type(value).__name__}")

    # import --------------------------------------------------------------------------------

    def import_from(self, path: Path, passphrase: str, *, replace: bool = False) -> Snapshot:
        """Restore an archive, all or nothing. ArchiveUnreadable/WrongPassphrase for a file that
        does not open; ImportRefused for an archive from a newer schema, a database that already
        holds data (unless `replace`, which wipes it in the same transaction), or a value that
        does not fit its column."""
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise InvalidInput(f"cannot read {path}: {exc.strerror}") from None
        snapshot = read_snapshot(data, passphrase)
        self.restore(snapshot, replace=replace)
        self._audit.record(
            "backup_imported",
            actor=CLI,
            details={
                "tables": len(snapshot.tables),
                "rows": sum(snapshot.row_counts().values()),
                "source": snapshot.source,
                "schema_version": snapshot.schema_version,
                "replace": replace,
            },
        )
        return snapshot

    def restore(self, snapshot: Snapshot, *, replace: bool = False) -> None:
        """Write a snapshot into this database in one transaction (see `import_from`)."""
        with self._db.transaction() as tx:
            version = _schema_version(tx)
            if snapshot.schema_version > version:
                raise ImportRefused(
                    f"the archive comes from a newer Passgate (schema version "
                    f"{snapshot.schema_version}; this one has {version}): upgrade Passgate, "
                    "then import"
                )
            every = read_tables(tx)
            durable = durable_tables(tx, every)
            archived = {table.name: table for table in snapshot.tables}
            _check_fits(archived, {table.name: table for table in durable})
            # --replace also clears the short-lived state (sessions, codes) of the old contents.
            wiped = [
                table
                for table in in_foreign_key_order(every.values() if replace else durable)
                if table.name != "schema_migrations"
            ]
            if tx.dialect == "postgres":  # nobody writes while we swap the contents
                names = ", ".join(quoted(table.name) for table in wiped)
                tx.execute(f"LOCK TABLE {names} IN ACCESS EXCLUSIVE MODE")
            if not replace:
                _refuse_if_populated(tx, durable)
            for table in reversed(wiped):
                tx.execute(f"DELETE FROM {quoted(table.name)}")
            for table in durable:
                if table.name in archived:
                    self._insert(tx, table, archived[table.name])

    def _insert(self, tx: Transaction, table: Table, archived: ArchivedTable) -> None:
        columns = [table.column(name) for name in archived.columns]  # all there: _check_fits
        sql = (
            f"INSERT INTO {quoted(table.name)} ({', '.join(map(quoted, archived.columns))}) "
            f"VALUES ({', '.join('?' for _ in archived.columns)})"
        )
        tx.executemany(
            sql,
            [
                [
                    self._restored(cell, column, f"{table.name}.{column.name}")
                    for cell, column in zip(row, columns, strict=True)
                    if column is not None
                ]
                for row in archived.rows
            ],
        )

    def _restored(self, cell: Cell, column: Column, where: str) -> object:
        value: object = cell
        if isinstance(cell, dict):
            if len(cell) != 1 or not cell.keys() <= {"sealed", "bytes"}:
                raise ArchiveUnreadable(f"{where}: unknown kind of value in the archive")
            ((tag, encoded),) = cell.items()
            try:
                raw = base64.b64decode(encoded, validate=True)
            except binascii.Error:
                raise ArchiveUnreadable(f"{where}: a damaged value in the archive") from None
            value = self._box.encrypt(raw) if tag == "sealed" else raw
        return fitted(value, column.kind, where)


def fitted(value: object, kind: str, where: str) -> object:
    """`value` as the target column's kind wants it (booleans stored as integers become
    integers, integral floats from a loosely typed SQLite column become ints, and so on);
    ImportRefused when it does not fit. The message names the column, never the value."""
    if value is None or kind == "other":
        return value
    if kind == "integer":
        if isinstance(value, bool | int):
            return int(value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif kind == "real":
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif kind == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
    elif kind == "text":
        if isinstance(value, str):
            return value
    elif kind == "bytes" and isinstance(value, bytes):
        return value
    raise ImportRefused(
        f"{where}: the archive holds a value of type {type(value).__name__} where this "
        f"database wants {kind}; nothing was imported"
    )


def read_snapshot(data: bytes, passphrase: str) -> Snapshot:
    """Decrypt and parse an archive (see `gateway.admin.archive.unseal` for the errors)."""
    document = unseal(data, passphrase)
    try:
        return Snapshot.model_validate_json(document)
    except ValidationError as exc:
        first = exc.errors()[0]  # its location and message only: the input may be a secret
        where = ".".join(str(part) for part in first["loc"])
        raise ArchiveUnreadable(
            f"the archive's contents are not understood ({where}: {first['msg']})"
        ) from None


def durable_tables(tx: Transaction, tables: Mapping[str, Table] | None = None) -> list[Table]:
    """The tables a backup holds, in foreign-key order."""
    every = read_tables(tx) if tables is None else tables
    durable = [table for name, table in every.items() if name not in SHORT_LIVED]
    for table in durable:
        left_out = table.references & set(SHORT_LIVED)
        if left_out:  # restoring it would break the reference: refuse to make such a backup
            raise StorageError(f"{table.name} refers to short-lived {sorted(left_out)}")
    return in_foreign_key_order(durable)


def _schema_version(tx: Transaction) -> int:
    row = tx.fetchone("SELECT MAX(version) FROM schema_migrations")
    return int(row[0]) if row and row[0] is not None else 0


def _check_fits(archived: Mapping[str, ArchivedTable], durable: Mapping[str, Table]) -> None:
    for name, table in archived.items():
        target = durable.get(name)
        if target is None:
            raise ImportRefused(f"the archive holds table {name}, which this Passgate lacks")
        unknown = [column for column in table.columns if target.column(column) is None]
        if unknown:
            raise ImportRefused(f"the archive's {name} has columns this Passgate lacks: {unknown}")


def _refuse_if_populated(tx: Transaction, durable: list[Table]) -> None:
    found = []
    for table in durable:
        if table.name in SELF_MADE and SELF_MADE[table.name] is None:
            continue
        condition = f" WHERE NOT ({SELF_MADE[table.name]})" if table.name in SELF_MADE else ""
        row = tx.fetchone(f"SELECT COUNT(*) FROM {quoted(table.name)}{condition}")
        if row and int(row[0]):
            found.append(f"{table.name} {int(row[0])}")
    if found:
        raise ImportRefused(
            f"this database already holds data ({', '.join(found)}): import goes into an empty "
            "database; use --replace to wipe it and import in its place"
        )


def _write_new_file(path: Path, data: bytes) -> None:
    """Write `data` to a new file readable by its owner only, complete or not at all."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.partial")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if path.exists():
            raise InvalidInput(f"{path} already exists: choose a new file name")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
