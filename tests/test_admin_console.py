"""The admin console in process (httpx over ASGI): who may use it, the read-only pages, and how
its forms treat bad input and missing CSRF tokens."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from gateway.app import create_app
from gateway.services import Services, build_services
from gateway.settings import Settings

pytestmark = pytest.mark.anyio

ORIGIN = "https://auth.example.com"
RULES = """
default_policy: deny
rules:
  - name: passgate
    domain: auth.example.com
    policy: bypass
  - name: family photos
    domain: photos.example.com
    subject: ["group:family"]
    policy: allow
  - name: admin tools
    domain: "*.example.com"
    resources: ["^/admin"]
    subject: ["group:admins"]
    policy: allow
"""


@pytest.fixture
async def live(make_settings: Callable[..., Settings], tmp_path: Path) -> AsyncIterator[Services]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    built = build_services(make_settings(config_file=str(rules), db_provider="sqlite"))
    yield built
    await built.close()


@pytest.fixture
async def live_sql(make_settings: Callable[..., Settings]) -> AsyncIterator[Services]:
    """Sessions in the database, so no Redis is needed for pages that sign people in."""
    built = build_services(make_settings(db_provider="sqlite"))
    yield built
    await built.close()


def client_for(services: Services) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(services), client=("203.0.113.9", 5000))
    return httpx.AsyncClient(transport=transport, base_url=ORIGIN, headers={"accept": "text/html"})


async def sign_in_as(
    services: Services, client: httpx.AsyncClient, username: str, groups: tuple[str, ...] = ()
) -> None:
    """Create `username` (with `groups`) and give `client` their session cookie."""
    for group in groups:
        if group not in {g.name for g in services.users.list_groups()}:
            services.users.create_group(group)
    user = services.users.create_user(username, f"{username}@example.com", groups=groups)
    cookie, _ = await services.sessions.start(user.id, "203.0.113.9", "test")
    client.cookies.set(services.settings.cookie_name, cookie, domain="auth.example.com")


async def csrf_token(client: httpx.AsyncClient) -> str:
    await client.get("/account")
    token = client.cookies.get("__Host-passgate_csrf")
    assert token
    return token


# --- who may use the console ------------------------------------------------------------------


async def test_anonymous_visitor_is_sent_to_login_and_back(live_sql: Services) -> None:
    async with client_for(live_sql) as client:
        response = await client.get("/admin/rules?url=x")
    assert response.status_code == 303
    assert response.headers["location"] == (
        "/login?rd=https%3A%2F%2Fauth.example.com%2Fadmin%2Frules%3Furl%3Dx"
    )


async def test_signed_in_non_admin_gets_a_403_page(live_sql: Services) -> None:
    async with client_for(live_sql) as client:
        await sign_in_as(live_sql, client, "bob", ("family",))
        response = await client.get("/admin/settings")
    assert response.status_code == 403
    assert "Administrators only" in response.text
    assert "ENCRYPTION_KEY" not in response.text


async def test_member_of_the_admin_group_sees_the_console(live_sql: Services) -> None:
    async with client_for(live_sql) as client:
        await sign_in_as(live_sql, client, "alice", ("admins",))
        response = await client.get("/admin/settings")
    assert response.status_code == 200
    assert '<nav class="admin-nav"' in response.text


async def test_admin_group_setting_decides_who_is_admin(
    make_settings: Callable[..., Settings],
) -> None:
    services = build_services(make_settings(db_provider="sqlite", admin_group="operators"))
    try:
        async with client_for(services) as client:
            await sign_in_as(services, client, "alice", ("admins",))
            assert (await client.get("/admin/settings")).status_code == 403
        async with client_for(services) as client:
            await sign_in_as(services, client, "olga", ("operators",))
            assert (await client.get("/admin/settings")).status_code == 200
    finally:
        await services.close()


async def test_console_pages_carry_no_inline_script_or_style(live_sql: Services) -> None:
    async with client_for(live_sql) as client:
        await sign_in_as(live_sql, client, "alice", ("admins",))
        response = await client.get("/admin/rules")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert "<script>" not in response.text and "<style" not in response.text
    assert " style=" not in response.text and "onclick" not in response.text


# --- access rules and the tester --------------------------------------------------------------


async def admin_client(services: Services) -> httpx.AsyncClient:
    client = client_for(services)
    await sign_in_as(services, client, "alice", ("admins",))
    return client


async def test_rules_page_lists_every_rule_and_the_default(live: Services) -> None:
    async with await admin_client(live) as client:
        text = (await client.get("/admin/rules")).text
    for name in ("passgate", "family photos", "admin tools"):
        assert f"<td>{name}</td>" in text
    assert '<span class="badge deny">deny</span>' in text


async def test_tester_says_a_group_member_is_allowed_by_the_matching_rule(live: Services) -> None:
    live.users.create_group("family")
    live.users.create_user("bob", groups=("family",))
    async with await admin_client(live) as client:
        response = await client.get(
            "/admin/rules", params={"url": "https://photos.example.com/album", "username": "bob"}
        )
    assert response.status_code == 200
    assert "<strong>ALLOW</strong>" in response.text
    assert "Matched: <strong>family photos</strong>" in response.text
    assert '<tr class="matched">\n    <td>2</td>' in response.text


async def test_tester_says_a_user_outside_the_group_falls_through_to_the_default(
    live: Services,
) -> None:
    live.users.create_user("carol")
    async with await admin_client(live) as client:
        response = await client.get(
            "/admin/rules", params={"url": "https://photos.example.com/", "username": "carol"}
        )
    assert "<strong>FORBIDDEN</strong>" in response.text
    assert "Matched: <strong>default</strong>" in response.text


async def test_tester_without_username_judges_someone_not_signed_in(live: Services) -> None:
    async with await admin_client(live) as client:
        response = await client.get("/admin/rules", params={"url": "https://photos.example.com/"})
    assert "<strong>LOGIN</strong>" in response.text
    assert "as someone not signed in" in response.text


async def test_tester_treats_a_disabled_user_as_not_signed_in(live: Services) -> None:
    live.users.create_group("family")
    live.users.create_user("dave", groups=("family",))
    live.users.set_disabled("dave", True)
    async with await admin_client(live) as client:
        response = await client.get(
            "/admin/rules", params={"url": "https://photos.example.com/", "username": "dave"}
        )
    assert "<strong>LOGIN</strong>" in response.text
    assert "disabled" in response.text


async def test_tester_names_an_unknown_user_and_keeps_the_input(live: Services) -> None:
    async with await admin_client(live) as client:
        response = await client.get(
            "/admin/rules", params={"url": "https://photos.example.com/x", "username": "nobody"}
        )
    assert response.status_code == 400
    assert "no user named &#39;nobody&#39;" in response.text
    assert 'value="https://photos.example.com/x"' in response.text


async def test_tester_refuses_a_url_without_a_host(live: Services) -> None:
    async with await admin_client(live) as client:
        response = await client.get("/admin/rules", params={"url": "photos.example.com"})
    assert response.status_code == 400
    assert "enter a full URL" in response.text


# --- settings overview ------------------------------------------------------------------------


async def test_settings_page_masks_every_secret(live: Services) -> None:
    # The page shows whatever the Settings model holds; give it secrets in every shape.
    live.settings = live.settings.model_copy(
        update={
            "redis_url": "redis://:redis-pass-5c1e7@127.0.0.1:1/0",
            "db_connection_string": "postgresql://pg:pg-pass-3a@db/passgate",
        }
    )
    async with await admin_client(live) as client:
        text = (await client.get("/admin/settings")).text
    assert "test-encryption-key-0123456789" not in text
    assert "redis-pass-5c1e7" not in text
    assert "pg-pass-3a" not in text
    assert "redis://:••••••••@127.0.0.1:1/0" in text
    assert "<code>APP_URL</code>" in text and "https://auth.example.com" in text
