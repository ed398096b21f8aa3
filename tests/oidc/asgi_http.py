"""Async in-process helpers for the OIDC client-option tests: the real ASGI app over httpx, a
browser signed in by starting a session through the session service (as a passkey sign-in
would), an authorization request with PKCE, and client authentication probed at the
introspection endpoint."""

from __future__ import annotations

import dataclasses

import httpx
from authlib.common.security import generate_token
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from gateway.accounts.users import User
from gateway.services import Services
from gateway.web.app import create_app

APP = "https://auth.example.com"
CALLBACK = "https://app.example.com/callback"


def http_for(services: Services) -> httpx.AsyncClient:
    """A client for the in-process app; redirects are left for the test to look at."""
    transport = httpx.ASGITransport(app=create_app(services), client=("203.0.113.9", 5000))
    return httpx.AsyncClient(transport=transport, base_url=APP)


async def sign_in(
    services: Services, http: httpx.AsyncClient, user: User, age: float = 0.0
) -> None:
    """Give `http` a passkey session for `user` that began `age` seconds ago."""
    sessions = services.sessions
    cookie, record = await sessions.start(user.id, "203.0.113.9", "test", "passkey")
    if age:
        older = dataclasses.replace(record, created_at=record.created_at - age)
        await sessions.store.delete(record.key)
        await sessions.store.save(older, sessions.inactivity)
    http.cookies.set(services.settings.cookie_name, cookie, domain="auth.example.com")


def authorization(client_id: str, **extra: str) -> dict[str, str]:
    """The parameters of a code-flow request with PKCE (the verifier is not needed here)."""
    return {
        "client_id": client_id,
        "redirect_uri": CALLBACK,
        "response_type": "code",
        "scope": "openid profile",
        "state": generate_token(16),
        "nonce": generate_token(16),
        "code_challenge": create_s256_code_challenge(generate_token(48)),
        "code_challenge_method": "S256",
        **extra,
    }


async def authenticates(http: httpx.AsyncClient, client_id: str, secret: str) -> httpx.Response:
    """Client authentication (HTTP Basic) at the introspection endpoint: 200 when the secret is
    taken, 401 invalid_client otherwise."""
    return await http.post(
        "/api/oidc/introspect", data={"token": "not-a-token"}, auth=(client_id, secret)
    )
