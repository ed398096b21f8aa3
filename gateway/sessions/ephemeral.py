"""Short-lived state: WebAuthn challenges, rate-limit counters, pushed authorization requests
and used client-assertion ids, in Redis or the database.

Both stores raise SessionStoreUnavailable when unreachable, so callers fail closed exactly as
they do for sessions.
"""

from __future__ import annotations

import time
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from starlette.concurrency import run_in_threadpool

from gateway.core.errors import StorageError
from gateway.sessions.sessions import OutageLog
from gateway.storage.db import Database

_PREFIX = "passgate:tmp:"


class Ephemeral(Protocol):
    async def put(self, key: str, value: str, ttl: float) -> None: ...

    async def take(self, key: str) -> str | None:
        """Return and delete the value in one step (single use), or None if absent/expired."""
        ...

    async def hit(self, key: str, window: float) -> int:
        """Count one event in a fixed window starting at the first; return the count so far."""
        ...

    async def get(self, key: str) -> str | None:
        """The value without taking it, or None if absent/expired (pushed authorization
        requests are read while the user signs in and taken once answered)."""
        ...


class RedisEphemeral:
    def __init__(self, client: aioredis.Redis) -> None:
        self._redis = client
        self._outage = OutageLog("Redis", "redis")

    async def put(self, key: str, value: str, ttl: float) -> None:
        try:
            await self._redis.set(_PREFIX + key, value, px=max(1, int(ttl * 1000)))
        except (RedisError, OSError) as exc:
            raise self._outage.failed(exc) from exc

    async def take(self, key: str) -> str | None:
        try:
            raw = await self._redis.getdel(_PREFIX + key)
        except (RedisError, OSError) as exc:
            raise self._outage.failed(exc) from exc
        return raw.decode() if isinstance(raw, bytes) else raw

    async def hit(self, key: str, window: float) -> int:
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incr(_PREFIX + key)
                pipe.pexpire(_PREFIX + key, max(1, int(window * 1000)), nx=True)
                count, _ = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise self._outage.failed(exc) from exc
        return int(count)

    async def get(self, key: str) -> str | None:
        try:
            raw = await self._redis.get(_PREFIX + key)
        except (RedisError, OSError) as exc:
            raise self._outage.failed(exc) from exc
        return raw.decode() if isinstance(raw, bytes) else raw


class SqlEphemeral:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._outage = OutageLog("the database", "database")

    async def _run(self, work: object) -> object:
        assert callable(work)
        try:
            return await run_in_threadpool(work)
        except StorageError as exc:
            raise self._outage.failed(exc) from exc

    async def put(self, key: str, value: str, ttl: float) -> None:
        def work() -> None:
            now = time.time()
            with self._db.transaction() as tx:
                tx.execute("DELETE FROM ephemeral WHERE key = ? OR expires_at < ?", (key, now))
                tx.execute(
                    "INSERT INTO ephemeral (key, value, expires_at) VALUES (?, ?, ?)",
                    (key, value, now + ttl),
                )

        await self._run(work)

    async def take(self, key: str) -> str | None:
        def work() -> str | None:
            with self._db.transaction() as tx:
                row = tx.fetchone("SELECT value, expires_at FROM ephemeral WHERE key = ?", (key,))
                if row is None or tx.execute("DELETE FROM ephemeral WHERE key = ?", (key,)) != 1:
                    return None
            return str(row[0]) if float(row[1]) > time.time() else None

        result = await self._run(work)
        return result if isinstance(result, str) else None

    async def hit(self, key: str, window: float) -> int:
        def work() -> int:
            now = time.time()
            with self._db.transaction() as tx:
                row = tx.fetchone("SELECT value, expires_at FROM ephemeral WHERE key = ?", (key,))
                if row is None or float(row[1]) <= now:
                    tx.execute("DELETE FROM ephemeral WHERE key = ?", (key,))
                    tx.execute(
                        "INSERT INTO ephemeral (key, value, expires_at) VALUES (?, '1', ?)",
                        (key, now + window),
                    )
                    return 1
                count = int(row[0]) + 1
                tx.execute("UPDATE ephemeral SET value = ? WHERE key = ?", (str(count), key))
                return count

        result = await self._run(work)
        assert isinstance(result, int)
        return result

    async def get(self, key: str) -> str | None:
        def work() -> str | None:
            row = self._db.fetchone("SELECT value, expires_at FROM ephemeral WHERE key = ?", (key,))
            return str(row[0]) if row is not None and float(row[1]) > time.time() else None

        result = await self._run(work)
        return result if isinstance(result, str) else None
