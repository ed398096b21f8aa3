"""client_credentials (RFC 6749 4.4): a confidential client allowed the grant gets a token about
itself, for the scopes it was given, with no refresh token and no ID token; introspection names
the client as the subject and userinfo refuses the token, since it describes no user.

The real ASGI app runs in-process against both databases; tests/oidc/test_oidc_openid_client.py
asks for the same token with npm openid-client.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.core.crypto import hash_token
from gateway.core.errors import InvalidInput
from gateway.oidc.clients import DeclaredClient
from gateway.oidc.tokens import OAuthStore
from gateway.services import Services
from gateway.storage import migrations
from gateway.storage.db import Database
from tests.conftest import PassgateProcess
from tests.oidc.machines import App, Gateway
from tests.oidc.node_rp import run_rp
from tests.oidc.relying_party import add_client
from tests.web_client import audit_rows


@pytest.fixture
def gw(services: Services) -> Iterator[Gateway]:
    yield Gateway(services)


@pytest.fixture
def backup(gw: Gateway) -> App:
    return gw.client(
        grant_types=["client_credentials"],
        client_credentials_scopes=["backup:read", "backup:write"],
    )


def assert_token_error(response: Any, error: str, status: int = 400) -> None:
    assert response.status_code == status, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["error"] == error and body["error_description"], body


def machine_token(gw: Gateway, app: App, **data: str) -> dict[str, Any]:
    response = gw.token(app, grant_type="client_credentials", **data)
    assert response.status_code == 200, response.text
    tokens: dict[str, Any] = response.json()
    return tokens


def test_allowed_client_gets_a_token_for_the_scope_it_asks(gw: Gateway, backup: App) -> None:
    tokens = machine_token(gw, backup, scope="backup:read")
    assert tokens["token_type"] == "Bearer" and tokens["scope"] == "backup:read"
    assert tokens["expires_in"] == 3600
    assert "refresh_token" not in tokens and "id_token" not in tokens


def test_no_refresh_token_even_for_a_client_that_always_gets_them(gw: Gateway) -> None:
    app = gw.client(
        grant_types=["client_credentials"],
        client_credentials_scopes=["backup:read"],
        refresh_tokens=True,
    )
    assert "refresh_token" not in machine_token(gw, app)


def test_without_a_scope_the_token_has_every_scope_the_client_was_given(
    gw: Gateway, backup: App
) -> None:
    assert machine_token(gw, backup)["scope"] == "backup:read backup:write"


def test_client_credentials_credentials_may_be_posted_in_the_form(gw: Gateway, backup: App) -> None:
    response = gw.backend.post(
        "/api/oidc/token",
        data={
            "grant_type": "client_credentials",
            "client_id": backup.client_id,
            "client_secret": backup.secret or "",
        },
    )
    assert response.status_code == 200, response.text


def test_introspection_names_the_client_as_the_subject(gw: Gateway, backup: App) -> None:
    tokens = machine_token(gw, backup, scope="backup:read")
    response = gw.send("/api/oidc/introspect", backup, {"token": tokens["access_token"]})
    answer = response.json()
    assert answer["active"] is True
    assert answer["sub"] == backup.client_id and answer["client_id"] == backup.client_id
    assert answer["scope"] == "backup:read" and "username" not in answer


def test_userinfo_refuses_a_client_credentials_token(gw: Gateway, backup: App) -> None:
    tokens = machine_token(gw, backup)
    response = gw.backend.get(
        "/api/oidc/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert "client_credentials" in response.json()["error_description"]


def test_a_client_credentials_token_can_be_revoked(gw: Gateway, backup: App) -> None:
    tokens = machine_token(gw, backup)
    assert gw.send("/api/oidc/revoke", backup, {"token": tokens["access_token"]}).status_code == 200
    answer = gw.send("/api/oidc/introspect", backup, {"token": tokens["access_token"]}).json()
    assert answer == {"active": False}


def test_issued_token_is_audited_with_the_grant_type_and_no_user(gw: Gateway, backup: App) -> None:
    machine_token(gw, backup)
    (issued,) = audit_rows(gw.services, "token_issued")
    assert issued["user_id"] is None
    assert issued["details"]["grant_type"] == "client_credentials"
    assert issued["details"]["refresh_token"] is False


def test_scope_the_client_was_not_given_is_invalid_scope(gw: Gateway, backup: App) -> None:
    response = gw.token(backup, grant_type="client_credentials", scope="backup:read admin")
    assert_token_error(response, "invalid_scope")
    assert "'admin'" in response.json()["error_description"]


def test_user_scopes_are_invalid_scope_for_client_credentials(gw: Gateway, backup: App) -> None:
    response = gw.token(backup, grant_type="client_credentials", scope="openid")
    assert_token_error(response, "invalid_scope")


def test_wrong_secret_is_invalid_client(gw: Gateway, backup: App) -> None:
    wrong = dataclasses.replace(backup, secret="not-the-secret")
    assert_token_error(gw.token(wrong, grant_type="client_credentials"), "invalid_client", 401)


def test_client_not_allowed_the_grant_is_unauthorized_client(gw: Gateway) -> None:
    plain = gw.client()
    assert_token_error(gw.token(plain, grant_type="client_credentials"), "unauthorized_client")


def test_public_client_cannot_use_client_credentials(gw: Gateway) -> None:
    public = gw.client(public=True, grant_types=["device_code"])
    assert_token_error(gw.token(public, grant_type="client_credentials"), "invalid_client", 401)


def test_discovery_advertises_client_credentials(gw: Gateway) -> None:
    document = gw.backend.get("/.well-known/openid-configuration").json()
    assert "client_credentials" in document["grant_types_supported"]


# --- the client's settings ---------------------------------------------------------------------


def test_a_public_client_cannot_be_given_client_credentials(services: Services) -> None:
    with pytest.raises(InvalidInput, match="public client"):
        services.clients.create(
            "CLI", ["https://cli.example.com/cb"], public=True, grant_types=["client_credentials"]
        )


@pytest.mark.parametrize("scope", ["openid", "offline_access", "has space", "", "x" * 65])
def test_client_credentials_scopes_must_be_plain_names_not_user_scopes(
    services: Services, scope: str
) -> None:
    with pytest.raises(InvalidInput, match="client_credentials_scopes"):
        services.clients.create(
            "Backup",
            ["https://backup.example.com/cb"],
            grant_types=["client_credentials"],
            client_credentials_scopes=[scope],
        )


def test_scopes_without_the_grant_are_refused(services: Services) -> None:
    with pytest.raises(InvalidInput, match="need the client_credentials grant"):
        services.clients.create(
            "Backup", ["https://backup.example.com/cb"], client_credentials_scopes=["backup:read"]
        )


def test_unknown_grant_names_are_refused(services: Services) -> None:
    with pytest.raises(InvalidInput, match="not an opt-in grant"):
        services.clients.create(
            "Backup", ["https://backup.example.com/cb"], grant_types=["password"]
        )


def test_grants_and_scopes_can_be_changed_and_are_stored(services: Services) -> None:
    client, _ = services.clients.create("Backup", ["https://backup.example.com/cb"])
    services.clients.update(
        client.client_id,
        grant_types=["device_code", "client_credentials"],
        client_credentials_scopes=["backup:read", "backup:read"],
    )
    stored = services.clients.get(client.client_id)
    assert stored.grant_types == ("client_credentials", "device_code")
    assert stored.client_credentials_scopes == ("backup:read",)


def test_a_declared_client_can_be_allowed_the_machine_grants() -> None:
    entry = DeclaredClient.model_validate(
        {
            "client_id": "backup",
            "name": "Backup",
            "redirect_uris": "https://backup.example.com/cb",
            "secret_hash": "0" * 64,
            "grant_types": ["client_credentials"],
            "client_credentials_scopes": "backup:read",
        }
    )
    client = entry.to_client({})
    assert client.grant_types == ("client_credentials",)
    assert client.client_credentials_scopes == ("backup:read",)


# --- the schema --------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        yield Database.sqlite(tmp_path / "passgate.db")
    else:
        yield Database.postgres(request.getfixturevalue("postgres_url"))


def test_migration_9_keeps_existing_tokens_and_lets_a_token_have_no_user(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = tuple(m for m in migrations.MIGRATIONS if m[0] < 9)
    monkeypatch.setattr(migrations, "MIGRATIONS", before)
    migrations.migrate(database)
    now = time.time()
    database.execute("INSERT INTO users (id, username, created_at) VALUES ('u1', 'alice', 0)")
    database.execute(
        "INSERT INTO oidc_clients (client_id, name, created_at) VALUES ('c1', 'Memos', 0)"
    )
    # The row as the schema before 9 holds it (written by hand: today's store writes newer
    # columns).
    database.execute(
        "INSERT INTO oauth_tokens (id, access_token_hash, refresh_token_hash, client_id, "
        "user_id, scope, family_id, auth_time, issued_at, access_expires_at, refresh_expires_at) "
        "VALUES ('t1', ?, ?, 'c1', 'u1', 'openid', 'f1', 0, ?, ?, ?)",
        (hash_token("old-access"), hash_token("old-refresh"), now, now + 60, now + 3600),
    )
    monkeypatch.undo()
    assert migrations.migrate(database) >= 1
    store = OAuthStore(database)
    kept = store.by_access_token("old-access")
    assert kept is not None and kept.id == "t1" and kept.user_id == "u1"
    assert store.by_refresh_token("old-refresh") == kept
    machine = store.save_token(
        access_token="machine", refresh_token=None, client_id="c1", user_id=None,
        scope="backup:read", auth_time=0, access_lifetime=60, refresh_lifetime=3600,
        family_id=None, code_hash=None,
    )  # fmt: skip
    assert machine.user_id is None and machine.subject == "c1"
    database.execute("DELETE FROM users WHERE id = 'u1'")  # its tokens still go with it
    assert store.by_access_token("old-access") is None


# --- a real machine client: npm openid-client against a Passgate process ----------------------


def test_openid_client_gets_a_client_credentials_token_from_a_real_passgate(
    start_passgate: Callable[..., PassgateProcess], openid_client: Path
) -> None:
    passgate = start_passgate()
    client_id, secret = add_client(
        passgate, "--grant", "client_credentials", "--client-credentials-scope", "backup:read"
    )
    done = run_rp(
        openid_client,
        "machine",
        issuer=passgate.url,
        local_url=passgate.url,
        client_id=client_id,
        client_secret=secret or "",
        scope="backup:read",
    )
    assert done["tokens"]["scope"] == "backup:read"
    assert done["tokens"]["token_type"].lower() == "bearer"
    assert "refresh_token" not in done["tokens"] and "id_token" not in done["tokens"]
    assert done["introspection"]["active"] is True
    assert done["introspection"]["sub"] == client_id
    assert done["userinfo"] == "invalid_token"
    assert done["notAllowed"] == "invalid_scope"
