"""A client's several secrets: rotation without downtime (add a secret, move the app, revoke the
old one), expiry, revocation, and the paths that manage them (service, admin API, CLI,
CONFIG_FILE, the migration that moved the single secret). Authentication is probed at the real
introspection endpoint in-process; the last test runs npm's openid-client against a real
Passgate process with the new secret after a rotation."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.sync_api import Browser

from gateway.audit.log import CLI
from gateway.core import metrics
from gateway.core.crypto import hash_token
from gateway.core.errors import Conflict, InvalidInput
from gateway.oidc.client_service import ClientService
from gateway.oidc.clients import DeclaredClient, ReadOnlyClient
from gateway.services import Services
from gateway.storage import migrations
from gateway.storage.db import Database
from tests.browser import DOMAIN, Gate
from tests.cli.command import run
from tests.conftest import PassgateProcess
from tests.oidc.asgi_http import CALLBACK, authenticates, http_for
from tests.oidc.relying_party import RP_CALLBACK, add_client, openid_client_code_flow

pytestmark = pytest.mark.anyio


def confidential(services: Services) -> tuple[str, str]:
    client, secret = services.clients.create("Grafana", [CALLBACK])
    assert secret is not None
    return client.client_id, secret


def refusal(response: httpx.Response) -> str:
    assert response.status_code == 401, response.text
    body = response.json()
    assert body["error"] == "invalid_client"
    return str(body["error_description"])


# --- authentication --------------------------------------------------------------------------


async def test_old_and_new_secret_both_authenticate_during_rotation(services: Services) -> None:
    client_id, old = confidential(services)
    _, new = services.clients.add_secret(client_id, "2026-12")
    async with http_for(services) as http:
        assert (await authenticates(http, client_id, old)).status_code == 200
        assert (await authenticates(http, client_id, new)).status_code == 200
        assert (await authenticates(http, client_id, new + "x")).status_code == 401


async def test_revoked_secret_fails_with_invalid_client_and_the_other_still_works(
    services: Services,
) -> None:
    client_id, old = confidential(services)
    _, new = services.clients.add_secret(client_id, "next")
    first = next(s for s in services.clients.list_secrets(client_id) if s.name == "secret")
    services.clients.revoke_secret(client_id, first.id)
    async with http_for(services) as http:
        assert "revoked" in refusal(await authenticates(http, client_id, old))
        assert (await authenticates(http, client_id, new)).status_code == 200


async def test_expired_secret_fails_with_invalid_client_saying_it_expired(
    services: Services,
) -> None:
    client_id, _ = confidential(services)
    added, value = services.clients.add_secret(client_id, "short", time.time() + 3600)
    services.db.execute(
        "UPDATE oidc_client_secrets SET expires_at = ? WHERE id = ?", (time.time() - 1, added.id)
    )
    counted = metrics.CLIENT_SECRETS_REFUSED.labels(client_id, "expired")
    before = counted._value.get()
    async with http_for(services) as http:
        description = refusal(await authenticates(http, client_id, value))
    assert "expired" in description and "'short'" in description
    assert value not in description
    assert counted._value.get() == before + 1


async def test_a_wrong_secret_is_refused_without_naming_any_secret(services: Services) -> None:
    client_id, _ = confidential(services)
    async with http_for(services) as http:
        description = refusal(await authenticates(http, client_id, "guess"))
    assert "revoked" not in description and "expired" not in description


def test_last_use_is_recorded_on_the_secret_that_was_used(services: Services) -> None:
    client_id, old = confidential(services)
    services.clients.add_secret(client_id, "unused")
    assert services.clients.verify_secret(services.clients.get(client_id), old)
    used = {s.name: s.last_used_at for s in services.clients.list_secrets(client_id)}
    assert used["secret"] is not None and used["unused"] is None


def test_rotate_secret_still_replaces_every_secret_at_once(services: Services) -> None:
    client_id, old = confidential(services)
    _, other = services.clients.add_secret(client_id, "other")
    new = services.clients.rotate_secret(client_id)
    client = services.clients.get(client_id)
    assert services.clients.verify_secret(client, new)
    assert not services.clients.verify_secret(client, old)
    assert not services.clients.verify_secret(client, other)


# --- adding and revoking: refusals -------------------------------------------------------------


def test_add_secret_refuses_a_past_expiry_a_taken_name_and_public_clients(
    services: Services,
) -> None:
    client_id, _ = confidential(services)
    with pytest.raises(InvalidInput, match="future"):
        services.clients.add_secret(client_id, "late", time.time() - 10)
    with pytest.raises(InvalidInput, match="already has an active secret named"):
        services.clients.add_secret(client_id, "secret")
    spa, _ = services.clients.create("SPA", [CALLBACK], public=True)
    with pytest.raises(InvalidInput, match="public"):
        services.clients.add_secret(spa.client_id)


def test_unnamed_secrets_get_distinct_names(services: Services) -> None:
    client_id, _ = confidential(services)
    second, _ = services.clients.add_secret(client_id)
    third, _ = services.clients.add_secret(client_id)
    assert (second.name, third.name) == ("secret-2", "secret-3")


def test_revoking_twice_is_a_conflict(services: Services) -> None:
    client_id, _ = confidential(services)
    (only,) = services.clients.list_secrets(client_id)
    services.clients.revoke_secret(client_id, only.id)
    with pytest.raises(Conflict):
        services.clients.revoke_secret(client_id, only.id)


# --- the admin API ----------------------------------------------------------------------------


async def test_admin_api_adds_lists_and_revokes_secrets_and_audits_without_values(
    services: Services,
) -> None:
    client_id, old = confidential(services)
    _, key = await services.admin.create_api_key(CLI, "ops", "write")
    bearer = {"Authorization": f"Bearer {key}"}
    base = f"/api/admin/clients/{client_id}/secrets"
    async with http_for(services) as http:
        added = await http.post(
            base, json={"name": "2027", "expires_at": "2030-01-01T00:00:00Z"}, headers=bearer
        )
        assert added.status_code == 201, added.text
        new = added.json()["client_secret"]
        assert added.json()["secret"]["expires_at"] == 1893456000.0
        listed = (await http.get(base, headers=bearer)).json()
        assert sorted(s["name"] for s in listed) == ["2027", "secret"]
        assert all(s["state"] == "active" for s in listed)
        assert new not in str(listed) and "secret_hash" not in str(listed)
        old_id = next(s["id"] for s in listed if s["name"] == "secret")
        revoked = await http.delete(f"{base}/{old_id}", headers=bearer)
        assert revoked.status_code == 200 and revoked.json()["state"] == "revoked"
        assert (await http.delete(f"{base}/{old_id}", headers=bearer)).status_code == 409
        past = await http.post(base, json={"expires_at": "2001-01-01"}, headers=bearer)
        assert past.status_code == 422
        assert (await authenticates(http, client_id, new)).status_code == 200
        assert (await authenticates(http, client_id, old)).status_code == 401
    events = {e.event: e for e in services.audit.search(limit=50).events}
    assert events["client_secret_added"].details["secret_name"] == "2027"
    assert events["client_secret_revoked"].details["secret_id"] == old_id
    everything = str([e.details for e in services.audit.search(limit=50).events])
    assert new not in everything and old not in everything


# --- the CLI ----------------------------------------------------------------------------------


def test_cli_rotation_walkthrough(tmp_path: Path) -> None:
    added = run(tmp_path, "clients", "add", "Grafana", "--redirect-uri", CALLBACK)
    client_id = dict(line.split(": ", 1) for line in added.stdout.splitlines())["client_id"]

    second = run(
        tmp_path, "clients", "secret", "add", client_id, "--name", "2027", "--expires-in", "30"
    )
    assert second.returncode == 0, second.stderr
    assert "client_secret: " in second.stdout and "shown only now" in second.stderr
    listed = run(tmp_path, "clients", "secret", "list", client_id)
    rows = [line.split("\t") for line in listed.stdout.splitlines()]
    assert sorted((r[1], r[2]) for r in rows) == [("2027", "active"), ("secret", "active")]
    assert next(r for r in rows if r[1] == "2027")[4] != "never"  # it expires

    old_id = next(r[0] for r in rows if r[1] == "secret")
    revoked = run(tmp_path, "clients", "secret", "revoke", client_id, old_id)
    assert revoked.returncode == 0 and "\trevoked\t" in revoked.stdout
    again = run(tmp_path, "clients", "secret", "revoke", client_id, old_id)
    assert again.returncode != 0 and "already revoked" in again.stderr
    bad = run(tmp_path, "clients", "secret", "add", client_id, "--expires", "soon")
    assert bad.returncode != 0 and "ISO 8601" in bad.stderr


# --- CONFIG_FILE ------------------------------------------------------------------------------


def declared(**values: object) -> DeclaredClient:
    return DeclaredClient.model_validate(
        {"client_id": "grafana", "name": "Grafana", "redirect_uris": [CALLBACK], **values}
    )


def test_declared_client_lists_several_secrets_by_hash_and_env(services: Services) -> None:
    entry = declared(
        secrets=[
            {"name": "old", "secret_hash": hash_token("old-pw"), "expires": "2001-01-01"},
            {"name": "new", "secret_env": "GRAFANA_SECRET"},
        ]
    )
    services.clients.sync_declared([entry], {"GRAFANA_SECRET": "new-pw"})
    grafana = services.clients.get("grafana")
    assert services.clients.verify_secret(grafana, "new-pw")
    assert not services.clients.verify_secret(grafana, "old-pw")  # expired in 2001
    with pytest.raises(ReadOnlyClient):
        services.clients.add_secret("grafana")


def test_declared_secret_keeps_its_last_use_across_restarts(services: Services) -> None:
    entry = declared(secrets=[{"name": "a", "secret_hash": hash_token("pw")}])
    services.clients.sync_declared([entry], {})
    assert services.clients.verify_secret(services.clients.get("grafana"), "pw")
    services.clients.sync_declared([entry], {})
    (secret,) = services.clients.list_secrets("grafana")
    assert secret.last_used_at is not None and secret.created_at > 0


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"secrets": [{"name": "a"}]}, "exactly one of secret_env or secret_hash"),
        (
            {"secrets": [{"secret_hash": hash_token("a")}, {"secret_hash": hash_token("b")}]},
            "its own name",
        ),
        ({"secret_hash": hash_token("a"), "secrets": [{"secret_env": "X"}]}, "exactly one"),
    ],
)
def test_declared_secrets_refuse_bad_lists(values: dict[str, object], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        declared(**values)


def test_config_file_with_a_secrets_list_is_synced_at_start(tmp_path: Path) -> None:
    config = tmp_path / "passgate.yml"
    config.write_text(
        "clients:\n"
        "  - client_id: grafana\n"
        "    name: Grafana\n"
        f"    redirect_uris: [{CALLBACK}]\n"
        "    secrets:\n"
        "      - name: current\n"
        f"        secret_hash: {hash_token('s3cret')}\n"
        "        expires: 2099-01-01T00:00:00Z\n"
    )
    shown = run(tmp_path, "clients", "secret", "list", "grafana", CONFIG_FILE=str(config))
    assert shown.returncode == 0, shown.stderr
    (row,) = [line.split("\t") for line in shown.stdout.splitlines()]
    assert row[1:3] == ["current", "active"] and row[4].startswith("2099-01-01")


# --- the migration ----------------------------------------------------------------------------


def test_migration_moves_each_clients_secret_into_the_secrets_table(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    db = Database.sqlite(tmp_path / "old.db")
    before = tuple(m for m in migrations.MIGRATIONS if m[0] < 12)
    monkeypatch.setattr(migrations, "MIGRATIONS", before)
    migrations.migrate(db)
    db.execute(
        "INSERT INTO oidc_clients (client_id, name, secret_hash, created_at) VALUES (?, ?, ?, ?)",
        ("grafana", "Grafana", hash_token("pw"), 1.0),
    )
    monkeypatch.undo()
    migrations.migrate(db)
    try:
        assert db.fetchall("SELECT client_id, name, secret_hash FROM oidc_client_secrets") == [
            ("grafana", "secret", hash_token("pw"))
        ]
        assert db.fetchone("SELECT secret_hash FROM oidc_clients") == (None,)
        clients = ClientService(db)
        assert clients.verify_secret(clients.get("grafana"), "pw")
    finally:
        db.close()


# --- a real relying party after a rotation -------------------------------------------------------


def test_openid_client_completes_a_code_flow_with_the_new_secret_after_rotation(
    idp: tuple[PassgateProcess, Browser, int], openid_client: Path
) -> None:
    passgate, browser, port = idp
    issuer = f"http://auth.{DOMAIN}:{port}"
    rp_dir = openid_client
    client_id, old = add_client(passgate)
    added = passgate.cli("clients", "secret", "add", client_id, "--name", "rotated")
    assert added.returncode == 0, added.stderr
    new = dict(line.split(": ", 1) for line in added.stdout.splitlines() if ": " in line)[
        "client_secret"
    ]
    listed = passgate.cli("clients", "secret", "list", client_id).stdout.splitlines()
    old_id = next(line.split("\t")[0] for line in listed if "\tsecret\t" in line)
    assert passgate.cli("clients", "secret", "revoke", client_id, old_id).returncode == 0

    alice = Gate(passgate, port, browser).person()
    alice.set_up_account("alice", "Alice Liddell")
    settings = {
        "issuer": issuer,
        "local_url": passgate.url,
        "client_id": client_id,
        "client_secret": new,
        "redirect_uri": RP_CALLBACK,
        "logout_uri": f"https://rp.{DOMAIN}/signed-out",
    }
    callback, done = openid_client_code_flow(rp_dir, alice, "finish", **settings)
    assert parse_qs(urlsplit(callback).query)["iss"] == [issuer]
    assert done["claims"]["preferred_username"] == "alice"
    assert done["introspection"]["client_id"] == client_id
    # The revoked secret no longer authenticates the same client.
    refused = httpx.post(
        f"{passgate.url}/api/oidc/introspect", data={"token": "x"}, auth=(client_id, old or "")
    )
    assert refused.status_code == 401 and "revoked" in refused.json()["error_description"]
