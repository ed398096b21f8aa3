"""Console pages for OpenID Connect clients: everything the CLI can do (create, edit, delete,
rotate the secret, add and revoke secrets, upload a logo), a secret shown exactly once, and the
values to paste into the app."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import quote

from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.admin.console import (
    REFUSALS,
    Admin,
    admin_only,
    console,
    done,
    form_change,
    status_for,
)
from gateway.core.errors import InvalidInput, NotFound, PassgateError
from gateway.oidc.client_service import LOGO_MAX_BYTES, AppAuth
from gateway.oidc.clients import (
    OidcClient,
    format_federated_identity,
    logo_of,
    parse_federated_identity,
)
from gateway.oidc.endpoints import discovery_url, endpoints
from gateway.web.helpers import form_with_csrf, message, services_of

SECTION = "/admin/clients"
FLAGS = (
    "pkce_required",
    "wildcard_callbacks",
    "refresh_tokens",
    "dpop_bound_access_tokens",
    "skip_consent",
    "require_reauth",
)
ALGORITHMS = ("RS256", "ES256")


def _path(client_id: str) -> str:
    return f"{SECTION}/{quote(client_id, safe='')}"


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.replace(",", "\n").splitlines() if line.strip()]


def _seconds(form: dict[str, str], name: str, label: str) -> int:
    try:
        return int(form.get(name, "").strip())
    except ValueError:
        raise InvalidInput(f"{label} must be a whole number of seconds") from None


def client_settings(form: dict[str, str], submitted: FormData) -> dict[str, Any]:
    """The client settings a console form sets, as the service layer takes them.
    InvalidInput for a lifetime that is not a number."""
    return {
        "name": form.get("name", ""),
        "redirect_uris": _lines(form.get("redirect_uris", "")),
        "post_logout_redirect_uris": _lines(form.get("post_logout_redirect_uris", "")),
        "allowed_groups": [g for g in submitted.getlist("allowed_groups") if isinstance(g, str)],
        **{flag: form.get(flag) == "on" for flag in FLAGS},
        "id_token_alg": form.get("id_token_alg", "RS256"),
        "access_token_lifetime": _seconds(form, "access_token_lifetime", "Access token lifetime"),
        "refresh_token_lifetime": _seconds(
            form, "refresh_token_lifetime", "Refresh token lifetime"
        ),
        "logo_url": form.get("logo_url", "").strip(),
        # machine and TV grants
        "grant_types": [g for g in submitted.getlist("grant_types") if isinstance(g, str)],
        "client_credentials_scopes": form.get("client_credentials_scopes", "")
        .replace(",", " ")
        .split(),
        "access_token_format": form.get("access_token_format", "opaque"),
        "allowed_resources": _lines(form.get("allowed_resources", "")),
        "launch_url": form.get("launch_url", "").strip(),
        "app_auth": _app_auth(form),
    }


# pushed authorization requests and signed client authentication (oidc-app-auth) -------------

AUTH_METHODS = ("client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt")


def _app_auth(form: dict[str, str]) -> AppAuth:
    """PAR and client-authentication settings from the form. InvalidInput for a malformed
    federated identity line."""
    lines = [line.strip() for line in form.get("federated_identities", "").splitlines()]
    public = form.get("public") == "on"
    return AppAuth(
        require_par=form.get("require_par") == "on",
        token_endpoint_auth_method=None if public else form.get("token_endpoint_auth_method"),
        jwks=form.get("jwks", "").strip(),
        jwks_uri=form.get("jwks_uri", "").strip(),
        federated_identities=[parse_federated_identity(line) for line in lines if line],
    )


def _app_auth_form(client: OidcClient) -> dict[str, Any]:
    return {
        "require_par": "on" if client.require_par else "",
        "token_endpoint_auth_method": client.auth_method,
        "jwks": json.dumps(json.loads(client.jwks), indent=2) if client.jwks else "",
        "jwks_uri": client.jwks_uri,
        "federated_identities": "\n".join(
            format_federated_identity(i) for i in client.federated_identities
        ),
    }


def form_of(client: OidcClient) -> dict[str, Any]:
    """A client's settings as the edit form shows them."""
    return {
        "name": client.name,
        "redirect_uris": "\n".join(client.redirect_uris),
        "post_logout_redirect_uris": "\n".join(client.post_logout_redirect_uris),
        "allowed_groups": list(client.allowed_groups),
        **{flag: "on" if getattr(client, flag) else "" for flag in FLAGS},
        "id_token_alg": client.id_token_alg,
        "access_token_lifetime": str(client.access_token_lifetime),
        "refresh_token_lifetime": str(client.refresh_token_lifetime),
        "logo_url": client.logo_url,
        # machine and TV grants
        "grant_types": list(client.grant_types),
        "client_credentials_scopes": " ".join(client.client_credentials_scopes),
        "access_token_format": client.access_token_format,
        "allowed_resources": "\n".join(client.allowed_resources),
        **_app_auth_form(client),
        "launch_url": client.launch_url,
    }


NEW_CLIENT = {
    "name": "",
    "redirect_uris": "",
    "post_logout_redirect_uris": "",
    "allowed_groups": [],
    "pkce_required": "",
    "wildcard_callbacks": "",
    "refresh_tokens": "",
    "id_token_alg": "RS256",
    "access_token_lifetime": "3600",
    "refresh_token_lifetime": str(30 * 86400),
    "logo_url": "",
    "launch_url": "",
    "skip_consent": "",
    "require_reauth": "",
    "public": "",
    # machine and TV grants
    "grant_types": [],
    "client_credentials_scopes": "",
    "access_token_format": "opaque",
    "allowed_resources": "",
    "dpop_bound_access_tokens": "",
    "require_par": "",
    "token_endpoint_auth_method": "client_secret_basic",
    "jwks": "",
    "jwks_uri": "",
    "federated_identities": "",
}


async def _kept(request: Request, form: dict[str, str]) -> dict[str, Any]:
    """The submitted form, with the checked groups, to show again after a refusal."""
    submitted = await request.form()
    groups = [g for g in submitted.getlist("allowed_groups") if isinstance(g, str)]
    grants = [g for g in submitted.getlist("grant_types") if isinstance(g, str)]
    return {**form, "allowed_groups": groups, "grant_types": grants}


async def _clients_page(
    request: Request, status: int = 200, *, form: dict[str, Any] | None = None, error: str = ""
) -> Response:
    admin = services_of(request).admin
    return console(
        request,
        "admin_clients.html",
        SECTION,
        status,
        clients=await admin.list_clients(),
        groups=await admin.list_groups(),
        algorithms=ALGORITHMS,
        auth_methods=AUTH_METHODS,
        form=form or NEW_CLIENT,
        error=error,
    )


@admin_only
async def clients(request: Request, admin: Admin) -> Response:
    return await _clients_page(request)


@admin_only
async def create_client(request: Request, admin: Admin) -> Response:
    form = await form_with_csrf(request)
    try:
        settings = client_settings(form, await request.form())
        name, uris = settings.pop("name"), settings.pop("redirect_uris")
        client, secret = await services_of(request).admin.create_client(
            admin.actor, name, uris, public=form.get("public") == "on", **settings
        )
    except REFUSALS as exc:
        return await _clients_page(
            request, status_for(exc), form=await _kept(request, form), error=str(exc)
        )
    return await _client_page(request, client.client_id, secret=secret, created=True)


async def _client_page(
    request: Request,
    client_id: str,
    status: int = 200,
    *,
    form: dict[str, Any] | None = None,
    error: str = "",
    **extra: Any,
) -> Response:
    services = services_of(request)
    try:
        client = await services.admin.get_client(client_id)
    except NotFound as exc:
        return message(request, "No such client", str(exc), 404, SECTION)
    app_url = services.settings.app_url
    return console(
        request,
        "admin_client.html",
        SECTION,
        status,
        client=client,
        groups=await services.admin.list_groups(),
        algorithms=ALGORITHMS,
        auth_methods=AUTH_METHODS,
        form=form or form_of(client),
        discovery_url=discovery_url(app_url),
        endpoints=endpoints(app_url),
        error=error,
        secrets=[(s, s.state(time.time())) for s in client.secrets],
        logo=logo_of(client),
        logo_max_kib=LOGO_MAX_BYTES // 1024,
        **extra,
    )


@admin_only
async def client(request: Request, admin: Admin) -> Response:
    return await _client_page(request, request.path_params["client_id"])


async def _refused(
    request: Request, client_id: str, error: PassgateError, form: dict[str, str]
) -> Response:
    kept = await _kept(request, form) if "redirect_uris" in form else None
    return await _client_page(request, client_id, status_for(error), form=kept, error=str(error))


client_change = form_change("client_id", _refused)


@client_change
async def edit_client(
    request: Request, admin: Admin, client_id: str, form: dict[str, str]
) -> Response:
    settings = client_settings(form, await request.form())
    await services_of(request).admin.update_client(admin.actor, client_id, **settings)
    return done(_path(client_id), "Saved")


@client_change
async def rotate_secret(
    request: Request, admin: Admin, client_id: str, form: dict[str, str]
) -> Response:
    """The new secret is in this response only."""
    secret = await services_of(request).admin.rotate_client_secret(admin.actor, client_id)
    return await _client_page(request, client_id, secret=secret)


# oidc-client-options: several secrets (rotation without downtime), uploaded logo -------------


@client_change
async def add_secret(
    request: Request, admin: Admin, client_id: str, form: dict[str, str]
) -> Response:
    """A secret added next to the others; its value is in this response only."""
    days = form.get("expires_in_days", "").strip()
    try:
        expires_at = time.time() + float(days) * 86400 if days else None
    except ValueError:
        raise InvalidInput("Expires in must be a number of days") from None
    if days and not 0 < float(days) <= 3650:
        raise InvalidInput("Expires in must be between 0 and 3650 days")
    added, value = await services_of(request).admin.add_client_secret(
        admin.actor, client_id, form.get("secret_name", ""), expires_at
    )
    return await _client_page(request, client_id, secret=value, added_secret=added.name)


@client_change
async def revoke_secret(
    request: Request, admin: Admin, client_id: str, form: dict[str, str]
) -> Response:
    secret_id = form.get("secret_id", "")
    revoked = await services_of(request).admin.revoke_client_secret(
        admin.actor, client_id, secret_id
    )
    return done(_path(client_id), f"Secret {revoked.name} revoked")


@client_change
async def upload_logo(
    request: Request, admin: Admin, client_id: str, form: dict[str, str]
) -> Response:
    upload = (await request.form()).get("logo")
    if not isinstance(upload, UploadFile):
        raise InvalidInput("choose a PNG or JPEG file to upload")
    image = await upload.read(LOGO_MAX_BYTES + 1)
    await services_of(request).admin.set_client_logo(admin.actor, client_id, image)
    return done(_path(client_id), "Logo uploaded")


@client_change
async def remove_logo(
    request: Request, admin: Admin, client_id: str, form: dict[str, str]
) -> Response:
    await services_of(request).admin.delete_client_logo(admin.actor, client_id)
    return done(_path(client_id), "Logo removed")


@client_change
async def delete_client(
    request: Request, admin: Admin, client_id: str, form: dict[str, str]
) -> Response:
    """Deleting asks first: the admin confirms by typing the client's name."""
    service = services_of(request).admin
    found = await service.get_client(client_id)
    if "confirm" not in form:
        return await _client_page(request, client_id, confirm_delete=True)
    if form["confirm"].strip() != found.name:
        raise InvalidInput("type the client's name exactly to confirm the deletion")
    await service.delete_client(admin.actor, client_id)
    return done(SECTION, f"Client {found.name} deleted")


routes = [
    Route(SECTION, clients, methods=["GET"]),
    Route(SECTION, create_client, methods=["POST"]),
    Route(SECTION + "/{client_id}", client, methods=["GET"]),
    Route(SECTION + "/{client_id}/edit", edit_client, methods=["POST"]),
    Route(SECTION + "/{client_id}/rotate-secret", rotate_secret, methods=["POST"]),
    Route(SECTION + "/{client_id}/delete", delete_client, methods=["POST"]),
    Route(SECTION + "/{client_id}/secrets/add", add_secret, methods=["POST"]),
    Route(SECTION + "/{client_id}/secrets/revoke", revoke_secret, methods=["POST"]),
    Route(SECTION + "/{client_id}/logo", upload_logo, methods=["POST"]),
    Route(SECTION + "/{client_id}/logo/remove", remove_logo, methods=["POST"]),
]
