"""The admin JSON API under /api/admin: the administration layer (gateway.admin.administration) over
HTTP, one small handler per operation. Authentication, validation and output live in
gateway.admin.operations; the models in gateway.admin.api_models; the OpenAPI document (served at
/api/openapi.json) in gateway.admin.openapi."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from gateway.accounts.users import Group, User
from gateway.admin import operations as admin_operations
from gateway.admin.administration import AccessCheck
from gateway.admin.api_keys import ApiKey
from gateway.admin.api_models import (
    AccessQuery,
    ApiKeyCreate,
    ApiKeyCreated,
    AuditFilter,
    AuditPageOut,
    AuditQuery,
    ClaimValue,
    ClientCreate,
    ClientCreated,
    ClientOut,
    ClientSecret,
    ClientSecretAdded,
    ClientSecretCreate,
    ClientSecretOut,
    ClientUpdate,
    GroupCreate,
    GroupRename,
    LoginLink,
    LoginLinkCreate,
    PasskeyOut,
    SessionsEnded,
    SignupLink,
    SignupTokenCreate,
    UserCreate,
    UserUpdate,
)
from gateway.admin.openapi import openapi_document
from gateway.admin.operations import OPERATIONS, Call, operation
from gateway.audit.log import AuditEvent
from gateway.core.errors import RequestInvalid
from gateway.sessions.sessions import SessionRecord
from gateway.web.helpers import services_of

PREFIX = admin_operations.PREFIX
LOGO_MEDIA_TYPES = ("image/png", "image/jpeg")


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


# oidc-client-options: several secrets per client (rotation without downtime), uploaded logos


@operation(
    "GET", "/clients/{client_id}/secrets", "List a client's secrets (never their values)",
    tag="clients", response=list[ClientSecretOut],
)  # fmt: skip
async def list_client_secrets(call: Call) -> list[ClientSecretOut]:
    found = await call.admin.list_client_secrets(call.param("client_id"))
    return [ClientSecretOut.of(secret) for secret in found]


@operation(
    "POST", "/clients/{client_id}/secrets",
    "Add a secret, keeping the others (shown once)", tag="clients",
    body=ClientSecretCreate, response=ClientSecretAdded, status=201,
)  # fmt: skip
async def add_client_secret(call: Call) -> ClientSecretAdded:
    body = call.body_as(ClientSecretCreate)
    added, value = await call.admin.add_client_secret(
        call.actor, call.param("client_id"), body.name, body.expiry()
    )
    return ClientSecretAdded(secret=ClientSecretOut.of(added), client_secret=value)


@operation(
    "DELETE", "/clients/{client_id}/secrets/{secret_id}", "Revoke one of a client's secrets",
    tag="clients", response=ClientSecretOut,
)  # fmt: skip
async def revoke_client_secret(call: Call) -> ClientSecretOut:
    revoked = await call.admin.revoke_client_secret(
        call.actor, call.param("client_id"), call.param("secret_id")
    )
    return ClientSecretOut.of(revoked)


@operation(
    "PUT", "/clients/{client_id}/logo", "Upload a client's logo (PNG or JPEG, raw body)",
    tag="clients", response=ClientOut, uploads=LOGO_MEDIA_TYPES,
)  # fmt: skip
async def set_client_logo(call: Call) -> ClientOut:
    declared = call.request.headers.get("content-type", "").split(";")[0].strip().lower()
    if declared not in LOGO_MEDIA_TYPES:
        raise RequestInvalid(
            "send the logo as the body with Content-Type image/png or image/jpeg",
            {"content-type": "must be image/png or image/jpeg"},
        )
    image = await call.request.body()
    client = await call.admin.set_client_logo(call.actor, call.param("client_id"), image)
    return ClientOut.of(client, call.app_url)


@operation(
    "DELETE", "/clients/{client_id}/logo", "Remove a client's uploaded logo", tag="clients",
    response=ClientOut,
)  # fmt: skip
async def delete_client_logo(call: Call) -> ClientOut:
    client = await call.admin.delete_client_logo(call.actor, call.param("client_id"))
    return ClientOut.of(client, call.app_url)


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


async def openapi_json(request: Request) -> JSONResponse:
    """GET /api/openapi.json: public, as it describes the API and reveals no data."""
    settings = services_of(request).settings
    document = openapi_document(OPERATIONS, settings.app_url, settings.session_cookie_name)
    return JSONResponse(document)


routes = [
    *admin_operations.routes(),
    Route("/api/openapi.json", openapi_json, methods=["GET"]),
]
