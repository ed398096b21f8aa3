"""DPoP (RFC 9449): a client that proves a key at the token endpoint gets tokens bound to it
(`token_type: DPoP`, `cnf.jkt`), which only that key can use; every bad proof is refused with
invalid_dpop_proof. In-process for the refusals; npm's openid-client against a real Passgate
for the whole flow."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from playwright.sync_api import Browser

from gateway.accounts.users import User
from gateway.oidc.dpop import ALGORITHMS
from tests.browser import DOMAIN, Gate
from tests.conftest import PassgateProcess
from tests.oidc.dpop_proofs import DpopKey
from tests.oidc.in_process import APP, Flow, Op, assert_token_error
from tests.oidc.relying_party import RP_CALLBACK, add_client, openid_client_code_flow

TOKEN_URL = f"{APP}/api/oidc/token"
USERINFO_URL = f"{APP}/api/oidc/userinfo"


def dpop_flow(op: Op, user: User, public: bool = False, **settings: object) -> Flow:
    rp = op.client(public=public, refresh_tokens=True, **settings)
    op.sign_in(user)
    op.consent(user, rp)
    return op.flow(rp)


def bound_tokens(op: Op, flow: Flow, key: DpopKey) -> dict[str, object]:
    return op.tokens(flow, headers={"DPoP": key.proof("POST", TOKEN_URL)})


def test_a_proof_at_the_token_endpoint_binds_the_token_to_the_key(op: Op, alice: User) -> None:
    flow, key = dpop_flow(op, alice), DpopKey()
    tokens = bound_tokens(op, flow, key)
    assert tokens["token_type"] == "DPoP"
    answer = op.introspect(flow.rp, str(tokens["access_token"]))
    assert answer["active"] is True and answer["token_type"] == "DPoP"
    assert answer["cnf"] == {"jkt": key.jkt}
    row = op.services.db.fetchone("SELECT dpop_jkt FROM oauth_tokens")
    assert row is not None and row[0] == key.jkt


def test_a_jwt_access_token_carries_the_keys_thumbprint(op: Op, alice: User) -> None:
    flow, key = dpop_flow(op, alice, access_token_format="jwt"), DpopKey()
    tokens = bound_tokens(op, flow, key)
    claims = op.id_token_claims(str(tokens["access_token"]))  # same JWKS, same check
    assert claims["cnf"] == {"jkt": key.jkt}


def test_userinfo_takes_a_bound_token_with_a_proof_by_its_key(op: Op, alice: User) -> None:
    flow, key = dpop_flow(op, alice), DpopKey()
    token = str(bound_tokens(op, flow, key)["access_token"])
    response = op.userinfo(token, "DPoP", key.proof("GET", USERINFO_URL, token))
    assert response.status_code == 200, response.text
    assert response.json()["preferred_username"] == "alice"


def test_a_bound_token_sent_as_bearer_is_refused(op: Op, alice: User) -> None:
    flow, key = dpop_flow(op, alice), DpopKey()
    token = str(bound_tokens(op, flow, key)["access_token"])
    response = op.userinfo(token)
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('DPoP error="invalid_token"') and "algs=" in challenge


def test_a_proof_by_another_key_at_userinfo_is_refused(op: Op, alice: User) -> None:
    flow, key = dpop_flow(op, alice), DpopKey()
    token = str(bound_tokens(op, flow, key)["access_token"])
    response = op.userinfo(token, "DPoP", DpopKey().proof("GET", USERINFO_URL, token))
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith('DPoP error="invalid_dpop_proof"')
    assert response.json()["error"] == "invalid_dpop_proof"


def test_a_proof_for_another_access_token_at_userinfo_is_refused(op: Op, alice: User) -> None:
    flow, key = dpop_flow(op, alice), DpopKey()
    token = str(bound_tokens(op, flow, key)["access_token"])
    response = op.userinfo(token, "DPoP", key.proof("GET", USERINFO_URL, "another token"))
    assert response.status_code == 401 and response.json()["error"] == "invalid_dpop_proof"


def test_a_bearer_token_sent_as_dpop_is_refused(op: Op, alice: User) -> None:
    flow, key = dpop_flow(op, alice), DpopKey()
    token = str(op.tokens(flow)["access_token"])
    response = op.userinfo(token, "DPoP", key.proof("GET", USERINFO_URL, token))
    assert response.status_code == 401 and response.json()["error"] == "invalid_token"


def assert_proof_refused(op: Op, flow: Flow, proof: str, reason: str) -> None:
    response = op.exchange(flow, op.code(flow), headers={"DPoP": proof})
    assert_token_error(response, "invalid_dpop_proof")
    assert reason in response.json()["error_description"]
    assert not op.services.db.fetchall("SELECT id FROM oauth_tokens")


def test_a_proof_for_another_method_is_refused(op: Op, alice: User) -> None:
    flow = dpop_flow(op, alice)
    assert_proof_refused(op, flow, DpopKey().proof("GET", TOKEN_URL), "htm")


def test_a_proof_for_another_url_is_refused(op: Op, alice: User) -> None:
    flow = dpop_flow(op, alice)
    assert_proof_refused(op, flow, DpopKey().proof("POST", USERINFO_URL), "htu")


def test_a_proof_with_a_stale_iat_is_refused(op: Op, alice: User) -> None:
    flow = dpop_flow(op, alice)
    stale = DpopKey().proof("POST", TOKEN_URL, iat=int(time.time()) - 600)
    assert_proof_refused(op, flow, stale, "iat")


def test_a_replayed_proof_is_refused(op: Op, alice: User) -> None:
    flow, key = dpop_flow(op, alice), DpopKey()
    proof = key.proof("POST", TOKEN_URL)
    assert op.exchange(flow, op.code(flow), headers={"DPoP": proof}).status_code == 200
    response = op.exchange(flow, op.code(flow), headers={"DPoP": proof})
    assert_token_error(response, "invalid_dpop_proof")
    assert "already used" in response.json()["error_description"]


def test_a_proof_of_another_type_is_refused(op: Op, alice: User) -> None:
    flow = dpop_flow(op, alice)
    proof = DpopKey().proof("POST", TOKEN_URL, header={"typ": "JWT"})
    assert_proof_refused(op, flow, proof, "typ")


def test_a_proof_carrying_a_private_key_is_refused(op: Op, alice: User) -> None:
    flow, key = dpop_flow(op, alice), DpopKey()
    proof = key.proof("POST", TOKEN_URL, header={"jwk": key.key.as_dict(private=True)})
    assert_proof_refused(op, flow, proof, "public key")


def test_a_proof_signed_by_a_key_other_than_its_jwk_is_refused(op: Op, alice: User) -> None:
    flow = dpop_flow(op, alice)
    other = DpopKey().key.as_dict(private=False)
    assert_proof_refused(
        op, flow, DpopKey().proof("POST", TOKEN_URL, header={"jwk": other}), "signature"
    )


def test_a_refused_proof_is_audited(op: Op, alice: User) -> None:
    flow = dpop_flow(op, alice)
    op.exchange(flow, op.code(flow), headers={"DPoP": DpopKey().proof("GET", TOKEN_URL)})
    events = op.services.audit.search(event="dpop_proof_refused").events
    assert events and events[0].success is False and "htm" in events[0].reason


def test_a_client_that_requires_dpop_is_refused_without_a_proof(op: Op, alice: User) -> None:
    flow = dpop_flow(op, alice, dpop_bound_access_tokens=True)
    response = op.exchange(flow, op.code(flow))
    assert_token_error(response, "invalid_dpop_proof")
    assert not op.services.db.fetchall("SELECT id FROM oauth_tokens")


def refresh(op: Op, flow: Flow, token: str, key: DpopKey | None) -> httpx.Response:
    headers = {"DPoP": key.proof("POST", TOKEN_URL)} if key else None
    data = {"grant_type": "refresh_token", "refresh_token": token}
    return op.token_request(flow.rp, data, headers)


def test_a_public_clients_refresh_token_is_bound_to_its_key(op: Op, alice: User) -> None:
    flow, key = dpop_flow(op, alice, public=True), DpopKey()
    refresh_token = str(bound_tokens(op, flow, key)["refresh_token"])
    for stranger in (DpopKey(), None):
        response = refresh(op, flow, refresh_token, stranger)
        assert_token_error(response, "invalid_dpop_proof")
    renewed = refresh(op, flow, refresh_token, key)
    assert renewed.status_code == 200
    assert renewed.json()["token_type"] == "DPoP"


def test_discovery_lists_the_dpop_algorithms(op: Op) -> None:
    meta = op.backend.get("/.well-known/openid-configuration").json()
    assert meta["dpop_signing_alg_values_supported"] == list(ALGORITHMS)
    assert "HS256" not in meta["dpop_signing_alg_values_supported"]


def test_openid_client_runs_the_code_flow_with_dpop(
    idp: tuple[PassgateProcess, Browser, int], openid_client: Path
) -> None:
    """openid-client's getDPoPHandle: code exchange, userinfo and refresh all with proofs;
    a proof by another key is refused at userinfo."""
    passgate, browser, port = idp
    issuer = f"http://auth.{DOMAIN}:{port}"
    client_id, secret = add_client(passgate, "--dpop", "--refresh-tokens")
    alice = Gate(passgate, port, browser).person()
    alice.set_up_account("alice", "Alice Liddell")
    settings = {
        "issuer": issuer,
        "local_url": passgate.url,
        "client_id": client_id,
        "client_secret": secret or "",
        "redirect_uri": RP_CALLBACK,
    }
    _, done = openid_client_code_flow(openid_client, alice, "dpop", **settings)
    assert done["tokenType"].lower() == "dpop"
    assert done["userinfo"]["preferred_username"] == "alice"
    assert done["refreshedTokenType"].lower() == "dpop"
    refreshed = done["refreshedClaims"]  # openid-client validated the refresh's ID token
    assert refreshed["sub"] == done["claims"]["sub"] and "nonce" not in refreshed
    assert refreshed["auth_time"] == done["claims"]["auth_time"]
    assert done["introspection"]["token_type"] == "DPoP" and done["introspection"]["cnf"]["jkt"]
    assert done["wrongKey"] == "invalid_dpop_proof"
