"""Sessions in Redis and in the database: lifetimes, revocation, forged cookies, outages."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

import pytest

from gateway.audit.log import CLI
from gateway.core.errors import SessionStoreUnavailable
from gateway.core.settings import Settings
from gateway.services import Services, build_services
from gateway.sessions import sessions as sessions_module
from gateway.sessions.stores import RedisSessionStore

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["redis", "database"])
async def live(
    request: pytest.FixtureRequest, make_settings: Callable[..., Settings]
) -> AsyncIterator[Services]:
    overrides = (
        {"redis_url": request.getfixturevalue("redis_url")} if request.param == "redis" else {}
    )
    built = build_services(make_settings(**overrides))
    built.users.create_user("alice")
    yield built
    await built.close()


def _user_id(services: Services) -> str:
    return services.users.get_user_by_name("alice").id


async def test_started_session_resolves_from_its_cookie(live: Services) -> None:
    cookie, record = await live.sessions.start(_user_id(live), "10.0.0.1", "Firefox")
    found = await live.current_user.identify(cookie)
    assert found is not None and found[1].username == "alice" and found[0].key == record.key


async def test_forged_cookie_resolves_to_nobody(live: Services) -> None:
    cookie, _ = await live.sessions.start(_user_id(live), "", "")
    session_id, _, signature = cookie.rpartition(".")
    assert await live.sessions.resolve(session_id + "." + signature[::-1]) is None
    assert await live.sessions.resolve("random-garbage") is None
    assert await live.sessions.resolve("ünicode.cookie") is None


async def test_logged_out_session_is_refused_by_another_process_within_a_second(
    live: Services,
) -> None:
    # A second worker: its own cache over the same store.
    other = sessions_module.Sessions(
        live.sessions.store, live.secrets.cookie_signing_key, 3600, 600
    )

    cookie, _ = await live.sessions.start(_user_id(live), "", "")
    assert await other.resolve(cookie) is not None  # now cached in "other"
    await live.sessions.end(cookie)
    assert await live.sessions.resolve(cookie) is None
    await asyncio.sleep(sessions_module.CACHE_SECONDS + 0.05)
    assert await other.resolve(cookie) is None


async def test_session_past_its_lifetime_is_refused(live: Services) -> None:
    live.sessions.duration = 0.2
    cookie, _ = await live.sessions.start(_user_id(live), "", "")
    assert await live.sessions.resolve(cookie) is not None
    await asyncio.sleep(1.3)
    assert await live.sessions.resolve(cookie) is None


async def test_idle_session_is_refused(live: Services) -> None:
    cookie, record = await live.sessions.start(_user_id(live), "", "")
    stale = replace(record, last_seen=time.time() - live.sessions.inactivity - 1)
    await live.sessions.store.touch(stale, 3600)
    await asyncio.sleep(sessions_module.CACHE_SECONDS + 0.05)
    assert await live.sessions.resolve(cookie) is None


async def test_disabling_a_user_ends_their_sessions(live: Services) -> None:
    cookie, _ = await live.sessions.start(_user_id(live), "", "")
    await live.admin.set_disabled(CLI, "alice", True)
    assert await live.current_user.identify(cookie) is None
    assert await live.sessions.list_for_user(_user_id(live)) == []


async def test_sign_out_one_session_keeps_the_others(live: Services) -> None:
    uid = _user_id(live)
    first, record = await live.sessions.start(uid, "1.1.1.1", "phone")
    second, _ = await live.sessions.start(uid, "2.2.2.2", "laptop")
    assert await live.sessions.end_by_key(uid, record.key)
    assert await live.sessions.resolve(first) is None
    assert await live.sessions.resolve(second) is not None
    assert [s.user_agent for s in await live.sessions.list_for_user(uid)] == ["laptop"]


async def test_ending_another_users_session_by_key_is_refused(live: Services) -> None:
    live.users.create_user("mallory")
    _, record = await live.sessions.start(_user_id(live), "", "")
    mallory = live.users.get_user_by_name("mallory").id
    assert not await live.sessions.end_by_key(mallory, record.key)


async def test_cookie_is_not_the_stored_key(live: Services, redis_url: str) -> None:
    cookie, record = await live.sessions.start(_user_id(live), "", "")
    assert cookie.split(".")[0] != record.key and record.key not in cookie


async def test_unreachable_redis_raises_store_unavailable() -> None:
    store = RedisSessionStore("redis://127.0.0.1:1/0")

    with pytest.raises(SessionStoreUnavailable):
        await store.load("x")
    await store.close()


def test_forged_cookies_are_not_cached(services: Services) -> None:
    async def run() -> None:
        for i in range(50):
            assert await services.sessions.resolve(f"junk-{i}.signature") is None
        assert await services.sessions.resolve("x" * 5000) is None

    asyncio.run(run())
    assert services.sessions._cache == {}
