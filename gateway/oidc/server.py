"""authlib's OAuth 2.0 / OpenID Connect server, wired to Passgate's storage.

authlib does the protocol (validation, PKCE, client authentication, error responses, ID tokens);
this module only fills in its storage hooks and adapts requests. The server is synchronous:
the web layer reads the request body first and calls it in a worker thread.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import logging
import os
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

from authlib.common.urls import add_params_to_uri
from authlib.oauth2 import AuthorizationServer, OAuth2Error
from authlib.oauth2.rfc6749 import (
    ClientMixin,
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Request,
    UnauthorizedClientError,
)
from authlib.oauth2.rfc6749.grants import (
    AuthorizationCodeGrant,
    ClientCredentialsGrant,
    RefreshTokenGrant,
)
from authlib.oauth2.rfc6749.requests import OAuth2Payload
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from authlib.oauth2.rfc8628 import (
    DEVICE_CODE_GRANT_TYPE,
    DeviceAuthorizationEndpoint,
    DeviceCodeGrant,
)
from authlib.oidc.core.grants import OpenIDCode, OpenIDToken
from starlette.responses import JSONResponse, Response

from gateway.accounts.users import User, UserService
from gateway.audit.log import Actor, AuditLog
from gateway.core import metrics
from gateway.core.errors import InvalidInput
from gateway.oidc.access_tokens import JWT_ALG, Binding, JwtAccessTokens, opaque_tokens
from gateway.oidc.claims import claims_for
from gateway.oidc.client_auth import (
    ASSERTION_TYPE,
    ClientSecretJwt,
    JwksFetcher,
    PrivateKeyJwt,
    ReplayGuard,
)
from gateway.oidc.client_service import ClientService, SecretRefused
from gateway.oidc.clients import OidcClient, open_to, validate_resource
from gateway.oidc.custom_claims import CustomClaims
from gateway.oidc.device_codes import (
    DEVICE_CODE_LIFETIME,
    POLL_INTERVAL,
    DeviceCode,
    DeviceCodes,
    new_user_code,
)
from gateway.oidc.dpop import DpopProof
from gateway.oidc.endpoints import endpoints
from gateway.oidc.pushed_requests import PushedRequests
from gateway.oidc.signing_keys import SigningKeys
from gateway.oidc.tokens import AuthorizationCode, IssuedToken, OAuthStore
from gateway.sessions.ephemeral import Ephemeral

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
    "invalid_request_uri": "the request_uri is unknown, expired, used or not this client's",
    "unsupported_grant_type": "supported grant types: authorization_code, refresh_token, "
    "client_credentials and urn:ietf:params:oauth:grant-type:device_code",
    "unsupported_token_type": "only access_token and refresh_token can be given as hints",
    "invalid_scope": "the requested scope is unknown",
    "access_denied": "the user or Passgate denied the request",
    "login_required": "the user must sign in",
    "consent_required": "the user must consent",
    # machine and TV grants (RFC 8628 3.5)
    "authorization_pending": "the user has not yet approved the device: keep polling",
    "slow_down": "polling too fast: wait 5 seconds longer between polls from now on",
    "expired_token": "the device code has expired: start again",
    "invalid_target": "the requested resource is unknown or not allowed for this client",
    "invalid_dpop_proof": "the DPoP proof is missing or invalid",
}
# The grants a client may be allowed (clients.OPT_IN_GRANTS) by their grant_type value.
GRANT_NAMES = {
    "authorization_code": "authorization_code",
    "refresh_token": "refresh_token",
    "client_credentials": "client_credentials",
    DEVICE_CODE_GRANT_TYPE: "device_code",
}
# Signed client authentication (RFC 7523) sits beside the secrets (oidc-app-auth).
JWT_AUTH = ["private_key_jwt", "client_secret_jwt"]
SECRET_REFUSALS = {
    "expired": "this client secret has expired: the app must use a current one",
    "revoked": "this client secret was revoked: the app must use a current one",
}
CONFIDENTIAL_AUTH = ["client_secret_basic", "client_secret_post", *JWT_AUTH]
# How a request can try to authenticate its client, as error messages name them.
AUTH_METHOD_NAMES = {
    "client_secret_basic": "HTTP Basic",
    "client_secret_post": "client_secret",
    "client_assertion": "client_assertion",
}
ALL_AUTH = [*CONFIDENTIAL_AUTH, "none"]


class InvalidTargetError(OAuth2Error):  # type: ignore[misc]
    """RFC 8707 2: the `resource` is malformed or not one this client may ask for."""

    error = "invalid_target"


class InvalidDpopProofError(OAuth2Error):  # type: ignore[misc]
    """RFC 9449 5: the token request's DPoP proof is missing, invalid or of the wrong key."""

    error = "invalid_dpop_proof"


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

    def get_allowed_scope(self, scope: str | None) -> str:
        machine = self.client.client_credentials_scopes
        if scope is None:
            # Only client_credentials leaves the scope out (every other grant passes its code's
            # or token's): RFC 6749 3.3's default is then everything the client was given.
            return " ".join(machine)
        return " ".join(s for s in scope.split() if s in SCOPES or s in machine)

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
        return method in _accepted_methods(self.client)

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return self.client.allows_grant(GRANT_NAMES.get(grant_type, ""))


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
        self.dpop: DpopProof | None = None  # a checked DPoP proof, set by the web layer
        self.binding: Binding | None = None  # what the access token is for (set by the grant)
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
        ephemeral: Ephemeral,
        devices: DeviceCodes,
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
        self.devices = devices
        self._opaque = opaque_tokens(self._expires_in)
        self.register_token_generator("default", self._opaque)
        self.register_grant(CodeGrant, [Pkce(required=True), PassgateOpenIDCode(self)])
        self.register_grant(RefreshGrant, [RefreshIdToken(self)])
        # machine and TV grants
        self.register_grant(MachineGrant)
        self.register_grant(DeviceGrant, [PassgateOpenIDToken(self)])
        self.register_endpoint(DeviceAuthorization)
        self.register_endpoint(Introspection)
        self.register_endpoint(Revocation)
        # pushed authorization requests and signed client authentication (oidc-app-auth)
        self.pushed = PushedRequests(ephemeral)
        urls = endpoints(issuer)
        audiences = [issuer, urls["token_endpoint"], urls["pushed_authorization_request_endpoint"]]
        replay, fetcher = ReplayGuard(ephemeral), JwksFetcher()
        for method in (PrivateKeyJwt, ClientSecretJwt):
            self.register_client_auth_method(
                method.CLIENT_AUTH_METHOD, method(audiences, replay, fetcher, clients.jwt_secret)
            )

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
        detail = ""  # what the audit log says beyond the answer (a refused secret's name)
        try:
            self._check_method(request, used)
            try:
                client: ClientAdapter = super().authenticate_client(request, methods, endpoint)
            except SecretRefused as refused:  # an expired or revoked secret: say which
                metrics.client_secret_refused(refused.client_id, refused.reason)
                # 401 as every other refused assertion (client_auth._refused) and Basic
                status = 401 if {"client_secret_basic", "client_assertion"} & set(used) else 400
                # Its holder (maybe not the app: a leaked secret) hears why, not which secret
                # it is or when it ended; the audit log names it for the administrator.
                detail = str(refused)
                said = SECRET_REFUSALS.get(refused.reason, "the client secret is wrong")
                raise InvalidClientError(status_code=status, description=said) from None
        except InvalidClientError as error:
            self._client_auth_failed(request, used, endpoint, error, detail)
            raise
        metrics.client_authentication(client.client.auth_method, True)
        return client

    # --- access tokens: resource indicators (RFC 8707), JWTs (RFC 9068), DPoP (RFC 9449) ---

    def bind(self, request: PassgateRequest, previous: IssuedToken | None) -> None:
        """Decide what the token request's access token is for and whom, before anything is
        issued: InvalidTargetError for a resource the client may not ask for,
        InvalidDpopProofError when the client must prove a key (or its refresh token is bound
        to one) and did not."""
        client: OidcClient = request.client.client
        resource = request.payload.data.get("resource")
        if resource is not None:
            try:
                validate_resource(resource)
            except InvalidInput as exc:
                raise InvalidTargetError(str(exc)) from None
        audience = resource or (previous.audience if previous else None)
        if audience is not None and audience not in client.allowed_resources:
            raise InvalidTargetError(f"this client may not ask for a token for {audience}")
        jkt = request.dpop.jkt if request.dpop else None
        if client.dpop_bound_access_tokens and jkt is None:
            raise InvalidDpopProofError("this client must send a DPoP proof to the token endpoint")
        # RFC 9449 5: a public client's refresh token is bound to the key it was issued to.
        bound = previous.dpop_jkt if previous is not None and client.public else None
        if bound is not None and jkt != bound:
            raise InvalidDpopProofError("the refresh token is bound to another DPoP key")
        code: AuthorizationCode | None = request.authorization_code
        device: DeviceCode | None = request.credential
        auth_time = code.auth_time if code else previous.auth_time if previous else time.time()
        if device is not None and device.auth_time is not None:
            auth_time = device.auth_time
        request.binding = Binding(audience, jkt, auth_time)

    def issue(
        self,
        request: PassgateRequest,
        user: Principal | None,
        scope: str | None,
        include_refresh: bool,
    ) -> dict[str, Any]:
        """The token response for a validated request: a JWT access token for a resource or a
        jwt-format client, an opaque one otherwise; typed DPoP when bound to a key."""
        client: ClientAdapter = request.client
        binding = request.binding
        assert binding is not None, "bind() runs when the request is validated"
        jwt_format = client.client.access_token_format == "jwt"  # noqa: S105 - a format name
        as_jwt = binding.audience is not None or jwt_format
        groups = user.user.groups if user is not None else ()  # None: client_credentials
        binding = dataclasses.replace(binding, groups=groups, jwt=as_jwt)
        request.binding = binding
        generator = self._opaque
        if as_jwt:
            key = self.keys.active(JWT_ALG)
            generator = JwtAccessTokens(self.issuer, key, binding, self._expires_in)
        grant_type = request.payload.data.get("grant_type", "")
        token: dict[str, Any] = generator(
            grant_type=grant_type,
            client=client,
            user=user,
            scope=scope,
            include_refresh_token=include_refresh,
        )
        token["token_type"] = binding.token_type
        return token

    def _check_method(self, request: PassgateRequest, used: list[str]) -> None:
        """InvalidClientError when the request authenticates a known client another way than
        the one it is configured for (a private_key_jwt client sending a secret, say)."""
        data = request.payload.data
        if "client_assertion" in used and data.get("client_assertion_type") != ASSERTION_TYPE:
            raise InvalidClientError(
                status_code=401, description=f"client_assertion_type must be {ASSERTION_TYPE}"
            )
        claimed = claimed_client_id(request)
        found = self.clients.find(claimed) if claimed else None
        if found is None:
            return  # authlib answers for unknown clients
        allowed = {
            "client_assertion": JWT_AUTH,
            "client_secret_basic": ["client_secret_basic", "client_secret_post"],
            "client_secret_post": ["client_secret_basic", "client_secret_post"],
        }
        for way in used:
            if found.auth_method not in allowed[way]:
                raise InvalidClientError(
                    status_code=401,
                    description=f"this client authenticates with {found.auth_method}, "
                    f"not with {AUTH_METHOD_NAMES[way]}",
                )
        if not used and found.auth_method != "none":
            raise InvalidClientError(
                status_code=401,
                description=f"this client must authenticate, with {found.auth_method}",
            )

    def _client_auth_failed(
        self,
        request: PassgateRequest,
        used: list[str],
        endpoint: str,
        error: InvalidClientError,
        detail: str = "",
    ) -> None:
        """Audit and count a refused client authentication, with the reason (never the
        credentials or the assertion)."""
        client_id = claimed_client_id(request)[:128]
        method = "+".join(used) or "none"
        log.info("client authentication refused at %s for %r: %s", endpoint, client_id, error)
        metrics.client_authentication(method, False)
        self.audit.record_or_log(
            "client_auth_failed",
            actor=Actor(
                "system",
                id=client_id,
                name=f"OIDC client {client_id}",
                ip=request.client_ip,
                user_agent=request.headers.get("user-agent", ""),
            ),
            success=False,
            reason=detail or error.description or "client authentication failed",
            details={"client_id": client_id, "method": method, "endpoint": endpoint},
        )

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
        # machine and TV grants: a device code carries the sign-in; client_credentials has
        # no user (request.user is None), so the client is the token's subject.
        device: DeviceCode | None = request.credential
        binding: Binding | None = request.binding
        auth_time = code.auth_time if code else previous.auth_time if previous else time.time()
        if device is not None and device.auth_time is not None:
            auth_time = device.auth_time
        user_id = request.user.get_user_id() if request.user is not None else None
        self.store.save_token(
            access_token=token["access_token"],
            refresh_token=token.get("refresh_token"),
            client_id=client.client_id,
            user_id=user_id,
            scope=scope,
            auth_time=auth_time,
            access_lifetime=client.access_token_lifetime,
            refresh_lifetime=client.refresh_token_lifetime,
            family_id=previous.family_id if previous else None,
            code_hash=code.code_hash if code else None,
            audience=binding.audience if binding else None,
            dpop_jkt=binding.dpop_jkt if binding else None,
        )
        grant_type = request.payload.data.get("grant_type", "")
        metrics.token_issued(client.client_id, GRANT_NAMES.get(grant_type, grant_type))
        self.audit.record_or_log(
            "token_refreshed" if grant_type == "refresh_token" else "token_issued",
            actor=client_actor(client, request),
            user_id=user_id,
            details={
                "client_id": client.client_id,
                "client_name": client.name,
                "grant_type": grant_type,
                "scope": scope,
                "refresh_token": "refresh_token" in token,
                "access_token_format": "jwt" if binding and binding.jwt else "opaque",
                "audience": (binding.audience if binding else None) or client.client_id,
                "token_type": token.get("token_type", "Bearer"),
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
        path = urlsplit(request.uri).path if request is not None else ""
        metrics.oidc_error(path.rsplit("/", 1)[-1] or "unknown", error.error)
        return super().handle_error_response(request, error)

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None

    def claims(self, user: User, scope: str) -> dict[str, Any]:
        """Claims for ID tokens and userinfo, custom claims included."""
        return claims_for(user, scope, self.custom_claims.for_user(user.id))

    def active_user(self, user_id: str) -> User | None:
        user = self.users.find_user(user_id)
        return user if user is not None and not user.disabled else None


def _accepted_methods(client: OidcClient) -> list[str]:
    """The authlib method names a client may authenticate with: its configured one (the two
    secret methods stand for each other, as they always have here)."""
    method = client.auth_method
    if method in ("client_secret_basic", "client_secret_post"):
        return ["client_secret_basic", "client_secret_post"]
    return [method]


def claimed_client_id(request: PassgateRequest) -> str:
    """The client a request claims to be (Basic user, client_id, or an assertion's unverified
    sub): only to pick the checks and name it in the audit log, never to trust."""
    data = request.payload.data
    basic = _basic_token(request)
    if basic and _basic_readable(request):
        user = base64.b64decode(basic).decode("utf-8").partition(":")[0]
        return unquote(user)
    if data.get("client_id"):
        return data["client_id"]
    assertion = data.get("client_assertion")
    if assertion:
        try:
            sub = json.loads(base64.urlsafe_b64decode(assertion.split(".")[1] + "==")).get("sub")
        except (ValueError, IndexError, AttributeError):
            return ""
        return sub if isinstance(sub, str) else ""
    return ""


def client_auth_methods(request: PassgateRequest) -> list[str]:
    """The ways a request tries to authenticate its client: an HTTP Basic header, a
    client_secret parameter, a client_assertion (RFC 7523: private_key_jwt, client_secret_jwt
    or a federated identity's token)."""
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


class _Issuing:
    """Token issuance through OidcServer.issue, which knows the request (authlib's token
    generators see only the client): the resource, the DPoP key and the token format."""

    request: PassgateRequest
    server: OidcServer

    def generate_token(
        self,
        user: Principal | None = None,
        scope: str | None = None,
        grant_type: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        # None stays None: client_credentials without a scope gets every scope it was given
        # (ClientAdapter.get_allowed_scope).
        return self.server.issue(self.request, user, scope, include_refresh_token)


class CodeGrant(_Issuing, AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ALL_AUTH
    _presented: AuthorizationCode | None = None  # the code found for this client, if any

    @property
    def _passgate(self) -> OidcServer:
        server: OidcServer = self.server
        return server

    def validate_token_request(self) -> None:
        """authlib's checks (client, code, redirect_uri, PKCE), then the resource and DPoP.
        A code that was found but failed a check is burnt: a second try (say, an attacker's
        guess at the verifier) must not succeed either."""
        try:
            super().validate_token_request()
        except OAuth2Error as error:
            if self._presented is not None:
                self._burn(self._presented, error)
            raise
        self._passgate.bind(self.request, None)

    def _burn(self, code: AuthorizationCode, error: OAuth2Error) -> None:
        if not self._passgate.store.mark_code_used(code.code_hash):
            return
        log.info("authorization code of client %s burnt: %s", code.client_id, error.error)
        self._passgate.audit.record_or_log(
            "authorization_code_burned",
            actor=Actor("system", id=code.client_id, name="passgate"),
            user_id=code.user_id,
            success=False,
            reason=error.description or error.error,
            details={"client_id": code.client_id, "error": error.error},
        )

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
        self._presented = found
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


class IdTokens:
    """How Passgate signs ID tokens and what they say, for every grant that issues them."""

    _server: OidcServer

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


class PassgateOpenIDCode(IdTokens, OpenIDCode):  # type: ignore[misc]
    def __init__(self, server: OidcServer) -> None:
        super().__init__(require_nonce=False)
        self._server = server

    def exists_nonce(self, nonce: str, request: PassgateRequest) -> bool:
        return False  # nonces are the client's to check in the ID token; codes are single-use


class RefreshIdToken(IdTokens, OpenIDToken):  # type: ignore[misc]
    """A new ID token with every refresh of an openid grant (OIDC Core 12.2): same iss, sub
    and aud, a new iat, auth_time of the original sign-in, and no nonce (it belonged to the
    authorization request)."""

    def __init__(self, server: OidcServer) -> None:
        self._server = server

    def generate_user_info(self, user: Principal, scope: str) -> dict[str, Any]:
        return {**self._server.claims(user.user, scope), "auth_time": int(user.auth_time)}


class RefreshGrant(_Issuing, RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ALL_AUTH
    INCLUDE_NEW_REFRESH_TOKEN = True

    @property
    def _passgate(self) -> OidcServer:
        server: OidcServer = self.server
        return server

    def validate_token_request(self) -> None:
        super().validate_token_request()
        self._passgate.bind(self.request, self.request.refresh_token)

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
        # client_credentials tokens have no refresh token, so every refresh token has a user
        user = self._passgate.active_user(refresh_token.user_id or "")
        if user is None:
            raise InvalidGrantError("the user is disabled or gone")
        # allowed_groups is checked at sign-in; a refresh must not outlive the membership
        client: OidcClient = self.request.client.client
        if not open_to(client, user.groups):
            raise InvalidGrantError("the user is no longer in the groups this app allows")
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
        names: dict[str, str] = {}
        if token.user_id is not None:  # else a client_credentials token: the client is sub
            user = server.active_user(token.user_id)
            if user is None:
                return {"active": False}
            names["username"] = user.username
        answer: dict[str, Any] = {
            "active": True,
            "client_id": token.client_id,
            "scope": token.scope,
            "sub": token.subject,
            **names,
            "exp": int(presented.expires_at),
            "iat": int(token.issued_at),
            "iss": server.issuer,
            "aud": token.audience or token.client_id,
        }
        if not presented.refresh:
            # RFC 7662 and RFC 9449 6.2: the access token's type, and the key it is bound to.
            answer["token_type"] = "DPoP" if token.dpop_jkt else "Bearer"
            if token.dpop_jkt:
                answer["cnf"] = {"jkt": token.dpop_jkt}
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


# machine and TV grants -------------------------------------------------------------------------


class MachineGrant(_Issuing, ClientCredentialsGrant):  # type: ignore[misc]
    """client_credentials (RFC 6749 4.4): a confidential client allowed the grant gets a token
    about itself, for the scopes it was given (all of them when it asks for none); never a
    refresh token. A public client cannot authenticate here: invalid_client."""

    TOKEN_ENDPOINT_AUTH_METHODS = CONFIDENTIAL_AUTH

    def validate_token_request(self) -> None:
        super().validate_token_request()
        server: OidcServer = self.server
        server.bind(self.request, None)

    def validate_requested_scope(self) -> None:
        client: OidcClient = self.request.client.client
        asked = self.request.payload.scope
        allowed = client.client_credentials_scopes
        wanted = (asked or "").split()
        refused = [scope for scope in wanted if scope not in allowed]
        if refused:
            raise InvalidScopeError(
                f"this client may not ask for {refused[0]!r} with client_credentials "
                f"(allowed: {' '.join(allowed) or 'none'})"
            )


class DeviceAuthorization(DeviceAuthorizationEndpoint):  # type: ignore[misc]
    """RFC 8628 3.1-3.2: a device asks for a device code and a user code to show its user."""

    CLIENT_AUTH_METHODS = ALL_AUTH
    EXPIRES_IN = DEVICE_CODE_LIFETIME
    INTERVAL = POLL_INTERVAL

    @property
    def _passgate(self) -> OidcServer:
        server: OidcServer = self.server
        return server

    def authenticate_client(self, request: PassgateRequest) -> ClientAdapter:
        client: ClientAdapter = super().authenticate_client(request)
        if not client.client.allows_grant("device_code"):
            raise UnauthorizedClientError("this client is not allowed the device_code grant")
        return client

    def generate_user_code(self) -> str:
        return new_user_code()

    def get_verification_uri(self) -> str:
        return f"{self._passgate.issuer}/device"

    def save_device_credential(
        self, client_id: str, scope: str | None, data: dict[str, Any]
    ) -> None:
        self._passgate.devices.save(data["device_code"], data["user_code"], client_id, scope or "")
        metrics.device_authorization("requested")


class DeviceGrant(_Issuing, DeviceCodeGrant):  # type: ignore[misc]
    """RFC 8628 3.4-3.5: the device polls with its device code until the user has answered."""

    TOKEN_ENDPOINT_AUTH_METHODS = ALL_AUTH

    def validate_token_request(self) -> None:
        super().validate_token_request()
        self._passgate.bind(self.request, None)

    @property
    def _passgate(self) -> OidcServer:
        server: OidcServer = self.server
        return server

    def query_device_credential(self, device_code: str) -> DeviceCode:
        found = self._passgate.devices.poll(device_code)
        if found is None:
            raise InvalidGrantError("unknown device code")
        if found.status == "used":
            raise InvalidGrantError("the device code was already used")
        return found

    def query_user_grant(self, user_code: str) -> tuple[Principal | None, bool] | None:
        devices = self._passgate.devices
        found = devices.by_user_code_hash(user_code)
        if found is None or found.status == "pending":
            return None
        if found.status == "denied":
            return None, False
        if found.user_id is None or not devices.take(found.device_code_hash):
            raise InvalidGrantError("the device code was already used")
        user = self._passgate.active_user(found.user_id)
        if user is None:
            raise InvalidGrantError("the user is disabled or gone")
        return Principal(user, found.auth_time or time.time(), found.amr), True

    def should_slow_down(self, credential: DeviceCode) -> bool:
        last = credential.last_polled_at
        return last is not None and time.time() - last < credential.poll_interval


class PassgateOpenIDToken(IdTokens, OpenIDToken):  # type: ignore[misc]
    """The ID token of the device grant: the user's claims and how they signed in."""

    def __init__(self, server: OidcServer) -> None:
        self._server = server

    def get_compatible_claims(self, request: PassgateRequest) -> dict[str, Any]:
        claims: dict[str, Any] = super().get_compatible_claims(request)
        claims.update(self.get_authorization_code_claims(request.credential))
        return claims
