"""How commands print users, clients and secrets."""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime

from gateway.accounts.users import User
from gateway.oidc.clients import ClientSecret, OidcClient, uploaded_logo_path
from gateway.oidc.endpoints import discovery_url, endpoints


def print_user(user: User) -> None:
    state = "disabled" if user.disabled else "active"
    groups = ",".join(user.groups) or "-"
    print(f"{user.username}\t{user.email or '-'}\t{user.display_name}\t{groups}\t{state}")


def print_client_line(client: OidcClient) -> None:
    kind = "public" if client.public else "confidential"
    origin = "declared" if client.declared else "-"
    uris = ",".join(client.redirect_uris)
    print(f"{client.client_id}\t{client.name}\t{kind}\t{origin}\t{uris}")


def print_client(client: OidcClient, app_url: str) -> None:
    rows = {
        "client_id": client.client_id,
        "name": client.name,
        "type": "public" if client.public else "confidential",
        "declared in CONFIG_FILE": "yes" if client.declared else "no",
        "redirect_uris": " ".join(client.redirect_uris),
        "post_logout_redirect_uris": " ".join(client.post_logout_redirect_uris) or "-",
        "allowed_groups": ",".join(client.allowed_groups) or "- (every user)",
        "pkce_required": "yes" if client.pkce_required else "no",
        "wildcard_callbacks": "yes" if client.wildcard_callbacks else "no",
        "id_token_alg": client.id_token_alg,
        "access_token_lifetime": f"{client.access_token_lifetime}s",
        "refresh_token_lifetime": f"{client.refresh_token_lifetime}s",
        "refresh_tokens": "always" if client.refresh_tokens else "with offline_access only",
        "logo_url": client.logo_url or "-",
        # machine and TV grants
        "grant_types": " ".join(("authorization_code", *client.grant_types)),
        "client_credentials_scopes": " ".join(client.client_credentials_scopes) or "-",
        "access_token_format": client.access_token_format,
        "allowed_resources": " ".join(client.allowed_resources) or "-",
        "dpop_bound_access_tokens": "yes" if client.dpop_bound_access_tokens else "no",
        # pushed authorization requests and signed client authentication (oidc-app-auth)
        "require_pushed_authorization_requests": "yes" if client.require_par else "no",
        "token_endpoint_auth_method": client.auth_method,
        "jwks": f"{len(json.loads(client.jwks)['keys'])} key(s)" if client.jwks else "-",
        "jwks_uri": client.jwks_uri or "-",
        "federated_identities": " ".join(i.issuer for i in client.federated_identities) or "-",
        "skip_consent": "yes" if client.skip_consent else "no",
        "require_reauth": "yes" if client.require_reauth else "no",
        "launch_url": client.launch_url or "-",
        "uploaded_logo": app_url + uploaded_logo_path(client) if client.logo_etag else "-",
        "secrets": "-" if client.public else f"{len(client.active_secrets(time.time()))} active",
        "discovery_url": discovery_url(app_url),
    }
    shown = ("issuer", "authorization_endpoint", "token_endpoint", "userinfo_endpoint")
    rows.update({name: url for name, url in endpoints(app_url).items() if name in shown})
    for key, value in rows.items():
        print(f"{key}: {value}")


def print_secret(secret: str) -> None:
    print(f"client_secret: {secret}")
    print(
        "warning: the client secret is shown only now; it will not be shown again", file=sys.stderr
    )


def _when(timestamp: float | None, never: str) -> str:
    if timestamp is None:
        return never
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%MZ")


def print_secret_line(secret: ClientSecret) -> None:
    """One of a client's secrets (never its value): id, name, state, created, expires, used."""
    state = secret.state(time.time())
    created = _when(secret.created_at, "-")
    expires = _when(secret.expires_at, "never")
    used = _when(secret.last_used_at, "never")
    print(f"{secret.id}\t{secret.name}\t{state}\t{created}\t{expires}\t{used}")
