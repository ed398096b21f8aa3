"""The admin console in process (httpx over ASGI): who may use it, the read-only pages, and how
its forms treat bad input and missing CSRF tokens."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from gateway.core.settings import Settings
from gateway.services import Services, build_services
from tests.admin.console_client import ORIGIN, client_for, csrf_token, sign_in_as

pytestmark = pytest.mark.anyio

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
async def live_sql(
    make_settings: Callable[..., Settings], storage_env: dict[str, str]
) -> AsyncIterator[Services]:
    """On SQLite and on PostgreSQL, with sessions in the database."""
    built = build_services(make_settings(**storage_env))
    yield built
    await built.close()


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


async def test_tester_without_username_judges_someone_not_signed_in_and_lists_who_gets_in(
    live: Services,
) -> None:
    live.users.create_group("family")
    live.users.create_user("bob", groups=("family",))
    live.users.create_user("carol")
    async with await admin_client(live) as client:
        response = await client.get("/admin/rules", params={"url": "https://photos.example.com/"})
    assert "<strong>LOGIN</strong>" in response.text
    assert "as someone not signed in" in response.text
    let_in = response.text[response.text.index('id="allowed-users"') :].split("</p>")[0]
    assert ">bob</a>" in let_in and "carol" not in let_in and "alice" not in let_in


async def test_tester_treats_a_disabled_user_as_not_signed_in(live: Services) -> None:
    live.users.create_group("family")
    live.users.create_user("dave", groups=("family",))
    live.users.set_disabled("dave", True)
    async with await admin_client(live) as client:
        response = await client.get(
            "/admin/rules", params={"url": "https://photos.example.com/", "username": "dave"}
        )
    assert "<strong>LOGIN</strong>" in response.text


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
    assert "must be an absolute http(s) URL" in response.text


async def test_tester_shows_the_canonical_url_and_the_path_rules_matched(live: Services) -> None:
    async with await admin_client(live) as client:
        response = await client.get(
            "/admin/rules", params={"url": "https://Photos.example.com/%61lbum//2"}
        )
    assert response.status_code == 200
    assert "Read as <code>https://photos.example.com/album/2</code>" in response.text
    assert "rules matched the path <code>/album/2</code>" in response.text


async def test_tester_says_why_forward_auth_refuses_an_ambiguous_url(live: Services) -> None:
    async with await admin_client(live) as client:
        response = await client.get(
            "/admin/rules", params={"url": "https://photos.example.com/a/..%2f..%2fadmin"}
        )
    assert response.status_code == 400
    assert "refuses this URL (400): an encoded slash" in response.text


async def test_rules_page_lists_warnings_about_wide_patterns(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    rules = tmp_path / "wide.yaml"
    rules.write_text(
        "rules:\n  - domain: app.example.com\n    resources: ['^/public']\n    policy: bypass\n"
    )
    services = build_services(make_settings(config_file=str(rules), db_provider="sqlite"))
    try:
        async with await admin_client(services) as client:
            response = await client.get("/admin/rules")
        assert 'id="rule-warnings"' in response.text
        assert "/publicity" in response.text
    finally:
        await services.close()


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
    assert ">APP_URL</code>" in text and "https://auth.example.com" in text


# --- forms: CSRF, validation, nothing lost ----------------------------------------------------


async def post(
    client: httpx.AsyncClient, path: str, data: dict[str, str] | list[tuple[str, str]]
) -> httpx.Response:
    """A console form POST as the browser sends it: the CSRF token and our own Origin."""
    fields: dict[str, list[str]] = {"csrf_token": [await csrf_token(client)]}
    for name, value in data.items() if isinstance(data, dict) else data:
        fields.setdefault(name, []).append(value)
    return await client.post(path, data=fields, headers={"origin": ORIGIN})


async def test_form_without_csrf_token_is_refused_and_changes_nothing(live_sql: Services) -> None:
    async with await admin_client(live_sql) as client:
        response = await client.post(
            "/admin/users", data={"username": "bob"}, headers={"origin": ORIGIN}
        )
    assert response.status_code == 403
    assert "bob" not in [u.username for u in live_sql.users.list_users()]


async def test_form_from_another_site_is_refused_even_with_the_token(live_sql: Services) -> None:
    async with await admin_client(live_sql) as client:
        token = await csrf_token(client)
        response = await client.post(
            "/admin/groups",
            data={"csrf_token": token, "name": "family"},
            headers={"origin": "https://evil.example.net"},
        )
    assert response.status_code == 403
    assert [g.name for g in live_sql.users.list_groups()] == ["admins"]


async def test_creating_a_user_with_a_bad_name_says_why_and_keeps_the_input(
    live_sql: Services,
) -> None:
    async with await admin_client(live_sql) as client:
        response = await post(
            client,
            "/admin/users",
            [("username", "Bob Smith!"), ("display_name", "Bob S"), ("email", "bob@example.com"),
             ("groups", "admins")],
        )  # fmt: skip
    assert response.status_code == 400
    assert 'id="form-error"' in response.text
    assert 'value="Bob Smith!"' in response.text and 'value="bob@example.com"' in response.text
    assert 'value="admins" checked' in response.text


async def test_creating_a_user_whose_name_is_taken_answers_409(live_sql: Services) -> None:
    async with await admin_client(live_sql) as client:
        response = await post(client, "/admin/users", {"username": "alice"})
    assert response.status_code == 409
    assert "already exists" in response.text


async def test_created_user_is_recorded_with_the_admin_ip_and_browser(live_sql: Services) -> None:
    async with await admin_client(live_sql) as client:
        response = await post(
            client, "/admin/users", {"username": "bob", "email": "bob@example.com"}
        )
    assert response.status_code == 303
    assert response.headers["location"].startswith("/admin/users/bob?notice=")
    (event,) = live_sql.audit.search(event="user_created").events
    assert (event.actor.kind, event.actor.name, event.actor.ip) == ("user", "alice", "203.0.113.9")
    assert event.actor.user_agent.startswith("python-httpx")


async def test_adding_an_unknown_member_answers_404_on_the_group_page(live_sql: Services) -> None:
    async with await admin_client(live_sql) as client:
        response = await post(client, "/admin/groups/admins/members/add", {"username": "ghost"})
    assert response.status_code == 404
    assert "ghost" in response.text and "<h1>admins</h1>" in response.text


async def test_deleting_a_user_asks_for_the_username_first(live_sql: Services) -> None:
    live_sql.users.create_user("bob")
    async with await admin_client(live_sql) as client:
        asked = await post(client, "/admin/users/bob/delete", {})
        wrong = await post(client, "/admin/users/bob/delete", {"confirm": "bobby"})
        assert "bob" in [u.username for u in live_sql.users.list_users()]
        deleted = await post(client, "/admin/users/bob/delete", {"confirm": "bob"})
    assert asked.status_code == 200 and 'id="confirm-delete"' in asked.text
    assert wrong.status_code == 400 and "type the username exactly" in wrong.text
    assert deleted.status_code == 303
    assert "bob" not in [u.username for u in live_sql.users.list_users()]


async def test_login_link_is_shown_once_and_not_recorded(live_sql: Services) -> None:
    live_sql.users.create_user("bob")
    async with await admin_client(live_sql) as client:
        created = await post(client, "/admin/users/bob/login-link", {"minutes": "30"})
        later = await client.get("/admin/users/bob")
    link = re.search(r"https://auth\.example\.com/lc/[\w-]+", created.text)
    assert created.status_code == 200 and link is not None
    assert link.group(0) not in later.text
    (event,) = live_sql.audit.search(event="login_link_created").events
    assert link.group(0).rsplit("/", 1)[1] not in str(event.details)


async def test_login_link_minutes_out_of_range_keep_the_input(live_sql: Services) -> None:
    live_sql.users.create_user("bob")
    async with await admin_client(live_sql) as client:
        response = await post(client, "/admin/users/bob/login-link", {"minutes": "99999"})
    assert response.status_code == 400
    assert 'value="99999"' in response.text


async def test_client_with_a_bad_callback_keeps_every_field(live_sql: Services) -> None:
    async with await admin_client(live_sql) as client:
        response = await post(
            client,
            "/admin/clients",
            [("name", "Memos"), ("redirect_uris", "ftp://memos.example.com/cb"),
             ("allowed_groups", "admins"), ("refresh_tokens", "on"),
             ("id_token_alg", "ES256"), ("access_token_lifetime", "600"),
             ("refresh_token_lifetime", "86400")],
        )  # fmt: skip
    assert response.status_code == 400
    text = response.text
    assert 'value="Memos"' in text and "ftp://memos.example.com/cb</textarea>" in text
    assert 'value="admins" checked' in text and "<option selected>ES256</option>" in text
    assert 'name="refresh_tokens" checked' in text and 'value="600"' in text
    assert live_sql.clients.list() == []


async def test_client_lifetime_that_is_not_a_number_is_refused(live_sql: Services) -> None:
    async with await admin_client(live_sql) as client:
        response = await post(
            client,
            "/admin/clients",
            {"name": "Memos", "redirect_uris": "https://memos.example.com/cb",
             "access_token_lifetime": "an hour", "refresh_token_lifetime": "86400"},
        )  # fmt: skip
    assert response.status_code == 400
    assert "whole number of seconds" in response.text


async def test_client_secret_is_shown_once_with_the_values_to_paste(live_sql: Services) -> None:
    async with await admin_client(live_sql) as client:
        created = await post(
            client,
            "/admin/clients",
            {"name": "Memos", "redirect_uris": "https://memos.example.com/cb",
             "access_token_lifetime": "3600", "refresh_token_lifetime": "86400"},
        )  # fmt: skip
        (made,) = live_sql.clients.list()
        secret = re.search(r'id="client-secret-value">([^<]+)<', created.text)
        later = await client.get(f"/admin/clients/{made.client_id}")
    assert created.status_code == 200 and secret is not None
    assert secret.group(1) not in later.text
    for value in (
        "https://auth.example.com/.well-known/openid-configuration",
        "https://auth.example.com/api/oidc/token",
        made.client_id,
    ):
        assert value in later.text


async def test_api_key_token_is_shown_once(live_sql: Services) -> None:
    async with await admin_client(live_sql) as client:
        created = await post(
            client, "/admin/api-keys", {"name": "backup", "scope": "read", "days": "30"}
        )
        later = await client.get("/admin/api-keys")
    token = re.search(r"<code>(pgk_[^<]+)</code>", created.text)
    assert created.status_code == 200 and token is not None
    assert token.group(1) not in later.text and "backup" in later.text


async def test_api_key_with_bad_days_keeps_the_name(live_sql: Services) -> None:
    async with await admin_client(live_sql) as client:
        response = await post(client, "/admin/api-keys", {"name": "backup", "days": "soon"})
    assert response.status_code == 400
    assert 'value="backup"' in response.text


# --- audit log --------------------------------------------------------------------------------


async def test_audit_log_filters_by_user_and_pages_newest_first(live_sql: Services) -> None:
    async with await admin_client(live_sql) as client:
        for n in range(55):
            assert (await post(client, "/admin/groups", {"name": f"g{n:02d}"})).status_code == 303
        await post(client, "/admin/users", {"username": "bob"})
        first = await client.get("/admin/audit", params={"event": "group_created"})
        older = re.search(r'href="([^"]+)" id="audit-older"', first.text)
        assert older is not None
        second = await client.get(older.group(1).replace("&amp;", "&"))
        bob = await client.get("/admin/audit", params={"user": "bob"})
    assert first.text.count(">group_created</code>") == 50
    assert first.text.index("g54") < first.text.index("g53")  # newest first
    assert second.text.count(">group_created</code>") == 5
    assert "g00" in second.text and 'id="audit-older"' not in second.text
    assert bob.text.count(">user_created</code>") == 1 and "group_created" not in bob.text


async def test_audit_export_downloads_the_selection_as_json_lines(live_sql: Services) -> None:
    async with await admin_client(live_sql) as client:
        await post(client, "/admin/groups", {"name": "family"})
        await post(client, "/admin/users", {"username": "bob"})
        response = await client.get("/admin/audit/export.jsonl", params={"event": "user_created"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    assert "attachment" in response.headers["content-disposition"]
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert [line["event"] for line in lines] == ["user_created"]
    assert lines[0]["actor"]["name"] == "alice"


async def test_audit_filter_with_a_bad_time_says_so_and_keeps_the_filters(
    live_sql: Services,
) -> None:
    async with await admin_client(live_sql) as client:
        response = await client.get("/admin/audit", params={"user": "bob", "since": "yesterday"})
    assert response.status_code == 400
    assert "From must be a date" in response.text and 'value="bob"' in response.text


# --- the account page's recent activity --------------------------------------------------------


async def test_account_page_shows_the_users_own_recent_activity(live_sql: Services) -> None:
    async with await admin_client(live_sql) as client:
        await post(client, "/admin/users", {"username": "bob"})
        await post(client, "/admin/users/bob/claims/set", {"claim": "team", "value": "blue"})
    async with client_for(live_sql) as client:
        bob = live_sql.users.get_user_by_name("bob")
        cookie, _ = await live_sql.sessions.start(bob.id, "203.0.113.7", "test")
        client.cookies.set(live_sql.settings.cookie_name, cookie, domain="auth.example.com")
        text = (await client.get("/account")).text
    activity = text[text.index('id="activity"') :]
    assert "<code>claim_set</code>" in activity and "<code>user_created</code>" in activity
    assert "by alice" in activity
    assert activity.index("claim_set") < activity.index("user_created")  # newest first


async def test_editing_a_user_into_a_bad_email_keeps_every_field(live_sql: Services) -> None:
    live_sql.users.create_group("family")
    live_sql.users.create_user("bob", "bob@example.com", "Bob")
    async with await admin_client(live_sql) as client:
        response = await post(
            client,
            "/admin/users/bob/edit",
            [("display_name", "Robert"), ("email", "not-an-email"), ("groups", "family")],
        )
    assert response.status_code == 400
    assert 'value="Robert"' in response.text and 'value="not-an-email"' in response.text
    assert 'value="family" checked' in response.text
    assert live_sql.users.get_user_by_name("bob").display_name == "Bob"


# --- the other changes, end to end through the console ----------------------------------------


async def test_disabling_a_user_ends_their_sessions_and_enabling_lets_them_back(
    live_sql: Services,
) -> None:
    bob = live_sql.users.create_user("bob")
    cookie, _ = await live_sql.sessions.start(bob.id, "203.0.113.7", "bob's phone")
    async with await admin_client(live_sql) as client:
        disabled = await post(client, "/admin/users/bob/disable", {"disabled": "yes"})
        assert live_sql.users.get_user_by_name("bob").disabled
        assert await live_sql.sessions.list_for_user(bob.id) == []
        assert await live_sql.sessions.resolve(cookie) is None
        enabled = await post(client, "/admin/users/bob/disable", {"disabled": "no"})
    assert disabled.status_code == enabled.status_code == 303
    assert not live_sql.users.get_user_by_name("bob").disabled


async def test_admin_signs_a_user_out_of_one_session(live_sql: Services) -> None:
    bob = live_sql.users.create_user("bob")
    _, phone = await live_sql.sessions.start(bob.id, "203.0.113.7", "phone")
    _, laptop = await live_sql.sessions.start(bob.id, "203.0.113.8", "laptop")
    async with await admin_client(live_sql) as client:
        page = await client.get("/admin/users/bob")
        assert "phone" in page.text and "laptop" in page.text
        response = await post(client, "/admin/users/bob/sessions/end", {"key": phone.key})
    assert response.status_code == 303
    assert [s.key for s in await live_sql.sessions.list_for_user(bob.id)] == [laptop.key]


async def test_renaming_a_group_keeps_its_members(live_sql: Services) -> None:
    live_sql.users.create_group("family")
    live_sql.users.create_user("bob", groups=("family",))
    async with await admin_client(live_sql) as client:
        response = await post(client, "/admin/groups/family/rename", {"new_name": "kin"})
    assert response.headers["location"].startswith("/admin/groups/kin?notice=")
    assert live_sql.users.get_group("kin").members == ("bob",)


async def test_renaming_a_group_onto_a_taken_name_answers_409_and_keeps_the_input(
    live_sql: Services,
) -> None:
    live_sql.users.create_group("family")
    async with await admin_client(live_sql) as client:
        response = await post(client, "/admin/groups/family/rename", {"new_name": "admins"})
    assert response.status_code == 409
    assert 'id="new_name" name="new_name" value="admins"' in response.text


async def test_rotating_a_client_secret_shows_the_new_secret_once(live_sql: Services) -> None:
    made, old_secret = live_sql.clients.create("Memos", ["https://memos.example.com/cb"])
    async with await admin_client(live_sql) as client:
        response = await post(client, f"/admin/clients/{made.client_id}/rotate-secret", {})
    secret = re.search(r'id="client-secret-value">([^<]+)<', response.text)
    assert response.status_code == 200 and secret is not None
    assert secret.group(1) != old_secret
    (event,) = live_sql.audit.search(event="client_secret_rotated").events
    assert secret.group(1) not in json.dumps(event.to_dict())


async def test_deleting_a_client_asks_for_its_name_first(live_sql: Services) -> None:
    made, _ = live_sql.clients.create("Memos", ["https://memos.example.com/cb"])
    path = f"/admin/clients/{made.client_id}/delete"
    async with await admin_client(live_sql) as client:
        asked = await post(client, path, {})
        assert live_sql.clients.list() != []
        deleted = await post(client, path, {"confirm": "Memos"})
    assert asked.status_code == 200 and 'id="confirm-delete"' in asked.text
    assert deleted.status_code == 303 and live_sql.clients.list() == []


async def test_editing_a_client_changes_its_settings(live_sql: Services) -> None:
    made, _ = live_sql.clients.create("Memos", ["https://memos.example.com/cb"])
    async with await admin_client(live_sql) as client:
        response = await post(
            client,
            f"/admin/clients/{made.client_id}/edit",
            [("name", "Memos 2"), ("redirect_uris", "https://memos.example.com/a\nhttps://memos.example.com/b"),
             ("allowed_groups", "admins"), ("pkce_required", "on"), ("id_token_alg", "ES256"),
             ("access_token_lifetime", "600"), ("refresh_token_lifetime", "86400")],
        )  # fmt: skip
    assert response.status_code == 303
    changed = live_sql.clients.get(made.client_id)
    assert changed.name == "Memos 2" and len(changed.redirect_uris) == 2
    assert changed.allowed_groups == ("admins",) and changed.pkce_required
    assert (changed.id_token_alg, changed.access_token_lifetime) == ("ES256", 600)


async def test_editing_a_client_allows_it_the_machine_grants(live_sql: Services) -> None:
    made, _ = live_sql.clients.create("Backup", ["https://backup.example.com/cb"])
    async with await admin_client(live_sql) as client:
        response = await post(
            client,
            f"/admin/clients/{made.client_id}/edit",
            [("name", "Backup"), ("redirect_uris", "https://backup.example.com/cb"),
             ("grant_types", "client_credentials"), ("grant_types", "device_code"),
             ("client_credentials_scopes", "backup:read, backup:write"), ("id_token_alg", "RS256"),
             ("access_token_lifetime", "3600"), ("refresh_token_lifetime", "86400")],
        )  # fmt: skip
        shown = await client.get(f"/admin/clients/{made.client_id}")
    assert response.status_code == 303
    changed = live_sql.clients.get(made.client_id)
    assert changed.grant_types == ("client_credentials", "device_code")
    assert changed.client_credentials_scopes == ("backup:read", "backup:write")
    assert 'value="device_code" checked' in shown.text
    assert "/api/oidc/device/authorize" in shown.text


async def test_editing_a_client_sets_par_and_private_key_jwt(live_sql: Services) -> None:
    """PAR and signed client authentication (oidc-app-auth) from the console form."""
    made, _ = live_sql.clients.create("Deployer", ["https://deploy.example.com/cb"])
    jwks = (
        '{"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1", '
        '"x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", '
        '"y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}'
    )
    async with await admin_client(live_sql) as client:
        response = await post(
            client,
            f"/admin/clients/{made.client_id}/edit",
            [("name", "Deployer"), ("redirect_uris", "https://deploy.example.com/cb"),
             ("access_token_lifetime", "600"), ("refresh_token_lifetime", "86400"),
             ("require_par", "on"), ("token_endpoint_auth_method", "private_key_jwt"),
             ("jwks", jwks),
             ("federated_identities", "issuer=https://ci.example.com,audience=passgate")],
        )  # fmt: skip
        page = await client.get(f"/admin/clients/{made.client_id}")
    assert response.status_code == 303
    changed = live_sql.clients.get(made.client_id)
    assert changed.require_par and changed.auth_method == "private_key_jwt"
    assert changed.federated_identities[0].audience == "passgate"
    assert "issuer=https://ci.example.com,audience=passgate" in page.text
    assert "<code>private_key_jwt</code>" in page.text


async def test_revoking_an_api_key_shows_it_revoked(live_sql: Services) -> None:
    async with await admin_client(live_sql) as client:
        await post(client, "/admin/api-keys", {"name": "backup", "scope": "write", "days": ""})
        (key,) = await live_sql.admin.list_api_keys()
        response = await post(client, "/admin/api-keys/revoke", {"id": key.id})
        listing = await client.get("/admin/api-keys")
    assert response.status_code == 303
    assert '<span class="badge failed">revoked</span>' in listing.text


async def test_a_client_declared_in_the_config_file_is_read_only_in_the_console(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "clients:\n  - client_id: grafana\n    name: Grafana\n    public: true\n"
        "    redirect_uris: https://grafana.example.com/login/generic_oauth\n"
    )
    services = build_services(make_settings(db_provider="sqlite", config_file=str(config)))
    try:
        async with await admin_client(services) as client:
            page = await client.get("/admin/clients/grafana")
            refused = await post(client, "/admin/clients/grafana/delete", {"confirm": "Grafana"})
        assert 'id="client-edit"' not in page.text and "declared in the config file" in page.text
        assert refused.status_code == 409
        assert services.clients.get("grafana").name == "Grafana"
    finally:
        await services.close()
