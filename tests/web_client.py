"""An in-process browser for Passgate: httpx over ASGI, with cookies, the CSRF token and a
software authenticator, so tests drive the real pages and JSON endpoints end to end."""

from __future__ import annotations

import json
from typing import Any

import httpx

from gateway.services import Services
from gateway.web.app import create_app
from tests.soft_authenticator import SoftAuthenticator

ORIGIN = "https://auth.example.com"
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) PassgateTestBrowser/1.0"


class WebClient:
    """One browser profile: its own cookie jar (session, device, CSRF) and authenticator."""

    def __init__(
        self,
        services: Services,
        ip: str = "198.51.100.7",
        authenticator: SoftAuthenticator | None = None,
    ) -> None:
        transport = httpx.ASGITransport(app=create_app(services), client=(ip, 50000))
        self.http = httpx.AsyncClient(
            transport=transport, base_url=ORIGIN, headers={"User-Agent": USER_AGENT}
        )
        self.auth = authenticator or SoftAuthenticator()
        self.services = services

    async def __aenter__(self) -> WebClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()

    async def csrf(self) -> str:
        token = self.http.cookies.get(self.services.settings.csrf_cookie_name)
        if not token:
            await self.http.get("/login/code")
            token = self.http.cookies.get(self.services.settings.csrf_cookie_name)
        assert token
        return token

    async def post_json(self, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        headers = {"Origin": ORIGIN, "X-CSRF-Token": await self.csrf()}
        return await self.http.post(path, json=body or {}, headers=headers)

    async def post_form(self, path: str, form: dict[str, str], **kwargs: Any) -> httpx.Response:
        data = {"csrf_token": await self.csrf(), **form}
        return await self.http.post(path, data=data, headers={"Origin": ORIGIN}, **kwargs)

    async def enrol(self, flow: str, username: str = "", **fields: str) -> httpx.Response:
        """Make a passkey through the register endpoints (setup, signup or add)."""
        body = {"flow": flow, "username": username, **fields}
        begin = await self.post_json("/api/webauthn/register/begin", body)
        assert begin.status_code == 200, begin.text
        credential = self.auth.create(begin.text, ORIGIN)
        return await self.post_json(
            "/api/webauthn/register/finish", {"credential": credential, "name": "Laptop"}
        )

    async def set_up(self, username: str = "alice", email: str = "") -> str:
        """First-run setup; return the new user's id."""
        email = email or f"{username}@example.com"
        finish = await self.enrol("setup", username, email=email)
        assert finish.status_code == 200, finish.text
        return self.services.users.get_user_by_name(username).id

    async def begin_sign_in(self) -> str:
        begin = await self.post_json("/api/webauthn/login/begin")
        assert begin.status_code == 200, begin.text
        return begin.text

    async def sign_in(self, origin: str = ORIGIN, **get: Any) -> httpx.Response:
        """A passkey sign-in with this profile's authenticator (answer shaped by `get`)."""
        options = await self.begin_sign_in()
        credential = self.auth.get(options, origin, **get)
        return await self.post_json("/api/webauthn/login/finish", {"credential": credential})

    def session_cookie(self) -> str | None:
        return self.http.cookies.get(self.services.settings.session_cookie_name)


def audit_rows(services: Services, event: str | None = None) -> list[dict[str, Any]]:
    """Every audit row (oldest first), optionally of one event, with details parsed."""
    sql = (
        "SELECT event, success, actor_kind, actor_id, actor_name, ip, user_agent, user_id, "
        "reason, details FROM audit_log"
    )
    params: tuple[str, ...] = ()
    if event is not None:
        sql += " WHERE event = ?"
        params = (event,)
    rows = services.db.fetchall(sql + " ORDER BY at", params)
    names = (
        "event",
        "success",
        "actor_kind",
        "actor_id",
        "actor_name",
        "ip",
        "user_agent",
        "user_id",
        "reason",
    )
    result = []
    for row in rows:
        entry = dict(zip(names, row[:9], strict=True))
        entry["success"] = bool(entry["success"])
        entry["details"] = json.loads(row[9])
        result.append(entry)
    return result
