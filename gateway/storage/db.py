"""The durable store's connection: SQLite (default, WAL) or PostgreSQL, behind one small interface.

SQL in Passgate is written once, with `?` placeholders and portable types; this module adapts the
placeholders for psycopg. Calls are synchronous: the web layer runs them in a worker thread.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import psycopg

from gateway.core.errors import StorageError

Row = tuple[Any, ...]
Params = Sequence[Any]


class Cursorish(Protocol):
    def execute(self, sql: str, params: Params = ()) -> Any: ...
    def executemany(self, sql: str, params_seq: Sequence[Params]) -> Any: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> Any: ...


class Database:
    """One connection, serialised by a lock: Passgate's database work is small and infrequent
    (the forward-auth hot path never touches it), so a pool would buy nothing but failure modes."""

    dialect: str

    def __init__(self, connection: sqlite3.Connection | psycopg.Connection[Any], dialect: str):
        self._conn = connection
        self.dialect = dialect
        self._lock = threading.RLock()

    @classmethod
    def sqlite(cls, path: Path) -> Database:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=30000")
        return cls(conn, "sqlite")

    @classmethod
    def postgres(cls, url: str) -> Database:
        try:
            conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            raise StorageError(f"cannot connect to PostgreSQL: {_first_line(exc)}") from None
        return cls(conn, "postgres")

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.dialect == "postgres" else sql

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """Run statements atomically; roll back on any exception."""
        with self._lock:
            try:
                if self.dialect == "sqlite":
                    assert isinstance(self._conn, sqlite3.Connection)
                    self._conn.execute("BEGIN IMMEDIATE")
                    try:
                        yield Transaction(self, self._conn.cursor())
                    except BaseException:
                        self._conn.execute("ROLLBACK")
                        raise
                    self._conn.execute("COMMIT")
                else:
                    assert isinstance(self._conn, psycopg.Connection)
                    with self._conn.transaction(), self._conn.cursor() as cursor:
                        yield Transaction(self, cursor)
            except (sqlite3.Error, psycopg.Error) as exc:
                raise _storage_error(exc) from exc

    def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement in its own transaction; return the affected row count."""
        with self.transaction() as tx:
            return tx.execute(sql, params)

    def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        with self.transaction() as tx:
            return tx.fetchone(sql, params)

    def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        with self.transaction() as tx:
            return tx.fetchall(sql, params)

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class Transaction:
    """Statements inside one transaction."""

    def __init__(self, db: Database, cursor: Cursorish) -> None:
        self._db = db
        self._cursor = cursor

    @property
    def dialect(self) -> str:
        return self._db.dialect

    def execute(self, sql: str, params: Params = ()) -> int:
        result = self._cursor.execute(self._db._sql(sql), tuple(params))
        return int(getattr(result, "rowcount", 0) or 0)

    def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        """Run one statement for many parameter rows (pipelined on PostgreSQL)."""
        if rows:
            self._cursor.executemany(self._db._sql(sql), [tuple(row) for row in rows])

    def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        self._cursor.execute(self._db._sql(sql), tuple(params))
        row = self._cursor.fetchone()
        return tuple(row) if row is not None else None

    def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        self._cursor.execute(self._db._sql(sql), tuple(params))
        return [tuple(row) for row in self._cursor.fetchall()]


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _storage_error(exc: BaseException) -> StorageError:
    if isinstance(exc, sqlite3.IntegrityError | psycopg.errors.IntegrityError):
        return IntegrityViolation(_first_line(exc))
    return StorageError(f"database error: {_first_line(exc)}")


class IntegrityViolation(StorageError):
    """A uniqueness or foreign-key constraint refused the change."""
