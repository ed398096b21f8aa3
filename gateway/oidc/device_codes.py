"""Device authorization codes (RFC 8628): what a TV or command-line tool holds while its user
approves it in a browser. Both codes are stored hashed; a user code is single use and lives
DEVICE_CODE_LIFETIME seconds.

A code is `pending` until the signed-in user approves or denies it on /device; an approved code
becomes `used` when the device's poll takes its tokens, exactly once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

from authlib.common.security import generate_token

from gateway.core.crypto import hash_token
from gateway.storage.db import Database

DEVICE_CODE_LIFETIME = 600  # seconds: long enough to find a phone, short for a guessed code
POLL_INTERVAL = 5  # seconds between polls the device is told to keep (RFC 8628 3.2)
SLOW_DOWN_STEP = 5  # seconds added to the interval after each too-early poll (RFC 8628 3.5)
# RFC 8628 6.1: consonants only (no vowels, so no words; no 0/O or 1/I to confuse).
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
USER_CODE_LENGTH = 8

Status = Literal["pending", "approved", "denied", "used"]
_COLUMNS = (
    "device_code_hash, user_code_hash, client_id, scope, status, user_id, auth_time, amr, "
    "poll_interval, last_polled_at, created_at, expires_at"
)


def new_user_code() -> str:
    """A fresh user code as shown to people: XXXX-XXXX from USER_CODE_ALPHABET."""
    code = generate_token(USER_CODE_LENGTH, USER_CODE_ALPHABET)
    return f"{code[:4]}-{code[4:]}"


def normalise_user_code(typed: str) -> str | None:
    """The user code someone typed, in canonical form (upper case, no dash or spaces), or None
    when it cannot be a user code (wrong length or a character outside the alphabet)."""
    code = "".join(ch for ch in typed.upper() if ch not in "- \t")
    if len(code) != USER_CODE_LENGTH or any(ch not in USER_CODE_ALPHABET for ch in code):
        return None
    return code


def shown(code: str) -> str:
    """A canonical user code as people read it: XXXX-XXXX."""
    return f"{code[:4]}-{code[4:]}"


@dataclass(frozen=True, slots=True)
class DeviceCode:
    device_code_hash: str
    user_code_hash: str
    client_id: str
    scope: str
    status: Status
    user_id: str | None
    auth_time: float | None
    amr: tuple[str, ...]
    poll_interval: int
    last_polled_at: float | None  # the poll before this one, when read by `poll`
    created_at: float
    expires_at: float

    # authlib's DeviceCredentialMixin. The "user code" it passes back to query_user_grant is
    # the stored hash: the clear user code is never kept.
    def get_client_id(self) -> str:
        return self.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_user_code(self) -> str:
        return self.user_code_hash

    def is_expired(self) -> bool:
        return time.time() >= self.expires_at

    # what the ID token says about the sign-in (OpenIDToken reads these off a code)
    def get_nonce(self) -> str | None:
        return None

    def get_auth_time(self) -> int | None:
        return int(self.auth_time) if self.auth_time is not None else None

    def get_acr(self) -> str | None:
        return None

    def get_amr(self) -> list[str] | None:
        return list(self.amr) or None


def _device_code(row: tuple[object, ...]) -> DeviceCode:
    status = str(row[4])
    assert status in ("pending", "approved", "denied", "used")
    return DeviceCode(
        device_code_hash=str(row[0]),
        user_code_hash=str(row[1]),
        client_id=str(row[2]),
        scope=str(row[3]),
        status=status,  # type: ignore[arg-type]
        user_id=str(row[5]) if row[5] is not None else None,
        auth_time=float(row[6]) if row[6] is not None else None,  # type: ignore[arg-type]
        amr=tuple(str(row[7]).split()),
        poll_interval=int(row[8]),  # type: ignore[call-overload]
        last_polled_at=float(row[9]) if row[9] is not None else None,  # type: ignore[arg-type]
        created_at=float(row[10]),  # type: ignore[arg-type]
        expires_at=float(row[11]),  # type: ignore[arg-type]
    )


class DeviceCodes:
    """The device codes table: issue, find by either code, decide, poll, take once."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def save(self, device_code: str, user_code: str, client_id: str, scope: str) -> None:
        """Store a new pending pair (both hashed); the user code as shown, with its dash."""
        now = time.time()
        canonical = normalise_user_code(user_code)
        assert canonical is not None, "user codes come from new_user_code"
        with self._db.transaction() as tx:
            # Expired codes stay an hour, so that a late poll hears expired_token.
            tx.execute("DELETE FROM oauth_device_codes WHERE expires_at < ?", (now - 3600,))
            tx.execute(
                f"INSERT INTO oauth_device_codes ({_COLUMNS}) "
                "VALUES (?, ?, ?, ?, 'pending', NULL, NULL, '', ?, NULL, ?, ?)",
                (
                    hash_token(device_code),
                    hash_token(canonical),
                    client_id,
                    scope,
                    POLL_INTERVAL,
                    now,
                    now + DEVICE_CODE_LIFETIME,
                ),
            )

    def _by(self, column: str, value: str) -> DeviceCode | None:
        assert column in ("device_code_hash", "user_code_hash")
        row = self._db.fetchone(
            f"SELECT {_COLUMNS} FROM oauth_device_codes WHERE {column} = ?", (value,)
        )
        return _device_code(row) if row else None

    def pending_by_user_code(self, canonical: str) -> DeviceCode | None:
        """The pending, unexpired code with this (normalised) user code, or None."""
        found = self._by("user_code_hash", hash_token(canonical))
        if found is None or found.status != "pending" or found.is_expired():
            return None
        return found

    def by_user_code_hash(self, user_code_hash: str) -> DeviceCode | None:
        return self._by("user_code_hash", user_code_hash)

    def decide(
        self,
        user_code_hash: str,
        *,
        approved: bool,
        user_id: str,
        auth_time: float,
        amr: tuple[str, ...],
    ) -> bool:
        """Record the user's answer for a pending, unexpired code; False if it was no longer
        pending (answered in another tab, expired)."""
        changed = self._db.execute(
            "UPDATE oauth_device_codes SET status = ?, user_id = ?, auth_time = ?, amr = ? "
            "WHERE user_code_hash = ? AND status = 'pending' AND expires_at > ?",
            (
                "approved" if approved else "denied",
                user_id,
                auth_time,
                " ".join(amr),
                user_code_hash,
                time.time(),
            ),
        )
        return changed == 1

    def poll(self, device_code: str) -> DeviceCode | None:
        """The code for a device's poll, as it was before this poll (its previous poll time),
        after recording this poll; a poll that came too early also lengthens the interval."""
        found = self._by("device_code_hash", hash_token(device_code))
        if found is None:
            return None
        now = time.time()
        early = found.last_polled_at is not None and now - found.last_polled_at < (
            found.poll_interval
        )
        self._db.execute(
            "UPDATE oauth_device_codes SET last_polled_at = ?, poll_interval = ? "
            "WHERE device_code_hash = ?",
            (now, found.poll_interval + (SLOW_DOWN_STEP if early else 0), found.device_code_hash),
        )
        return found

    def take(self, device_code_hash: str) -> bool:
        """Mark an approved code used: True once, False for every later (or racing) poll."""
        changed = self._db.execute(
            "UPDATE oauth_device_codes SET status = 'used' "
            "WHERE device_code_hash = ? AND status = 'approved'",
            (device_code_hash,),
        )
        return changed == 1
