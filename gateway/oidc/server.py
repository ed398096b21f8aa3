"""authlib's OAuth 2.0 / OpenID Connect server, wired to Passgate's storage.

authlib does the protocol (validation, PKCE, client authentication, error responses, ID tokens);
this module only fills in its storage hooks and adapts requests. The server is synchronous:
the web layer reads the request body first and calls it in a worker thread.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import secrets
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from authlib.common.urls import add_params_to_uri
from authlib.oauth2 import AuthorizationServer, OAuth2Error
from authlib.oauth2.rfc6749 import (
    ClientMixin,
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    OAuth2Request,
)
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant, RefreshTokenGrant
from authlib.oauth2.rfc6749.requests import OAuth2Payload
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from authlib.oidc.core.grants import OpenIDCode
from starlette.responses import JSONResponse, Response

from gateway.accounts.users import User, UserService
from gateway.audit.log import Actor, AuditLog
from gateway.core import metrics
from gateway.oidc.claims import claims_for
from gateway.oidc.client_service import ClientService, SecretRefused
from gateway.oidc.clients import OidcClient
from gateway.oidc.custom_claims import CustomClaims
from gateway.oidc.signing_keys import SigningKeys
from gateway.oidc.tokens import AuthorizationCode, IssuedToken, OAuthStore

log = logging.getLogger("passgate.oidc")
# authlib's grants log each issued token (access and refresh) at DEBUG: whatever LOG_LEVEL
# says, those lines must never reach Passgate's logs.
logging.getLogger("authlib").setLevel(logging.INFO)

SCOPES = ("openid", "profile", "email", "groups", "offline_access")
# authlib leaves some errors without a description; apps and their admins deserve one.
ERROR_DESCRIPTIONS = {
    "invalid_request": "the request is missing a parameter or has a malformed one",
    "invalid_client": "client authentication failed",
    "invalid_grant": "the code or refresh token is invalid, expired, revoked or not yours",
    "unauthorized_client": "this client may not use this grant",
    "unsupported_grant_type": "only authorization_code and refresh_token are supported",
    "unsupported_token_type": "only access_token and refresh_token can be given as hints",
    "invalid_scope": "the requested scope is unknown",
    "access_denied": "the user or Passgate denied the request",
    "login_required": "the user must sign in",
    "consent_required": "the user must consent",
}
CONFIDENTIAL_AUTH = ["client_secret_basic", "client_secret_post"]
# How a request can try to authenticate its client, as error messages name them.
AUTH_METHOD_NAMES = {
    "client_secret_basic": "HTTP Basic",
    "client_secret_post": "client_secret",
    "client_assertion": "client_assertion",
}
ALL_AUTH = [*CONFIDENTIAL_AUTH, "none"]


@dataclass(frozen=True, slots=True)
class Principal:
    """The signed-in user as authlib sees them, with when they authenticated."""

    user: User
    auth_time: float
    amr: tuple[str, ...] = ()

    def get_user_id(self) -> str:
        return self.user.id


class ClientAdapter(ClientMixin):  # type: ignore[misc]
    """An OidcClient in authlib's shape."""

    def __init__(self, client: OidcClient, clients: ClientService) -> None:
        self.client = client
        self.client_id = client.client_id
        self.id_token_signed_response_alg = client.id_token_alg
        self._clients = clients

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        uris = self.client.redirect_uris
        return uris[0] if len(uris) == 1 and "*" not in uris[0] else None

    def get_allowed_scope(self, scope: str) -> str:
        return " ".join(s for s in scope.split() if s in SCOPES)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return self._clients.redirect_uri_allowed(self.client, redirect_uri)

    def check_client_secret(self, client_secret: str) -> bool:
        """Any unexpired, unrevoked secret of the client will do. An expired or revoked one
        raises SecretRefused, which authenticate_client turns into invalid_client saying so."""
        try:
            self._clients.check_secret(self.client, client_secret)
        except SecretRefused as refused:
            if refused.reason == "wrong":
                return False
            raise
        return True

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.client.public:
            return method == "none"
        return method in CONFIDENTIAL_AUTH

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in ("authorization_code", "refresh_token")


class _Payload(OAuth2Payload):  # type: ignore[misc]
    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._pairs = pairs

    @property
    def data(self) -> dict[str, str]:
        return dict(self._pairs)

    def repeated(self) -> list[str]:
        """Names sent more than once (RFC 6749 3.1 and 3.2 allow each parameter only once)."""
        return sorted(name for name, values in self.datalist.items() if len(values) > 1)

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        values: defaultdict[str, list[str]] = defaultdict(list)
        for key, value in self._pairs:
            values[key].append(value)
        return values


class PassgateRequest(OAuth2Request):  # type: ignore[misc]
    """An OAuth request built from what Starlette already parsed (query + form, in that order)."""

    def __init__(
        self,
        method: str,
        uri: str,
        headers: Mapping[str, str],
        query: list[tuple[str, str]],
        form: list[tuple[str, str]],
        client_ip: str = "",
    ) -> None:
        super().__init__(method=method, uri=uri, headers=headers)
        self.client_ip = client_ip
        self._query = dict(query)
        self._form = dict(form)
        self.payload = _Payload([*query, *form])

    @property
    def args(self) -> dict[str, str]:
        return self._query

    @property
    def form(self) -> dict[str, str]:
        return self._form


class OidcServer(AuthorizationServer):  # type: ignore[misc]
    def __init__(
        self,
        issuer: str,
        clients: ClientService,
        store: OAuthStore,
        users: UserService,
        keys: SigningKeys,
        custom_claims: CustomClaims,
        audit: AuditLog,
    ) -> None:
        super().__init__(scopes_supported=list(SCOPES))
        if issuer.startswith("http://"):
            # authlib refuses plain-HTTP URLs unless told; APP_URL is the operator's choice.
            os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")
        self.issuer = issuer
        self.clients = clients
        self.store = store
        self.users = users
        self.keys = keys
        self.custom_claims = custom_claims
        self.audit = audit
        self.register_token_generator(
            "default",
            BearerTokenGenerator(
                access_token_generator=lambda **_: secrets.token_urlsafe(32),
                refresh_token_generator=lambda **_: secrets.token_urlsafe(48),
                expires_generator=self._expires_in,
            ),
        )
        self.register_grant(CodeGrant, [Pkce(required=True), PassgateOpenIDCode(self)])
        self.register_grant(RefreshGrant)
        self.register_endpoint(Introspection)
        self.register_endpoint(Revocation)

    @staticmethod
    def _expires_in(client: ClientAdapter, grant_type: str) -> int:
        return int(client.client.access_token_lifetime)

    def authenticate_client(
        self, request: PassgateRequest, methods: list[str], endpoint: str = "token"
    ) -> ClientAdapter:
        """authlib's client authentication (token, introspection and revocation endpoints),
        after two checks of our own. Raises InvalidRequestError when the request authenticates
        the client two ways (RFC 6749 2.3: one method per request, or which one counts is
        anyone's guess) and InvalidClientError for Basic credentials that are not UTF-8 text."""
        used = client_auth_methods(request)
        if len(used) > 1:
            log.info("%s request refused: the client authenticates with %s", endpoint, used)
            named = " and ".join(AUTH_METHOD_NAMES[method] for method in used)
            raise InvalidRequestError(f"authenticate the client one way only, not with {named}")
        if "client_secret_basic" in used and not _basic_readable(request):
            raise InvalidClientError(
                status_code=401,
                description="the Authorization header does not hold Basic credentials",
            )
        try:
            client: ClientAdapter = super().authenticate_client(request, methods, endpoint)
        except SecretRefused as refused:  # oidc-client-options: an expired or revoked secret
            log.info("%s request refused: %s", endpoint, refused)
            metrics.client_secret_refused(refused.client_id, refused.reason)
            status = 401 if "client_secret_basic" in used else 400
            raise InvalidClientError(status_code=status, description=str(refused)) from None
        return client

    def query_client(self, client_id: str) -> ClientAdapter | None:
        client = self.clients.find(client_id) if client_id else None
        return ClientAdapter(client, self.clients) if client is not None else None

    def save_token(self, token: dict[str, Any], request: PassgateRequest) -> None:
        client: OidcClient = request.client.client
        scope = token.get("scope", "")
        keep_refresh = client.refresh_tokens or "offline_access" in scope.split()
        if not keep_refresh:
            token.pop("refresh_token", None)
        code: AuthorizationCode | None = request.authorization_code
        previous: IssuedToken | None = request.refresh_token
        auth_time = code.auth_time if code else previous.auth_time if previous else time.time()
        self.store.save_token(
            access_token=token["access_token"],
            refresh_token=token.get("refresh_token"),
            client_id=client.client_id,
            user_id=request.user.get_user_id(),
            scope=scope,
            auth_time=auth_time,
            access_lifetime=client.access_token_lifetime,
            refresh_lifetime=client.refresh_token_lifetime,
            family_id=previous.family_id if previous else None,
            code_hash=code.code_hash if code else None,
        )
        metrics.token_issued(client.client_id, "authorization_code" if code else "refresh_token")
        grant_type = request.payload.data.get("grant_type", "")
        self.audit.record_or_log(
            "token_refreshed" if grant_type == "refresh_token" else "token_issued",
            actor=client_actor(client, request),
            user_id=request.user.get_user_id(),
            details={
                "client_id": client.client_id,
                "client_name": client.name,
                "grant_type": grant_type,
                "scope": scope,
                "refresh_token": "refresh_token" in token,
            },
        )

    def audit_revoked(
        self, token: IssuedToken, cause: str, request: PassgateRequest | None = None
    ) -> None:
        """Record that a token (or its whole family) was revoked, and why."""
        client = self.clients.find(token.client_id)
        self.audit.record_or_log(
            "token_revoked",
            actor=client_actor(client, request) if client else Actor("system", id=token.client_id),
            user_id=token.user_id,
            details={
                "client_id": token.client_id,
                "client_name": client.name if client else "",
                "scope": token.scope,
                "cause": cause,
            },
        )

    def create_oauth2_request(self, request: PassgateRequest) -> PassgateRequest:
        return request

    def create_json_request(self, request: PassgateRequest) -> PassgateRequest:
        return request

    def handle_response(self, status: int, body: Any, headers: list[tuple[str, str]]) -> Response:
        # authlib only sets Location on redirects to the app (codes and errors at /authorize):
        # RFC 9207 says each one names the issuer, against mix-up attacks.
        headers = [
            (name, add_params_to_uri(value, [("iss", self.issuer)]))
            if name.lower() == "location"
            else (name, value)
            for name, value in headers
        ]
        headers = [*headers, ("Cache-Control", "no-store"), ("Pragma", "no-cache")]
        if isinstance(body, dict):
            return JSONResponse(body, status, headers=dict(headers))
        return Response(body, status, headers=dict(headers))

    def handle_error_response(self, request: PassgateRequest | None, error: OAuth2Error) -> Any:
        if not error.description:
            error.description = ERROR_DESCRIPTIONS.get(error.error)
        return super().handle_error_response(request, error)

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None

    def claims(self, user: User, scope: str) -> dict[str, Any]:
        """Claims for ID tokens and userinfo, custom claims included."""
        return claims_for(user, scope, self.custom_claims.for_user(user.id))

    def active_user(self, user_id: str) -> User | None:
        user = self.users.find_user(user_id)
        return user if user is not None and not user.disabled else None


def client_auth_methods(request: PassgateRequest) -> list[str]:
    """The ways a request tries to authenticate its client: an HTTP Basic header, a
    client_secret parameter, a client_assertion (RFC 7523, which Passgate does not take)."""
    data = request.payload.data
    used = ["client_secret_basic"] if _basic_token(request) is not None else []
    if data.get("client_secret"):
        used.append("client_secret_post")
    if data.get("client_assertion"):
        used.append("client_assertion")
    return used


def _basic_token(request: PassgateRequest) -> str | None:
    """The credentials of an `Authorization: Basic` header, split as authlib splits them."""
    parts = request.headers.get("authorization", "").split(None, 1)
    if not parts or parts[0].lower() != "basic":
        return None
    return parts[1] if len(parts) > 1 else ""


def _basic_readable(request: PassgateRequest) -> bool:
    """Whether the Basic credentials decode to text (authlib's decoder assumes they do)."""
    try:
        base64.b64decode(_basic_token(request) or "").decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return False
    return True


def client_actor(client: OidcClient, request: PassgateRequest | None) -> Actor:
    """An app calling the token endpoints, as an audit actor (apps are not users or API keys;
    they act through Passgate's OIDC server, hence kind "system")."""
    return Actor(
        "system",
        id=client.client_id,
        name=f"OIDC client {client.name}",
        ip=request.client_ip if request is not None else "",
        user_agent=request.headers.get("user-agent", "") if request is not None else "",
    )


class Pkce(CodeChallenge):  # type: ignore[misc]
    """PKCE with S256 only (plain adds nothing over no PKCE), required for public clients and
    for clients whose `pkce_required` flag is set."""

    SUPPORTED_CODE_CHALLENGE_METHOD: ClassVar[list[str]] = ["S256"]

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        client: OidcClient = grant.request.client.client
        if not data.get("code_challenge") and (client.public or client.pkce_required):
            raise InvalidRequestError(
                "this client must use PKCE: send code_challenge with code_challenge_method=S256",
                redirect_uri=redirect_uri,
            )
        if data.get("code_challenge") and data.get("code_challenge_method") != "S256":
            raise InvalidRequestError(
                "code_challenge_method must be S256", redirect_uri=redirect_uri
            )
        super().validate_code_challenge(grant, redirect_uri)


class CodeGrant(AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ALL_AUTH

    @property
    def _passgate(self) -> OidcServer:
        server: OidcServer = self.server
        return server

    def save_authorization_code(self, code: str, request: PassgateRequest) -> None:
        data = request.payload.data
        principal: Principal = request.user
        self._passgate.store.save_code(
            code,
            client_id=request.client.client_id,
            user_id=principal.user.id,
            # Empty when /authorize had none: then the token request may leave it out too.
            redirect_uri=data.get("redirect_uri") or "",
            scope=request.payload.scope or "",
            nonce=data.get("nonce"),
            code_challenge=data.get("code_challenge"),
            code_challenge_method=data.get("code_challenge_method"),
            auth_time=principal.auth_time,
            amr=principal.amr,
        )

    def query_authorization_code(
        self, code: str, client: ClientAdapter
    ) -> AuthorizationCode | None:
        found = self._passgate.store.find_code(code, client.client_id)
        if found is None or found.is_expired():
            return None
        if found.used_at is not None:
            self._replayed(found)
            return None
        return found

    def _replayed(self, code: AuthorizationCode) -> None:
        log.warning("authorization code replayed by client %s: revoking its tokens", code.client_id)
        self._passgate.store.revoke_tokens_from_code(code.code_hash)
        self._passgate.audit.record_or_log(
            "token_revoked",
            actor=Actor("system", id=code.client_id, name="passgate"),
            user_id=code.user_id,
            details={"client_id": code.client_id, "cause": "authorization code replayed"},
        )

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        return None  # marked used in authenticate_user, atomically

    def authenticate_user(self, authorization_code: AuthorizationCode) -> Principal:
        store = self._passgate.store
        if not store.mark_code_used(authorization_code.code_hash):
            self._replayed(authorization_code)
            raise InvalidGrantError("authorization code was already used")
        user = self._passgate.active_user(authorization_code.user_id)
        if user is None:
            raise InvalidGrantError("the user is disabled or gone")
        return Principal(user, authorization_code.auth_time, authorization_code.amr)


class PassgateOpenIDCode(OpenIDCode):  # type: ignore[misc]
    def __init__(self, server: OidcServer) -> None:
        super().__init__(require_nonce=False)
        self._server = server

    def exists_nonce(self, nonce: str, request: PassgateRequest) -> bool:
        return False  # nonces are the client's to check in the ID token; codes are single-use

    def resolve_client_private_key(self, client: ClientAdapter) -> Any:
        return self._server.keys.active(client.client.id_token_alg)

    def get_encode_header(self, client: ClientAdapter) -> dict[str, str]:
        key = self._server.keys.active(client.client.id_token_alg)
        return {"alg": client.client.id_token_alg, "kid": str(key.kid), "typ": "JWT"}

    def get_client_claims(self, client: ClientAdapter) -> dict[str, Any]:
        now = int(time.time())
        return {
            "iss": self._server.issuer,
            "aud": [client.client_id],
            "iat": now,
            "exp": now + int(client.client.access_token_lifetime),
        }

    def generate_user_info(self, user: Principal, scope: str) -> dict[str, Any]:
        return self._server.claims(user.user, scope)


class RefreshGrant(RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ALL_AUTH
    INCLUDE_NEW_REFRESH_TOKEN = True

    @property
    def _passgate(self) -> OidcServer:
        server: OidcServer = self.server
        return server

    def authenticate_refresh_token(self, refresh_token: str) -> IssuedToken | None:
        store = self._passgate.store
        token = store.by_refresh_token(refresh_token)
        if token is None:
            return None
        if token.refresh_used_at is not None or token.revoked_at is not None:
            log.warning(
                "refresh token reused by client %s: revoking the whole family", token.client_id
            )
            store.revoke_family(token.family_id)
            self._passgate.audit_revoked(token, "refresh token reused", self.request)
            return None
        if token.refresh_expires_at is None or token.refresh_expires_at <= time.time():
            return None
        return token

    def authenticate_user(self, refresh_token: IssuedToken) -> Principal:
        user = self._passgate.active_user(refresh_token.user_id)
        if user is None:
            raise InvalidGrantError("the user is disabled or gone")
        return Principal(user, refresh_token.auth_time)

    def revoke_old_credential(self, refresh_token: IssuedToken) -> None:
        store = self._passgate.store
        if not store.mark_refresh_used(refresh_token.id):
            store.revoke_family(refresh_token.family_id)  # lost a race with a reuse
        store.revoke(refresh_token.id)


@dataclass(frozen=True, slots=True)
class PresentedToken:
    """A token handed to introspection or revocation, and which half of the pair it was:
    a refresh token lives (and is revoked) by its own rules, not its access token's."""

    token: IssuedToken
    refresh: bool

    @property
    def expires_at(self) -> float:
        if self.refresh:
            return self.token.refresh_expires_at or 0.0
        return self.token.access_expires_at

    def check_client(self, client: object) -> bool:
        return self.token.check_client(client)

    def is_expired(self) -> bool:
        return time.time() >= self.expires_at

    def is_revoked(self) -> bool:
        used = self.refresh and self.token.refresh_used_at is not None
        return self.token.is_revoked() or used


def _find_token(server: OidcServer, token: str, hint: str | None) -> PresentedToken | None:
    store = server.store
    lookups = [(store.by_access_token, False), (store.by_refresh_token, True)]
    if hint == "refresh_token":
        lookups.reverse()
    for lookup, refresh in lookups:
        found = lookup(token)
        if found is not None:
            return PresentedToken(found, refresh)
    return None


class Introspection(IntrospectionEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = CONFIDENTIAL_AUTH

    def query_token(self, token_string: str, token_type_hint: str | None) -> PresentedToken | None:
        return _find_token(self.server, token_string, token_type_hint)

    def introspect_token(self, presented: PresentedToken) -> dict[str, Any]:
        server: OidcServer = self.server
        token = presented.token
        user = server.active_user(token.user_id)
        if user is None:
            return {"active": False}
        answer: dict[str, Any] = {
            "active": True,
            "client_id": token.client_id,
            "scope": token.scope,
            "sub": token.user_id,
            "username": user.username,
            "exp": int(presented.expires_at),
            "iat": int(token.issued_at),
            "iss": server.issuer,
            "aud": token.client_id,
        }
        if not presented.refresh:
            answer["token_type"] = "Bearer"  # noqa: S105 - RFC 7662: the access token type
        return answer

    def check_permission(self, token: PresentedToken, client: ClientAdapter, request: Any) -> bool:
        # Anything else answers {"active": false}, as for a token that does not exist.
        return token.check_client(client)


class Revocation(RevocationEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = ALL_AUTH

    def query_token(self, token_string: str, token_type_hint: str | None) -> PresentedToken | None:
        return _find_token(self.server, token_string, token_type_hint)

    def revoke_token(self, presented: PresentedToken, request: PassgateRequest) -> None:
        server: OidcServer = self.server
        if presented.refresh:
            server.store.revoke_family(presented.token.family_id)  # RFC 7009 2.1: and its grant
            server.audit_revoked(
                presented.token, "revoked by the app (refresh token and its family)", request
            )
        else:
            server.store.revoke(presented.token.id)
            server.audit_revoked(presented.token, "revoked by the app (access token)", request)
