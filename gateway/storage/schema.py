"""The live database's tables and columns, read from the database itself (not from the migrations),
in foreign-key order: what a backup walks so that tables added later need no code change here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from gateway.core.errors import StorageError
from gateway.storage.db import Transaction

# What a column holds, as far as moving values between SQLite and PostgreSQL is concerned.
Kind = Literal["integer", "real", "text", "boolean", "bytes", "other"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    kind: Kind


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    references: frozenset[str]  # tables this one has foreign keys to (itself excluded)

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)


def quoted(name: str) -> str:
    """An identifier for SQL; only plain names (every Passgate table and column) are accepted."""
    if not _NAME.match(name):
        raise StorageError(f"unexpected table or column name {name!r}")
    return f'"{name}"'


def read_tables(tx: Transaction) -> dict[str, Table]:
    """Every table in the database (Passgate's schema on PostgreSQL), by name."""
    if tx.dialect == "sqlite":
        return _sqlite_tables(tx)
    return _postgres_tables(tx)


def in_foreign_key_order(tables: Iterable[Table]) -> list[Table]:
    """Tables ordered so each comes after every table it references (ties by name);
    StorageError for a reference cycle, which no insert order could satisfy."""
    pending = {table.name: table for table in tables}
    ordered: list[Table] = []
    while pending:
        ready = sorted(
            name
            for name, table in pending.items()
            if not any(ref in pending for ref in table.references)
        )
        if not ready:
            raise StorageError(f"foreign keys form a cycle between {sorted(pending)}")
        for name in ready:
            ordered.append(pending.pop(name))
    return ordered


def _sqlite_tables(tx: Transaction) -> dict[str, Table]:
    names = [
        str(row[0])
        for row in tx.fetchall(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    ]
    tables = {}
    for name in names:
        columns = tuple(
            Column(str(row[1]), _sqlite_kind(str(row[2])))
            for row in tx.fetchall(f"PRAGMA table_info({quoted(name)})")
        )
        references = frozenset(
            str(row[2]) for row in tx.fetchall(f"PRAGMA foreign_key_list({quoted(name)})")
        ) - {name}
        tables[name] = Table(name, columns, references)
    return tables


def _sqlite_kind(declared: str) -> Kind:
    """SQLite's type-affinity rules (https://www.sqlite.org/datatype3.html, section 3.1)."""
    declared = declared.upper()
    if "INT" in declared:
        return "integer"
    if any(word in declared for word in ("CHAR", "CLOB", "TEXT")):
        return "text"
    if "BLOB" in declared:
        return "bytes"
    if any(word in declared for word in ("REAL", "FLOA", "DOUB")):
        return "real"
    return "other"


_POSTGRES_KINDS: dict[str, Kind] = {
    "smallint": "integer",
    "integer": "integer",
    "bigint": "integer",
    "real": "real",
    "double precision": "real",
    "text": "text",
    "character varying": "text",
    "character": "text",
    "boolean": "boolean",
    "bytea": "bytes",
}


def _postgres_tables(tx: Transaction) -> dict[str, Table]:
    columns: dict[str, list[Column]] = {}
    for table, column, data_type in tx.fetchall(
        "SELECT c.table_name, c.column_name, c.data_type FROM information_schema.columns c "
        "JOIN information_schema.tables t "
        "ON t.table_schema = c.table_schema AND t.table_name = c.table_name "
        "WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE' "
        "ORDER BY c.table_name, c.ordinal_position"
    ):
        kind = _POSTGRES_KINDS.get(str(data_type), "other")
        columns.setdefault(str(table), []).append(Column(str(column), kind))
    references: dict[str, set[str]] = {}
    for source, target in tx.fetchall(
        "SELECT src.relname, dst.relname FROM pg_constraint con "
        "JOIN pg_class src ON src.oid = con.conrelid "
        "JOIN pg_class dst ON dst.oid = con.confrelid "
        "JOIN pg_namespace ns ON ns.oid = src.relnamespace "
        "WHERE con.contype = 'f' AND ns.nspname = current_schema()"
    ):
        if source != target:
            references.setdefault(str(source), set()).add(str(target))
    return {
        name: Table(name, tuple(cols), frozenset(references.get(name, ())))
        for name, cols in columns.items()
    }
