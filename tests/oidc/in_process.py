"""The OIDC provider in-process for tests that speak the protocol without a real browser: the
real ASGI app, a cookie-keeping client for the "browser" (signed in through the session service,
as a passkey sign-in would) and one for the app's back end, plus the steps of the code flow."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from authlib.common.security import generate_token
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.jwk import KeySet
from starlette.types import ASGIApp

from gateway.accounts.users import User
from gateway.services import Services
from gateway.web.app import create_app

APP = "https://auth.example.com"
CALLBACK = "https://memos.example.com/auth/callback"
OTHER_CALLBACK = "https://grafana.example.com/login/generic_oauth"
LOGOUT = "https://memos.example.com/auth/signed-out"


@dataclass(frozen=True)
class Rp:
    """A registered relying party: its id, secret (None when public) and callback."""

    client_id: str
    secret: str | None
    redirect_uri: str = CALLBACK

    @property
    def basic(self) -> tuple[str, str]:
        return (self.client_id, self.secret or "")


@dataclass
class Flow:
    """One authorization request's parameters, so the test can finish it at the token endpoint."""

    rp: Rp
    verifier: str
    state: str
    nonce: str

    def params(self, **overrides: str | None) -> dict[str, str]:
        params: dict[str, str | None] = {
            "client_id": self.rp.client_id,
            "redirect_uri": self.rp.redirect_uri,
            "response_type": "code",
            "scope": "openid profile email groups",
            "state": self.state,
            "nonce": self.nonce,
            "code_challenge": create_s256_code_challenge(self.verifier),
            "code_challenge_method": "S256",
        }
        params.update(overrides)
        return {k: v for k, v in params.items() if v is not None}


class Client:
    """A synchronous HTTP client for the in-process app that keeps its cookies, as a browser
    (or an app's back end) would; redirects are left for the test to look at."""

    def __init__(self, app: ASGIApp, ip: str = "127.0.0.1") -> None:
        self.app = app
        self.ip = ip  # the address the app sees the requests come from
        self.cookies = httpx.Cookies()

    def request(self, method: str, url: str, **options: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app, client=(self.ip, 1))
            async with httpx.AsyncClient(
                transport=transport, base_url=APP, cookies=self.cookies
            ) as http:
                response = await http.request(method, url, **options)
                self.cookies = http.cookies
                return response

        return asyncio.run(send())

    def get(self, url: str, **options: Any) -> httpx.Response:
        return self.request("GET", url, **options)

    def post(self, url: str, **options: Any) -> httpx.Response:
        return self.request("POST", url, **options)


class Op:
    """Passgate's OIDC provider in-process, with a browser and a back channel to it."""

    def __init__(self, services: Services) -> None:
        self.services = services
        app = create_app(services)
        self.browser = Client(app)
        self.backend = Client(app)

    # set-up ------------------------------------------------------------------------------

    def client(self, public: bool = False, **settings: Any) -> Rp:
        redirect_uris = settings.pop("redirect_uris", [CALLBACK])
        client, secret = self.services.clients.create(
            "Memos",
            redirect_uris,
            public=public,
            post_logout_redirect_uris=[LOGOUT],
            **settings,
        )
        return Rp(client.client_id, secret, redirect_uris[0])

    def sign_in(self, user: User, age: float = 0.0, method: str = "passkey") -> None:
        """Give the browser a session for `user` that started `age` seconds ago, signed in by
        `method` ("" for a session from before Passgate recorded it)."""

        async def start() -> str:
            sessions = self.services.sessions
            cookie, record = await sessions.start(user.id, "127.0.0.1", "test", method)
            if age:
                older = dataclasses.replace(record, created_at=record.created_at - age)
                await sessions.store.delete(record.key)
                await sessions.store.save(older, sessions.inactivity)
            return cookie

        cookie = asyncio.run(start())
        self.browser.cookies.set(self.services.settings.cookie_name, cookie)

    def consent(self, user: User, rp: Rp, scope: str = "openid profile email groups") -> None:
        self.services.oauth.grant_consent(user.id, rp.client_id, set(scope.split()))

    def flow(self, rp: Rp) -> Flow:
        return Flow(rp, generate_token(48), generate_token(16), generate_token(16))

    # the protocol ------------------------------------------------------------------------

    def authorize(self, params: dict[str, str]) -> httpx.Response:
        return self.browser.get("/authorize", params=params)

    def code(self, flow: Flow, **overrides: str | None) -> str:
        response = self.authorize(flow.params(**overrides))
        assert response.status_code == 302, response.text
        query = redirect_query(response, flow.rp.redirect_uri)
        assert query["state"] == flow.state
        return query["code"]

    def exchange(
        self,
        flow: Flow,
        code: str,
        verifier: str | None = None,
        redirect_uri: str | None = None,
        rp: Rp | None = None,
        headers: dict[str, str] | None = None,
        resource: str | None = None,
    ) -> httpx.Response:
        rp = rp or flow.rp
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri or flow.rp.redirect_uri,
            "code_verifier": verifier or flow.verifier,
        }
        if resource is not None:
            data["resource"] = resource  # RFC 8707
        return self.token_request(rp, data, headers)

    def token_request(
        self, rp: Rp, data: dict[str, str], headers: dict[str, str] | None = None
    ) -> httpx.Response:
        if rp.secret is None:
            return self.backend.post(
                "/api/oidc/token", data={**data, "client_id": rp.client_id}, headers=headers
            )
        return self.backend.post("/api/oidc/token", data=data, auth=rp.basic, headers=headers)

    def tokens(
        self, flow: Flow, headers: dict[str, str] | None = None, resource: str | None = None
    ) -> dict[str, Any]:
        response = self.exchange(flow, self.code(flow), headers=headers, resource=resource)
        assert response.status_code == 200, response.text
        tokens: dict[str, Any] = response.json()
        return tokens

    def userinfo(
        self, access_token: str, scheme: str = "Bearer", proof: str | None = None
    ) -> httpx.Response:
        headers = {"Authorization": f"{scheme} {access_token}"}
        if proof is not None:
            headers["DPoP"] = proof
        return self.backend.get("/api/oidc/userinfo", headers=headers)

    def introspect(self, rp: Rp, token: str) -> Any:
        response = self.backend.post("/api/oidc/introspect", data={"token": token}, auth=rp.basic)
        assert response.status_code == 200, response.text
        return response.json()

    def id_token_claims(self, id_token: str) -> dict[str, Any]:
        keys = KeySet.import_key_set(self.services.keys.jwks())  # type: ignore[arg-type]
        claims: dict[str, Any] = jwt.decode(id_token, keys).claims
        return claims

    def expire(self, table: str, column: str) -> None:
        assert (table, column) in {
            ("oauth_codes", "expires_at"),
            ("oauth_tokens", "access_expires_at"),
            ("oauth_tokens", "refresh_expires_at"),
        }
        self.services.db.execute(f"UPDATE {table} SET {column} = ?", (time.time() - 1,))


def redirect_query(response: httpx.Response, to: str) -> dict[str, str]:
    """The query of a redirect to `to` (and nowhere else), one value per name."""
    location = response.headers["location"]
    assert location.split("?")[0] == to, location
    pairs = parse_qs(urlsplit(location).query)
    assert all(len(values) == 1 for values in pairs.values()), location
    return {name: values[0] for name, values in pairs.items()}


def assert_token_error(response: httpx.Response, error: str, status: int = 400) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["error"] == error and body["error_description"], body


def assert_error_page(response: httpx.Response, op: Op) -> None:
    assert response.status_code == 400
    assert "location" not in response.headers
    assert response.headers["content-type"].startswith("text/html")
    assert not op.services.db.fetchall("SELECT code_hash FROM oauth_codes")
