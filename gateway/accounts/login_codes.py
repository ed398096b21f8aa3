"""One-time access codes (Pocket-ID's `APP_URL/lc/<code>` links): single use, one hour,
stored hashed."""

from __future__ import annotations

import secrets
import time

from gateway.accounts.users import User, UserService
from gateway.core.crypto import hash_token
from gateway.core.errors import LoginCodeRejected
from gateway.storage.db import Database

# No look-alike characters, so a code read aloud or typed from a phone survives.
ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 16  # 80 bits: guessing is hopeless even without rate limits
DEFAULT_LIFETIME = 3600.0
REJECTED = "this login code is invalid or has expired"


def normalise(code: str) -> str:
    """Upper-case and drop spaces and dashes people add when typing a code by hand."""
    return "".join(ch for ch in code.upper() if ch not in " -\t")


class LoginCodes:
    """Issue and redeem one-time access codes."""

    def __init__(self, db: Database, users: UserService) -> None:
        self._db = db
        self._users = users

    def issue(self, username: str, lifetime: float = DEFAULT_LIFETIME) -> str:
        """Create a code for the user and return it (the only time it exists in clear)."""
        user = self._users.get_user_by_name(username)
        code = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))
        now = time.time()
        self._db.execute(
            "INSERT INTO login_codes (code_hash, user_id, created_at, expires_at) "
            "VALUES (?, ?, ?, ?)",
            (hash_token(code), user.id, now, now + lifetime),
        )
        return code

    def redeem(self, code: str) -> User:
        """Consume a code and return its user; raise LoginCodeRejected if it is unknown, used,
        expired, or its user is disabled (one message for all, so nothing can be probed)."""
        digest = hash_token(normalise(code))
        now = time.time()
        with self._db.transaction() as tx:
            row = tx.fetchone(
                "SELECT user_id, expires_at FROM login_codes WHERE code_hash = ?", (digest,)
            )
            # Deleting inside the same transaction makes the code single-use even under races.
            if (
                row is None
                or tx.execute("DELETE FROM login_codes WHERE code_hash = ?", (digest,)) != 1
            ):
                raise LoginCodeRejected(REJECTED, "unknown or already used code")
            tx.execute("DELETE FROM login_codes WHERE expires_at < ?", (now,))
        user_id = str(row[0])
        if float(row[1]) < now:
            raise LoginCodeRejected(REJECTED, "expired code", user_id)
        user = self._users.find_user(user_id)
        if user is None or user.disabled:
            raise LoginCodeRejected(REJECTED, "disabled account", user_id)
        return user
