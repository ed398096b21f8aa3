"""Who is signed in: a session cookie resolved to the user's current identity.

Identities are cached in-process for a second, like sessions, so disabling a user or changing
their groups reaches every worker within a second without a database read per request.
"""

from __future__ import annotations

import time

from starlette.concurrency import run_in_threadpool

from gateway.accounts.users import UserService
from gateway.core.identity import Identity
from gateway.sessions.sessions import CACHE_SECONDS, SessionRecord, Sessions

_CACHE_LIMIT = 50_000


class CurrentUser:
    """Resolves cookies to (session, identity); None for anyone not signed in or disabled."""

    def __init__(self, sessions: Sessions, users: UserService) -> None:
        self.sessions = sessions
        self._users = users
        self._identities: dict[str, tuple[float, Identity | None]] = {}

    async def identify(self, cookie: str | None) -> tuple[SessionRecord, Identity] | None:
        """Raises SessionStoreUnavailable when the session store is down (fail closed)."""
        record = await self.sessions.resolve(cookie)
        if record is None:
            return None
        identity = await self.identity(record.user_id)
        return (record, identity) if identity is not None else None

    async def identity(self, user_id: str) -> Identity | None:
        now = time.monotonic()
        cached = self._identities.get(user_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        user = await run_in_threadpool(self._users.find_user, user_id)
        identity = user.identity() if user is not None and not user.disabled else None
        if len(self._identities) >= _CACHE_LIMIT:
            self._identities.clear()
        self._identities[user_id] = (now + CACHE_SECONDS, identity)
        return identity

    def forget(self, user_id: str) -> None:
        """Drop this process's cached identity after a change made here."""
        self._identities.pop(user_id, None)
