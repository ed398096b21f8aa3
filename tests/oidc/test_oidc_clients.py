"""OIDC clients: the service on SQLite and PostgreSQL, redirect URI matching, declared clients."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.core.crypto import hash_token
from gateway.core.errors import Conflict, InvalidInput, NotFound
from gateway.core.settings import Settings
from gateway.forward_auth.rules import load_rules
from gateway.oidc.client_service import ClientService
from gateway.oidc.clients import (
    ClientsConfigError,
    DeclaredClient,
    OidcClient,
    ReadOnlyClient,
    load_declared_clients,
    validate_redirect_uri,
)
from gateway.services import Services, build_services

CB = "https://app.example.com/callback"


def client_with(*uris: str, wildcards: bool = False) -> OidcClient:
    """A client value for the pure matching functions (never stored)."""
    return OidcClient(
        client_id="c",
        name="c",
        public=True,
        redirect_uris=uris,
        post_logout_redirect_uris=uris,
        allowed_groups=(),
        pkce_required=True,
        wildcard_callbacks=wildcards,
        id_token_alg="RS256",
        access_token_lifetime=3600,
        refresh_token_lifetime=86400,
        refresh_tokens=False,
        logo_url="",
        declared=False,
        created_at=0.0,
    )


# create, read, secrets -------------------------------------------------------------------------


def test_confidential_client_gets_a_secret_shown_once_and_stored_hashed(services: Services) -> None:
    client, secret = services.clients.create("Grafana", [CB])
    assert secret is not None and len(secret) >= 43
    assert [s.secret_hash for s in client.secrets] == [hash_token(secret)]
    assert not client.public
    stored = services.db.fetchone(
        "SELECT secret_hash FROM oidc_client_secrets WHERE client_id = ?", (client.client_id,)
    )
    assert stored == (hash_token(secret),)
    assert services.clients.verify_secret(client, secret)
    assert not services.clients.verify_secret(client, secret + "x")


def test_create_stores_every_setting(services: Services) -> None:
    services.users.create_group("family")
    client, _ = services.clients.create(
        "  Jellyfin ",
        [CB, "com.example.app:/cb"],
        post_logout_redirect_uris=["https://app.example.com/"],
        allowed_groups=["family"],
        pkce_required=False,
        id_token_alg="ES256",
        access_token_lifetime=600,
        refresh_token_lifetime=7200,
        refresh_tokens=True,
        logo_url="https://app.example.com/logo.png",
        client_id="jellyfin",
    )
    assert services.clients.get("jellyfin") == client
    assert client.name == "Jellyfin"
    assert client.redirect_uris == (CB, "com.example.app:/cb")
    assert client.allowed_groups == ("family",)
    assert (client.pkce_required, client.id_token_alg, client.refresh_tokens) == (
        False,
        "ES256",
        True,
    )
    assert (client.access_token_lifetime, client.refresh_token_lifetime) == (600, 7200)
    assert not client.declared and client.created_at > 0


def test_public_client_has_no_secret_and_never_verifies(services: Services) -> None:
    client, secret = services.clients.create("SPA", [CB], public=True)
    assert secret is None and client.secrets == () and client.public
    assert not services.clients.verify_secret(client, "")
    assert not services.clients.verify_secret(client, "anything")


def test_default_client_id_is_a_uuid(services: Services) -> None:
    client, _ = services.clients.create("App", [CB])
    assert len(client.client_id) == 36 and client.client_id.count("-") == 4


def test_duplicate_client_id_is_a_conflict(services: Services) -> None:
    services.clients.create("App", [CB], client_id="app")
    with pytest.raises(Conflict):
        services.clients.create("Other", [CB], client_id="app")


def test_unknown_client_is_not_found(services: Services) -> None:
    with pytest.raises(NotFound):
        services.clients.get("nope")
    assert services.clients.find("nope") is None


def test_list_is_sorted_by_name(services: Services) -> None:
    services.clients.create("Zed", [CB])
    services.clients.create("Alpha", [CB])
    assert [c.name for c in services.clients.list()] == ["Alpha", "Zed"]


def test_rotate_secret_replaces_the_old_one(services: Services) -> None:
    client, old = services.clients.create("App", [CB])
    new = services.clients.rotate_secret(client.client_id)
    rotated = services.clients.get(client.client_id)
    assert old is not None and new != old
    assert services.clients.verify_secret(rotated, new)
    assert not services.clients.verify_secret(rotated, old)


def test_public_client_has_no_secret_to_rotate(services: Services) -> None:
    client, _ = services.clients.create("SPA", [CB], public=True)
    with pytest.raises(InvalidInput, match="public"):
        services.clients.rotate_secret(client.client_id)


def test_delete_removes_the_client(services: Services) -> None:
    client, _ = services.clients.create("App", [CB])
    services.clients.delete(client.client_id)
    assert services.clients.find(client.client_id) is None
    with pytest.raises(NotFound):
        services.clients.delete(client.client_id)


# update ---------------------------------------------------------------------------------------


def test_update_changes_only_what_is_given(services: Services) -> None:
    client, secret = services.clients.create("App", [CB])
    updated = services.clients.update(
        client.client_id, name="Renamed", redirect_uris=["https://app.example.com/new"]
    )
    assert updated.name == "Renamed" and updated.redirect_uris == ("https://app.example.com/new",)
    assert updated.secrets == client.secrets
    assert updated.pkce_required == client.pkce_required
    assert secret is not None and services.clients.verify_secret(updated, secret)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"redirect_uris": []}, "redirect_uris"),
        ({"redirect_uris": ["javascript:alert(1)"]}, "redirect URI"),
        ({"post_logout_redirect_uris": ["http://example.com/"]}, "post-logout"),
        ({"allowed_groups": ["bad group"]}, "group"),
        ({"id_token_alg": "HS256"}, "id_token_alg"),
        ({"access_token_lifetime": 59}, "access_token_lifetime"),
        ({"access_token_lifetime": 86401}, "access_token_lifetime"),
        ({"refresh_token_lifetime": 3599}, "refresh_token_lifetime"),
        ({"refresh_token_lifetime": 365 * 86400 + 1}, "refresh_token_lifetime"),
        ({"logo_url": "javascript:alert(1)"}, "logo_url"),
        ({"public": True}, "public"),
    ],
)
def test_update_rejects_bad_values_naming_the_field(
    services: Services, changes: dict[str, object], field: str
) -> None:
    client, _ = services.clients.create("App", [CB])
    with pytest.raises(InvalidInput, match=field):
        services.clients.update(client.client_id, **changes)  # type: ignore[arg-type]
    assert services.clients.get(client.client_id) == client


def test_update_of_unknown_client_is_not_found(services: Services) -> None:
    with pytest.raises(NotFound):
        services.clients.update("nope", name="x")


# redirect URI validation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "uri",
    [
        "https://app.example.com/callback",
        "https://app.example.com:8443/cb?x=1",
        "http://localhost:3000/cb",
        "http://127.0.0.1/cb",
        "http://[::1]:8080/cb",
        "com.example.app:/oauth2redirect",
        "com.example.app://callback/path",
    ],
)
def test_acceptable_redirect_uris(uri: str) -> None:
    assert validate_redirect_uri(uri, wildcards=False) == uri


@pytest.mark.parametrize(
    "uri",
    [
        "javascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "file:///etc/passwd",
        "vbscript:msgbox",
        "ftp://example.com/cb",
        "http://example.com/cb",
        "http://localhost.evil.com/cb",
        "/relative/cb",
        "app.example.com/cb",
        "https://app.example.com/cb#fragment",
        "https://user@app.example.com/cb",
        "https:///cb",
        "https://app.example.com\\@evil.com/cb",
        "https://app.example.com/c b",
        "HTTPS://app.example.com/cb",
        "https://app.example.com:99999/cb",
        "",
    ],
)
def test_unacceptable_redirect_uris(uri: str) -> None:
    with pytest.raises(InvalidInput, match="redirect URI"):
        validate_redirect_uri(uri, wildcards=True)


def test_star_needs_wildcard_callbacks(services: Services) -> None:
    with pytest.raises(InvalidInput, match="wildcard"):
        services.clients.create("App", ["https://*.example.com/cb"])
    client, _ = services.clients.create(
        "App", ["https://*.example.com/cb"], wildcard_callbacks=True
    )
    assert client.wildcard_callbacks


@pytest.mark.parametrize(
    "uri",
    [
        "https://*/cb",
        "https://*.com/cb",
        "https://example.*/cb",
        "https://app.*.com/cb",
        "https://app.example.com/cb?next=*",
        "*://app.example.com/cb",
        "com.example.*:/cb",
        "com.example.app://*/cb",
    ],
)
def test_wildcards_only_in_safe_places(uri: str) -> None:
    with pytest.raises(InvalidInput):
        validate_redirect_uri(uri, wildcards=True)


# redirect URI matching -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "candidate",
    [
        CB,
    ],
)
def test_exact_uri_matches(candidate: str) -> None:
    assert ClientService.redirect_uri_allowed(client_with(CB), candidate)


@pytest.mark.parametrize(
    "candidate",
    [
        CB + "/",
        "https://app.example.com/Callback",
        "https://APP.example.com/callback",
        "https://app.example.com:443/callback",
        "https://app.example.com/callback?x=1",
        "https://app.example.com/callback#x",
        "https://app.example.com/callback/../callback",
        "https://app.example.com/%63allback",
        "http://app.example.com/callback",
        "https://app.example.com.evil.com/callback",
        "",
    ],
)
def test_anything_but_the_exact_string_does_not_match(candidate: str) -> None:
    assert not ClientService.redirect_uri_allowed(client_with(CB), candidate)


def test_trailing_slash_is_a_different_uri() -> None:
    client = client_with("https://app.example.com/cb/")
    assert ClientService.redirect_uri_allowed(client, "https://app.example.com/cb/")
    assert not ClientService.redirect_uri_allowed(client, "https://app.example.com/cb")


def test_star_is_literal_text_without_wildcard_callbacks() -> None:
    client = client_with("https://*.example.com/cb", wildcards=False)
    assert not ClientService.redirect_uri_allowed(client, "https://a.example.com/cb")


@pytest.mark.parametrize(
    ("pattern", "candidate"),
    [
        ("https://*.example.com/cb", "https://a.example.com/cb"),
        ("https://*.example.com/cb", "https://pr-12.example.com/cb"),
        ("https://pr-*.example.com/cb", "https://pr-12.example.com/cb"),
        ("https://app.example.com/*/cb", "https://app.example.com/tenant/cb"),
        ("https://app.example.com/cb/*", "https://app.example.com/cb/v1.2"),
        ("http://localhost:3000/*", "http://localhost:3000/cb"),
        ("com.example.app:/cb/*", "com.example.app:/cb/x"),
    ],
)
def test_wildcard_matches_one_label_or_segment(pattern: str, candidate: str) -> None:
    assert ClientService.redirect_uri_allowed(client_with(pattern, wildcards=True), candidate)


@pytest.mark.parametrize(
    ("pattern", "candidate"),
    [
        ("https://*.example.com/cb", "https://evil.com/x"),
        ("https://*.example.com/cb", "https://a.b.example.com/cb"),
        ("https://*.example.com/cb", "https://example.com/cb"),
        ("https://*.example.com/cb", "https://.example.com/cb"),
        ("https://*.example.com/cb", "https://evil.com/.example.com/cb"),
        ("https://*.example.com/cb", "https://evil.com?.example.com/cb"),
        ("https://*.example.com/cb", "https://evil.com#.example.com/cb"),
        ("https://*.example.com/cb", "https://evil.com@a.example.com/cb"),
        ("https://*.example.com/cb", "https://a.example.com:8443/cb"),
        ("https://*.example.com/cb", "http://a.example.com/cb"),
        ("https://*.example.com/cb", "https://a.example.com/cb/"),
        ("https://*.example.com/cb", "https://a.example.com/cb?x=1"),
        ("https://app.example.com/*/cb", "https://app.example.com/a/b/cb"),
        ("https://app.example.com/*/cb", "https://app.example.com//cb"),
        ("https://app.example.com/*/cb", "https://app.example.com/../cb"),
        ("https://app.example.com/*/cb", "https://app.example.com/%2e%2e/cb"),
        ("https://app.example.com/*/cb", "https://app.example.com/a%2Fb/cb"),
        ("https://app.example.com/cb/*", "https://app.example.com/cb/"),
        ("https://app.example.com/cb/*", "https://app.example.com/cb/x?y=1"),
        ("https://app.example.com/cb/*", "https://app.example.com/cb/x#y"),
    ],
)
def test_wildcard_never_crosses_a_dot_or_slash(pattern: str, candidate: str) -> None:
    assert not ClientService.redirect_uri_allowed(client_with(pattern, wildcards=True), candidate)


def test_post_logout_uris_match_like_redirect_uris() -> None:
    client = dataclasses.replace(
        client_with(CB), post_logout_redirect_uris=("https://app.example.com/bye",)
    )
    assert ClientService.post_logout_uri_allowed(client, "https://app.example.com/bye")
    assert not ClientService.post_logout_uri_allowed(client, "https://app.example.com/bye/")
    assert not ClientService.post_logout_uri_allowed(client, CB)


# declared clients --------------------------------------------------------------------------------


def declared(**values: object) -> DeclaredClient:
    entry: dict[str, object] = {"client_id": "grafana", "name": "Grafana", "redirect_uris": [CB]}
    entry.update(values)
    return DeclaredClient.model_validate(entry)


def test_sync_inserts_declared_clients_with_their_secrets(services: Services) -> None:
    services.clients.sync_declared(
        [declared(secret_env="GRAFANA_SECRET"), declared(client_id="spa", public=True)],
        {"GRAFANA_SECRET": "s3cret"},
    )
    grafana = services.clients.get("grafana")
    assert grafana.declared and services.clients.verify_secret(grafana, "s3cret")
    assert services.clients.get("spa").public


def test_sync_accepts_a_secret_hash(services: Services) -> None:
    services.clients.sync_declared([declared(secret_hash=hash_token("pw").upper())], {})
    assert services.clients.verify_secret(services.clients.get("grafana"), "pw")


def test_sync_names_a_missing_secret_env_variable(services: Services) -> None:
    with pytest.raises(ClientsConfigError, match="GRAFANA_SECRET"):
        services.clients.sync_declared([declared(secret_env="GRAFANA_SECRET")], {})
    assert services.clients.find("grafana") is None


def test_sync_updates_and_removes_declared_clients_only(services: Services) -> None:
    mine, _ = services.clients.create("By hand", [CB])
    services.clients.sync_declared(
        [declared(secret_hash=hash_token("a")), declared(client_id="old", public=True)], {}
    )
    created_at = services.clients.get("grafana").created_at
    services.clients.sync_declared([declared(name="Grafana 2", secret_hash=hash_token("b"))], {})
    grafana = services.clients.get("grafana")
    assert grafana.name == "Grafana 2" and grafana.created_at == created_at
    assert services.clients.verify_secret(grafana, "b")
    assert services.clients.find("old") is None
    assert services.clients.get(mine.client_id) == mine
    services.clients.sync_declared([], {})
    assert [c.client_id for c in services.clients.list()] == [mine.client_id]


def test_declared_id_colliding_with_a_hand_made_client_is_an_error(services: Services) -> None:
    services.clients.create("By hand", [CB], client_id="grafana")
    with pytest.raises(ClientsConfigError, match="grafana"):
        services.clients.sync_declared([declared(public=True)], {})
    assert not services.clients.get("grafana").declared


def test_declared_clients_are_read_only(services: Services) -> None:
    services.clients.sync_declared([declared(public=False, secret_hash=hash_token("a"))], {})
    for change in (
        lambda: services.clients.update("grafana", name="x"),
        lambda: services.clients.delete("grafana"),
        lambda: services.clients.rotate_secret("grafana"),
    ):
        with pytest.raises(ReadOnlyClient, match="CONFIG_FILE"):
            change()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({}, "secret_env or secret_hash"),
        ({"public": True, "secret_env": "X"}, "public client has no secret"),
        ({"secret_env": "X", "secret_hash": hash_token("a")}, "exactly one"),
        ({"secret_hash": "not-hex"}, "SHA-256"),
        ({"public": True, "colour": "red"}, "colour"),
        ({"public": True, "id_token_alg": "HS256"}, "id_token_alg"),
    ],
)
def test_declared_client_model_rejects_bad_entries(values: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        declared(**values)


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_config_file_with_clients_still_loads_as_rules(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        "default_policy: deny\n"
        "clients:\n"
        "  - client_id: grafana\n"
        "    name: Grafana\n"
        "    redirect_uris: https://grafana.example.com/login/generic_oauth\n"
        "    secret_env: GRAFANA_SECRET\n",
    )
    assert load_rules(path).default_policy == "deny"
    [client] = load_declared_clients(path)
    assert client.redirect_uris == ["https://grafana.example.com/login/generic_oauth"]


def test_config_file_without_clients_declares_none(tmp_path: Path) -> None:
    assert load_declared_clients(write_config(tmp_path, "default_policy: allow\n")) == []


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ("  - client_id: a\n    name: A\n    public: true\n", "redirect_uris"),
        (
            "  - client_id: a\n    name: A\n    public: true\n    redirect_uris: [http://evil.com/]\n",
            "http is allowed only",
        ),
        (
            "  - {client_id: a, name: A, public: true, redirect_uris: [https://a.example.com/]}\n"
            "  - {client_id: a, name: B, public: true, redirect_uris: [https://b.example.com/]}\n",
            "declared twice",
        ),
    ],
)
def test_bad_clients_section_is_one_readable_error(
    tmp_path: Path, entries: str, message: str
) -> None:
    path = write_config(tmp_path, "clients:\n" + entries)
    with pytest.raises(ClientsConfigError, match=message) as caught:
        load_declared_clients(path)
    assert str(caught.value).startswith(str(path)) and "'a'" in str(caught.value)


def test_start_up_syncs_declared_clients(
    make_settings: Callable[..., Settings],
    storage_env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import asyncio

    path = write_config(
        tmp_path,
        "clients:\n"
        "  - client_id: grafana\n"
        "    name: Grafana\n"
        "    redirect_uris: [https://grafana.example.com/cb]\n"
        "    secret_env: GRAFANA_SECRET\n",
    )
    settings = make_settings(**storage_env, config_file=str(path))
    with pytest.raises(ClientsConfigError, match="GRAFANA_SECRET"):
        build_services(settings)
    monkeypatch.setenv("GRAFANA_SECRET", "s3cret")
    built = build_services(settings)
    try:
        grafana = built.clients.get("grafana")
        assert grafana.declared and built.clients.verify_secret(grafana, "s3cret")
    finally:
        asyncio.run(built.close())
