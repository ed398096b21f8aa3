"""API keys for the admin API: named, scoped, optionally expiring, revocable, stored hashed.

The clear token exists once, in `create`'s return value. Tokens start with `pgk_` so a leaked
one is recognisable (secret scanners, logs); the store keeps only their SHA-256.
"""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Literal

from gateway.core.crypto import hash_token
from gateway.core.errors import Conflict, InvalidInput, NotFound
from gateway.storage.db import Database

Scope = Literal["read", "write"]
SCOPES: tuple[Scope, ...] = ("read", "write")
PREFIX = "pgk_"
MAX_DAYS = 3650
LAST_USED_EVERY = 60.0  # last_used_at is written at most this often per key

_COLUMNS = "id, name, scope, created_by, created_at, expires_at, last_used_at, revoked_at"


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored key (never its token). `scope` read allows GET only; write allows everything."""

    id: str
    name: str
    scope: Scope
    created_by: str
    created_at: float
    expires_at: float | None
    last_used_at: float | None
    revoked_at: float | None

    def usable(self, now: float) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)

    def allows(self, method: str) -> bool:
        """Whether this key's scope permits an HTTP method."""
        return self.scope == "write" or method in ("GET", "HEAD")


def _key(row: tuple[object, ...]) -> ApiKey:
    scope = str(row[2])
    assert scope in SCOPES
    return ApiKey(
        id=str(row[0]),
        name=str(row[1]),
        scope="write" if scope == "write" else "read",
        created_by=str(row[3]),
        created_at=float(row[4]),  # type: ignore[arg-type]
        expires_at=None if row[5] is None else float(row[5]),  # type: ignore[arg-type]
        last_used_at=None if row[6] is None else float(row[6]),  # type: ignore[arg-type]
        revoked_at=None if row[7] is None else float(row[7]),  # type: ignore[arg-type]
    )


def _check_name(name: str) -> str:
    value = " ".join(name.split())
    if not 1 <= len(value) <= 64 or any(ord(ch) < 32 for ch in value):
        raise InvalidInput("an API key name must be 1-64 printable characters")
    return value


class ApiKeys:
    """Create, list, revoke and authenticate API keys."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def create(
        self, name: str, scope: str = "read", days: float | None = None, created_by: str = ""
    ) -> tuple[ApiKey, str]:
        """A new key and its clear token (shown once). InvalidInput for a bad name, scope or
        lifetime; Conflict when an active key already has that name."""
        clean = _check_name(name)
        if scope not in SCOPES:
            raise InvalidInput("scope must be read or write")
        if days is not None and not 0 < days <= MAX_DAYS:
            raise InvalidInput(f"days must be more than 0 and at most {MAX_DAYS}")
        token = PREFIX + secrets.token_urlsafe(32)
        now = time.time()
        key_id = uuid.uuid4().hex[:16]
        with self._db.transaction() as tx:
            taken = tx.fetchone(
                "SELECT 1 FROM api_keys WHERE name = ? AND revoked_at IS NULL "
                "AND (expires_at IS NULL OR expires_at > ?)",
                (clean, now),
            )
            if taken:
                raise Conflict(f"an active API key named {clean!r} already exists")
            tx.execute(
                "INSERT INTO api_keys (id, name, scope, token_hash, created_by, created_at, "
                "expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    key_id,
                    clean,
                    scope,
                    hash_token(token),
                    created_by[:200],
                    now,
                    None if days is None else now + days * 86400,
                ),
            )
        return self.get(key_id), token

    def get(self, key_id: str) -> ApiKey:
        """The key with that id; NotFound otherwise."""
        row = self._db.fetchone(f"SELECT {_COLUMNS} FROM api_keys WHERE id = ?", (key_id,))
        if row is None:
            raise NotFound(f"no API key with id {key_id!r}")
        return _key(row)

    def list(self) -> list[ApiKey]:
        """Every key, revoked and expired ones included, newest first."""
        rows = self._db.fetchall(f"SELECT {_COLUMNS} FROM api_keys ORDER BY created_at DESC, id")
        return [_key(row) for row in rows]

    def revoke(self, key_id: str) -> ApiKey:
        """Revoke a key at once. NotFound; Conflict if it is already revoked."""
        key = self.get(key_id)
        if key.revoked_at is not None:
            raise Conflict(f"API key {key_id!r} is already revoked")
        self._db.execute(
            "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
            (time.time(), key_id),
        )
        return self.get(key_id)

    def authenticate(self, token: str) -> ApiKey | None:
        """The usable key behind a token, or None (unknown, malformed, expired or revoked).
        The lookup is by SHA-256, so timing reveals nothing about stored tokens."""
        if not token.startswith(PREFIX) or len(token) > 200:
            return None
        row = self._db.fetchone(
            f"SELECT {_COLUMNS} FROM api_keys WHERE token_hash = ?", (hash_token(token),)
        )
        if row is None:
            return None
        key = _key(row)
        now = time.time()
        if not key.usable(now):
            return None
        if key.last_used_at is None or now - key.last_used_at >= LAST_USED_EVERY:
            self._db.execute("UPDATE api_keys SET last_used_at = ? WHERE id = ?", (now, key.id))
        return key
