"""Self-service signups (ALLOW_USER_SIGNUPS): signup tokens with an expiry and a usage limit."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from gateway.core.crypto import hash_token
from gateway.core.errors import InvalidInput, PassgateError
from gateway.storage.db import Database, Transaction


class SignupRejected(PassgateError):
    """Signups are closed, or the token is unknown, expired or used up (one message for all)."""


@dataclass(frozen=True, slots=True)
class SignupToken:
    token: str
    expires_at: float
    usage_limit: int


class SignupTokens:
    def __init__(self, db: Database) -> None:
        self._db = db

    def create(self, lifetime: float = 7 * 86400, usage_limit: int = 1) -> SignupToken:
        """A new token; the clear value exists only in the return value."""
        if usage_limit < 1 or lifetime <= 0:
            raise InvalidInput("a signup token needs a positive lifetime and usage limit")
        token = secrets.token_urlsafe(24)
        now = time.time()
        self._db.execute(
            "INSERT INTO signup_tokens (token_hash, created_at, expires_at, usage_limit) "
            "VALUES (?, ?, ?, ?)",
            (hash_token(token), now, now + lifetime, usage_limit),
        )
        return SignupToken(token, now + lifetime, usage_limit)

    def check(self, token: str) -> None:
        """Raise SignupRejected unless the token can still be used (does not use it)."""
        row = self._db.fetchone(
            "SELECT expires_at, usage_limit, usage_count FROM signup_tokens WHERE token_hash = ?",
            (hash_token(token),),
        )
        if row is None or float(row[0]) < time.time() or int(row[2]) >= int(row[1]):
            raise SignupRejected("this signup link is invalid, expired or used up")

    def consume(self, tx: Transaction, token: str) -> None:
        """Use the token once inside the caller's transaction (the one creating the user)."""
        used = tx.execute(
            "UPDATE signup_tokens SET usage_count = usage_count + 1 WHERE token_hash = ? "
            "AND expires_at > ? AND usage_count < usage_limit",
            (hash_token(token), time.time()),
        )
        if used != 1:
            raise SignupRejected("this signup link is invalid, expired or used up")
