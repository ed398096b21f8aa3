"""Custom claims (as in Pocket-ID): extra key/value claims for a user or a group, added to ID
tokens and userinfo. A user's own claims win over their groups'; standard claims cannot be
overridden."""

from __future__ import annotations

import re

from gateway.accounts.users import UserService
from gateway.core.errors import InvalidInput
from gateway.storage.db import Database, Transaction

RESERVED = frozenset(
    {
        "sub",
        "iss",
        "aud",
        "exp",
        "iat",
        "nbf",
        "jti",
        "auth_time",
        "nonce",
        "acr",
        "amr",
        "azp",
        "at_hash",
        "c_hash",
        "sid",
        "name",
        "display_name",
        "given_name",
        "family_name",
        "preferred_username",
        "email",
        "email_verified",
        "groups",
        "picture",
    }
)
_CLAIM = re.compile(r"^[A-Za-z][A-Za-z0-9_.:-]{0,63}$")


def check_claim(claim: str, value: str) -> None:
    """InvalidInput unless `claim` may be set to `value`."""
    if not _CLAIM.match(claim):
        raise InvalidInput(f"claim name {claim!r} must be 1-64 letters, digits, _ . : -")
    if claim in RESERVED:
        raise InvalidInput(f"{claim!r} is a standard claim and cannot be set")
    if len(value) > 1000:
        raise InvalidInput("a claim value may be at most 1000 characters")


class CustomClaims:
    def __init__(self, db: Database, users: UserService) -> None:
        self._db = db
        self._users = users

    def _subject(self, subject: str) -> tuple[str, str]:
        """`user:NAME` or `group:NAME` → (type, id); NotFound if it does not exist."""
        kind, _, name = subject.partition(":")
        if kind == "user":
            return "user", self._users.get_user_by_name(name).id
        if kind == "group":
            return "group", self._users.get_group(name).id
        raise InvalidInput(f"{subject!r} must be user:NAME or group:NAME")

    def set(self, subject: str, claim: str, value: str) -> None:
        kind, subject_id = self._subject(subject)
        with self._db.transaction() as tx:
            self.put(tx, kind, subject_id, claim, value)

    @staticmethod
    def put(tx: Transaction, kind: str, subject_id: str, claim: str, value: str) -> None:
        """Set a claim of a user or group (by id) inside the caller's transaction (imports).
        InvalidInput for a bad name, a standard claim or a too long value."""
        check_claim(claim, value)
        tx.execute(
            "DELETE FROM custom_claims WHERE subject_type = ? AND subject_id = ? AND claim = ?",
            (kind, subject_id, claim),
        )
        tx.execute(
            "INSERT INTO custom_claims (subject_type, subject_id, claim, value) "
            "VALUES (?, ?, ?, ?)",
            (kind, subject_id, claim, value),
        )

    def unset(self, subject: str, claim: str) -> None:
        kind, subject_id = self._subject(subject)
        self._db.execute(
            "DELETE FROM custom_claims WHERE subject_type = ? AND subject_id = ? AND claim = ?",
            (kind, subject_id, claim),
        )

    def list(self, subject: str) -> dict[str, str]:
        kind, subject_id = self._subject(subject)
        rows = self._db.fetchall(
            "SELECT claim, value FROM custom_claims WHERE subject_type = ? AND subject_id = ? "
            "ORDER BY claim",
            (kind, subject_id),
        )
        return {str(claim): str(value) for claim, value in rows}

    def for_user(self, user_id: str) -> dict[str, str]:
        """The claims a user's tokens carry: their groups' (by group name), then their own."""
        rows = self._db.fetchall(
            "SELECT c.claim, c.value FROM custom_claims c "
            "JOIN user_groups ug ON c.subject_type = 'group' AND c.subject_id = ug.group_id "
            "JOIN groups g ON g.id = ug.group_id WHERE ug.user_id = ? ORDER BY g.name",
            (user_id,),
        )
        merged = {str(claim): str(value) for claim, value in rows}
        own = self._db.fetchall(
            "SELECT claim, value FROM custom_claims WHERE subject_type = 'user' AND subject_id = ?",
            (user_id,),
        )
        merged.update({str(claim): str(value) for claim, value in own})
        return merged
