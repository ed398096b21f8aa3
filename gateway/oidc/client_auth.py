"""Signed client authentication (RFC 7523, OpenID Connect Core 9): `private_key_jwt`,
`client_secret_jwt`, and federated client credentials (Pocket-ID's keyless option: a JWT from
a trusted issuer such as a CI system or Kubernetes, configured per client).

authlib's JWTBearerClientAssertion does the protocol (signature, iss = sub, aud, exp, jti);
this module finds the keys, bounds the assertion's lifetime, keeps used jti's in the shared
short-lived store until they expire, and says why an assertion is refused. Runs in a worker
thread, as the rest of the OIDC server does.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx
from anyio import from_thread
from authlib.oauth2.rfc6749 import InvalidClientError
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, OctKey

from gateway.core.errors import DecryptionFailed
from gateway.oidc.clients import FederatedIdentity, OidcClient
from gateway.sessions.ephemeral import Ephemeral

if TYPE_CHECKING:
    from gateway.oidc.server import ClientAdapter, PassgateRequest

log = logging.getLogger("passgate.oidc")

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASYMMETRIC_ALGS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384"]
HMAC_ALGS = ["HS256", "HS384", "HS512"]
LEEWAY = 30  # seconds of clock skew, as Pocket-ID allows
MAX_LIFETIME = 300  # an assertion may not be valid for longer than this from now
FEDERATED_MAX_LIFETIME = 86400  # CI and Kubernetes tokens live minutes to an hour
JWKS_TIMEOUT = 5.0  # seconds
JWKS_MAX_BYTES = 64 * 1024
JWKS_CACHE = 300.0  # seconds a fetched key set is used
JWKS_REFETCH = 30.0  # an unknown kid fetches again, at most this often


class KeysUnavailable(Exception):
    """A client's or issuer's key set could not be fetched or read."""


class JwksFetcher:
    """Key sets at jwks_uri / federated JWKS URLs, fetched with a timeout and a size cap and
    cached per process (keys change rarely; an unknown kid fetches again).

    Anyone can name a client in an assertion, so a fetch must not be theirs to repeat: one
    fetch per URL at a time (others use the copy they have, or wait for that fetch), a failed
    fetch is not tried again for JWKS_REFETCH seconds, and a fetch ends after JWKS_TIMEOUT
    seconds in all, however slowly the server sends."""

    def __init__(self, transport: httpx.BaseTransport | None = None) -> None:
        self._cache: dict[str, tuple[float, KeySet]] = {}
        self._failed: dict[str, tuple[float, str]] = {}  # url -> (when, why)
        self._fetching: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self._transport = transport

    def keys(self, url: str, kid: str | None = None) -> KeySet:
        """The key set at `url`; fetched again if `kid` is not in a copy older than
        JWKS_REFETCH. Raises KeysUnavailable."""
        found = self._usable(url, kid)
        if found is not None:
            return found
        with self._lock:
            fetching = self._fetching.setdefault(url, threading.Lock())
        if not fetching.acquire(timeout=JWKS_TIMEOUT):
            raise KeysUnavailable(f"{url} is being fetched and has not answered yet")
        try:
            found = self._usable(url, kid)  # fetched while this thread waited
            if found is not None:
                return found
            try:
                keys = self._fetch(url)
            except KeysUnavailable as exc:
                with self._lock:
                    self._failed[url] = (time.monotonic(), str(exc))
                raise
            with self._lock:
                self._cache[url] = (time.monotonic(), keys)
                self._failed.pop(url, None)
            return keys
        finally:
            fetching.release()

    def _usable(self, url: str, kid: str | None) -> KeySet | None:
        """The cached key set if it may answer for `kid` without a fetch; KeysUnavailable
        while a recent fetch of `url` failed."""
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(url)
            failed = self._failed.get(url)
        if cached is not None:
            fetched_at, keys = cached
            fresh = now - fetched_at < JWKS_CACHE
            known = kid is None or any(key.kid == kid for key in keys.keys)
            if fresh and (known or now - fetched_at < JWKS_REFETCH):
                return keys
        if failed is not None and now - failed[0] < JWKS_REFETCH:
            raise KeysUnavailable(f"{failed[1]} (not tried again for {JWKS_REFETCH:.0f} s)")
        return None

    def _fetch(self, url: str) -> KeySet:
        deadline = time.monotonic() + JWKS_TIMEOUT
        try:
            with (
                httpx.Client(
                    timeout=JWKS_TIMEOUT, follow_redirects=False, transport=self._transport
                ) as http,
                http.stream("GET", url, headers={"Accept": "application/json"}) as response,
            ):
                if response.status_code != 200:
                    raise KeysUnavailable(f"{url} answered {response.status_code}")
                body = b""
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > JWKS_MAX_BYTES:
                        raise KeysUnavailable(f"{url} sent more than {JWKS_MAX_BYTES} bytes")
                    if time.monotonic() > deadline:
                        raise KeysUnavailable(f"{url} took more than {JWKS_TIMEOUT:.0f} s")
        except httpx.HTTPError as exc:
            raise KeysUnavailable(f"{url} could not be fetched ({type(exc).__name__})") from None
        try:
            return KeySet.import_key_set(json.loads(body))
        except (ValueError, TypeError, JoseError):
            raise KeysUnavailable(f"{url} did not send a JWK Set") from None


class ReplayGuard:
    """Remembers assertion ids (jti) in the shared store until the assertion expires."""

    def __init__(self, ephemeral: Ephemeral) -> None:
        self._store = ephemeral

    def first_use(self, scope: str, jti: str, expires_at: float) -> bool:
        """True the first time (scope, jti) is seen while its assertion is valid."""
        key = "jti:" + hashlib.sha256(f"{scope}\0{jti}".encode()).hexdigest()
        window = max(1.0, expires_at - time.time() + LEEWAY)
        count: int = from_thread.run(self._store.hit, key, window)
        return count == 1


def _refused(reason: str) -> InvalidClientError:
    return InvalidClientError(status_code=401, description=reason)


class SignedClientAuth(JWTBearerClientAssertion):  # type: ignore[misc]
    """A client_assertion checked as one method; subclasses name the method and its keys."""

    ALGORITHMS: list[str]

    def __init__(
        self,
        audiences: list[str],
        replay: ReplayGuard,
        fetcher: JwksFetcher,
        secret_of: Callable[[OidcClient], bytes | None],
    ) -> None:
        super().__init__(validate_jti=True, leeway=LEEWAY)
        self._audiences = audiences
        self._replay = replay
        self._fetcher = fetcher
        self._secret_of = secret_of

    def __call__(
        self, query_client: Callable[[str], ClientAdapter | None], request: PassgateRequest
    ) -> ClientAdapter | None:
        data = request.form
        assertion = data.get("client_assertion")
        if data.get("client_assertion_type") != ASSERTION_TYPE or not assertion:
            return None
        headers, claims = self.extract_assertion(assertion)
        client_id = data.get("client_id") or claims.get("sub")
        if not isinstance(client_id, str) or not client_id:
            raise _refused("the client_assertion has no sub and no client_id was sent")
        client = query_client(client_id)
        if client is None:
            raise _refused("the client does not exist on this server")
        if client.client.auth_method != self.CLIENT_AUTH_METHOD:
            return None  # another method's turn (OidcServer already refused mismatches)
        request.client = client
        kid = headers.get("kid") if isinstance(headers.get("kid"), str) else None
        identity = _federated_for(client.client, claims.get("iss"))
        if identity is not None:
            self._check_federated(assertion, client.client, identity, kid)
        else:
            verified = self._verify_own(assertion, client, kid)
            if verified["sub"] != client_id:
                raise _refused("the client_assertion's sub is not the client_id")
        authenticated: ClientAdapter = self.authenticate_client(client)
        return authenticated

    def get_audiences(self) -> list[str]:
        return self._audiences

    def _verify_own(self, assertion: str, client: ClientAdapter, kid: str | None) -> dict[str, Any]:
        """The claims of an assertion the client signed itself; InvalidClientError saying why
        it is refused."""
        try:
            token = jwt.decode(
                assertion, self.resolve_client_public_key(client, kid), algorithms=self.ALGORITHMS
            )
        except (JoseError, ValueError) as exc:
            error = exc.error if isinstance(exc, JoseError) else "unusable key or algorithm"
            raise _refused(f"the client_assertion's signature does not verify ({error})") from None
        claims: dict[str, Any] = token.claims
        self._bound_lifetime(claims, MAX_LIFETIME)
        try:
            self.verify_claims(claims)
        except InvalidClientError as exc:
            raise _refused(f"the client_assertion is invalid: {exc.description}") from None
        return claims

    def validate_jti(self, claims: dict[str, Any], jti: str) -> bool:
        scope = f"{self.CLIENT_AUTH_METHOD}:{claims['sub']}"
        return self._replay.first_use(scope, str(jti), float(claims["exp"]))

    @staticmethod
    def _bound_lifetime(claims: dict[str, Any], longest: int) -> None:
        exp = claims.get("exp")
        if isinstance(exp, bool) or not isinstance(exp, int | float):
            raise _refused("the client_assertion needs a numeric exp")
        if exp > time.time() + longest + LEEWAY:
            raise _refused(f"the client_assertion's exp is more than {longest} seconds away")

    def _check_federated(
        self, assertion: str, client: OidcClient, identity: FederatedIdentity, kid: str | None
    ) -> None:
        try:
            keys = self._fetcher.keys(identity.jwks_url, kid)
        except KeysUnavailable as exc:
            log.warning("federated identity %s of %s: %s", identity.issuer, client.client_id, exc)
            raise _refused("the trusted issuer's keys could not be fetched") from None
        try:
            token = jwt.decode(assertion, keys, algorithms=ASYMMETRIC_ALGS)
        except (JoseError, ValueError):
            raise _refused("the federated token's signature does not verify") from None
        claims: dict[str, Any] = token.claims
        self._bound_lifetime(claims, FEDERATED_MAX_LIFETIME)
        registry = jwt.JWTClaimsRegistry(
            leeway=LEEWAY,
            iss={"essential": True, "value": identity.issuer},
            sub={"essential": True, "value": identity.subject or client.client_id},
            aud={
                "essential": True,
                "values": [identity.audience] if identity.audience else self._audiences,
            },
            exp={"essential": True},
        )
        try:
            registry.validate(claims)
        except JoseError as exc:
            raise _refused(f"the federated token is invalid: {exc.description}") from None
        if identity.replay_protection:
            jti = claims.get("jti")
            if not isinstance(jti, str) or not jti:
                raise _refused("the federated token needs a jti (replay protection is on)")
            scope = f"federated:{client.client_id}:{identity.issuer}"
            if not self._replay.first_use(scope, jti, float(claims["exp"])):
                raise _refused("the federated token was used before")


def _federated_for(client: OidcClient, issuer: object) -> FederatedIdentity | None:
    """The client's federated identity for the assertion's issuer (never the client itself)."""
    if not isinstance(issuer, str) or issuer == client.client_id:
        return None
    return next((i for i in client.federated_identities if i.issuer == issuer), None)


class PrivateKeyJwt(SignedClientAuth):
    """private_key_jwt: signed with the client's private key, checked with its public keys
    (inline jwks, or fetched from its jwks_uri), or a federated identity's token."""

    CLIENT_AUTH_METHOD = "private_key_jwt"
    ALGORITHMS = ASYMMETRIC_ALGS

    def resolve_client_public_key(self, client: ClientAdapter, kid: str | None = None) -> KeySet:
        record = client.client
        if record.jwks:
            return KeySet.import_key_set(json.loads(record.jwks))
        if not record.jwks_uri:
            raise _refused("this client has no keys of its own, only federated identities")
        try:
            return self._fetcher.keys(record.jwks_uri, kid)
        except KeysUnavailable as exc:
            log.warning("jwks_uri of %s: %s", record.client_id, exc)
            raise _refused("the client's jwks_uri could not be fetched") from None


class ClientSecretJwt(SignedClientAuth):
    """client_secret_jwt: an HMAC over the assertion with the client's secret."""

    CLIENT_AUTH_METHOD = "client_secret_jwt"
    ALGORITHMS = HMAC_ALGS

    def resolve_client_public_key(self, client: ClientAdapter, kid: str | None = None) -> OctKey:
        try:
            secret = self._secret_of(client.client)
        except DecryptionFailed:
            log.error("the secret of client %s cannot be decrypted", client.client_id)
            raise _refused("the client's secret cannot be read") from None
        if secret is None:
            raise _refused(
                "this client's secret is not kept for client_secret_jwt: rotate the secret"
            )
        return OctKey.import_key(secret)
