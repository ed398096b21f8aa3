"""OpenID Connect clients: the client record and its validation (redirect URIs, lifetimes, the
CONFIG_FILE `clients:` list). The stored clients are gateway.oidc.client_service.

Clients are created from the CLI or console, or declared in CONFIG_FILE under `clients:`
(GitOps); declared clients are synced at start-up and are read-only everywhere else. Redirect
URIs match exactly, string for string; with `wildcard_callbacks` a `*` stands for the inside of
one host label or one path segment and nothing more.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from ipaddress import ip_address
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import yaml
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from gateway.accounts.users import validate_group_name
from gateway.core.crypto import hash_token
from gateway.core.errors import InvalidInput, PassgateError
from gateway.forward_auth.rules import _StrictLoader, _yaml_problem

IdTokenAlg = Literal["RS256", "ES256"]
ID_TOKEN_ALGS: tuple[str, ...] = ("RS256", "ES256")
AccessTokenFormat = Literal["opaque", "jwt"]
ACCESS_TOKEN_FORMATS: tuple[str, ...] = ("opaque", "jwt")
AUTH_METHODS: tuple[str, ...] = (
    "client_secret_basic",  # the default; client_secret_post is accepted alike
    "client_secret_post",
    "client_secret_jwt",
    "private_key_jwt",
    "none",  # public clients
)
ACCESS_TOKEN_LIFETIME = (60, 86400)  # seconds, inclusive bounds
REFRESH_TOKEN_LIFETIME = (3600, 365 * 86400)
# machine and TV grants: the grants a client may be allowed on top of authorization_code (and
# refresh_token, which follows it), and what a client_credentials scope may look like.
OptInGrant = Literal["client_credentials", "device_code"]
OPT_IN_GRANTS: tuple[str, ...] = ("client_credentials", "device_code")
RESERVED_SCOPES = frozenset({"openid", "profile", "email", "groups", "offline_access"})
_MACHINE_SCOPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9:._/-]{0,63}$")

_CLIENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._~-]{0,127}$")
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*$")
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?"
_HOST = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
# What a `*` may stand for: never empty, never a dot or slash, never a dot-segment or %-escape.
_HOST_WILDCARD = "[a-z0-9-]+"
_PATH_WILDCARD = "[A-Za-z0-9_~-][A-Za-z0-9._~-]*"


class ReadOnlyClient(PassgateError):
    """The client is declared in CONFIG_FILE, so only that file can change it."""


class ClientsConfigError(PassgateError):
    """The `clients:` section of CONFIG_FILE is invalid; the message says where and why."""


@dataclass(frozen=True, slots=True)
class ClientSecret:
    """One of a confidential client's secrets (stored as its sha256 hex, never in clear)."""

    id: str
    name: str
    secret_hash: str
    created_at: float
    expires_at: float | None = None  # None: until revoked
    last_used_at: float | None = None
    revoked_at: float | None = None

    def state(self, now: float) -> Literal["active", "expired", "revoked"]:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"


@dataclass(frozen=True, slots=True)
class OidcClient:
    client_id: str
    name: str
    public: bool
    redirect_uris: tuple[str, ...]
    post_logout_redirect_uris: tuple[str, ...]
    allowed_groups: tuple[str, ...]  # empty: every user may sign in
    pkce_required: bool
    wildcard_callbacks: bool
    id_token_alg: str
    access_token_lifetime: int  # seconds
    refresh_token_lifetime: int  # seconds
    refresh_tokens: bool  # issue refresh tokens even without the offline_access scope
    logo_url: str
    declared: bool
    created_at: float
    # machine and TV grants ---------------------------------------------------------------
    grant_types: tuple[str, ...] = ()  # opt-in grants (OPT_IN_GRANTS) beyond the code flow
    client_credentials_scopes: tuple[str, ...] = ()  # what client_credentials may ask for
    # --- access tokens: format, resource indicators (RFC 8707), DPoP (RFC 9449) ---
    access_token_format: str = "opaque"  # noqa: S105 - "jwt": RFC 9068 tokens, verifiable offline
    allowed_resources: tuple[str, ...] = ()  # audiences the client may ask a token for
    dpop_bound_access_tokens: bool = False  # every token request must carry a DPoP proof
    # pushed authorization requests and signed client authentication (oidc-app-auth) ------------
    require_par: bool = False  # /authorize only with a request_uri from /api/oidc/par
    token_endpoint_auth_method: str = ""  # one of AUTH_METHODS; "" until validated()
    jwks: str = ""  # private_key_jwt: the client's public keys, a JWK Set as JSON
    jwks_uri: str = ""  # private_key_jwt: where to fetch them instead
    federated_identities: tuple[FederatedIdentity, ...] = ()
    secret_sealed: str | None = None  # client_secret_jwt: the secret, sealed with SecretBox
    # oidc-client-options (issue 13) ----------------------------------------------------------
    secrets: tuple[ClientSecret, ...] = ()  # confidential clients: 1..N; public: none
    skip_consent: bool = False  # trusted first-party app: consent is recorded, never asked
    require_reauth: bool = False  # every authorization request needs a fresh passkey sign-in
    launch_url: str = ""  # where "My apps" opens the app; empty: not listed there
    logo_etag: str = ""  # set when a logo was uploaded (served at /api/oidc/clients/{id}/logo)

    def allows_grant(self, grant: str) -> bool:
        """Whether the client may use `grant` (an OPT_IN_GRANTS name, or authorization_code
        and refresh_token, which every client may use)."""
        return grant in ("authorization_code", "refresh_token") or grant in self.grant_types

    @property
    def auth_method(self) -> str:
        """How this client authenticates at the token endpoint (AUTH_METHODS)."""
        if self.token_endpoint_auth_method:
            return self.token_endpoint_auth_method
        return "none" if self.public else "client_secret_basic"

    def active_secrets(self, now: float) -> tuple[ClientSecret, ...]:
        return tuple(s for s in self.secrets if s.state(now) == "active")


@dataclass(frozen=True, slots=True)
class FederatedIdentity:
    """A trusted issuer whose JWTs authenticate the client (Pocket-ID's federated client
    credentials: a CI system's OIDC token, a Kubernetes service-account token). `subject`
    defaults to the client_id, `audience` to Passgate's issuer URL, `jwks` (a URL) to the
    issuer's /.well-known/jwks.json; `replay_protection` makes each token's jti single-use."""

    issuer: str
    subject: str = ""
    audience: str = ""
    jwks: str = ""
    replay_protection: bool = False

    @property
    def jwks_url(self) -> str:
        return self.jwks or self.issuer.rstrip("/") + "/.well-known/jwks.json"


def uploaded_logo_path(client: OidcClient) -> str:
    """Where an uploaded logo is served (Pocket-ID's path), its etag making each version's URL
    new, so that it can be cached for long; empty without an uploaded logo."""
    if not client.logo_etag:
        return ""
    return f"/api/oidc/clients/{quote(client.client_id, safe='')}/logo?v={client.logo_etag}"


def open_to(client: OidcClient, groups: Sequence[str]) -> bool:
    """True if a member of `groups` may sign in to the client (no allowed groups: everyone)."""
    return not client.allowed_groups or bool(set(client.allowed_groups) & set(groups))


def logo_of(client: OidcClient) -> str:
    """The logo to show for a client: the uploaded one, else logo_url, else empty."""
    return uploaded_logo_path(client) or client.logo_url


# validation ----------------------------------------------------------------------------------


def validate_redirect_uri(uri: str, wildcards: bool, field: str = "redirect URI") -> str:
    """Return the URI unchanged if a client may register it; raise InvalidInput otherwise.

    Allowed: https; http on loopback hosts only; private-use schemes with a dot such as
    `com.example.app:/cb` (RFC 8252). `*` only with `wildcards`: in https/http host labels left
    of the last two, and in path segments."""
    if not uri or any(ch.isspace() or ord(ch) < 32 or ch == "\\" for ch in uri):
        raise InvalidInput(f"{field} {uri!r} must be a URL without spaces or backslashes")
    if "#" in uri:
        raise InvalidInput(f"{field} {uri!r} must not have a #fragment")
    parts = urlsplit(uri)
    if not _SCHEME.match(parts.scheme) or _recompose(uri) != uri:
        raise InvalidInput(f"{field} {uri!r} must be an absolute URL with a lower-case scheme")
    if "*" in uri and not wildcards:
        raise InvalidInput(f"{field} {uri!r} has a * but wildcard callbacks are off")
    if "*" in parts.scheme or "*" in parts.query:
        raise InvalidInput(f"{field} {uri!r}: a * is allowed only in the host or the path")
    if parts.scheme in ("https", "http"):
        _check_web_host(uri, parts.netloc, parts.scheme, field)
    elif "." not in parts.scheme:
        raise InvalidInput(
            f"{field} {uri!r} must use https, http on localhost, or an app scheme with a dot "
            "such as com.example.app:/callback"
        )
    elif not parts.path or "*" in parts.netloc:
        raise InvalidInput(
            f"{field} {uri!r} needs a path (com.example.app:/callback) and no * before it"
        )
    return uri


def _recompose(uri: str) -> str:
    """The URI rebuilt from urlsplit's parts: differs from `uri` if urlsplit read it oddly."""
    parts = urlsplit(uri)
    authority = "//" + parts.netloc if uri[len(parts.scheme) + 1 :].startswith("//") else ""
    query = uri[uri.index("?") :] if "?" in uri else ""
    return f"{parts.scheme}:{authority}{parts.path}{query}"


def _check_web_host(uri: str, netloc: str, scheme: str, field: str) -> None:
    if "@" in netloc:
        raise InvalidInput(f"{field} {uri!r} must not carry user@ information")
    if netloc.startswith("["):
        host, bracket, port = netloc[1:].partition("]")
        try:
            ip_address(host)
        except ValueError:
            raise InvalidInput(f"{field} {uri!r} has an invalid IPv6 address") from None
        if not bracket or (port and not port.startswith(":")):
            raise InvalidInput(f"{field} {uri!r} has an invalid host")
        port = port[1:]
    else:
        host, colon, port = netloc.partition(":")
        if not _HOST.match(host.replace("*", "x")):
            raise InvalidInput(f"{field} {uri!r} has an invalid host name")
        if colon and not port:
            raise InvalidInput(f"{field} {uri!r} has an empty port")
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        raise InvalidInput(f"{field} {uri!r} has an invalid port")
    if scheme == "http" and host.lower() not in _LOOPBACK_HOSTS:
        raise InvalidInput(
            f"{field} {uri!r}: http is allowed only for localhost, 127.0.0.1 and [::1]; use https"
        )
    labels = host.split(".")
    if "*" in "".join(labels[-2:]):
        raise InvalidInput(
            f"{field} {uri!r}: a * in the host must leave at least two fixed labels to its "
            "right, as in https://*.example.com/callback"
        )


@lru_cache(maxsize=1024)
def _wildcard_pattern(pattern: str) -> re.Pattern[str]:
    """A regex for a validated wildcard URI: a host `*` stays within one label, a path `*`
    within one segment; everything else is literal."""
    parts = urlsplit(pattern)
    authority = "//" if pattern[len(parts.scheme) + 1 :].startswith("//") else ""
    query = pattern[pattern.index("?") :] if "?" in pattern else ""
    return re.compile(
        re.escape(f"{parts.scheme}:{authority}")
        + _literal_with(parts.netloc, _HOST_WILDCARD)
        + _literal_with(parts.path, _PATH_WILDCARD)
        + re.escape(query)
    )


def _literal_with(text: str, wildcard: str) -> str:
    return wildcard.join(re.escape(piece) for piece in text.split("*"))


def uri_matches(patterns: tuple[str, ...], uri: str, wildcards: bool) -> bool:
    for pattern in patterns:
        if uri == pattern:
            return True
        if wildcards and "*" in pattern and _wildcard_pattern(pattern).fullmatch(uri):
            return True
    return False


def _check_lifetime(field: str, value: int, bounds: tuple[int, int]) -> int:
    low, high = bounds
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(f"{field} must be whole seconds between {low} and {high}")
    return value


def _check_web_url(field: str, url: str) -> str:
    """An https URL (http only on loopback hosts), or empty."""
    value = url.strip()
    if value and not value.startswith(("https://", "http://")):
        raise InvalidInput(f"{field} {url!r} must be an https URL")
    return validate_redirect_uri(value, False, field) if value else value


def _check_logo_url(url: str) -> str:
    return _check_web_url("logo_url", url)


def _check_grants(client: OidcClient) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The client's opt-in grants and client_credentials scopes, de-duplicated; InvalidInput
    for an unknown grant or scope name, or a public client given client_credentials."""
    for grant in client.grant_types:
        if grant not in OPT_IN_GRANTS:
            raise InvalidInput(
                f"grant_types: {grant!r} is not an opt-in grant (allowed: client_credentials, "
                "device_code; authorization_code and refresh_token are always on)"
            )
    grants = tuple(g for g in OPT_IN_GRANTS if g in client.grant_types)
    if client.public and "client_credentials" in grants:
        raise InvalidInput(
            "grant_types: a public client has no secret, so it cannot use client_credentials"
        )
    scopes = tuple(dict.fromkeys(s.strip() for s in client.client_credentials_scopes))
    for scope in scopes:
        if scope in RESERVED_SCOPES:
            raise InvalidInput(
                f"client_credentials_scopes: {scope!r} is about a user; a machine token has none"
            )
        if not _MACHINE_SCOPE.match(scope):
            raise InvalidInput(
                f"client_credentials_scopes: {scope!r} must be 1-64 characters: letters, digits "
                "and : . _ / - (such as backup:read)"
            )
    if scopes and "client_credentials" not in grants:
        raise InvalidInput("client_credentials_scopes need the client_credentials grant")
    return grants, scopes


def validate_resource(uri: str) -> str:
    """A resource indicator (RFC 8707 2): an absolute https URL (http on loopback) without a
    fragment, returned unchanged; InvalidInput otherwise."""
    if not uri.startswith(("https://", "http://")):
        raise InvalidInput(f"resource {uri!r} must be an absolute https URL")
    return validate_redirect_uri(uri, False, "resource")


# signed client authentication (oidc-app-auth) -----------------------------------------------

MAX_CLIENT_KEYS = 20
MAX_FEDERATED_IDENTITIES = 10


def check_fetch_url(url: str, field: str) -> str:
    """`url` if Passgate may fetch keys from it: https, or http on a loopback host (tests and
    a JWKS served beside Passgate); InvalidInput otherwise."""
    parts = urlsplit(url)
    loopback = (parts.hostname or "") in _LOOPBACK_HOSTS
    if not parts.hostname or parts.scheme not in ("https", "http") or "@" in parts.netloc:
        raise InvalidInput(f"{field} {url!r} must be an https URL")
    if parts.scheme == "http" and not loopback:
        raise InvalidInput(f"{field} {url!r} must use https (http only on localhost)")
    if parts.fragment or any(ch.isspace() for ch in url):
        raise InvalidInput(f"{field} {url!r} must be a URL without spaces or a #fragment")
    return url


def check_public_jwks(text: str, field: str = "jwks") -> str:
    """A JWK Set of public signing keys as compact JSON; InvalidInput for anything else
    (private or symmetric keys, duplicate kids, more than MAX_CLIENT_KEYS keys)."""
    try:
        data = json.loads(text)
    except ValueError:
        raise InvalidInput(f'{field} must be a JWK Set in JSON: {{"keys": [...]}}') from None
    keys = data.get("keys") if isinstance(data, dict) else None
    if not isinstance(keys, list) or not 1 <= len(keys) <= MAX_CLIENT_KEYS:
        raise InvalidInput(f'{field} must hold 1-{MAX_CLIENT_KEYS} keys under "keys"')
    try:
        imported = KeySet.import_key_set({"keys": keys})
    except (JoseError, ValueError, TypeError) as exc:
        raise InvalidInput(f"{field} holds a key that cannot be read: {exc}") from None
    for key in imported.keys:
        if key.key_type == "oct" or key.is_private:
            raise InvalidInput(f"{field} must hold public keys only (RSA, EC or OKP)")
    kids = [key.get("kid") for key in keys if isinstance(key, dict) and key.get("kid")]
    if len(kids) != len(set(kids)):
        raise InvalidInput(f"{field} has two keys with the same kid")
    return json.dumps({"keys": keys}, separators=(",", ":"), sort_keys=True)


def _check_federated(identity: FederatedIdentity) -> FederatedIdentity:
    issuer = identity.issuer.strip()
    if not issuer or len(issuer) > 512:
        raise InvalidInput("a federated identity needs an issuer (1-512 characters)")
    for name in ("subject", "audience"):
        if len(getattr(identity, name)) > 512:
            raise InvalidInput(f"federated identity {name} must be at most 512 characters")
    checked = dataclasses.replace(identity, issuer=issuer, jwks=identity.jwks.strip())
    check_fetch_url(checked.jwks_url, f"federated identity {issuer!r}: jwks")
    return checked


FEDERATED_KEYS = ("issuer", "subject", "audience", "jwks", "replay_protection")


def parse_federated_identity(text: str) -> FederatedIdentity:
    """`issuer=URL,subject=S,audience=A,jwks=URL,replay_protection=yes` (the CLI's and the
    console's way of writing one) as a FederatedIdentity; InvalidInput when malformed."""
    values: dict[str, Any] = {}
    for part in text.split(","):
        key, equals, value = (piece.strip() for piece in part.partition("="))
        if not equals or key not in FEDERATED_KEYS:
            raise InvalidInput(
                f"federated identity {text!r}: write key=value pairs with the keys "
                + ", ".join(FEDERATED_KEYS)
            )
        flag = value.lower() in ("1", "yes", "true", "on")
        values[key] = flag if key == "replay_protection" else value
    if not values.get("issuer"):
        raise InvalidInput(f"federated identity {text!r} needs issuer=...")
    return FederatedIdentity(**values)


def format_federated_identity(identity: FederatedIdentity) -> str:
    """The identity as parse_federated_identity reads it, defaults left out."""
    parts = [f"issuer={identity.issuer}"]
    parts += [
        f"{key}={getattr(identity, key)}" for key in FEDERATED_KEYS[1:4] if getattr(identity, key)
    ]
    if identity.replay_protection:
        parts.append("replay_protection=yes")
    return ",".join(parts)


def _check_app_auth(client: OidcClient) -> OidcClient:
    """The signed-client-authentication fields normalised; InvalidInput naming the bad one."""
    method = client.auth_method
    if method not in AUTH_METHODS:
        raise InvalidInput(
            f"token_endpoint_auth_method {method!r} must be one of {', '.join(AUTH_METHODS)}"
        )
    if client.public != (method == "none"):
        raise InvalidInput(
            "token_endpoint_auth_method none is for public clients, and only none is"
        )
    jwks = check_public_jwks(client.jwks) if client.jwks.strip() else ""
    jwks_uri = client.jwks_uri.strip()
    if jwks_uri:
        check_fetch_url(jwks_uri, "jwks_uri")
    if jwks and jwks_uri:
        raise InvalidInput("give jwks or jwks_uri, not both")
    identities = tuple(_check_federated(i) for i in client.federated_identities)
    if len(identities) > MAX_FEDERATED_IDENTITIES:
        raise InvalidInput(f"at most {MAX_FEDERATED_IDENTITIES} federated identities")
    if len({i.issuer for i in identities}) != len(identities):
        raise InvalidInput("two federated identities have the same issuer")
    if method == "private_key_jwt" and not (jwks or jwks_uri or identities):
        raise InvalidInput("private_key_jwt needs jwks, jwks_uri or a federated identity")
    if method != "private_key_jwt" and (jwks or jwks_uri or identities):
        raise InvalidInput(
            "jwks, jwks_uri and federated identities are for token_endpoint_auth_method "
            "private_key_jwt"
        )
    return dataclasses.replace(
        client,
        token_endpoint_auth_method=method,
        jwks=jwks,
        jwks_uri=jwks_uri,
        federated_identities=identities,
        secret_sealed=client.secret_sealed if method == "client_secret_jwt" else None,
    )


def validated(client: OidcClient) -> OidcClient:
    """The client with normalised values; InvalidInput naming the first bad field."""
    if not _CLIENT_ID.match(client.client_id):
        raise InvalidInput(
            f"client_id {client.client_id!r} must be 1-128 characters: letters, digits, . _ ~ -"
        )
    name = client.name.strip()
    if not 1 <= len(name) <= 100:
        raise InvalidInput("name must be 1-100 characters")
    if not client.redirect_uris:
        raise InvalidInput("redirect_uris needs at least one redirect URI")
    wild = client.wildcard_callbacks
    redirects = tuple(validate_redirect_uri(u, wild) for u in client.redirect_uris)
    logouts = tuple(
        validate_redirect_uri(u, wild, "post-logout redirect URI")
        for u in client.post_logout_redirect_uris
    )
    groups = tuple(dict.fromkeys(validate_group_name(g) for g in client.allowed_groups))
    if client.id_token_alg not in ID_TOKEN_ALGS:
        raise InvalidInput(f"id_token_alg {client.id_token_alg!r} must be RS256 or ES256")
    grants, machine_scopes = _check_grants(client)
    client = _check_app_auth(client)
    return dataclasses.replace(
        client,
        grant_types=grants,
        client_credentials_scopes=machine_scopes,
        name=name,
        redirect_uris=tuple(dict.fromkeys(redirects)),
        post_logout_redirect_uris=tuple(dict.fromkeys(logouts)),
        allowed_groups=groups,
        access_token_lifetime=_check_lifetime(
            "access_token_lifetime", client.access_token_lifetime, ACCESS_TOKEN_LIFETIME
        ),
        refresh_token_lifetime=_check_lifetime(
            "refresh_token_lifetime", client.refresh_token_lifetime, REFRESH_TOKEN_LIFETIME
        ),
        logo_url=_check_logo_url(client.logo_url),
        allowed_resources=_validated_resources(client),
        launch_url=_check_web_url("launch_url", client.launch_url),
    )


def _validated_resources(client: OidcClient) -> tuple[str, ...]:
    """The client's resources, checked and de-duplicated (and its access token format)."""
    if client.access_token_format not in ACCESS_TOKEN_FORMATS:
        raise InvalidInput(
            f"access_token_format {client.access_token_format!r} must be opaque or jwt"
        )
    return tuple(dict.fromkeys(validate_resource(r) for r in client.allowed_resources))


# declared clients (CONFIG_FILE) -------------------------------------------------------------


_APP_AUTH_KEYS = {
    "require_pushed_authorization_requests",
    "token_endpoint_auth_method",
    "jwks",
    "jwks_uri",
    "federated_identities",
}


class DeclaredFederatedIdentity(BaseModel):
    """One trusted issuer under a declared client's `federated_identities` (FederatedIdentity)."""

    model_config = ConfigDict(extra="forbid")

    issuer: str
    subject: str = ""
    audience: str = ""
    jwks: str = ""
    replay_protection: bool = False


def _as_list(value: object) -> object:
    return [value] if isinstance(value, str) else ([] if value is None else value)


def _checked_hash(value: str | None) -> str | None:
    if value is not None and not _SHA256_HEX.match(value.strip().lower()):
        raise ValueError("must be the 64 hex digits of the secret's SHA-256")
    return None if value is None else value.strip().lower()


def _secret_from(
    client_id: str, secret_env: str | None, secret_hash: str | None, environ: Mapping[str, str]
) -> str:
    """The sha256 hex of a declared secret: given, or of the named environment variable."""
    if secret_hash:
        return secret_hash
    secret = environ.get(secret_env or "")
    if not secret:
        raise ClientsConfigError(
            f"CONFIG_FILE client {client_id!r}: environment variable {secret_env} "
            "(its secret_env) is not set"
        )
    return hash_token(secret)


class DeclaredSecret(BaseModel):
    """One entry of a declared client's `secrets:` list (for rotating a declared client's
    secret: list the new one, deploy the app, then remove the old one or let it expire)."""

    model_config = ConfigDict(extra="forbid")

    name: str = "secret"
    secret_env: str | None = None
    secret_hash: str | None = None
    expires: datetime | None = None  # ISO 8601; a date or time without zone is read as UTC

    _hash = field_validator("secret_hash")(_checked_hash)

    @model_validator(mode="after")
    def _check_one(self) -> DeclaredSecret:
        if bool(self.secret_env) == bool(self.secret_hash):
            raise ValueError(f"secret {self.name!r}: give exactly one of secret_env or secret_hash")
        return self

    def expires_at(self) -> float | None:
        if self.expires is None:
            return None
        when = self.expires if self.expires.tzinfo else self.expires.replace(tzinfo=UTC)
        return when.timestamp()


class DeclaredClient(BaseModel):
    """One entry of `clients:` in CONFIG_FILE. Confidential clients name their secret by
    `secret_env` (an environment variable read at start-up) or `secret_hash` (sha256 hex), or
    several of them, each with a name and an optional expiry, under `secrets:`."""

    model_config = ConfigDict(extra="forbid")

    client_id: str
    name: str
    redirect_uris: list[str]
    post_logout_redirect_uris: list[str] = []
    allowed_groups: list[str] = []
    public: bool = False
    secret_env: str | None = None
    secret_hash: str | None = None
    pkce_required: bool = False  # public clients always need PKCE
    wildcard_callbacks: bool = False
    id_token_alg: IdTokenAlg = "RS256"  # noqa: S105 - an algorithm name, not a secret
    access_token_lifetime: int = 3600
    refresh_token_lifetime: int = 30 * 86400
    refresh_tokens: bool = False
    logo_url: str = ""
    # machine and TV grants
    grant_types: list[OptInGrant] = []
    client_credentials_scopes: list[str] = []
    # --- access tokens: format, resource indicators (RFC 8707), DPoP (RFC 9449) ---
    access_token_format: AccessTokenFormat = "opaque"  # noqa: S105 - a format name
    allowed_resources: list[str] = []
    dpop_bound_access_tokens: bool = False
    # pushed authorization requests and signed client authentication (oidc-app-auth)
    require_pushed_authorization_requests: bool = False
    token_endpoint_auth_method: str = ""  # default: client_secret_basic, or none when public
    jwks: dict[str, object] | str = ""  # a JWK Set (YAML mapping or JSON text)
    jwks_uri: str = ""
    federated_identities: list[DeclaredFederatedIdentity] = []
    # oidc-client-options (issue 13)
    secrets: list[DeclaredSecret] = []
    skip_consent: bool = False
    require_reauth: bool = False
    launch_url: str = ""

    _listify = field_validator(
        "redirect_uris",
        "post_logout_redirect_uris",
        "allowed_groups",
        "grant_types",
        "client_credentials_scopes",
        "allowed_resources",
        mode="before",
    )(_as_list)

    _hash = field_validator("secret_hash")(_checked_hash)

    @model_validator(mode="after")
    def _check_secret(self) -> DeclaredClient:
        given = [k for k in ("secret_env", "secret_hash", "secrets") if getattr(self, k)]
        if self.public and given:
            raise ValueError(f"a public client has no secret: remove {given[0]}")
        keys_only = self.token_endpoint_auth_method == "private_key_jwt" and not given  # noqa: S105 - a method name
        if not self.public and len(given) != 1 and not keys_only:
            raise ValueError(
                "give exactly one of secret_env or secret_hash (or a secrets: list), "
                "or public: true"
            )
        names = [s.name for s in self.secrets]
        if len(set(names)) != len(names):
            raise ValueError("each of secrets needs its own name")
        return self

    def declared_secrets(self, environ: Mapping[str, str]) -> tuple[ClientSecret, ...]:
        """The client's secrets, read from `environ` where named by secret_env."""
        if self.public or not (self.secret_env or self.secret_hash or self.secrets):
            return ()  # public, or a private_key_jwt client with keys only
        if not self.secrets:
            only = _secret_from(self.client_id, self.secret_env, self.secret_hash, environ)
            return (ClientSecret(f"{self.client_id}:secret", "secret", only, 0.0),)
        return tuple(
            ClientSecret(
                id=f"{self.client_id}:{s.name}",
                name=s.name,
                secret_hash=_secret_from(self.client_id, s.secret_env, s.secret_hash, environ),
                created_at=0.0,
                expires_at=s.expires_at(),
            )
            for s in self.secrets
        )

    def to_client(self, environ: Mapping[str, str]) -> OidcClient:
        """The client this entry declares, secret read from `environ`; ClientsConfigError for a
        missing environment variable, InvalidInput for a bad value."""
        secrets = self.declared_secrets(environ)
        values = self.model_dump(exclude={"secret_env", "secret_hash", "secrets", *_APP_AUTH_KEYS})
        for key in (
            "redirect_uris",
            "post_logout_redirect_uris",
            "allowed_groups",
            "grant_types",
            "client_credentials_scopes",
            "allowed_resources",
        ):
            values[key] = tuple(values[key])
        client = OidcClient(
            **values,
            secrets=secrets,
            declared=True,
            created_at=0.0,
            **self._app_auth_values(),
        )
        if client.auth_method == "client_secret_jwt" and not (self.secret_env and not self.secrets):
            raise InvalidInput(
                "client_secret_jwt needs the secret itself: give secret_env (one secret), "
                "not secret_hash or a secrets: list"
            )
        return validated(client)

    def _app_auth_values(self) -> dict[str, Any]:
        jwks = self.jwks if isinstance(self.jwks, str) else json.dumps(self.jwks)
        return {
            "require_par": self.require_pushed_authorization_requests,
            "token_endpoint_auth_method": self.token_endpoint_auth_method,
            "jwks": jwks,
            "jwks_uri": self.jwks_uri,
            "federated_identities": tuple(
                FederatedIdentity(**identity.model_dump()) for identity in self.federated_identities
            ),
        }


def load_declared_clients(path: Path) -> list[DeclaredClient]:
    """The `clients:` list of a CONFIG_FILE (empty if absent); ClientsConfigError when the file
    cannot be read or an entry is invalid (secrets are resolved later, by sync_declared)."""
    try:
        text = path.read_text(encoding="utf-8")
        data = yaml.load(text, Loader=_StrictLoader) or {}  # noqa: S506 - a SafeLoader subclass
    except OSError as exc:
        raise ClientsConfigError(f"{path}: cannot read the file ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ClientsConfigError(f"{path}: not valid YAML ({_yaml_problem(exc)})") from None
    raw = data.get("clients") if isinstance(data, dict) else None
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ClientsConfigError(f"{path}: clients must be a list of clients")
    declared: list[DeclaredClient] = []
    for index, entry in enumerate(raw, start=1):
        label = f"client {index}"
        if isinstance(entry, dict) and entry.get("client_id"):
            label += f" ({entry['client_id']!r})"
        try:
            model = DeclaredClient.model_validate(entry)
            names = [model.secret_env, *(s.secret_env for s in model.secrets)]
            model.to_client({name: "x" for name in names if name})
        except ValidationError as exc:
            raise ClientsConfigError(f"{path}: {label}: {_describe(exc)}") from None
        except InvalidInput as exc:
            raise ClientsConfigError(f"{path}: {label}: {exc}") from None
        if any(d.client_id == model.client_id for d in declared):
            raise ClientsConfigError(f"{path}: {label}: client_id is declared twice")
        declared.append(model)
    return declared


def _describe(error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"] if not isinstance(part, int))
        if item["type"] == "extra_forbidden":
            message = "unknown key (allowed: " + ", ".join(DeclaredClient.model_fields) + ")"
        else:
            message = str(item["msg"]).removeprefix("Value error, ")
        problems.append(f"{field + ': ' if field else ''}{message}")
    return "; ".join(problems)


# the service ---------------------------------------------------------------------------------
