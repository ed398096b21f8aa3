"""Where sessions live: Redis (REDIS_URL) or the SQL database (the embedded default)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from starlette.concurrency import run_in_threadpool

from gateway.core.errors import StorageError
from gateway.sessions.sessions import OutageLog, SessionRecord
from gateway.storage.db import Database

_PREFIX = "passgate:session:"
_USER_PREFIX = "passgate:user-sessions:"


def _encode(record: SessionRecord) -> str:
    return json.dumps(asdict(record), separators=(",", ":"))


def _decode(raw: str | bytes) -> SessionRecord:
    return SessionRecord(**json.loads(raw))


class RedisSessionStore:
    """Sessions in Redis: one key per session expiring with it, plus a set per user."""

    def __init__(self, url: str) -> None:
        self._redis = aioredis.from_url(
            url,
            socket_timeout=0.5,
            socket_connect_timeout=0.5,
            # One immediate retry heals a pooled connection that died with a Redis restart.
            retry=Retry(NoBackoff(), 1),
            health_check_interval=15,
        )
        self._outage = OutageLog("Redis", "redis")

    @property
    def client(self) -> aioredis.Redis:
        """The connection pool, shared with the short-lived store."""
        return self._redis

    async def save(self, record: SessionRecord, inactivity: float) -> None:
        ttl_ms = max(1, int((record.ends_at(inactivity) - time.time()) * 1000))
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.set(_PREFIX + record.key, _encode(record), px=ttl_ms)
                pipe.sadd(_USER_PREFIX + record.user_id, record.key)
                # The per-user set lives as long as the user's longest session (NX, then GT).
                pipe.expireat(_USER_PREFIX + record.user_id, int(record.expires_at) + 1, nx=True)
                pipe.expireat(_USER_PREFIX + record.user_id, int(record.expires_at) + 1, gt=True)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise self._outage.failed(exc) from exc
        self._outage.succeeded()

    async def touch(self, record: SessionRecord, inactivity: float) -> None:
        ttl_ms = max(1, int((record.ends_at(inactivity) - time.time()) * 1000))
        try:
            # xx: never resurrect a session that was deleted between load and touch.
            await self._redis.set(_PREFIX + record.key, _encode(record), px=ttl_ms, xx=True)
        except (RedisError, OSError) as exc:
            raise self._outage.failed(exc) from exc
        self._outage.succeeded()

    async def load(self, key: str) -> SessionRecord | None:
        try:
            raw = await self._redis.get(_PREFIX + key)
        except (RedisError, OSError) as exc:
            raise self._outage.failed(exc) from exc
        self._outage.succeeded()
        return _decode(raw) if raw is not None else None

    async def delete(self, key: str) -> None:
        try:
            raw = await self._redis.getdel(_PREFIX + key)
            if raw is not None:
                await self._redis.srem(_USER_PREFIX + _decode(raw).user_id, key)
        except (RedisError, OSError) as exc:
            raise self._outage.failed(exc) from exc
        self._outage.succeeded()

    async def delete_for_user(self, user_id: str) -> None:
        try:
            keys = await self._redis.smembers(_USER_PREFIX + user_id)
            names = [_PREFIX + (k.decode() if isinstance(k, bytes) else k) for k in keys]
            await self._redis.delete(*names, _USER_PREFIX + user_id)
        except (RedisError, OSError) as exc:
            raise self._outage.failed(exc) from exc
        self._outage.succeeded()

    async def list_for_user(self, user_id: str) -> list[SessionRecord]:
        try:
            keys = [
                k.decode() if isinstance(k, bytes) else k
                for k in await self._redis.smembers(_USER_PREFIX + user_id)
            ]
            raws = await self._redis.mget([_PREFIX + k for k in keys]) if keys else []
            gone = [k for k, raw in zip(keys, raws, strict=True) if raw is None]
            if gone:
                await self._redis.srem(_USER_PREFIX + user_id, *gone)
        except (RedisError, OSError) as exc:
            raise self._outage.failed(exc) from exc
        self._outage.succeeded()
        return [_decode(raw) for raw in raws if raw is not None]

    async def ping(self) -> None:
        try:
            await self._redis.ping()
        except (RedisError, OSError) as exc:
            raise self._outage.failed(exc) from exc
        self._outage.succeeded()

    async def close(self) -> None:
        await self._redis.aclose()


class SqlSessionStore:
    """Sessions in the durable database, for set-ups without Redis."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._outage = OutageLog("the session database", "database")

    async def _run(self, sql: str, params: tuple[object, ...]) -> list[tuple[object, ...]]:
        def work() -> list[tuple[object, ...]]:
            if sql.lstrip().upper().startswith("SELECT"):
                return self._db.fetchall(sql, params)
            self._db.execute(sql, params)
            return []

        try:
            rows = await run_in_threadpool(work)
        except StorageError as exc:
            raise self._outage.failed(exc) from exc
        self._outage.succeeded()
        return rows

    async def save(self, record: SessionRecord, inactivity: float) -> None:
        await self._run(
            "INSERT INTO sessions (id_hash, user_id, data, expires_at) VALUES (?, ?, ?, ?)",
            (record.key, record.user_id, _encode(record), record.expires_at),
        )
        # Housekeeping rides on logins, which are rare; expired rows are never read anyway.
        await self._run("DELETE FROM sessions WHERE expires_at < ?", (time.time(),))

    async def touch(self, record: SessionRecord, inactivity: float) -> None:
        await self._run(
            "UPDATE sessions SET data = ? WHERE id_hash = ?", (_encode(record), record.key)
        )

    async def load(self, key: str) -> SessionRecord | None:
        rows = await self._run("SELECT data FROM sessions WHERE id_hash = ?", (key,))
        return _decode(str(rows[0][0])) if rows else None

    async def delete(self, key: str) -> None:
        await self._run("DELETE FROM sessions WHERE id_hash = ?", (key,))

    async def delete_for_user(self, user_id: str) -> None:
        await self._run("DELETE FROM sessions WHERE user_id = ?", (user_id,))

    async def list_for_user(self, user_id: str) -> list[SessionRecord]:
        rows = await self._run("SELECT data FROM sessions WHERE user_id = ?", (user_id,))
        return [_decode(str(row[0])) for row in rows]

    async def ping(self) -> None:
        await self._run("SELECT 1", ())

    async def close(self) -> None:
        return None
