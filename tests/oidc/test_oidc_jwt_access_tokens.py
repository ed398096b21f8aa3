"""JWT access tokens (RFC 9068) and resource indicators (RFC 8707): a client set to `jwt`, and
every token asked for an allowed `resource`, gets an `at+jwt` signed with the active key that a
resource server verifies offline with the JWKS; it is still recorded (hashed), so revocation
and introspection work. Opaque stays the default. In-process, plus npm's jose verifying a token
openid-client obtained from a real Passgate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from playwright.sync_api import Browser
from starlette.datastructures import FormData

from gateway.accounts.users import User
from gateway.admin.api_models import ClientCreate, ClientOut
from gateway.admin.client_pages import client_settings, form_of
from gateway.core.errors import InvalidInput
from gateway.oidc.clients import DeclaredClient
from tests.browser import DOMAIN, Gate
from tests.cli.command import run
from tests.conftest import PassgateProcess
from tests.oidc.in_process import APP, Flow, Op, assert_token_error
from tests.oidc.relying_party import RP_CALLBACK, add_client, openid_client_code_flow

API = "https://api.example.com"
OTHER_API = "https://photos.example.com"


def jwt_flow(op: Op, user: User, **settings: Any) -> Flow:
    rp = op.client(refresh_tokens=True, **settings)
    op.sign_in(user)
    op.consent(user, rp)
    return op.flow(rp)


def verified(op: Op, token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The access token's header and claims, checked against the published JWKS only."""
    keys = KeySet.import_key_set(op.backend.get("/.well-known/jwks.json").json())
    decoded = jwt.decode(token, keys, algorithms=["RS256"])
    return dict(decoded.header), dict(decoded.claims)


def test_a_jwt_client_gets_an_at_jwt_a_resource_server_verifies_offline(
    op: Op, alice: User
) -> None:
    flow = jwt_flow(op, alice, access_token_format="jwt")
    tokens = op.tokens(flow)
    header, claims = verified(op, tokens["access_token"])
    assert header["typ"] == "at+jwt" and header["alg"] == "RS256" and header["kid"]
    assert claims["iss"] == APP and claims["aud"] == flow.rp.client_id
    assert claims["client_id"] == flow.rp.client_id
    assert claims["sub"] == op.id_token_claims(tokens["id_token"])["sub"]
    assert claims["scope"] == "openid profile email groups"
    assert claims["exp"] - claims["iat"] == 3600 and claims["jti"]
    assert isinstance(claims["auth_time"], int)
    assert claims["groups"] == ["family"]
    assert tokens["token_type"] == "Bearer"


def test_groups_are_in_the_token_only_when_the_scope_asks(op: Op, alice: User) -> None:
    flow = jwt_flow(op, alice, access_token_format="jwt")
    code = op.code(flow, scope="openid profile")
    _, claims = verified(op, op.exchange(flow, code).json()["access_token"])
    assert "groups" not in claims


def test_opaque_access_tokens_stay_the_default(op: Op, alice: User) -> None:
    flow = jwt_flow(op, alice)
    token = op.tokens(flow)["access_token"]
    assert token.count(".") == 0
    assert op.services.clients.get(flow.rp.client_id).access_token_format == "opaque"


def test_a_jwt_access_token_is_recorded_so_it_can_be_revoked(op: Op, alice: User) -> None:
    flow = jwt_flow(op, alice, access_token_format="jwt")
    token = op.tokens(flow)["access_token"]
    assert op.userinfo(token).status_code == 200
    assert op.introspect(flow.rp, token)["active"] is True
    revoked = op.backend.post("/api/oidc/revoke", data={"token": token}, auth=flow.rp.basic)
    assert revoked.status_code == 200
    assert op.introspect(flow.rp, token) == {"active": False}
    assert op.userinfo(token).status_code == 401


def test_a_token_for_a_resource_is_a_jwt_whose_aud_is_the_resource(op: Op, alice: User) -> None:
    flow = jwt_flow(op, alice, allowed_resources=[API, OTHER_API])
    tokens = op.tokens(flow, resource=API)
    _, claims = verified(op, tokens["access_token"])
    assert claims["aud"] == API and claims["client_id"] == flow.rp.client_id
    assert op.introspect(flow.rp, tokens["access_token"])["aud"] == API


def test_a_token_for_a_resource_is_not_taken_at_userinfo(op: Op, alice: User) -> None:
    flow = jwt_flow(op, alice, allowed_resources=[API])
    token = op.tokens(flow, resource=API)["access_token"]
    response = op.userinfo(token)
    assert response.status_code == 401 and "another resource" in response.text


def test_a_resource_the_client_may_not_ask_for_is_invalid_target(op: Op, alice: User) -> None:
    flow = jwt_flow(op, alice, allowed_resources=[API])
    response = op.exchange(flow, op.code(flow), resource=OTHER_API)
    assert_token_error(response, "invalid_target")
    assert OTHER_API in response.json()["error_description"]
    assert not op.services.db.fetchall("SELECT id FROM oauth_tokens")


@pytest.mark.parametrize("resource", ["api", "https://api.example.com/#x", "ftp://api.example"])
def test_a_malformed_resource_is_invalid_target(op: Op, alice: User, resource: str) -> None:
    flow = jwt_flow(op, alice, allowed_resources=[API])
    assert_token_error(op.exchange(flow, op.code(flow), resource=resource), "invalid_target")


def refresh(op: Op, flow: Flow, token: str, **extra: str) -> dict[str, Any]:
    data = {"grant_type": "refresh_token", "refresh_token": token, **extra}
    response = op.token_request(flow.rp, data)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def test_a_refresh_keeps_the_resource_or_switches_to_another_allowed_one(
    op: Op, alice: User
) -> None:
    flow = jwt_flow(op, alice, allowed_resources=[API, OTHER_API])
    first = op.tokens(flow, resource=API)
    kept = refresh(op, flow, first["refresh_token"])
    assert verified(op, kept["access_token"])[1]["aud"] == API
    switched = refresh(op, flow, kept["refresh_token"], resource=OTHER_API)
    assert verified(op, switched["access_token"])[1]["aud"] == OTHER_API


def test_the_token_response_is_audited_with_its_format_and_audience(op: Op, alice: User) -> None:
    flow = jwt_flow(op, alice, allowed_resources=[API])
    op.tokens(flow, resource=API)
    event = op.services.audit.search(event="token_issued").events[0]
    assert event.details["access_token_format"] == "jwt" and event.details["audience"] == API


def test_resources_must_be_https_urls_without_fragments(op: Op) -> None:
    for bad in ("http://api.example.com", "https://api.example.com/#f", "urn:api"):
        with pytest.raises(InvalidInput):
            op.client(allowed_resources=[bad])
    with pytest.raises(InvalidInput, match="opaque or jwt"):
        op.client(access_token_format="paseto")


def test_config_file_clients_declare_the_token_options() -> None:
    entry = DeclaredClient.model_validate(
        {
            "client_id": "photos",
            "name": "Photos",
            "redirect_uris": ["https://photos.example.com/cb"],
            "public": True,
            "access_token_format": "jwt",
            "allowed_resources": API,
            "dpop_bound_access_tokens": True,
        }
    )
    client = entry.to_client({})
    assert client.access_token_format == "jwt" and client.allowed_resources == (API,)
    assert client.dpop_bound_access_tokens is True


def test_the_admin_api_models_carry_the_token_options(op: Op) -> None:
    body = ClientCreate.model_validate(
        {
            "name": "Photos",
            "redirect_uris": ["https://photos.example.com/cb"],
            "access_token_format": "jwt",
            "allowed_resources": [API],
            "dpop_bound_access_tokens": True,
        }
    )
    client, _ = op.services.clients.create(body.name, body.redirect_uris, **body.settings())
    out = ClientOut.of(client, APP).model_dump()
    assert out["access_token_format"] == "jwt" and out["allowed_resources"] == [API]
    assert out["dpop_bound_access_tokens"] is True


def test_the_cli_sets_shows_and_clears_the_token_options(tmp_path: Path) -> None:
    added = run(
        tmp_path,
        "clients",
        "add",
        "Photos",
        "--redirect-uri",
        "https://photos.example.com/cb",
        "--access-token-format",
        "jwt",
        "--resource",
        API,
        "--resource",
        OTHER_API,
        "--dpop",
    )
    assert added.returncode == 0, added.stderr
    shown = dict(line.split(": ", 1) for line in added.stdout.splitlines() if ": " in line)
    assert shown["access_token_format"] == "jwt"
    assert shown["allowed_resources"] == f"{API} {OTHER_API}"
    assert shown["dpop_bound_access_tokens"] == "yes"
    cleared = run(tmp_path, "clients", "update", shown["client_id"], "--resource", "", "--no-dpop")
    assert cleared.returncode == 0, cleared.stderr
    assert "allowed_resources: -" in cleared.stdout
    assert "dpop_bound_access_tokens: no" in cleared.stdout
    refused = run(tmp_path, "clients", "update", shown["client_id"], "--resource", "http://x.io")
    assert refused.returncode != 0 and "https" in refused.stderr


def test_the_console_form_reads_and_shows_the_token_options(op: Op) -> None:
    form = {
        "name": "Photos",
        "redirect_uris": "https://photos.example.com/cb",
        "access_token_lifetime": "3600",
        "refresh_token_lifetime": "86400",
        "access_token_format": "jwt",
        "allowed_resources": f"{API}\n{OTHER_API}",
        "dpop_bound_access_tokens": "on",
    }
    settings = client_settings(form, FormData(list(form.items())))
    assert settings["access_token_format"] == "jwt"
    assert settings["allowed_resources"] == [API, OTHER_API]
    assert settings["dpop_bound_access_tokens"] is True
    name, uris = settings.pop("name"), settings.pop("redirect_uris")
    client, _ = op.services.clients.create(name, uris, **settings)
    shown = form_of(client)
    assert shown["allowed_resources"] == f"{API}\n{OTHER_API}"
    assert shown["dpop_bound_access_tokens"] == "on" and shown["access_token_format"] == "jwt"


def test_both_metadata_documents_agree(op: Op) -> None:
    """RFC 8414 metadata beside OIDC discovery: same issuer, same endpoints, same everything."""
    oauth = op.backend.get("/.well-known/oauth-authorization-server")
    oidc = op.backend.get("/.well-known/openid-configuration")
    assert oauth.status_code == 200 and oauth.json() == oidc.json()
    assert oauth.json()["issuer"] == APP


def test_jose_verifies_the_access_token_openid_client_obtained(
    idp: tuple[PassgateProcess, Browser, int], openid_client: Path
) -> None:
    """npm's jose checks the at+jwt offline against the JWKS (typ, iss, aud = the resource);
    the refresh brings a new ID token that openid-client validates, and keeps the audience."""
    passgate, browser, port = idp
    issuer = f"http://auth.{DOMAIN}:{port}"
    client_id, secret = add_client(passgate, "--resource", API, "--refresh-tokens")
    alice = Gate(passgate, port, browser).person()
    alice.set_up_account("alice", "Alice Liddell")
    settings = {
        "issuer": issuer,
        "local_url": passgate.url,
        "client_id": client_id,
        "client_secret": secret or "",
        "redirect_uri": RP_CALLBACK,
        "resource": API,
    }
    _, done = openid_client_code_flow(openid_client, alice, "jwt", **settings)
    assert done["header"]["typ"] == "at+jwt"
    payload = done["payload"]
    assert payload["iss"] == issuer and payload["aud"] == API and payload["client_id"] == client_id
    assert payload["sub"] == done["idToken"]["sub"] and payload["groups"] == ["admins"]
    refreshed = done["refreshedIdToken"]
    assert refreshed["sub"] == done["idToken"]["sub"] and refreshed["aud"] == [client_id]
    assert refreshed["auth_time"] == done["idToken"]["auth_time"] and "nonce" not in refreshed
    assert done["refreshedAccessTokenAudience"] == API
