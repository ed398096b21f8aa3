"""`passgate clients` as an operator uses it: real processes, real exit codes."""

from __future__ import annotations

from pathlib import Path

from gateway.core.crypto import hash_token
from tests.cli.command import run

APP = "https://auth.example.com"
CB = "https://app.example.com/callback"


def fields(stdout: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in stdout.splitlines() if ": " in line)


def test_add_prints_the_secret_once_and_the_values_for_the_app(tmp_path: Path) -> None:
    added = run(tmp_path, "clients", "add", "Grafana", "--redirect-uri", CB, APP_URL=APP)
    assert added.returncode == 0, added.stderr
    values = fields(added.stdout)
    assert len(values["client_secret"]) >= 43
    assert "will not be shown again" in added.stderr
    assert values["issuer"] == APP
    assert values["discovery_url"] == f"{APP}/.well-known/openid-configuration"
    assert values["authorization_endpoint"] == f"{APP}/authorize"
    assert values["token_endpoint"] == f"{APP}/api/oidc/token"
    assert values["userinfo_endpoint"] == f"{APP}/api/oidc/userinfo"

    shown = run(tmp_path, "clients", "show", values["client_id"], APP_URL=APP)
    assert shown.returncode == 0 and "client_secret" not in fields(shown.stdout)
    assert values["client_secret"] not in shown.stdout
    assert fields(shown.stdout)["redirect_uris"] == CB


def test_public_client_with_every_option(tmp_path: Path) -> None:
    assert run(tmp_path, "groups", "add", "family").returncode == 0
    added = run(
        tmp_path,
        "clients",
        "add",
        "Phone app",
        "--public",
        "--redirect-uri",
        "com.example.app:/cb",
        "--redirect-uri",
        "https://*.example.com/cb",
        "--wildcard-callbacks",
        "--post-logout-uri",
        "https://app.example.com/",
        "--group",
        "family",
        "--no-pkce",
        "--id-token-alg",
        "ES256",
        "--refresh-tokens",
        "--access-token-lifetime",
        "600",
        "--refresh-token-lifetime",
        "7200",
        "--logo-url",
        "https://app.example.com/logo.png",
    )
    assert added.returncode == 0, added.stderr
    values = fields(added.stdout)
    assert "client_secret" not in values and values["type"] == "public"
    assert values["redirect_uris"] == "com.example.app:/cb https://*.example.com/cb"
    assert values["allowed_groups"] == "family" and values["pkce_required"] == "no"
    assert values["id_token_alg"] == "ES256" and values["access_token_lifetime"] == "600s"


def test_list_update_rotate_delete(tmp_path: Path) -> None:
    added = run(tmp_path, "clients", "add", "App", "--redirect-uri", CB)
    client_id = fields(added.stdout)["client_id"]
    listed = run(tmp_path, "clients", "list")
    assert listed.stdout.startswith(f"{client_id}\tApp\tconfidential")

    updated = run(tmp_path, "clients", "update", client_id, "--name", "New", "--no-pkce")
    assert updated.returncode == 0, updated.stderr
    assert fields(updated.stdout)["name"] == "New"
    assert fields(updated.stdout)["pkce_required"] == "no"
    assert fields(updated.stdout)["redirect_uris"] == CB

    rotated = run(tmp_path, "clients", "rotate-secret", client_id)
    assert rotated.returncode == 0 and "will not be shown again" in rotated.stderr
    assert fields(rotated.stdout)["client_secret"] != fields(added.stdout)["client_secret"]

    assert run(tmp_path, "clients", "delete", client_id).returncode == 0
    assert run(tmp_path, "clients", "list").stdout == ""


def test_bad_redirect_uri_exits_2_with_one_line(tmp_path: Path) -> None:
    result = run(tmp_path, "clients", "add", "App", "--redirect-uri", "javascript:alert(1)")
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0
    assert "redirect URI" in result.stderr and "Traceback" not in result.stderr


def test_unknown_client_exits_2(tmp_path: Path) -> None:
    result = run(tmp_path, "clients", "show", "nope")
    assert result.returncode == 2 and "nope" in result.stderr


def test_declared_clients_come_from_the_config_file_and_are_read_only(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "clients:\n"
        "  - client_id: grafana\n"
        "    name: Grafana\n"
        f"    redirect_uris: [{CB}]\n"
        f"    secret_hash: {hash_token('s3cret')}\n"
    )
    listed = run(tmp_path, "clients", "list", CONFIG_FILE=str(config))
    assert listed.stdout.startswith("grafana\tGrafana\tconfidential\tdeclared")
    deleted = run(tmp_path, "clients", "delete", "grafana", CONFIG_FILE=str(config))
    assert deleted.returncode == 2 and "CONFIG_FILE" in deleted.stderr


def test_missing_secret_env_stops_startup_with_one_line(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "clients:\n"
        "  - client_id: grafana\n"
        "    name: Grafana\n"
        f"    redirect_uris: [{CB}]\n"
        "    secret_env: GRAFANA_CLIENT_SECRET\n"
    )
    result = run(tmp_path, "serve", CONFIG_FILE=str(config))
    last = result.stderr.strip().splitlines()[-1]
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert last.startswith("passgate: ") and "GRAFANA_CLIENT_SECRET" in last


def test_key_client_with_federated_identity_and_required_par(tmp_path: Path) -> None:
    """PAR and signed client authentication (oidc-app-auth) from the command line."""
    jwks = tmp_path / "jwks.json"
    jwks.write_text(
        '{"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1", '
        '"x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", '
        '"y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}'
    )
    identity = "issuer=https://kubernetes.default.svc,subject=system:serviceaccount:ci:deployer"
    added = run(
        tmp_path,
        "clients",
        "add",
        "Deployer",
        "--redirect-uri",
        CB,
        "--require-par",
        "--auth-method",
        "private_key_jwt",
        "--jwks-file",
        str(jwks),
        "--federated-identity",
        identity + ",replay_protection=yes",
        APP_URL=APP,
    )
    assert added.returncode == 0, added.stderr
    values = fields(added.stdout)
    assert values["token_endpoint_auth_method"] == "private_key_jwt"
    assert values["require_pushed_authorization_requests"] == "yes"
    assert values["jwks"] == "1 key(s)"
    assert values["federated_identities"] == "https://kubernetes.default.svc"


def test_malformed_federated_identity_is_refused(tmp_path: Path) -> None:
    added = run(
        tmp_path,
        "clients",
        "add",
        "Deployer",
        "--redirect-uri",
        CB,
        "--auth-method",
        "private_key_jwt",
        "--federated-identity",
        "https://kubernetes.default.svc",
        APP_URL=APP,
    )
    assert added.returncode != 0 and "key=value" in added.stderr
