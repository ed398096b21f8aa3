"""Turning a verified passkey into an account: first-run setup, signups, and extra passkeys.

A new account and its first passkey are written in one transaction, so there is never a user
without a way in, nor a passkey without its user.
"""

from __future__ import annotations

from dataclasses import replace

from gateway.accounts.users import UserService
from gateway.core.errors import PassgateError
from gateway.passkeys.ceremonies import PendingRegistration
from gateway.passkeys.credentials import NewPasskey, PasskeyService
from gateway.passkeys.signups import SignupTokens
from gateway.storage.db import Database


class SetupClosed(PassgateError):
    """First-run setup is over: a user already exists."""


class Enrolment:
    def __init__(
        self,
        db: Database,
        users: UserService,
        signups: SignupTokens,
        admin_group: str,
    ) -> None:
        self._db = db
        self._users = users
        self._signups = signups
        self._admin_group = admin_group

    def complete(self, pending: PendingRegistration, passkey: NewPasskey) -> str:
        """Store the passkey (creating the account for setup and signup); return the user id.
        Raises SetupClosed, SignupRejected, Conflict or InvalidInput; nothing is half-written."""
        with self._db.transaction() as tx:
            if pending.flow == "add":
                assert pending.user_id is not None
                PasskeyService.insert(tx, replace(passkey, user_id=pending.user_id))
                return pending.user_id
            groups: tuple[str, ...] = ()
            if pending.flow == "setup":
                row = tx.fetchone("SELECT COUNT(*) FROM users")
                if row is None or int(row[0]) > 0:
                    raise SetupClosed("setup is already complete; sign in instead")
                self._users.ensure_group(tx, self._admin_group)
                groups = (self._admin_group,)
            elif pending.signup_token is not None:
                self._signups.consume(tx, pending.signup_token)
            user_id = self._users.insert_user(
                tx, pending.username, pending.email, pending.display_name, groups
            )
            PasskeyService.set_user_handle(tx, user_id, pending.handle)
            PasskeyService.insert(tx, replace(passkey, user_id=user_id))
            return user_id
