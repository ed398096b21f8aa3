"""Rate limits for sign-in, passkey ceremonies, login codes and signups (per IP and per account).

Counters live in the short-lived store (Redis or the database), so every worker shares them.
Per-IP limits count every attempt before any work. The per-account limit counts failed
sign-ins that name an account (a known passkey that did not verify, a code of that account that
was expired or belongs to a disabled user), keyed by the account alone, so a client rotating
X-Forwarded-For cannot reset it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from gateway.core.crypto import hash_token
from gateway.core.errors import PassgateError
from gateway.sessions.ephemeral import Ephemeral


class RateLimited(PassgateError):
    """Too many attempts; `retry_after` says in how many seconds to try again."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many attempts; try again in {retry_after} seconds")
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Limit:
    name: str
    attempts: int
    window: float  # seconds


# Generous for people, useless for scripts.
WEBAUTHN = Limit("webauthn", 30, 60)
LOGIN_CODE = Limit("login-code", 10, 600)
SIGNUP = Limit("signup", 10, 3600)
ACCOUNT = Limit("account", 20, 600)  # failed sign-ins of one account, from any address


class RateLimiter:
    def __init__(self, store: Ephemeral) -> None:
        self._store = store

    async def check(self, limit: Limit, subject: str) -> None:
        """Count one attempt by `subject` (an IP or an account); RateLimited past the limit."""
        key = f"rl:{limit.name}:{hash_token(subject)[:32]}"
        count = await self._store.hit(key, limit.window)
        if count > limit.attempts:
            raise RateLimited(max(1, math.ceil(limit.window)))

    async def sign_in_failed(self, user_id: str | None) -> None:
        """Count a refused sign-in against the account it names (none: nothing to count);
        RateLimited once the account has failed ACCOUNT.attempts times in the window.

        Only failures are counted and only failures are refused, never a sign-in that verifies:
        anyone who can make an account's sign-ins fail (a passkey's credential id is enough)
        could otherwise lock its owner out. Past the limit the failure answers 429 instead of
        its reason, so a script learns nothing more about that account from any address.
        """
        if user_id:
            await self.check(ACCOUNT, user_id)
