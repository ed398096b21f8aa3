"""Signing-key rotation, custom claims and withdrawing consent."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from gateway.core.errors import InvalidInput
from gateway.services import Services
from gateway.web.app import create_app


def test_rotation_keeps_the_old_key_published_and_signs_with_the_new(services: Services) -> None:
    before = {key["kid"] for key in services.keys.jwks()["keys"]}
    new = services.keys.rotate()
    after = {key["kid"] for key in services.keys.jwks()["keys"]}
    assert before < after and set(new) <= after
    assert services.keys.active("RS256").kid in new
    assert services.keys.active("ES256").kid in new


def test_jwks_never_publishes_private_parts(services: Services) -> None:
    for key in services.keys.jwks()["keys"]:
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key)
        assert key["use"] == "sig" and key["alg"] in ("RS256", "ES256")


def test_signing_keys_are_stored_encrypted(services: Services) -> None:
    rows = services.db.fetchall("SELECT private_key FROM signing_keys")
    assert rows and all("PRIVATE KEY" not in str(row[0]) for row in rows)


def test_user_claims_win_over_group_claims(services: Services) -> None:
    services.users.create_group("family")
    user = services.users.create_user("alice", groups=("family",))
    services.custom_claims.set("group:family", "tier", "gold")
    services.custom_claims.set("group:family", "quota", "10")
    services.custom_claims.set("user:alice", "tier", "platinum")
    claims = services.oidc.claims(user, "openid profile")
    assert claims["tier"] == "platinum" and claims["quota"] == "10"
    assert claims["sub"] == user.id and claims["preferred_username"] == "alice"


@pytest.mark.parametrize("claim", ["sub", "email", "groups", "preferred_username", "9lives"])
def test_standard_or_malformed_claim_names_are_refused(services: Services, claim: str) -> None:
    services.users.create_user("alice")
    with pytest.raises(InvalidInput):
        services.custom_claims.set("user:alice", claim, "x")


def test_withdrawn_consent_revokes_the_apps_tokens(services: Services) -> None:
    user = services.users.create_user("alice")
    client, _ = services.clients.create("Memos", ["https://memos.example.com/auth/callback"])
    services.oauth.grant_consent(user.id, client.client_id, {"openid", "profile"})
    issued = services.oauth.save_token(
        access_token="at-1",
        refresh_token="rt-1",
        client_id=client.client_id,
        user_id=user.id,
        scope="openid profile",
        auth_time=0,
        access_lifetime=3600,
        refresh_lifetime=86400,
        family_id=None,
        code_hash=None,
    )
    assert services.oauth.consented_scope(user.id, client.client_id) == {"openid", "profile"}
    services.oauth.revoke_consent(user.id, client.client_id)
    assert services.oauth.consented_scope(user.id, client.client_id) == set()
    token = services.oauth.by_access_token("at-1")
    assert token is not None and token.id == issued.id and token.is_revoked()


def test_login_hint_prefills_the_sign_in_page(services: Services) -> None:
    services.users.create_user("alice")
    client, _ = services.clients.create("Memos", ["https://memos.example.com/auth/callback"])
    query = {
        "client_id": client.client_id,
        "redirect_uri": "https://memos.example.com/auth/callback",
        "response_type": "code",
        "scope": "openid",
        "state": "s1",
        "login_hint": "alice",
    }

    async def run() -> tuple[httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=create_app(services), client=("127.0.0.1", 1))
        async with httpx.AsyncClient(
            transport=transport, base_url="https://auth.example.com"
        ) as http:
            first = await http.get("/authorize", params=query)
            login = await http.get(first.headers["location"])
            return first, login

    first, login = asyncio.run(run())
    assert first.status_code == 303
    params = parse_qs(urlsplit(first.headers["location"]).query)
    assert params["hint"] == ["alice"] and params["force"] == ["1"]
    assert 'value="alice"' in login.text
