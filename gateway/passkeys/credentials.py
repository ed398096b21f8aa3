"""Stored passkeys: the service layer behind the account page, the ceremonies and the CLI."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from gateway.core.errors import Conflict, InvalidInput, NotFound
from gateway.storage.db import Database, IntegrityViolation, Transaction

_COLUMNS = (
    "credential_id, user_id, public_key, sign_count, transports, aaguid, backup_eligible, "
    "backed_up, name, created_at, last_used_at"
)


@dataclass(frozen=True, slots=True)
class Passkey:
    credential_id: str  # base64url
    user_id: str
    public_key: str  # base64url COSE key
    sign_count: int
    transports: tuple[str, ...]
    aaguid: str
    backup_eligible: bool
    backed_up: bool
    name: str
    created_at: float
    last_used_at: float | None


@dataclass(frozen=True, slots=True)
class NewPasskey:
    """A verified credential about to be stored."""

    credential_id: str
    user_id: str
    public_key: str
    sign_count: int
    transports: tuple[str, ...]
    aaguid: str
    backup_eligible: bool
    backed_up: bool
    name: str


def _passkey(row: tuple[object, ...]) -> Passkey:
    return Passkey(
        credential_id=str(row[0]),
        user_id=str(row[1]),
        public_key=str(row[2]),
        sign_count=int(row[3]),  # type: ignore[call-overload]
        transports=tuple(t for t in str(row[4]).split(",") if t),
        aaguid=str(row[5]),
        backup_eligible=bool(row[6]),
        backed_up=bool(row[7]),
        name=str(row[8]),
        created_at=float(row[9]),  # type: ignore[arg-type]
        last_used_at=float(row[10]) if row[10] is not None else None,  # type: ignore[arg-type]
    )


class PasskeyService:
    def __init__(self, db: Database) -> None:
        self._db = db

    def user_handle(self, user_id: str) -> str:
        """The WebAuthn user handle (random, never the username), created on first use."""
        row = self._db.fetchone("SELECT webauthn_handle FROM users WHERE id = ?", (user_id,))
        if row is None:
            raise NotFound("no such user")
        if row[0]:
            return str(row[0])
        handle = secrets.token_urlsafe(32)
        self._db.execute(
            "UPDATE users SET webauthn_handle = ? WHERE id = ? AND webauthn_handle IS NULL",
            (handle, user_id),
        )
        again = self._db.fetchone("SELECT webauthn_handle FROM users WHERE id = ?", (user_id,))
        assert again is not None
        return str(again[0])

    def user_for_handle(self, handle: str) -> str | None:
        row = self._db.fetchone("SELECT id FROM users WHERE webauthn_handle = ?", (handle,))
        return str(row[0]) if row else None

    def add(
        self,
        *,
        credential_id: str,
        user_id: str,
        public_key: str,
        sign_count: int,
        transports: tuple[str, ...],
        aaguid: str,
        backup_eligible: bool,
        backed_up: bool,
        name: str,
    ) -> Passkey:
        """Store a verified credential; Conflict if that credential is already registered."""
        with self._db.transaction() as tx:
            self.insert(
                tx,
                NewPasskey(
                    credential_id,
                    user_id,
                    public_key,
                    sign_count,
                    transports,
                    aaguid,
                    backup_eligible,
                    backed_up,
                    name,
                ),
            )
        return self.get(credential_id)

    @staticmethod
    def insert(tx: Transaction, new: NewPasskey) -> None:
        """Insert inside the caller's transaction (a user and its first passkey together)."""
        if tx.fetchone("SELECT 1 FROM passkeys WHERE credential_id = ?", (new.credential_id,)):
            raise Conflict("this passkey is already registered")
        try:
            tx.execute(
                f"INSERT INTO passkeys ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)",
                (
                    new.credential_id,
                    new.user_id,
                    new.public_key,
                    new.sign_count,
                    ",".join(new.transports),
                    new.aaguid,
                    int(new.backup_eligible),
                    int(new.backed_up),
                    _clean_name(new.name),
                    time.time(),
                ),
            )
        except IntegrityViolation:
            raise Conflict("this passkey is already registered") from None

    @staticmethod
    def set_user_handle(tx: Transaction, user_id: str, handle: str) -> None:
        tx.execute("UPDATE users SET webauthn_handle = ? WHERE id = ?", (handle, user_id))

    def get(self, credential_id: str) -> Passkey:
        row = self._db.fetchone(
            f"SELECT {_COLUMNS} FROM passkeys WHERE credential_id = ?", (credential_id,)
        )
        if row is None:
            raise NotFound("unknown passkey")
        return _passkey(row)

    def find(self, credential_id: str) -> Passkey | None:
        try:
            return self.get(credential_id)
        except NotFound:
            return None

    def list_for_user(self, user_id: str) -> list[Passkey]:
        rows = self._db.fetchall(
            f"SELECT {_COLUMNS} FROM passkeys WHERE user_id = ? ORDER BY created_at", (user_id,)
        )
        return [_passkey(row) for row in rows]

    def count_for_user(self, user_id: str) -> int:
        row = self._db.fetchone("SELECT COUNT(*) FROM passkeys WHERE user_id = ?", (user_id,))
        return int(row[0]) if row else 0

    def record_use(self, credential_id: str, sign_count: int, backed_up: bool) -> None:
        self._db.execute(
            "UPDATE passkeys SET sign_count = ?, backed_up = ?, last_used_at = ? "
            "WHERE credential_id = ?",
            (sign_count, int(backed_up), time.time(), credential_id),
        )

    def rename(self, user_id: str, credential_id: str, name: str) -> Passkey:
        """Rename one of the user's passkeys; NotFound if it is not theirs."""
        changed = self._db.execute(
            "UPDATE passkeys SET name = ? WHERE credential_id = ? AND user_id = ?",
            (_clean_name(name), credential_id, user_id),
        )
        if changed != 1:
            raise NotFound("unknown passkey")
        return self.get(credential_id)

    def delete(self, user_id: str, credential_id: str) -> None:
        """Delete one of the user's passkeys; NotFound if it is not theirs."""
        if (
            self._db.execute(
                "DELETE FROM passkeys WHERE credential_id = ? AND user_id = ?",
                (credential_id, user_id),
            )
            != 1
        ):
            raise NotFound("unknown passkey")


def _clean_name(name: str) -> str:
    cleaned = " ".join(name.split())[:64]
    if any(ord(ch) < 32 for ch in cleaned):
        raise InvalidInput("a passkey name cannot contain control characters")
    return cleaned
