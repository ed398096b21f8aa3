"""Browser sessions: server-side records behind an opaque, signed cookie.

The cookie holds a random id signed with itsdangerous; the store keeps the record under the
SHA-256 of that id, so a dump of Redis or the database yields no usable cookie. Lookups are cached
in-process for at most `CACHE_SECONDS`, which bounds how long a logout takes to reach every worker.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass, replace
from typing import Protocol

from itsdangerous import BadSignature, Signer

from gateway.core import metrics
from gateway.core.crypto import hash_token
from gateway.core.errors import SessionStoreUnavailable

log = logging.getLogger("passgate.sessions")

CACHE_SECONDS = 1.0  # a revoked session is refused on every process within this time
TOUCH_EVERY = 60.0  # last-seen is written at most this often per session
_CACHE_LIMIT = 100_000
MAX_COOKIE_LENGTH = 256  # ours are under 100 characters; longer values are not even checked


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A stored session. `key` is the hash of the cookie's id: safe to show and to log."""

    key: str
    user_id: str
    created_at: float
    expires_at: float
    last_seen: float
    ip: str
    user_agent: str
    # How the user signed in (passkey, login_code, one_time_link, signup, setup); "" for
    # sessions made before Passgate recorded it.
    method: str = ""

    def alive(self, now: float, inactivity: float) -> bool:
        return now < self.expires_at and now < self.last_seen + inactivity

    def ends_at(self, inactivity: float) -> float:
        return min(self.expires_at, self.last_seen + inactivity)


class SessionStore(Protocol):
    """Where session records live: Redis, or the SQL database when no Redis is configured.
    Every method raises SessionStoreUnavailable when the store cannot be reached."""

    async def save(self, record: SessionRecord, inactivity: float) -> None: ...
    async def load(self, key: str) -> SessionRecord | None: ...
    async def touch(self, record: SessionRecord, inactivity: float) -> None: ...
    async def delete(self, key: str) -> None: ...
    async def delete_for_user(self, user_id: str) -> None: ...
    async def list_for_user(self, user_id: str) -> list[SessionRecord]: ...
    async def ping(self) -> None: ...
    async def close(self) -> None: ...


class OutageLog:
    """Logs a store outage once when it starts and once when it ends, never per request."""

    def __init__(self, name: str, store: str) -> None:
        self._name = name
        self._store = store  # the metric's label: redis or database
        self.down = False

    def failed(self, exc: BaseException) -> SessionStoreUnavailable:
        metrics.session_store_error(self._store)
        if not self.down:
            self.down = True
            log.error(
                "%s is unreachable (%s); forward-auth answers 503 until it is back",
                self._name,
                type(exc).__name__,
            )
        return SessionStoreUnavailable(f"{self._name} is unreachable")

    def succeeded(self) -> None:
        if self.down:
            self.down = False
            log.warning("%s is reachable again", self._name)


class Sessions:
    """Start, resolve and end sessions; the one place that knows the cookie format."""

    def __init__(
        self,
        store: SessionStore,
        signing_key: bytes,
        duration: float,
        inactivity: float,
    ) -> None:
        self.store = store
        self.duration = duration
        self.inactivity = inactivity
        self._signer = Signer(signing_key, salt="passgate.session")
        self._cache: dict[str, tuple[float, SessionRecord | None]] = {}

    async def start(
        self, user_id: str, ip: str, user_agent: str, method: str = ""
    ) -> tuple[str, SessionRecord]:
        """Create a session for a user who signed in by `method`; return (cookie, record)."""
        session_id = secrets.token_urlsafe(32)
        now = time.time()
        record = SessionRecord(
            key=hash_token(session_id),
            user_id=user_id,
            created_at=now,
            expires_at=now + self.duration,
            last_seen=now,
            ip=ip[:64],
            user_agent=user_agent[:300],
            method=method,
        )
        await self.store.save(record, self.inactivity)
        return self._signer.sign(session_id).decode("ascii"), record

    def key_of(self, cookie: str) -> str | None:
        """The store key for a cookie value, or None when its signature is wrong."""
        try:
            session_id = self._signer.unsign(cookie.encode("ascii", "strict"))
        except (BadSignature, UnicodeEncodeError):
            return None
        return hash_token(session_id.decode("ascii"))

    async def resolve(self, cookie: str | None) -> SessionRecord | None:
        """The live session for a cookie value, or None (forged, unknown, expired, idle).
        Raises SessionStoreUnavailable when the store cannot answer (callers fail closed)."""
        if not cookie or len(cookie) > MAX_COOKIE_LENGTH:
            return None
        now_mono = time.monotonic()
        cached = self._cache.get(cookie)
        if cached is not None and cached[0] > now_mono:
            record = cached[1]
            return (
                record
                if record is not None and record.alive(time.time(), self.inactivity)
                else None
            )
        key = self.key_of(cookie)
        if key is None:
            return None  # forged: never cached, or junk values would fill the cache
        record = await self.store.load(key)
        now = time.time()
        if record is not None and not record.alive(now, self.inactivity):
            record = None
        if record is not None and now - record.last_seen >= TOUCH_EVERY:
            record = replace(record, last_seen=now)
            await self.store.touch(record, self.inactivity)
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[cookie] = (now_mono + CACHE_SECONDS, record)
        return record

    async def end(self, cookie: str | None) -> None:
        """End the session behind a cookie (logout). Unknown or forged cookies are ignored."""
        key = self.key_of(cookie) if cookie else None
        if key is not None:
            await self.store.delete(key)
        if cookie:
            self._cache.pop(cookie, None)

    async def end_by_key(self, user_id: str, key: str) -> bool:
        """End one of the user's sessions by its key; False when it is not theirs."""
        for record in await self.store.list_for_user(user_id):
            if secrets.compare_digest(record.key, key):
                await self.store.delete(record.key)
                self._drop_cached(lambda r: r.key == key)
                return True
        return False

    async def end_all_for_user(self, user_id: str) -> None:
        await self.store.delete_for_user(user_id)
        self._drop_cached(lambda r: r.user_id == user_id)

    async def list_for_user(self, user_id: str) -> list[SessionRecord]:
        now = time.time()
        records = await self.store.list_for_user(user_id)
        alive = [r for r in records if r.alive(now, self.inactivity)]
        return sorted(alive, key=lambda r: r.last_seen, reverse=True)

    def _drop_cached(self, predicate: object) -> None:
        assert callable(predicate)
        for cookie, (_, record) in list(self._cache.items()):
            if record is not None and predicate(record):
                self._cache.pop(cookie, None)
