"""Signed client authentication at the token endpoint (RFC 7523, OpenID Connect Core 9):
private_key_jwt (inline JWKS or jwks_uri), client_secret_jwt (the secret sealed at rest), and
federated client credentials (a trusted issuer's JWT, as Pocket-ID has them). Each assertion is
refused with invalid_client and a reason when its signature, iss/sub, aud, exp or jti is wrong,
and the refusal is audited without the assertion. The in-process app answers; a small HTTP
server on loopback plays the app's jwks_uri and the trusted issuer.

The same methods against npm openid-client through Chromium: test_oidc_par.py (PrivateKeyJwt)
and test_oidc_response_modes.py (ClientSecretJwt)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey, RSAKey

from gateway.accounts.users import User
from gateway.core.errors import InvalidInput
from gateway.oidc import client_auth
from gateway.oidc.client_service import AppAuth
from gateway.oidc.clients import DeclaredClient, FederatedIdentity
from tests.oidc.in_process import APP, Flow, Op, Rp, assert_token_error

TOKEN_URL = f"{APP}/api/oidc/token"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def public_jwks(*keys: ECKey | RSAKey) -> str:
    return json.dumps({"keys": [key.as_dict(private=False) for key in keys]})


def assertion(
    key: ECKey | RSAKey | OctKey, client_id: str, alg: str = "ES256", **claims: Any
) -> str:
    now = int(time.time())
    payload = {
        "iss": client_id,
        "sub": client_id,
        "aud": TOKEN_URL,
        "iat": now,
        "exp": now + 60,
        "jti": str(uuid.uuid4()),
        **claims,
    }
    header = {"alg": alg, **({"kid": key.kid} if key.kid else {})}
    return jwt.encode(header, {k: v for k, v in payload.items() if v is not None}, key)


def exchange_with(op: Op, flow: Flow, client_assertion: str, **extra: str) -> httpx.Response:
    """The code of a fresh authorization, exchanged with `client_assertion` as the only
    client authentication."""
    code = op.code(flow)
    return op.backend.post(
        "/api/oidc/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": flow.rp.redirect_uri,
            "code_verifier": flow.verifier,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": client_assertion,
            **extra,
        },
    )


@pytest.fixture
def key() -> ECKey:
    return ECKey.generate_key("P-256", parameters={"kid": "app-key-1"})


@pytest.fixture
def signed_in(op: Op, alice: User) -> Op:
    op.sign_in(alice)
    return op


def key_client(op: Op, alice: User, **app_auth: Any) -> Rp:
    rp = op.client(app_auth=AppAuth(token_endpoint_auth_method="private_key_jwt", **app_auth))
    op.consent(alice, rp)
    return Rp(rp.client_id, None, rp.redirect_uri)


# --- private_key_jwt -----------------------------------------------------------------------


def test_private_key_jwt_client_gets_tokens_with_a_signed_assertion(
    signed_in: Op, alice: User, key: ECKey
) -> None:
    rp = key_client(signed_in, alice, jwks=public_jwks(key))
    response = exchange_with(signed_in, signed_in.flow(rp), assertion(key, rp.client_id))
    assert response.status_code == 200, response.text
    assert response.json()["id_token"]


def test_issuer_is_an_accepted_audience_too(signed_in: Op, alice: User, key: ECKey) -> None:
    rp = key_client(signed_in, alice, jwks=public_jwks(key))
    signed = assertion(key, rp.client_id, aud=APP)
    assert exchange_with(signed_in, signed_in.flow(rp), signed).status_code == 200


def test_replayed_jti_is_refused(signed_in: Op, alice: User, key: ECKey) -> None:
    rp = key_client(signed_in, alice, jwks=public_jwks(key))
    signed = assertion(key, rp.client_id)
    assert exchange_with(signed_in, signed_in.flow(rp), signed).status_code == 200
    replayed = exchange_with(signed_in, signed_in.flow(rp), signed)
    assert_token_error(replayed, "invalid_client", 401)
    assert "JWT ID" in replayed.json()["error_description"]


def test_wrong_audience_is_refused(signed_in: Op, alice: User, key: ECKey) -> None:
    rp = key_client(signed_in, alice, jwks=public_jwks(key))
    signed = assertion(key, rp.client_id, aud="https://other.example.com/token")
    response = exchange_with(signed_in, signed_in.flow(rp), signed)
    assert_token_error(response, "invalid_client", 401)
    assert "aud" in response.json()["error_description"]


def test_expired_assertion_is_refused(signed_in: Op, alice: User, key: ECKey) -> None:
    rp = key_client(signed_in, alice, jwks=public_jwks(key))
    past = int(time.time()) - 600
    signed = assertion(key, rp.client_id, iat=past - 60, exp=past)
    response = exchange_with(signed_in, signed_in.flow(rp), signed)
    assert_token_error(response, "invalid_client", 401)
    assert "expired" in response.json()["error_description"]


def test_assertion_without_exp_is_refused(signed_in: Op, alice: User, key: ECKey) -> None:
    rp = key_client(signed_in, alice, jwks=public_jwks(key))
    response = exchange_with(signed_in, signed_in.flow(rp), assertion(key, rp.client_id, exp=None))
    assert_token_error(response, "invalid_client", 401)


def test_assertion_valid_for_too_long_is_refused(signed_in: Op, alice: User, key: ECKey) -> None:
    rp = key_client(signed_in, alice, jwks=public_jwks(key))
    signed = assertion(key, rp.client_id, exp=int(time.time()) + 7200)
    response = exchange_with(signed_in, signed_in.flow(rp), signed)
    assert_token_error(response, "invalid_client", 401)
    assert "300 seconds" in response.json()["error_description"]


def test_assertion_signed_with_an_unknown_key_is_refused(
    signed_in: Op, alice: User, key: ECKey
) -> None:
    rp = key_client(signed_in, alice, jwks=public_jwks(key))
    stranger = ECKey.generate_key("P-256", parameters={"kid": "app-key-1"})
    response = exchange_with(signed_in, signed_in.flow(rp), assertion(stranger, rp.client_id))
    assert_token_error(response, "invalid_client", 401)
    assert not signed_in.services.db.fetchall("SELECT id FROM oauth_tokens")


def test_iss_other_than_the_client_is_refused(signed_in: Op, alice: User, key: ECKey) -> None:
    rp = key_client(signed_in, alice, jwks=public_jwks(key))
    signed = assertion(key, rp.client_id, iss="someone-else")
    assert_token_error(exchange_with(signed_in, signed_in.flow(rp), signed), "invalid_client", 401)


def test_hmac_assertion_for_a_key_client_is_refused(signed_in: Op, alice: User, key: ECKey) -> None:
    """No algorithm confusion: a private_key_jwt client's assertions are asymmetric only."""
    rp = key_client(signed_in, alice, jwks=public_jwks(key))
    hmac = OctKey.import_key(b"k" * 32)
    signed = assertion(hmac, rp.client_id, alg="HS256")
    assert_token_error(exchange_with(signed_in, signed_in.flow(rp), signed), "invalid_client", 401)


def test_key_client_sending_a_secret_is_refused(signed_in: Op, alice: User, key: ECKey) -> None:
    rp = key_client(signed_in, alice, jwks=public_jwks(key))
    flow = signed_in.flow(rp)
    response = signed_in.backend.post(
        "/api/oidc/token",
        data={
            "grant_type": "authorization_code",
            "code": signed_in.code(flow),
            "redirect_uri": rp.redirect_uri,
            "code_verifier": flow.verifier,
        },
        auth=(rp.client_id, "a-guessed-secret"),
    )
    assert_token_error(response, "invalid_client", 401)
    assert "private_key_jwt" in response.json()["error_description"]


def test_secret_client_sending_an_assertion_is_refused(
    signed_in: Op, alice: User, key: ECKey
) -> None:
    rp = signed_in.client()
    signed_in.consent(alice, rp)
    response = exchange_with(signed_in, signed_in.flow(rp), assertion(key, rp.client_id))
    assert_token_error(response, "invalid_client", 401)
    assert "client_secret_basic" in response.json()["error_description"]


def test_wrong_assertion_type_is_refused(signed_in: Op, alice: User, key: ECKey) -> None:
    rp = key_client(signed_in, alice, jwks=public_jwks(key))
    response = exchange_with(
        signed_in,
        signed_in.flow(rp),
        assertion(key, rp.client_id),
        client_assertion_type="urn:ietf:params:oauth:client-assertion-type:saml2-bearer",
    )
    assert_token_error(response, "invalid_client", 401)


def test_refusal_is_audited_with_its_reason_but_never_the_assertion(
    signed_in: Op, alice: User, key: ECKey
) -> None:
    rp = key_client(signed_in, alice, jwks=public_jwks(key))
    signed = assertion(key, rp.client_id, aud="https://other.example.com/token")
    exchange_with(signed_in, signed_in.flow(rp), signed)
    events = signed_in.services.audit.search(event="client_auth_failed").events
    assert len(events) == 1 and not events[0].success
    assert events[0].details["client_id"] == rp.client_id
    assert "aud" in events[0].reason
    stored = json.dumps(signed_in.services.db.fetchall("SELECT * FROM audit_log"))
    assert signed.split(".")[2] not in stored and signed.split(".")[1] not in stored


# --- jwks_uri and federated identities: keys fetched from a loopback server -----------------


class KeyServer:
    """Serves a JWK Set at /.well-known/jwks.json on loopback and counts the fetches."""

    def __init__(self) -> None:
        self.body = b'{"keys": []}'
        self.fetches = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.fetches += 1
                self.send_response(200 if self.path == "/.well-known/jwks.json" else 404)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(server.body)

            def log_message(self, *args: object) -> None:
                return None

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def publish(self, *keys: ECKey | RSAKey) -> None:
        self.body = public_jwks(*keys).encode()


@pytest.fixture
def key_server() -> Iterator[KeyServer]:
    served = KeyServer()
    yield served
    served.http.shutdown()


def test_jwks_uri_is_fetched_once_and_cached(
    signed_in: Op, alice: User, key: ECKey, key_server: KeyServer
) -> None:
    key_server.publish(key)
    rp = key_client(signed_in, alice, jwks_uri=f"{key_server.url}/.well-known/jwks.json")
    for _ in range(2):
        response = exchange_with(signed_in, signed_in.flow(rp), assertion(key, rp.client_id))
        assert response.status_code == 200, response.text
    assert key_server.fetches == 1


def test_jwks_uri_that_does_not_answer_refuses_the_client(
    signed_in: Op, alice: User, key: ECKey, key_server: KeyServer
) -> None:
    rp = key_client(signed_in, alice, jwks_uri=f"{key_server.url}/missing.json")
    response = exchange_with(signed_in, signed_in.flow(rp), assertion(key, rp.client_id))
    assert_token_error(response, "invalid_client", 401)
    assert "jwks_uri" in response.json()["error_description"]


def test_failing_jwks_uri_is_not_fetched_again_for_every_request(
    signed_in: Op, alice: User, key: ECKey, key_server: KeyServer
) -> None:
    """Anyone can name the client in an assertion: a jwks_uri that fails is not fetched again
    for each of their requests (nor hammered while it is down)."""
    rp = key_client(signed_in, alice, jwks_uri=f"{key_server.url}/missing.json")
    for _ in range(3):
        response = exchange_with(signed_in, signed_in.flow(rp), assertion(key, rp.client_id))
        assert_token_error(response, "invalid_client", 401)
    assert key_server.fetches == 1


def test_jwks_fetch_ends_after_its_timeout_however_slowly_the_server_sends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Dripping(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            try:
                for _ in range(100):  # a byte every 0.1 s: never idle long enough to time out
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(0.1)
            except OSError:
                pass

        def log_message(self, *args: object) -> None:
            return None

    http = ThreadingHTTPServer(("127.0.0.1", 0), Dripping)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    monkeypatch.setattr(client_auth, "JWKS_TIMEOUT", 1.0)
    started = time.monotonic()
    try:
        with pytest.raises(client_auth.KeysUnavailable, match="took more than"):
            client_auth.JwksFetcher().keys(f"http://127.0.0.1:{http.server_address[1]}/jwks")
    finally:
        http.shutdown()
    assert time.monotonic() - started < 3


def ci_token(key: ECKey, issuer: str, **claims: Any) -> str:
    """A CI system's OIDC token: its own issuer and subject, Passgate as audience."""
    now = int(time.time())
    payload = {
        "iss": issuer,
        "sub": "repo:example/app:ref:refs/heads/main",
        "aud": "passgate",
        "iat": now,
        "exp": now + 600,
        "jti": str(uuid.uuid4()),
        **claims,
    }
    return jwt.encode({"alg": "ES256", "kid": key.kid}, payload, key)


@pytest.fixture
def ci(signed_in: Op, alice: User, key: ECKey, key_server: KeyServer) -> tuple[Rp, str]:
    """A keyless client trusting the CI issuer on the key server; (client, issuer)."""
    key_server.publish(key)
    identity = FederatedIdentity(
        issuer=key_server.url,
        subject="repo:example/app:ref:refs/heads/main",
        audience="passgate",
        replay_protection=True,
    )
    return key_client(signed_in, alice, federated_identities=[identity]), key_server.url


def test_federated_token_authenticates_a_keyless_client(
    signed_in: Op, key: ECKey, ci: tuple[Rp, str]
) -> None:
    rp, issuer = ci
    token = ci_token(key, issuer)
    response = exchange_with(signed_in, signed_in.flow(rp), token, client_id=rp.client_id)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        ("sub", "repo:example/app:ref:refs/heads/evil"),
        ("aud", "someone-else"),
    ],
)
def test_federated_token_with_the_wrong_claim_is_refused(
    signed_in: Op, key: ECKey, ci: tuple[Rp, str], claim: str, value: str
) -> None:
    rp, issuer = ci
    token = ci_token(key, issuer, **{claim: value})
    response = exchange_with(signed_in, signed_in.flow(rp), token, client_id=rp.client_id)
    assert_token_error(response, "invalid_client", 401)
    assert claim in response.json()["error_description"]


def test_federated_token_from_an_untrusted_issuer_is_refused(
    signed_in: Op, key: ECKey, ci: tuple[Rp, str]
) -> None:
    rp, _ = ci
    token = ci_token(key, "https://token.actions.githubusercontent.com")
    response = exchange_with(signed_in, signed_in.flow(rp), token, client_id=rp.client_id)
    assert_token_error(response, "invalid_client", 401)


def test_federated_token_with_replay_protection_is_single_use(
    signed_in: Op, key: ECKey, ci: tuple[Rp, str]
) -> None:
    rp, issuer = ci
    token = ci_token(key, issuer)
    first = exchange_with(signed_in, signed_in.flow(rp), token, client_id=rp.client_id)
    assert first.status_code == 200, first.text
    again = exchange_with(signed_in, signed_in.flow(rp), token, client_id=rp.client_id)
    assert_token_error(again, "invalid_client", 401)
    assert "used before" in again.json()["error_description"]


# --- client_secret_jwt ----------------------------------------------------------------------


def secret_jwt_client(op: Op, alice: User) -> Rp:
    rp = op.client(app_auth=AppAuth(token_endpoint_auth_method="client_secret_jwt"))
    op.consent(alice, rp)
    return rp


def test_client_secret_jwt_client_gets_tokens_with_an_hmac_assertion(
    signed_in: Op, alice: User
) -> None:
    rp = secret_jwt_client(signed_in, alice)
    hmac = OctKey.import_key(rp.secret or "")
    signed = assertion(hmac, rp.client_id, alg="HS256")
    response = exchange_with(signed_in, signed_in.flow(rp), signed)
    assert response.status_code == 200, response.text


def test_client_secret_jwt_secret_is_sealed_at_rest(signed_in: Op, alice: User) -> None:
    rp = secret_jwt_client(signed_in, alice)
    (row,) = signed_in.services.db.fetchall(
        "SELECT secret_sealed FROM oidc_clients WHERE client_id = ?", (rp.client_id,)
    )
    assert row[0] and rp.secret and rp.secret not in row[0]
    assert signed_in.services.secrets.decrypt(row[0]) == rp.secret.encode()


def test_client_secret_jwt_with_a_wrong_secret_is_refused(signed_in: Op, alice: User) -> None:
    rp = secret_jwt_client(signed_in, alice)
    signed = assertion(OctKey.import_key(b"not-the-secret" * 3), rp.client_id, alg="HS256")
    assert_token_error(exchange_with(signed_in, signed_in.flow(rp), signed), "invalid_client", 401)


def test_rotated_secret_signs_client_secret_jwt(signed_in: Op, alice: User) -> None:
    rp = secret_jwt_client(signed_in, alice)
    new = signed_in.services.clients.rotate_secret(rp.client_id)
    old_signed = assertion(OctKey.import_key(rp.secret or ""), rp.client_id, alg="HS256")
    new_signed = assertion(OctKey.import_key(new), rp.client_id, alg="HS256")
    refused = exchange_with(signed_in, signed_in.flow(rp), old_signed)
    assert_token_error(refused, "invalid_client", 401)
    assert exchange_with(signed_in, signed_in.flow(rp), new_signed).status_code == 200


def test_secret_of_a_client_secret_jwt_client_is_refused_as_a_secret(
    signed_in: Op, alice: User
) -> None:
    rp = secret_jwt_client(signed_in, alice)
    flow = signed_in.flow(rp)
    response = signed_in.exchange(flow, signed_in.code(flow))
    assert_token_error(response, "invalid_client", 401)
    assert "client_secret_jwt" in response.json()["error_description"]


def test_other_clients_secrets_are_not_kept_sealed(signed_in: Op) -> None:
    rp = signed_in.client()
    (row,) = signed_in.services.db.fetchall(
        "SELECT secret_sealed FROM oidc_clients WHERE client_id = ?", (rp.client_id,)
    )
    assert row[0] is None


# --- configuration -------------------------------------------------------------------------


def test_jwks_with_a_private_key_is_refused(op: Op, key: ECKey) -> None:
    private = json.dumps({"keys": [key.as_dict(private=True)]})
    with pytest.raises(InvalidInput, match="public keys only"):
        op.services.clients.create(
            "App",
            ["https://app.example.com/cb"],
            app_auth=AppAuth(token_endpoint_auth_method="private_key_jwt", jwks=private),
        )


def test_jwks_uri_must_be_https(op: Op) -> None:
    with pytest.raises(InvalidInput, match="https"):
        op.services.clients.create(
            "App",
            ["https://app.example.com/cb"],
            app_auth=AppAuth(
                token_endpoint_auth_method="private_key_jwt",
                jwks_uri="http://keys.example.com/jwks.json",
            ),
        )


def test_private_key_jwt_needs_keys(op: Op) -> None:
    with pytest.raises(InvalidInput, match="needs jwks"):
        op.services.clients.create(
            "App",
            ["https://app.example.com/cb"],
            app_auth=AppAuth(token_endpoint_auth_method="private_key_jwt"),
        )


def test_declared_private_key_jwt_client_reads_its_keys(key: ECKey) -> None:
    entry = DeclaredClient.model_validate(
        {
            "client_id": "ci-deployer",
            "name": "CI deployer",
            "redirect_uris": ["https://ci.example.com/cb"],
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": {"keys": [key.as_dict(private=False)]},
            "require_pushed_authorization_requests": True,
            "federated_identities": [{"issuer": "https://token.actions.githubusercontent.com"}],
        }
    )
    client = entry.to_client({})  # no secret_env or secret_hash: it has no secret to send
    assert client.auth_method == "private_key_jwt" and client.require_par
    assert client.secrets == ()
    assert json.loads(client.jwks)["keys"][0]["kid"] == "app-key-1"
    assert client.federated_identities[0].jwks_url == (
        "https://token.actions.githubusercontent.com/.well-known/jwks.json"
    )


def test_declared_client_secret_jwt_client_needs_its_secret_itself() -> None:
    entry = DeclaredClient.model_validate(
        {
            "client_id": "hmac-app",
            "name": "HMAC app",
            "redirect_uris": ["https://app.example.com/cb"],
            "secret_hash": "0" * 64,
            "token_endpoint_auth_method": "client_secret_jwt",
        }
    )
    with pytest.raises(InvalidInput, match="secret_env"):
        entry.to_client({})


def test_declared_client_secret_jwt_secret_is_sealed_once(op: Op) -> None:
    entry = DeclaredClient.model_validate(
        {
            "client_id": "hmac-app",
            "name": "HMAC app",
            "redirect_uris": ["https://app.example.com/cb"],
            "secret_env": "HMAC_APP_SECRET",
            "token_endpoint_auth_method": "client_secret_jwt",
        }
    )
    env = {"HMAC_APP_SECRET": "a-long-enough-shared-secret-for-hs256"}
    op.services.clients.sync_declared([entry], env)
    first = op.services.clients.get("hmac-app").secret_sealed
    op.services.clients.sync_declared([entry], env)
    assert first and op.services.clients.get("hmac-app").secret_sealed == first
    assert op.services.clients.jwt_secret(op.services.clients.get("hmac-app")) == (
        env["HMAC_APP_SECRET"].encode()
    )


def test_revoked_secret_no_longer_signs_client_secret_jwt(signed_in: Op, alice: User) -> None:
    rp = secret_jwt_client(signed_in, alice)
    clients = signed_in.services.clients
    (only,) = clients.list_secrets(rp.client_id)
    clients.revoke_secret(rp.client_id, only.id)
    signed = assertion(OctKey.import_key(rp.secret or ""), rp.client_id, alg="HS256")
    refused = exchange_with(signed_in, signed_in.flow(rp), signed)
    assert_token_error(refused, "invalid_client", 401)
    assert "revoked" in refused.json()["error_description"]


def test_expired_secret_no_longer_signs_client_secret_jwt(signed_in: Op, alice: User) -> None:
    rp = secret_jwt_client(signed_in, alice)
    signed_in.services.db.execute(
        "UPDATE oidc_client_secrets SET expires_at = ? WHERE client_id = ?",
        (time.time() - 1, rp.client_id),
    )
    signed = assertion(OctKey.import_key(rp.secret or ""), rp.client_id, alg="HS256")
    refused = exchange_with(signed_in, signed_in.flow(rp), signed)
    assert_token_error(refused, "invalid_client", 401)
    assert "expired" in refused.json()["error_description"]
