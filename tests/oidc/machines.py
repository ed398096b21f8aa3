"""What the machine and TV grant tests share: Passgate in-process with a browser (cookies, CSRF
token) and a device's back channel, a client allowed the grants, and the device flow's steps."""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from typing import Any

import httpx

from gateway.accounts.users import User
from gateway.services import Services
from gateway.web.app import create_app
from tests.oidc.in_process import APP, Client

CALLBACK = "https://tv.example.com/callback"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@dataclass(frozen=True)
class App:
    """A registered client: its id and secret (None when public)."""

    client_id: str
    secret: str | None

    def auth(self) -> dict[str, Any]:
        """How this client authenticates at the token and device endpoints."""
        if self.secret is None:
            return {"data": {"client_id": self.client_id}}
        return {"auth": (self.client_id, self.secret), "data": {}}


class Gateway:
    """Passgate's OIDC provider in-process: a browser, and a back channel for apps/devices."""

    def __init__(self, services: Services, ip: str = "198.51.100.7") -> None:
        self.services = services
        self.app = create_app(services)
        self.browser = Client(self.app, ip)
        self.backend = Client(self.app, "203.0.113.9")

    def client(self, public: bool = False, **settings: Any) -> App:
        client, secret = self.services.clients.create(
            "Living room TV", [CALLBACK], public=public, **settings
        )
        return App(client.client_id, secret)

    def sign_in(self, user: User) -> None:
        async def start() -> str:
            cookie, _ = await self.services.sessions.start(user.id, "127.0.0.1", "test", "passkey")
            return cookie

        self.browser.cookies.set(self.services.settings.cookie_name, asyncio.run(start()))

    # the back channel ------------------------------------------------------------------------

    def send(self, path: str, app: App, data: dict[str, str]) -> httpx.Response:
        how = app.auth()
        return self.backend.post(path, data={**how["data"], **data}, auth=how.get("auth"))

    def token(self, app: App, **data: str) -> httpx.Response:
        return self.send("/api/oidc/token", app, data)

    def device_authorize(self, app: App, scope: str = "openid profile") -> dict[str, Any]:
        response = self.send("/api/oidc/device/authorize", app, {"scope": scope})
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    def poll(self, app: App, device_code: str) -> httpx.Response:
        return self.token(app, grant_type=DEVICE_GRANT, device_code=device_code)

    def allow_next_poll(self) -> None:
        """Pretend the device waited its interval since its last poll."""
        self.services.db.execute(
            "UPDATE oauth_device_codes SET last_polled_at = ?", (time.time() - 3600,)
        )

    # the browser -------------------------------------------------------------------------

    def csrf(self) -> str:
        token = self.browser.cookies.get(self.services.settings.csrf_cookie_name)
        if not token:
            self.browser.get("/device")
            token = self.browser.cookies.get(self.services.settings.csrf_cookie_name)
        assert token
        return token

    def submit(self, path: str, **form: str) -> httpx.Response:
        data = {"csrf_token": self.csrf(), **form}
        return self.browser.post(path, data=data, headers={"Origin": APP})

    def enter_code(self, user_code: str) -> httpx.Response:
        return self.submit("/device", user_code=user_code)

    def answer(self, user_code: str, decision: str) -> httpx.Response:
        """Enter the code, then approve or deny it on the page that follows."""
        shown = self.enter_code(user_code)
        assert shown.status_code == 200, shown.text
        hidden = re.search(r'name="user_code" value="([^"]+)"', shown.text)
        assert hidden is not None, shown.text
        return self.submit("/device/decision", user_code=hidden.group(1), decision=decision)
