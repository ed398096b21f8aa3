"""Passgate's OpenID Connect addresses (Pocket-ID's paths), in one place for the discovery
document and the console's "values to paste into the app"."""

from __future__ import annotations


def endpoints(app_url: str) -> dict[str, str]:
    """Issuer and endpoint URLs under `app_url`, keyed by their discovery-document names."""
    return {
        "issuer": app_url,
        "authorization_endpoint": f"{app_url}/authorize",
        "token_endpoint": f"{app_url}/api/oidc/token",
        "userinfo_endpoint": f"{app_url}/api/oidc/userinfo",
        "end_session_endpoint": f"{app_url}/api/oidc/end-session",
        "introspection_endpoint": f"{app_url}/api/oidc/introspect",
        "revocation_endpoint": f"{app_url}/api/oidc/revoke",
        "jwks_uri": f"{app_url}/.well-known/jwks.json",
        "device_authorization_endpoint": f"{app_url}/api/oidc/device/authorize",  # RFC 8628
        "pushed_authorization_request_endpoint": f"{app_url}/api/oidc/par",  # oidc-app-auth
    }


def discovery_url(app_url: str) -> str:
    return f"{app_url}/.well-known/openid-configuration"
