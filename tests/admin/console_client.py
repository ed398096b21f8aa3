"""An in-process client for the admin console: signed in as a user, with the page's CSRF token."""

from __future__ import annotations

import httpx

from gateway.services import Services
from gateway.web.app import create_app

ORIGIN = "https://auth.example.com"


def client_for(services: Services) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(services), client=("203.0.113.9", 5000))
    return httpx.AsyncClient(transport=transport, base_url=ORIGIN, headers={"accept": "text/html"})


async def sign_in_as(
    services: Services, client: httpx.AsyncClient, username: str, groups: tuple[str, ...] = ()
) -> None:
    """Create `username` (with `groups`) and give `client` their session cookie."""
    for group in groups:
        if group not in {g.name for g in services.users.list_groups()}:
            services.users.create_group(group)
    user = services.users.create_user(username, f"{username}@example.com", groups=groups)
    cookie, _ = await services.sessions.start(user.id, "203.0.113.9", "test")
    client.cookies.set(services.settings.cookie_name, cookie, domain="auth.example.com")


async def csrf_token(client: httpx.AsyncClient) -> str:
    await client.get("/login/code")
    token = client.cookies.get("__Host-passgate_csrf")
    assert token
    return token


# --- who may use the console ------------------------------------------------------------------
