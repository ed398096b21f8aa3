"""The admin JSON API under /api/admin: the administration layer over HTTP, plus its OpenAPI
document at /api/openapi.json, generated from the operation table and the pydantic models below.

Callers authenticate with `Authorization: Bearer <API key>` (read keys may only GET) or with a
signed-in admin's session cookie; cookie callers pass the CSRF token in `X-CSRF-Token` on every
change. Errors are raised as types and turned into JSON in one place (gateway.app).
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar, cast

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
)
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from gateway import __version__
from gateway.administration import AccessCheck, Administration, ClientChanges, ClientSettings
from gateway.api_keys import ApiKey
from gateway.audit import Actor, AuditEvent, AuditFilters
from gateway.csrf import CsrfRejected, verify
from gateway.errors import Forbidden, RequestInvalid, Unauthenticated
from gateway.oidc_clients import OidcClient
from gateway.passkeys import Passkey
from gateway.sessions import SessionRecord
from gateway.users import Group, User
from gateway.web import client_address, services_of, signed_in

PREFIX = "/api/admin"
READ_METHODS = frozenset({"GET", "HEAD"})
M = TypeVar("M", bound=BaseModel)


def _plain_text(value: str) -> str:
    """Strings must be storable as they are: no NUL, no lone surrogates."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text") from None
    return value


Text = Annotated[str, AfterValidator(_plain_text)]


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

    def settings(self) -> ClientSettings:
        chosen = self.model_dump(exclude_none=True, exclude={"name", "redirect_uris", "public"})
        return cast(ClientSettings, chosen)


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
    declared: bool = Field(description="Declared in CONFIG_FILE: read-only here.")
    created_at: float
    discovery_url: str

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
            declared=client.declared,
            created_at=client.created_at,
            discovery_url=f"{app_url}/.well-known/openid-configuration",
        )


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


# operations ------------------------------------------------------------------------------------


@dataclass
class Call:
    """One authenticated request to an operation, its inputs validated."""

    request: Request
    actor: Actor
    admin: Administration
    query: BaseModel | None
    body: BaseModel | None

    def param(self, name: str) -> str:
        value = str(self.request.path_params[name])
        try:
            _plain_text(value)
        except ValueError as exc:
            raise RequestInvalid("invalid path", {name: str(exc)}) from None
        return value

    def body_as(self, model: type[M]) -> M:
        assert isinstance(self.body, model)
        return self.body

    def query_as(self, model: type[M]) -> M:
        assert isinstance(self.query, model)
        return self.query

    @property
    def app_url(self) -> str:
        return services_of(self.request).settings.app_url


Handler = Callable[[Call], Awaitable[Any]]


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # below PREFIX, with {name} path parameters
    handler: Handler
    summary: str
    tag: str
    body: type[BaseModel] | None
    query: type[BaseModel] | None
    response: Any  # a type for TypeAdapter; None for 204 No Content
    status: int
    media_type: str
    operation_id: str

    @property
    def full_path(self) -> str:
        return PREFIX + self.path


OPERATIONS: list[Operation] = []


def operation(
    method: str,
    path: str,
    summary: str,
    *,
    tag: str,
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    response: Any = None,
    status: int = 200,
    media_type: str = "application/json",
    operation_id: str | None = None,
) -> Callable[[Handler], Handler]:
    """Register a handler as an admin API operation (the route table and OpenAPI both read
    OPERATIONS). `response` None means 204 No Content."""

    def register(handler: Handler) -> Handler:
        OPERATIONS.append(
            Operation(
                method,
                path,
                handler,
                summary,
                tag,
                body,
                query,
                response,
                status,
                media_type,
                operation_id or handler.__name__,
            )
        )
        return handler

    return register


def _user(call: Call) -> str:
    return call.param("username")


# users


@operation("GET", "/users", "List users", tag="users", response=list[User])
async def list_users(call: Call) -> list[User]:
    return await call.admin.list_users()


@operation(
    "POST", "/users", "Create a user", tag="users", body=UserCreate, response=User, status=201
)
async def create_user(call: Call) -> User:
    body = call.body_as(UserCreate)
    return await call.admin.create_user(
        call.actor, body.username, body.email, body.display_name, body.groups
    )


@operation("GET", "/users/{username}", "Show a user", tag="users", response=User)
async def get_user(call: Call) -> User:
    return await call.admin.get_user(_user(call))


@operation(
    "PATCH",
    "/users/{username}",
    "Change a user (email, name, groups, disabled)",
    tag="users",
    body=UserUpdate,
    response=User,
)
async def update_user(call: Call) -> User:
    body, username = call.body_as(UserUpdate), _user(call)
    user = await call.admin.get_user(username)
    if body.email is not None or body.display_name is not None or body.groups is not None:
        user = await call.admin.update_user(
            call.actor,
            username,
            email=body.email,
            display_name=body.display_name,
            groups=body.groups,
        )
    if body.disabled is not None and body.disabled != user.disabled:
        user = await call.admin.set_disabled(call.actor, username, body.disabled)
    return user


@operation("DELETE", "/users/{username}", "Delete a user", tag="users", status=204)
async def delete_user(call: Call) -> None:
    await call.admin.delete_user(call.actor, _user(call))


@operation(
    "GET", "/users/{username}/passkeys", "List a user's passkeys", tag="users",
    response=list[PasskeyOut],
)  # fmt: skip
async def list_passkeys(call: Call) -> list[PasskeyOut]:
    return [PasskeyOut.of(p) for p in await call.admin.list_passkeys(_user(call))]


@operation(
    "DELETE", "/users/{username}/passkeys/{credential_id}", "Revoke a passkey", tag="users",
    status=204,
)  # fmt: skip
async def delete_passkey(call: Call) -> None:
    await call.admin.delete_passkey(call.actor, _user(call), call.param("credential_id"))


@operation(
    "GET", "/users/{username}/sessions", "List a user's live sessions", tag="users",
    response=list[SessionRecord],
)  # fmt: skip
async def list_sessions(call: Call) -> list[SessionRecord]:
    return await call.admin.list_sessions(_user(call))


@operation("DELETE", "/users/{username}/sessions/{key}", "End one session", tag="users", status=204)
async def end_session(call: Call) -> None:
    await call.admin.end_session(call.actor, _user(call), call.param("key"))


@operation(
    "DELETE", "/users/{username}/sessions", "End every session of a user", tag="users",
    response=SessionsEnded,
)  # fmt: skip
async def end_all_sessions(call: Call) -> SessionsEnded:
    return SessionsEnded(ended=await call.admin.end_all_sessions(call.actor, _user(call)))


@operation(
    "POST", "/users/{username}/login-links", "Create a one-time sign-in link", tag="users",
    body=LoginLinkCreate, response=LoginLink, status=201,
)  # fmt: skip
async def create_login_link(call: Call) -> LoginLink:
    minutes = call.body_as(LoginLinkCreate).minutes
    url = await call.admin.create_login_link(call.actor, _user(call), minutes)
    return LoginLink(url=url, minutes=minutes)


@operation(
    "POST", "/signup-tokens", "Create a signup link", tag="users", body=SignupTokenCreate,
    response=SignupLink, status=201,
)  # fmt: skip
async def create_signup_token(call: Call) -> SignupLink:
    body = call.body_as(SignupTokenCreate)
    invite = await call.admin.create_signup_token(call.actor, body.days, body.uses)
    return SignupLink(url=invite.url, expires_at=invite.expires_at, usage_limit=invite.usage_limit)


# groups


@operation("GET", "/groups", "List groups", tag="groups", response=list[Group])
async def list_groups(call: Call) -> list[Group]:
    return await call.admin.list_groups()


@operation(
    "POST", "/groups", "Create a group", tag="groups", body=GroupCreate, response=Group,
    status=201,
)  # fmt: skip
async def create_group(call: Call) -> Group:
    return await call.admin.create_group(call.actor, call.body_as(GroupCreate).name)


@operation("GET", "/groups/{name}", "Show a group and its members", tag="groups", response=Group)
async def get_group(call: Call) -> Group:
    return await call.admin.get_group(call.param("name"))


@operation(
    "PATCH", "/groups/{name}", "Rename a group", tag="groups", body=GroupRename, response=Group
)
async def rename_group(call: Call) -> Group:
    return await call.admin.rename_group(
        call.actor, call.param("name"), call.body_as(GroupRename).name
    )


@operation("DELETE", "/groups/{name}", "Delete a group", tag="groups", status=204)
async def delete_group(call: Call) -> None:
    await call.admin.delete_group(call.actor, call.param("name"))


@operation("PUT", "/groups/{name}/members/{username}", "Add a member", tag="groups", response=Group)
async def add_member(call: Call) -> Group:
    return await call.admin.add_member(call.actor, call.param("name"), _user(call))


@operation(
    "DELETE", "/groups/{name}/members/{username}", "Remove a member", tag="groups",
    response=Group,
)  # fmt: skip
async def remove_member(call: Call) -> Group:
    return await call.admin.remove_member(call.actor, call.param("name"), _user(call))


# custom claims, for users and groups alike

Claims = dict[str, str]


def _subject(call: Call) -> str:
    """`user:NAME` or `group:NAME`, from the path the claim routes were reached by."""
    if "username" in call.request.path_params:
        return "user:" + _user(call)
    return "group:" + call.param("name")


async def list_claims(call: Call) -> Claims:
    return await call.admin.list_claims(_subject(call))


async def set_claim(call: Call) -> Claims:
    value = call.body_as(ClaimValue).value
    return await call.admin.set_claim(call.actor, _subject(call), call.param("claim"), value)


async def unset_claim(call: Call) -> Claims:
    return await call.admin.unset_claim(call.actor, _subject(call), call.param("claim"))


for _kind, _claims_path in (
    ("user", "/users/{username}/claims"),
    ("group", "/groups/{name}/claims"),
):
    _tag = _kind + "s"
    operation(
        "GET", _claims_path, f"List a {_kind}'s custom claims", tag=_tag, response=Claims,
        operation_id=f"list_{_kind}_claims",
    )(list_claims)  # fmt: skip
    operation(
        "PUT", _claims_path + "/{claim}", f"Set a {_kind}'s custom claim", tag=_tag,
        body=ClaimValue, response=Claims, operation_id=f"set_{_kind}_claim",
    )(set_claim)  # fmt: skip
    operation(
        "DELETE", _claims_path + "/{claim}", f"Remove a {_kind}'s custom claim", tag=_tag,
        response=Claims, operation_id=f"unset_{_kind}_claim",
    )(unset_claim)  # fmt: skip


# OIDC clients


@operation("GET", "/clients", "List OIDC clients", tag="clients", response=list[ClientOut])
async def list_clients(call: Call) -> list[ClientOut]:
    return [ClientOut.of(c, call.app_url) for c in await call.admin.list_clients()]


@operation(
    "POST", "/clients", "Create an OIDC client (its secret is shown once)", tag="clients",
    body=ClientCreate, response=ClientCreated, status=201,
)  # fmt: skip
async def create_client(call: Call) -> ClientCreated:
    body = call.body_as(ClientCreate)
    client, secret = await call.admin.create_client(
        call.actor, body.name, body.redirect_uris, public=body.public, **body.settings()
    )
    return ClientCreated(client=ClientOut.of(client, call.app_url), client_secret=secret)


@operation("GET", "/clients/{client_id}", "Show a client", tag="clients", response=ClientOut)
async def get_client(call: Call) -> ClientOut:
    return ClientOut.of(await call.admin.get_client(call.param("client_id")), call.app_url)


@operation(
    "PATCH", "/clients/{client_id}", "Change a client", tag="clients", body=ClientUpdate,
    response=ClientOut,
)  # fmt: skip
async def update_client(call: Call) -> ClientOut:
    changes = call.body_as(ClientUpdate).changes()
    client = await call.admin.update_client(call.actor, call.param("client_id"), **changes)
    return ClientOut.of(client, call.app_url)


@operation("DELETE", "/clients/{client_id}", "Delete a client", tag="clients", status=204)
async def delete_client(call: Call) -> None:
    await call.admin.delete_client(call.actor, call.param("client_id"))


@operation(
    "POST", "/clients/{client_id}/rotate-secret", "Replace a client's secret (shown once)",
    tag="clients", response=ClientSecret,
)  # fmt: skip
async def rotate_client_secret(call: Call) -> ClientSecret:
    secret = await call.admin.rotate_client_secret(call.actor, call.param("client_id"))
    return ClientSecret(client_secret=secret)


# API keys


@operation("GET", "/api-keys", "List API keys", tag="api-keys", response=list[ApiKey])
async def list_api_keys(call: Call) -> list[ApiKey]:
    return await call.admin.list_api_keys()


@operation(
    "POST", "/api-keys", "Create an API key (its token is shown once)", tag="api-keys",
    body=ApiKeyCreate, response=ApiKeyCreated, status=201,
)  # fmt: skip
async def create_api_key(call: Call) -> ApiKeyCreated:
    body = call.body_as(ApiKeyCreate)
    key, token = await call.admin.create_api_key(call.actor, body.name, body.scope, body.days)
    return ApiKeyCreated(key=key, token=token)


@operation("DELETE", "/api-keys/{key_id}", "Revoke an API key", tag="api-keys", response=ApiKey)
async def revoke_api_key(call: Call) -> ApiKey:
    return await call.admin.revoke_api_key(call.actor, call.param("key_id"))


# audit log


@operation(
    "GET", "/audit", "Search the audit log, newest first", tag="audit", query=AuditQuery,
    response=AuditPageOut,
)  # fmt: skip
async def search_audit(call: Call) -> AuditPageOut:
    query = call.query_as(AuditQuery)
    page = await call.admin.search_audit(
        user=query.user, limit=query.limit, before=query.before, **query.filters()
    )
    return AuditPageOut(events=page.events, next=page.next)


@operation(
    "GET", "/audit/export", "Export matching audit events as JSON lines", tag="audit",
    query=AuditFilter, response=AuditEvent, media_type="application/x-ndjson",
)  # fmt: skip
async def export_audit(call: Call) -> Response:
    query = call.query_as(AuditFilter)

    def lines() -> Any:
        return call.admin.export_audit(user=query.user, **query.filters())

    return StreamingResponse(
        await run_in_threadpool(lines),
        media_type="application/x-ndjson",
        headers={"content-disposition": 'attachment; filename="passgate-audit.jsonl"'},
    )


# access rules


@operation(
    "GET", "/rules/check", "Who can reach this URL? (what forward-auth would answer)",
    tag="rules", query=AccessQuery, response=AccessCheck,
)  # fmt: skip
async def check_access(call: Call) -> AccessCheck:
    query = call.query_as(AccessQuery)
    return await call.admin.check_access(query.url, query.user, query.method)


# authentication and dispatch -------------------------------------------------------------------


async def authenticate(request: Request) -> Actor:
    """The actor behind a request: an API key (Bearer) or a signed-in admin (cookie, with CSRF
    checks on changes). Raises Unauthenticated (401) or Forbidden (403)."""
    services = services_of(request)
    ip, agent = client_address(request), request.headers.get("user-agent", "")[:512]
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("send an API key as: Authorization: Bearer pgk_...")
        key = await run_in_threadpool(services.api_keys.authenticate, token.strip())
        if key is None:
            raise Unauthenticated(
                "the API key is invalid, expired or revoked",
                'Bearer realm="passgate", error="invalid_token"',
            )
        if not key.allows(request.method):
            raise Forbidden("this API key is read-only", "insufficient_scope")
        return Actor("api_key", key.id, key.name, ip, agent)
    found = await signed_in(request)
    if found is None:
        raise Unauthenticated("sign in as an administrator or send an API key")
    identity = found[1]
    if services.settings.admin_group not in identity.groups:
        raise Forbidden("only administrators may use the admin API")
    if request.method not in READ_METHODS:
        try:
            verify(request, services.settings, request.headers.get("x-csrf-token"))
        except CsrfRejected as exc:
            raise Forbidden(str(exc), "csrf") from None
    return Actor("user", identity.user_id, identity.username, ip, agent)


def _validated(model: type[BaseModel], data: Any, where: str) -> BaseModel:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        fields: dict[str, str] = {}
        for error in exc.errors(include_url=False):
            name = ".".join(str(part) for part in error["loc"]) or where
            fields.setdefault(name, str(error["msg"]).removeprefix("Value error, "))
        raise RequestInvalid(f"the {where} has invalid fields", fields) from None


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        raise RequestInvalid(
            "the body is not valid JSON", {"body": "not valid JSON"}, unparseable=True
        ) from None


def _endpoint(op: Operation) -> Callable[[Request], Awaitable[Response]]:
    adapter = TypeAdapter(op.response) if op.response is not None else None

    async def endpoint(request: Request) -> Response:
        actor = await authenticate(request)
        query = (
            _validated(op.query, dict(request.query_params), "query")
            if op.query is not None
            else None
        )
        body = (
            _validated(op.body, await _json_body(request), "body") if op.body is not None else None
        )
        services = services_of(request)
        result = await op.handler(Call(request, actor, services.admin, query, body))
        if isinstance(result, Response):
            return result
        if adapter is None:
            return Response(status_code=op.status)
        return JSONResponse(adapter.dump_python(result, mode="json"), op.status)

    endpoint.__name__ = op.operation_id
    return endpoint


def _routes() -> list[Route]:
    by_path: dict[str, dict[str, Operation]] = {}
    for op in OPERATIONS:
        by_path.setdefault(op.full_path, {})[op.method] = op
    routes = []
    for path, methods in by_path.items():
        endpoints = {method: _endpoint(op) for method, op in methods.items()}

        async def dispatch(
            request: Request,
            endpoints: dict[str, Callable[[Request], Awaitable[Response]]] = endpoints,
        ) -> Response:
            method = "GET" if request.method == "HEAD" else request.method
            return await endpoints[method](request)

        routes.append(Route(path, dispatch, methods=list(methods)))
    return routes


# OpenAPI ---------------------------------------------------------------------------------------

_ERRORS = {
    "401": "No API key or admin session, or the key is invalid, expired or revoked",
    "403": "Not an administrator, a read-only key on a change, or a failed CSRF check",
    "404": "No such user, group, client, key, passkey or session",
    "409": "Already exists, already revoked, or declared in CONFIG_FILE (read-only)",
    "422": "Invalid input; `fields` names each bad field",
}
_PARAM = re.compile(r"{(\w+)}")


def openapi_document(app_url: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the admin API, built from OPERATIONS and the models."""
    adapters: list[tuple[tuple[str, str], Any, TypeAdapter[Any]]] = [
        (("error", "body"), "serialization", TypeAdapter(Error))
    ]
    for op in OPERATIONS:
        if op.body is not None:
            adapters.append(((op.operation_id, "body"), "validation", TypeAdapter(op.body)))
        if op.query is not None:
            adapters.append(((op.operation_id, "query"), "validation", TypeAdapter(op.query)))
        if op.response is not None:
            adapters.append(
                ((op.operation_id, "response"), "serialization", TypeAdapter(op.response))
            )
    schemas, definitions = TypeAdapter.json_schemas(
        adapters, ref_template="#/components/schemas/{model}"
    )
    components = dict(definitions.get("$defs", {}))

    def schema(key: tuple[str, str], mode: str) -> dict[str, Any]:
        return dict(schemas[(key, mode)])  # type: ignore[index]

    error_ref = schema(("error", "body"), "serialization")
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        parameters: list[dict[str, Any]] = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in _PARAM.findall(op.path)
        ]
        if op.query is not None:
            query = schema((op.operation_id, "query"), "validation")
            query = components.get(query.get("$ref", "").rsplit("/", 1)[-1], query)
            required = set(query.get("required", []))
            for name, prop in query.get("properties", {}).items():
                parameters.append(
                    {"name": name, "in": "query", "required": name in required, "schema": prop}
                )
        responses: dict[str, Any] = {}
        if op.response is None:
            responses[str(op.status)] = {"description": "Done"}
        else:
            body_schema = schema((op.operation_id, "response"), "serialization")
            responses[str(op.status)] = {
                "description": "OK",
                "content": {op.media_type: {"schema": body_schema}},
            }
        for status, text in _ERRORS.items():
            responses[status] = {
                "description": text,
                "content": {"application/json": {"schema": error_ref}},
            }
        entry: dict[str, Any] = {
            "operationId": op.operation_id,
            "summary": op.summary,
            "tags": [op.tag],
            "parameters": parameters,
            "responses": responses,
        }
        if op.body is not None:
            entry["requestBody"] = {
                "required": True,
                "content": {
                    "application/json": {"schema": schema((op.operation_id, "body"), "validation")}
                },
            }
        paths.setdefault(op.full_path, {})[op.method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Passgate admin API",
            "version": __version__,
            "description": __doc__,
        },
        "servers": [{"url": app_url}],
        "security": [{"apiKey": []}, {"adminSession": []}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key (pgk_...): read scope may only GET.",
                },
                "adminSession": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": "passgate_session",
                    "description": "A signed-in admin's session; changes need X-CSRF-Token.",
                },
            },
        },
    }


async def openapi(request: Request) -> JSONResponse:
    services = services_of(request)
    return JSONResponse(openapi_document(services.settings.app_url))


def admin_paths() -> Sequence[tuple[str, str]]:
    """(method, path template) of every admin API operation."""
    return [(op.method, op.full_path) for op in OPERATIONS]


routes = [*_routes(), Route("/api/openapi.json", openapi, methods=["GET"])]
