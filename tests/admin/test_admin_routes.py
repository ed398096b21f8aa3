"""Every admin route, taken from the app's own router (not a hand-picked list), refuses anyone
who is not an administrator: 403 for a signed-in non-admin, never 2xx for an anonymous caller,
for every method the route allows, and nothing changes."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Iterable

import httpx
import pytest
from starlette.routing import BaseRoute, Mount, Route

from gateway.core.settings import Settings
from gateway.services import Services, build_services
from gateway.web.app import create_app
from tests.admin.console_client import ORIGIN, client_for, csrf_token, sign_in_as

pytestmark = pytest.mark.anyio

ADMIN_PREFIXES = ("/admin", "/api/admin")
_PARAM = re.compile(r"\{[^}]+\}")
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def walk(routes: Iterable[BaseRoute], prefix: str = "") -> Iterable[tuple[str, str]]:
    """(method, path template) for every route, descending into mounts."""
    for route in routes:
        if isinstance(route, Mount):
            yield from walk(route.routes or (), prefix + route.path)
        elif isinstance(route, Route):
            for method in sorted(route.methods or ()):
                yield method, prefix + route.path


def admin_routes(services: Services) -> list[tuple[str, str]]:
    app = create_app(services)
    return [(m, p) for m, p in walk(app.routes) if p.startswith(ADMIN_PREFIXES)]


@pytest.fixture
async def live(make_settings: Callable[..., Settings]) -> AsyncIterator[Services]:
    built = build_services(make_settings(db_provider="sqlite"))
    built.users.create_group("admins")
    built.users.create_group("family")
    built.users.create_user("victim", "victim@example.com", groups=("family",))
    yield built
    await built.close()


def concrete(path: str) -> str:
    """A real address for a route template: every parameter names the existing user."""
    return _PARAM.sub("victim", path)


async def call(client: httpx.AsyncClient, method: str, path: str, token: str) -> httpx.Response:
    if method in WRITES:
        return await client.request(
            method,
            concrete(path),
            data={"csrf_token": token, "confirm": "victim", "username": "victim"},
            headers={"origin": ORIGIN},
        )
    return await client.request(method, concrete(path))


async def test_the_router_walk_finds_the_console_and_the_admin_api(live: Services) -> None:
    found = set(admin_routes(live))
    assert ("GET", "/admin/users") in found
    assert ("POST", "/admin/users/{username}/delete") in found
    assert ("HEAD", "/admin/audit") in found
    assert any(path.startswith("/api/admin") for _, path in found)


async def test_signed_in_non_admin_gets_403_on_every_admin_route(live: Services) -> None:
    routes = admin_routes(live)
    async with client_for(live) as client:
        await sign_in_as(live, client, "mallory", ("family",))
        token = await csrf_token(client)
        answers = {(m, p): (await call(client, m, p, token)).status_code for m, p in routes}
    assert {route: status for route, status in answers.items() if status != 403} == {}
    victim = live.users.get_user_by_name("victim")
    assert not victim.disabled and victim.groups == ("family",)
    assert [g.name for g in live.users.list_groups()] == ["admins", "family"]


async def test_anonymous_caller_never_gets_2xx_from_an_admin_route(live: Services) -> None:
    routes = admin_routes(live)
    async with client_for(live) as client:
        token = await csrf_token(client)
        answers = {(m, p): (await call(client, m, p, token)).status_code for m, p in routes}
    assert {route: status for route, status in answers.items() if 200 <= status < 300} == {}
    assert live.users.get_user_by_name("victim").disabled is False


async def test_every_console_page_renders_for_an_admin_without_inline_script_or_style(
    live: Services,
) -> None:
    live.clients.create("victim", ["https://victim.example.com/cb"], client_id="victim")
    live.users.create_group("victim")
    pages = [p for m, p in admin_routes(live) if m == "GET" and not p.startswith("/api/")]
    async with client_for(live) as client:
        await sign_in_as(live, client, "alice", ("admins",))
        for path in pages:
            response = await client.get(concrete(path), follow_redirects=True)
            assert response.status_code == 200, path
            if response.headers["content-type"].startswith("text/html"):
                text = response.text
                assert "<script" not in text and "<style" not in text, path
                assert " style=" not in text and " on" + "click=" not in text, path
