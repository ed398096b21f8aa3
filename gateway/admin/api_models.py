"""The admin API's request and response models: pydantic at the edge. The OpenAPI document is
generated from these, so they are the API's contract. Service dataclasses that hold nothing
secret (User, Group, ApiKey, SessionRecord, AuditEvent, AccessCheck) are returned as they are."""

from __future__ import annotations

import dataclasses
import json
import time
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, cast

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from gateway.admin.administration import ClientChanges, ClientSettings
from gateway.admin.api_keys import ApiKey
from gateway.audit.log import AuditEvent, AuditFilters
from gateway.oidc.client_service import AppAuth
from gateway.oidc.clients import ClientSecret as StoredSecret
from gateway.oidc.clients import FederatedIdentity, OidcClient, OptInGrant, uploaded_logo_path
from gateway.passkeys.credentials import Passkey


def plain_text(value: str) -> str:
    """Strings must be storable as they are: no NUL, no lone surrogates."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text") from None
    return value


Text = Annotated[str, AfterValidator(plain_text)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


# request models --------------------------------------------------------------------------------


class UserCreate(Body):
    username: Text = Field(description="1-64 characters: lower-case letters, digits, . _ -")
    email: Text = ""
    display_name: Text = ""
    groups: list[Text] = []


class UserUpdate(Body):
    """Fields left out stay as they are; `groups` replaces the list; `disabled` ends every
    session of the user when true."""

    email: Text | None = None
    display_name: Text | None = None
    groups: list[Text] | None = None
    disabled: bool | None = None


class LoginLinkCreate(Body):
    minutes: int = Field(60, ge=1, le=1440, description="How long the link stays valid.")


class SignupTokenCreate(Body):
    days: float = Field(7.0, gt=0, le=365)
    uses: int = Field(1, ge=1, le=1000)


class GroupCreate(Body):
    name: Text


class GroupRename(Body):
    name: Text = Field(description="The new name.")


class ClaimValue(Body):
    value: Text = Field(max_length=1000)


class FederatedIdentityModel(Body):
    """A trusted issuer whose JWTs authenticate a client (Pocket-ID's federated client
    credentials), sent as client_assertion."""

    issuer: Text = Field(description="The token's iss, exactly.")
    subject: Text = Field("", description="The token's sub; default: the client_id.")
    audience: Text = Field("", description="The token's aud; default: Passgate's issuer URL.")
    jwks: Text = Field(
        "", description="The issuer's JWKS URL; default: <issuer>/.well-known/jwks.json."
    )
    replay_protection: bool = Field(False, description="Each token's jti is accepted once.")


_APP_AUTH_FIELDS = {
    "require_pushed_authorization_requests",
    "token_endpoint_auth_method",
    "jwks",
    "jwks_uri",
    "federated_identities",
}


class ClientFields(Body):
    post_logout_redirect_uris: list[Text] | None = None
    allowed_groups: list[Text] | None = Field(None, description="Empty: every user may sign in.")
    pkce_required: bool | None = None
    wildcard_callbacks: bool | None = None
    id_token_alg: Literal["RS256", "ES256"] | None = None
    access_token_lifetime: int | None = Field(None, description="Seconds, 60-86400.")
    refresh_token_lifetime: int | None = Field(None, description="Seconds, 3600-31536000.")
    refresh_tokens: bool | None = None
    logo_url: Text | None = None
    # machine and TV grants
    grant_types: list[OptInGrant] | None = Field(
        None,
        description="Opt-in grants beyond authorization_code and refresh_token (always on): "
        "client_credentials (confidential clients only) and device_code.",
    )
    client_credentials_scopes: list[Text] | None = Field(
        None,
        description="The scopes client_credentials may ask for (such as backup:read); "
        "needs the client_credentials grant.",
    )
    # --- access tokens: format, resource indicators (RFC 8707), DPoP (RFC 9449) ---
    access_token_format: Literal["opaque", "jwt"] | None = Field(
        None, description="jwt: RFC 9068 access tokens, verifiable offline with the JWKS."
    )
    allowed_resources: list[Text] | None = Field(
        None,
        description="Resource URIs (audiences) the client may ask tokens for (RFC 8707 "
        "`resource`); a token for one is a JWT whose aud is that resource.",
    )
    dpop_bound_access_tokens: bool | None = Field(
        None, description="Require a DPoP proof (RFC 9449) with every token request."
    )
    # pushed authorization requests and signed client authentication (oidc-app-auth)
    require_pushed_authorization_requests: bool | None = Field(
        None, description="Accept /authorize only with a request_uri from the PAR endpoint."
    )
    token_endpoint_auth_method: (
        Literal["client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt"]
        | None
    ) = Field(
        None,
        description="How the client authenticates at the token endpoints (public clients: "
        "none). client_secret_basic and client_secret_post accept each other.",
    )
    jwks: dict[str, Any] | None = Field(
        None, description="private_key_jwt: the client's public keys as a JWK Set; {} clears."
    )
    jwks_uri: Text | None = Field(
        None, description="private_key_jwt: an https URL to fetch the JWK Set from; '' clears."
    )
    federated_identities: list[FederatedIdentityModel] | None = Field(
        None,
        description="private_key_jwt without keys of its own: trusted issuers whose tokens "
        "authenticate the client (replaces the list).",
    )
    # oidc-client-options (issue 13)
    skip_consent: bool | None = Field(
        None, description="Trusted first-party app: consent is recorded, never asked."
    )
    require_reauth: bool | None = Field(
        None, description="Every authorization request needs a fresh passkey sign-in."
    )
    launch_url: Text | None = Field(
        None, description='https URL (http only on loopback) that "My apps" opens; "" clears.'
    )

    def settings(self) -> ClientSettings:
        chosen = self.model_dump(
            exclude_none=True, exclude={"name", "redirect_uris", "public", *_APP_AUTH_FIELDS}
        )
        settings = cast(ClientSettings, chosen)
        if any(getattr(self, name) is not None for name in _APP_AUTH_FIELDS):
            settings["app_auth"] = self.app_auth()
        return settings

    def app_auth(self) -> AppAuth:
        identities = self.federated_identities
        return AppAuth(
            require_par=self.require_pushed_authorization_requests,
            token_endpoint_auth_method=self.token_endpoint_auth_method,
            jwks=None if self.jwks is None else json.dumps(self.jwks) if self.jwks else "",
            jwks_uri=self.jwks_uri,
            federated_identities=None
            if identities is None
            else [FederatedIdentity(**identity.model_dump()) for identity in identities],
        )


class ClientCreate(ClientFields):
    name: Text
    redirect_uris: list[Text] = Field(min_length=1)
    public: bool = Field(False, description="Public clients (SPAs, apps) have no secret.")


class ClientUpdate(ClientFields):
    name: Text | None = None
    redirect_uris: list[Text] | None = None

    def changes(self) -> ClientChanges:
        changes = cast(ClientChanges, dict(self.settings()))
        if self.name is not None:
            changes["name"] = self.name
        if self.redirect_uris is not None:
            changes["redirect_uris"] = self.redirect_uris
        return changes


class ApiKeyCreate(Body):
    name: Text
    scope: Literal["read", "write"] = "read"
    days: float | None = Field(None, gt=0, le=3650, description="Lifetime; none: no expiry.")


class AuditFilter(Body):
    user: Text | None = Field(None, description="Username (or the id of a deleted user).")
    event: Text | None = None
    actor: Text | None = Field(None, description="An actor's id or name.")
    since: datetime | None = Field(None, description="ISO 8601 time (UTC if no offset).")
    until: datetime | None = None
    success: bool | None = None

    def filters(self) -> AuditFilters:
        filters = AuditFilters()
        if self.event is not None:
            filters["event"] = self.event
        if self.actor is not None:
            filters["actor"] = self.actor
        if self.since is not None:
            filters["since"] = _timestamp(self.since)
        if self.until is not None:
            filters["until"] = _timestamp(self.until)
        if self.success is not None:
            filters["success"] = self.success
        return filters


class AuditQuery(AuditFilter):
    limit: int = Field(50, ge=1, le=1000)
    before: Text | None = Field(None, description="The `next` cursor of the previous page.")


class AccessQuery(Body):
    url: Text = Field(description="Absolute http(s) URL behind the proxy.")
    user: Text | None = Field(None, description="Username; without it: anonymous, and who may.")
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] = "GET"


def _timestamp(moment: datetime) -> float:
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.timestamp()


# response models (the service dataclasses are used as they are where nothing is secret) -------


class PasskeyOut(BaseModel):
    credential_id: str
    name: str
    aaguid: str
    transports: list[str]
    backed_up: bool
    created_at: float
    last_used_at: float | None

    @classmethod
    def of(cls, passkey: Passkey) -> PasskeyOut:
        return cls(
            credential_id=passkey.credential_id,
            name=passkey.name,
            aaguid=passkey.aaguid,
            transports=list(passkey.transports),
            backed_up=passkey.backed_up,
            created_at=passkey.created_at,
            last_used_at=passkey.last_used_at,
        )


class ClientOut(BaseModel):
    """A client as an app needs it configured (never its secret)."""

    client_id: str
    name: str
    public: bool
    redirect_uris: list[str]
    post_logout_redirect_uris: list[str]
    allowed_groups: list[str]
    pkce_required: bool
    wildcard_callbacks: bool
    id_token_alg: str
    access_token_lifetime: int
    refresh_token_lifetime: int
    refresh_tokens: bool
    logo_url: str
    # machine and TV grants
    grant_types: list[str] = Field(description="Opt-in grants: client_credentials, device_code.")
    client_credentials_scopes: list[str]
    # --- access tokens: format, resource indicators (RFC 8707), DPoP (RFC 9449) ---
    access_token_format: str
    allowed_resources: list[str]
    dpop_bound_access_tokens: bool
    declared: bool = Field(description="Declared in CONFIG_FILE: read-only here.")
    created_at: float
    discovery_url: str
    # pushed authorization requests and signed client authentication (oidc-app-auth)
    require_pushed_authorization_requests: bool = False
    token_endpoint_auth_method: str = "client_secret_basic"  # noqa: S105 - a method name
    jwks: dict[str, Any] | None = None
    jwks_uri: str = ""
    federated_identities: list[FederatedIdentityModel] = []
    # oidc-client-options (issue 13)
    skip_consent: bool
    require_reauth: bool
    launch_url: str
    uploaded_logo_url: str | None = Field(description="Where an uploaded logo is served, if any.")
    active_secrets: int = Field(description="Secrets that authenticate now (unexpired, unrevoked).")

    @classmethod
    def of(cls, client: OidcClient, app_url: str) -> ClientOut:
        return cls(
            client_id=client.client_id,
            name=client.name,
            public=client.public,
            redirect_uris=list(client.redirect_uris),
            post_logout_redirect_uris=list(client.post_logout_redirect_uris),
            allowed_groups=list(client.allowed_groups),
            pkce_required=client.pkce_required,
            wildcard_callbacks=client.wildcard_callbacks,
            id_token_alg=client.id_token_alg,
            access_token_lifetime=client.access_token_lifetime,
            refresh_token_lifetime=client.refresh_token_lifetime,
            refresh_tokens=client.refresh_tokens,
            logo_url=client.logo_url,
            grant_types=list(client.grant_types),
            client_credentials_scopes=list(client.client_credentials_scopes),
            access_token_format=client.access_token_format,
            allowed_resources=list(client.allowed_resources),
            dpop_bound_access_tokens=client.dpop_bound_access_tokens,
            declared=client.declared,
            created_at=client.created_at,
            discovery_url=f"{app_url}/.well-known/openid-configuration",
            require_pushed_authorization_requests=client.require_par,
            token_endpoint_auth_method=client.auth_method,
            jwks=json.loads(client.jwks) if client.jwks else None,
            jwks_uri=client.jwks_uri,
            federated_identities=[
                FederatedIdentityModel(**dataclasses.asdict(i)) for i in client.federated_identities
            ],
            skip_consent=client.skip_consent,
            require_reauth=client.require_reauth,
            launch_url=client.launch_url,
            uploaded_logo_url=f"{app_url}{uploaded_logo_path(client)}"
            if client.logo_etag
            else None,
            active_secrets=len(client.active_secrets(time.time())),
        )


class ClientSecretCreate(Body):
    name: Text = Field("", max_length=64, description='A label; default "secret", "secret-2"...')
    expires_at: datetime | None = Field(
        None, description="ISO 8601; without a zone read as UTC. Default: until revoked."
    )

    def expiry(self) -> float | None:
        if self.expires_at is None:
            return None
        when = self.expires_at
        return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


class ClientSecretOut(BaseModel):
    """One of a client's secrets: never its value."""

    id: str
    name: str
    state: Literal["active", "expired", "revoked"]
    created_at: float
    expires_at: float | None
    last_used_at: float | None
    revoked_at: float | None

    @classmethod
    def of(cls, secret: StoredSecret) -> ClientSecretOut:
        return cls(
            id=secret.id,
            name=secret.name,
            state=secret.state(time.time()),
            created_at=secret.created_at,
            expires_at=secret.expires_at,
            last_used_at=secret.last_used_at,
            revoked_at=secret.revoked_at,
        )


class ClientSecretAdded(BaseModel):
    secret: ClientSecretOut
    client_secret: str = Field(description="Shown only now; the other secrets keep working.")


class ClientCreated(BaseModel):
    client: ClientOut
    client_secret: str | None = Field(description="Shown only now; null for public clients.")


class ClientSecret(BaseModel):
    client_secret: str = Field(description="Shown only now.")


class LoginLink(BaseModel):
    url: str
    minutes: int


class SignupLink(BaseModel):
    url: str
    expires_at: float
    usage_limit: int


class SessionsEnded(BaseModel):
    ended: int


class ApiKeyCreated(BaseModel):
    key: ApiKey
    token: str = Field(description="Shown only now; send it as `Authorization: Bearer ...`.")


class AuditPageOut(BaseModel):
    events: list[AuditEvent]
    next: str | None = Field(description="Pass as `before` for the next page; null at the end.")


class Error(BaseModel):
    error: str
    error_description: str
    fields: dict[str, str] | None = None
