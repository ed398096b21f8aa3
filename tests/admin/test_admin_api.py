"""The admin JSON API: every route's success and bad input, authentication by API key or admin
session, and an OpenAPI document that lists every route."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from starlette.routing import Route
from starlette.testclient import TestClient

from gateway.admin.api import OPERATIONS
from gateway.admin.openapi import routes_table
from gateway.audit.log import CLI
from gateway.core.settings import Settings
from gateway.services import Services, build_services
from gateway.web.app import PassgateApp, create_app
from tests.conftest import ROOT

APP_URL = "https://auth.example.com"


class Api:
    """A test client for the admin API with one write key, one read key and helpers."""

    def __init__(self, services: Services, app: PassgateApp, client: TestClient) -> None:
        self.services = services
        self.app = app
        self.client = client
        _, self.write_token = self.run(services.admin.create_api_key(CLI, "writer", "write"))
        _, self.read_token = self.run(services.admin.create_api_key(CLI, "reader", "read"))

    @staticmethod
    def run(coroutine: Any) -> Any:
        return asyncio.run(coroutine)

    def call(
        self, method: str, path: str, auth: str | None = "write", **kwargs: Any
    ) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if auth is not None:
            value = {"write": self.write_token, "read": self.read_token}.get(auth, auth)
            headers["Authorization"] = f"Bearer {value}"
        return self.client.request(method, "/api/admin" + path, headers=headers, **kwargs)

    def session_cookie(self, username: str, groups: tuple[str, ...] = ()) -> str:
        for group in groups:
            if group not in [g.name for g in self.services.users.list_groups()]:
                self.services.users.create_group(group)
        user = self.services.users.create_user(username, groups=groups)
        cookie, _ = self.run(self.services.sessions.start(user.id, "192.0.2.9", "Firefox"))
        return f"{self.services.settings.cookie_name}={cookie}"


@pytest.fixture
def api(make_settings: Callable[..., Settings]) -> Iterator[Api]:
    services = build_services(make_settings())
    app = create_app(services)
    with TestClient(app, base_url=APP_URL) as client:
        yield Api(services, app, client)


def admin_routes(app: PassgateApp) -> list[tuple[str, str]]:
    """(method, concrete path) for every /api/admin route in the app's router."""
    found = []
    for route in app.routes:
        if isinstance(route, Route) and route.path.startswith("/api/admin"):
            path = re.sub(r"{\w+}", "x", route.path)
            found.extend(
                (method, path) for method in sorted(route.methods or ()) if method != "HEAD"
            )
    return found


# authentication ------------------------------------------------------------------------------


def test_every_admin_route_refuses_a_caller_without_credentials(api: Api) -> None:
    routes = admin_routes(api.app)
    assert len(routes) > 30
    for method, path in routes:
        response = api.client.request(method, path, json={})
        assert response.status_code == 401, (method, path)
        assert response.headers["www-authenticate"].startswith("Bearer")


def test_every_admin_route_refuses_a_signed_in_non_admin(api: Api) -> None:
    cookie = api.session_cookie("mallory")
    for method, path in admin_routes(api.app):
        response = api.client.request(method, path, json={}, headers={"Cookie": cookie})
        assert response.status_code == 403, (method, path)
        assert response.json()["error"] == "forbidden"


def test_wrong_token_is_401_invalid_token(api: Api) -> None:
    response = api.call("GET", "/users", auth="pgk_not-a-real-key")
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_non_bearer_authorization_is_401(api: Api) -> None:
    response = api.call("GET", "/users", auth=None, headers={"Authorization": "Basic YTpi"})
    assert response.status_code == 401


def test_expired_key_is_401(api: Api) -> None:
    key, token = api.run(api.services.admin.create_api_key(CLI, "short", "write", days=1))
    api.services.db.execute(
        "UPDATE api_keys SET expires_at = ? WHERE id = ?", (time.time() - 1, key.id)
    )
    assert api.call("GET", "/users", auth=token).status_code == 401


def test_revoked_key_is_401(api: Api) -> None:
    key, token = api.run(api.services.admin.create_api_key(CLI, "gone", "write"))
    assert api.call("GET", "/users", auth=token).status_code == 200
    assert api.call("DELETE", f"/api-keys/{key.id}").status_code == 200
    assert api.call("GET", "/users", auth=token).status_code == 401


def test_read_scope_key_may_read_but_not_change(api: Api) -> None:
    assert api.call("GET", "/users", auth="read").status_code == 200
    response = api.call("POST", "/groups", auth="read", json={"name": "x"})
    assert response.status_code == 403 and response.json()["error"] == "insufficient_scope"
    assert api.services.users.list_groups() == []


def test_key_use_is_recorded_as_last_used(api: Api) -> None:
    api.call("GET", "/users")
    keys = {k.name: k for k in api.services.api_keys.list()}
    assert keys["writer"].last_used_at is not None and keys["reader"].last_used_at is None


def test_admin_session_can_read_without_csrf(api: Api) -> None:
    cookie = api.session_cookie("root", ("admins",))
    response = api.call("GET", "/users", auth=None, headers={"Cookie": cookie})
    assert response.status_code == 200


def test_admin_session_change_needs_the_csrf_token(api: Api) -> None:
    cookie = api.session_cookie("root", ("admins",))
    response = api.call(
        "POST", "/groups", auth=None, json={"name": "family"}, headers={"Cookie": cookie}
    )
    assert response.status_code == 403 and response.json()["error"] == "csrf"
    csrf = "c" * 32
    headers = {
        "Cookie": f"{cookie}; __Host-passgate_csrf={csrf}",
        "X-CSRF-Token": csrf,
        "Origin": APP_URL,
    }
    response = api.call("POST", "/groups", auth=None, json={"name": "family"}, headers=headers)
    assert response.status_code == 201
    [event] = api.services.audit.search(event="group_created").events
    assert (event.actor.kind, event.actor.name) == ("user", "root")


def test_admin_session_change_from_another_origin_is_403(api: Api) -> None:
    cookie = api.session_cookie("root", ("admins",))
    csrf = "c" * 32
    headers = {
        "Cookie": f"{cookie}; __Host-passgate_csrf={csrf}",
        "X-CSRF-Token": csrf,
        "Origin": "https://evil.example.net",
    }
    response = api.call("POST", "/groups", auth=None, json={"name": "x"}, headers=headers)
    assert response.status_code == 403


def test_api_key_actor_is_audited_with_its_user_agent(api: Api) -> None:
    api.call("POST", "/users", json={"username": "alice"}, headers={"User-Agent": "backup/1.0"})
    [event] = api.services.audit.search(event="user_created").events
    assert event.actor.kind == "api_key" and event.actor.name == "writer"
    assert event.actor.user_agent == "backup/1.0"


# users -----------------------------------------------------------------------------------------


def test_user_create_show_update_list_delete(api: Api) -> None:
    api.call("POST", "/groups", json={"name": "family"})
    created = api.call(
        "POST", "/users", json={"username": "Alice", "email": "a@example.com", "groups": ["family"]}
    )
    assert created.status_code == 201 and created.json()["username"] == "alice"
    assert api.call("GET", "/users/alice").json()["groups"] == ["family"]
    updated = api.call("PATCH", "/users/alice", json={"display_name": "Alice A.", "groups": []})
    assert updated.json()["display_name"] == "Alice A." and updated.json()["groups"] == []
    assert [u["username"] for u in api.call("GET", "/users").json()] == ["alice"]
    assert api.call("DELETE", "/users/alice").status_code == 204
    assert api.call("GET", "/users/alice").status_code == 404


def test_user_create_with_missing_username_is_422_naming_the_field(api: Api) -> None:
    response = api.call("POST", "/users", json={"email": "a@example.com"})
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_request"
    assert "username" in response.json()["fields"]


def test_user_create_with_bad_username_is_422_naming_the_field(api: Api) -> None:
    response = api.call("POST", "/users", json={"username": "not valid"})
    assert response.status_code == 422 and "username" in response.json()["fields"]


def test_user_create_with_bad_email_is_422_naming_the_field(api: Api) -> None:
    response = api.call("POST", "/users", json={"username": "bob", "email": "nope"})
    assert response.status_code == 422 and "email" in response.json()["fields"]


def test_unknown_body_field_is_422(api: Api) -> None:
    response = api.call("POST", "/users", json={"username": "bob", "admin": True})
    assert response.status_code == 422 and response.json()["fields"] == {
        "admin": "Extra inputs are not permitted"
    }


def test_body_that_is_not_json_is_400(api: Api) -> None:
    response = api.call("POST", "/users", content=b"{nope", headers={"Content-Type": "x"})
    assert response.status_code == 400 and response.json()["fields"] == {"body": "not valid JSON"}


def test_body_that_is_not_json_gets_our_message_not_the_parsers(api: Api) -> None:
    response = api.call("POST", "/users", content=b'{"username": }', headers={"Content-Type": "x"})
    assert response.json()["error_description"] == "the body is not valid JSON"
    assert "Expecting" not in response.text and "column" not in response.text


def test_field_errors_name_the_fields_but_never_repeat_the_values_sent(api: Api) -> None:
    sent = "value-from-the-caller"
    body = {"username": [sent], "email": {"a": sent}, "groups": sent, "display_name": 5}
    response = api.call("POST", "/users", json=body)
    assert response.status_code == 422
    assert set(response.json()["fields"]) == {"username", "email", "groups", "display_name"}
    assert sent not in response.text and "input" not in response.text


def test_duplicate_user_is_409(api: Api) -> None:
    api.call("POST", "/users", json={"username": "bob"})
    response = api.call("POST", "/users", json={"username": "bob"})
    assert response.status_code == 409 and response.json()["error"] == "conflict"


def test_nul_in_a_string_is_422_not_a_storage_error(api: Api) -> None:
    response = api.call("POST", "/users", json={"username": "bob", "display_name": "a\x00b"})
    assert response.status_code == 422 and "display_name" in response.json()["fields"]


def test_disabling_by_patch_ends_sessions(api: Api) -> None:
    cookie = api.session_cookie("carol")
    response = api.call("PATCH", "/users/carol", json={"disabled": True})
    assert response.status_code == 200 and response.json()["disabled"] is True
    assert api.call("GET", "/users/carol/sessions").json() == []
    assert cookie and api.services.audit.search(event="user_disabled").events


def test_patch_with_wrong_type_is_422(api: Api) -> None:
    api.call("POST", "/users", json={"username": "dan"})
    response = api.call("PATCH", "/users/dan", json={"disabled": "maybe"})
    assert response.status_code == 422 and "disabled" in response.json()["fields"]


def test_passkeys_list_and_revoke(api: Api) -> None:
    user = api.services.users.create_user("erin")
    api.services.passkeys.add(
        credential_id="cred-1",
        user_id=user.id,
        public_key="pk",
        sign_count=0,
        transports=("usb",),
        aaguid="",
        backup_eligible=False,
        backed_up=False,
        name="Key",
    )
    listed = api.call("GET", "/users/erin/passkeys").json()
    assert [p["credential_id"] for p in listed] == ["cred-1"] and "public_key" not in listed[0]
    assert api.call("DELETE", "/users/erin/passkeys/cred-1").status_code == 204
    assert api.call("DELETE", "/users/erin/passkeys/cred-1").status_code == 404


def test_sessions_list_end_one_and_end_all(api: Api) -> None:
    api.session_cookie("fay")
    user = api.services.users.get_user_by_name("fay")
    api.run(api.services.sessions.start(user.id, "192.0.2.10", "Safari"))
    sessions = api.call("GET", "/users/fay/sessions").json()
    assert len(sessions) == 2
    assert api.call("DELETE", f"/users/fay/sessions/{sessions[0]['key']}").status_code == 204
    assert api.call("DELETE", "/users/fay/sessions/unknown").status_code == 404
    assert api.call("DELETE", "/users/fay/sessions").json() == {"ended": 1}


def test_login_link_is_created_and_minutes_are_checked(api: Api) -> None:
    api.call("POST", "/users", json={"username": "gus"})
    response = api.call("POST", "/users/gus/login-links", json={"minutes": 10})
    assert response.status_code == 201 and response.json()["url"].startswith(APP_URL + "/lc/")
    bad = api.call("POST", "/users/gus/login-links", json={"minutes": 0})
    assert bad.status_code == 422 and "minutes" in bad.json()["fields"]
    assert api.call("POST", "/users/nobody/login-links", json={}).status_code == 404


def test_signup_token_is_created_and_bounds_are_checked(api: Api) -> None:
    response = api.call("POST", "/signup-tokens", json={"days": 2, "uses": 3})
    assert response.status_code == 201 and response.json()["usage_limit"] == 3
    bad = api.call("POST", "/signup-tokens", json={"days": -1, "uses": 0})
    assert bad.status_code == 422 and set(bad.json()["fields"]) == {"days", "uses"}


# groups and claims -----------------------------------------------------------------------------


def test_group_create_rename_members_delete(api: Api) -> None:
    api.call("POST", "/users", json={"username": "hal"})
    assert api.call("POST", "/groups", json={"name": "media"}).status_code == 201
    assert api.call("PUT", "/groups/media/members/hal").json()["members"] == ["hal"]
    assert api.call("PATCH", "/groups/media", json={"name": "movies"}).json()["name"] == "movies"
    assert api.call("GET", "/groups/movies").json()["members"] == ["hal"]
    assert api.call("DELETE", "/groups/movies/members/hal").json()["members"] == []
    assert [g["name"] for g in api.call("GET", "/groups").json()] == ["movies"]
    assert api.call("DELETE", "/groups/movies").status_code == 204
    assert api.call("GET", "/groups/movies").status_code == 404


def test_group_with_bad_name_is_422(api: Api) -> None:
    response = api.call("POST", "/groups", json={"name": "no spaces allowed"})
    assert response.status_code == 422
    assert api.call("POST", "/groups", json={}).json()["fields"] == {"name": "Field required"}


def test_user_and_group_claims(api: Api) -> None:
    api.call("POST", "/users", json={"username": "ivy"})
    api.call("POST", "/groups", json={"name": "staff"})
    assert api.call("PUT", "/users/ivy/claims/dept", json={"value": "ops"}).json() == {
        "dept": "ops"
    }
    assert api.call("PUT", "/groups/staff/claims/tier", json={"value": "1"}).json() == {"tier": "1"}
    assert api.call("GET", "/users/ivy/claims").json() == {"dept": "ops"}
    assert api.call("GET", "/groups/staff/claims").json() == {"tier": "1"}
    assert api.call("DELETE", "/users/ivy/claims/dept").json() == {}
    assert api.call("DELETE", "/groups/staff/claims/tier").json() == {}
    assert api.call("DELETE", "/groups/staff/claims/tier").status_code == 404


def test_reserved_claim_is_422(api: Api) -> None:
    api.call("POST", "/users", json={"username": "jo"})
    response = api.call("PUT", "/users/jo/claims/email", json={"value": "x@example.com"})
    assert response.status_code == 422
    assert api.call("PUT", "/users/jo/claims/x", json={}).json()["fields"] == {
        "value": "Field required"
    }


# clients ---------------------------------------------------------------------------------------


def test_client_create_show_update_rotate_delete(api: Api) -> None:
    created = api.call(
        "POST",
        "/clients",
        json={
            "name": "Wiki",
            "redirect_uris": ["https://wiki.example.com/cb"],
            "pkce_required": True,
        },
    )
    assert created.status_code == 201
    body = created.json()
    client_id, secret = body["client"]["client_id"], body["client_secret"]
    assert secret and body["client"]["pkce_required"] is True
    shown = api.call("GET", f"/clients/{client_id}").json()
    assert "secret_hash" not in shown and shown["discovery_url"].startswith(APP_URL)
    updated = api.call("PATCH", f"/clients/{client_id}", json={"name": "Team wiki"})
    assert updated.json()["name"] == "Team wiki"
    rotated = api.call("POST", f"/clients/{client_id}/rotate-secret").json()["client_secret"]
    assert rotated != secret
    assert [c["client_id"] for c in api.call("GET", "/clients").json()] == [client_id]
    assert api.call("DELETE", f"/clients/{client_id}").status_code == 204
    assert api.call("GET", f"/clients/{client_id}").status_code == 404


def test_public_client_has_no_secret_to_rotate(api: Api) -> None:
    created = api.call(
        "POST",
        "/clients",
        json={"name": "SPA", "redirect_uris": ["https://spa.example.com/cb"], "public": True},
    ).json()
    assert created["client_secret"] is None
    client_id = created["client"]["client_id"]
    assert api.call("POST", f"/clients/{client_id}/rotate-secret").status_code == 422


def test_client_without_redirect_uris_is_422(api: Api) -> None:
    response = api.call("POST", "/clients", json={"name": "X", "redirect_uris": []})
    assert response.status_code == 422 and "redirect_uris" in response.json()["fields"]


def test_client_with_http_redirect_is_422(api: Api) -> None:
    response = api.call(
        "POST", "/clients", json={"name": "X", "redirect_uris": ["http://evil.example.com/cb"]}
    )
    assert response.status_code == 422 and "https" in response.json()["error_description"]


# machine and TV grants


def test_client_machine_grants_are_set_and_shown(api: Api) -> None:
    created = api.call(
        "POST",
        "/clients",
        json={
            "name": "Backup",
            "redirect_uris": ["https://backup.example.com/cb"],
            "grant_types": ["client_credentials"],
            "client_credentials_scopes": ["backup:read"],
        },
    ).json()["client"]
    assert created["grant_types"] == ["client_credentials"]
    assert created["client_credentials_scopes"] == ["backup:read"]
    updated = api.call(
        "PATCH", f"/clients/{created['client_id']}", json={"grant_types": ["device_code"]}
    )
    assert updated.status_code == 422  # its scopes need client_credentials
    both = {"grant_types": ["device_code", "client_credentials"]}
    updated = api.call("PATCH", f"/clients/{created['client_id']}", json=both)
    assert updated.json()["grant_types"] == ["client_credentials", "device_code"]


def test_public_client_with_client_credentials_is_422(api: Api) -> None:
    response = api.call(
        "POST",
        "/clients",
        json={
            "name": "CLI",
            "redirect_uris": ["https://cli.example.com/cb"],
            "public": True,
            "grant_types": ["client_credentials"],
        },
    )
    assert response.status_code == 422 and "public client" in response.json()["error_description"]


def test_unknown_grant_type_is_422(api: Api) -> None:
    response = api.call(
        "POST",
        "/clients",
        json={
            "name": "X",
            "redirect_uris": ["https://x.example.com/cb"],
            "grant_types": ["password"],
        },
    )
    assert response.status_code == 422 and "grant_types.0" in response.json()["fields"]


def test_client_with_bad_algorithm_is_422(api: Api) -> None:
    response = api.call(
        "POST",
        "/clients",
        json={"name": "X", "redirect_uris": ["https://x.example.com/cb"], "id_token_alg": "none"},
    )
    assert response.status_code == 422 and "id_token_alg" in response.json()["fields"]


# API keys, audit, rules ------------------------------------------------------------------------


def test_api_key_create_list_revoke(api: Api) -> None:
    created = api.call("POST", "/api-keys", json={"name": "ci", "scope": "read", "days": 30})
    assert created.status_code == 201
    token, key_id = created.json()["token"], created.json()["key"]["id"]
    assert token.startswith("pgk_") and created.json()["key"]["expires_at"] is not None
    assert api.call("GET", "/users", auth=token).status_code == 200
    assert "ci" in [k["name"] for k in api.call("GET", "/api-keys").json()]
    assert api.call("DELETE", f"/api-keys/{key_id}").json()["revoked_at"] is not None
    assert api.call("DELETE", f"/api-keys/{key_id}").status_code == 409
    assert api.call("DELETE", "/api-keys/nope").status_code == 404


def test_api_key_with_bad_scope_is_422(api: Api) -> None:
    response = api.call("POST", "/api-keys", json={"name": "ci", "scope": "admin"})
    assert response.status_code == 422 and "scope" in response.json()["fields"]


def test_audit_search_filters_and_pages(api: Api) -> None:
    for name in ("u1", "u2", "u3"):
        api.call("POST", "/users", json={"username": name})
    first = api.call("GET", "/audit", params={"event": "user_created", "limit": 2}).json()
    assert [e["details"]["username"] for e in first["events"]] == ["u3", "u2"]
    second = api.call(
        "GET", "/audit", params={"event": "user_created", "limit": 2, "before": first["next"]}
    ).json()
    assert [e["details"]["username"] for e in second["events"]] == ["u1"]
    assert second["next"] is None
    mine = api.call("GET", "/audit", params={"user": "u2"}).json()["events"]
    assert [e["event"] for e in mine] == ["user_created"]


def test_audit_search_with_bad_query_is_422(api: Api) -> None:
    response = api.call("GET", "/audit", params={"limit": "0", "since": "yesterday"})
    assert response.status_code == 422 and set(response.json()["fields"]) == {"limit", "since"}
    bad_cursor = api.call("GET", "/audit", params={"before": "garbage"})
    assert bad_cursor.status_code == 422


def test_audit_export_streams_json_lines(api: Api) -> None:
    api.call("POST", "/users", json={"username": "kim"})
    response = api.call("GET", "/audit/export", params={"event": "user_created"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = response.text.splitlines()
    assert len(lines) == 1 and '"user_created"' in lines[0]


def test_rules_check_answers_for_a_user_and_for_anyone(api: Api) -> None:
    api.call("POST", "/users", json={"username": "lou"})
    for_user = api.call(
        "GET", "/rules/check", params={"url": "https://app.example.com/", "user": "lou"}
    )
    assert for_user.json()["outcome"] == "allow"
    anyone = api.call("GET", "/rules/check", params={"url": "https://app.example.com/"}).json()
    assert anyone["outcome"] == "login" and anyone["allowed_users"] == ["lou"]


def test_rules_check_shows_the_canonical_url_and_path(api: Api) -> None:
    url = "https://APP.example.com/a//%63;x=1?q=1"
    check = api.call("GET", "/rules/check", params={"url": url}).json()
    assert check["url"] == url
    assert check["canonical_url"] == "https://app.example.com/a/c;x=1?q=1"
    assert check["path"] == "/a/c"


def test_rules_check_of_an_ambiguous_url_says_why_it_is_refused(api: Api) -> None:
    response = api.call("GET", "/rules/check", params={"url": "https://app.example.com/a%00"})
    assert response.status_code == 422
    assert "NUL" in response.json()["fields"]["url"]


def test_rules_check_with_bad_url_is_422(api: Api) -> None:
    response = api.call("GET", "/rules/check", params={"url": "ftp://x"})
    assert response.status_code == 422 and "url" in response.json()["fields"]
    missing = api.call("GET", "/rules/check")
    assert missing.status_code == 422 and "url" in missing.json()["fields"]


# OpenAPI ---------------------------------------------------------------------------------------


def test_openapi_document_lists_every_admin_route(api: Api) -> None:
    document = api.client.get("/api/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    documented = {
        (method.upper(), re.sub(r"{\w+}", "x", path))
        for path, operations in document["paths"].items()
        for method in operations
    }
    assert set(admin_routes(api.app)) == documented


def test_openapi_schemas_come_from_the_models(api: Api) -> None:
    document = api.client.get("/api/openapi.json").json()
    create = document["paths"]["/api/admin/users"]["post"]["requestBody"]
    ref = create["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert "username" in document["components"]["schemas"][ref]["required"]


def test_readme_route_list_is_the_generated_one() -> None:
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- admin-api:start -->\n", 1)[1].split("<!-- admin-api:end -->")[0]
    assert block.strip() == routes_table(OPERATIONS).strip()


def test_client_with_private_key_jwt_and_required_par(api: Api) -> None:
    """PAR and signed client authentication (oidc-app-auth): set, shown, and switched back."""
    jwk = {"kty": "EC", "crv": "P-256", "kid": "k1", "x": EC_X, "y": EC_Y}
    created = api.call(
        "POST",
        "/clients",
        json={
            "name": "Deployer",
            "redirect_uris": ["https://deploy.example.com/cb"],
            "require_pushed_authorization_requests": True,
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": {"keys": [jwk]},
            "federated_identities": [
                {"issuer": "https://token.actions.githubusercontent.com", "audience": "passgate"}
            ],
        },
    )
    assert created.status_code == 201, created.text
    client = created.json()["client"]
    assert client["require_pushed_authorization_requests"] is True
    assert client["token_endpoint_auth_method"] == "private_key_jwt"
    assert client["jwks"]["keys"][0]["kid"] == "k1"
    assert client["federated_identities"][0]["audience"] == "passgate"
    switched = api.call(
        "PATCH",
        f"/clients/{client['client_id']}",
        json={"token_endpoint_auth_method": "client_secret_basic"},
    ).json()
    assert switched["jwks"] is None and switched["federated_identities"] == []


def test_client_with_a_private_jwk_is_422(api: Api) -> None:
    jwk = {"kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQ"}
    response = api.call(
        "POST",
        "/clients",
        json={
            "name": "X",
            "redirect_uris": ["https://x.example.com/cb"],
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": {"keys": [jwk]},
        },
    )
    assert response.status_code == 422 and "public keys" in response.json()["error_description"]


# A P-256 public key (RFC 7515 A.3), for clients that only need to store one.
EC_X = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU"
EC_Y = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"
