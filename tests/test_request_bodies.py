"""Request bodies at the edge: a body over the limit gets a 413 in the endpoint's error shape,
whether it declares its length or streams in.

In-process app on SQLite (httpx over ASGI, which passes a streamed body on chunk by chunk), and
once through a real `passgate serve`, since how a server treats an unread body is its own.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from starlette.types import Message, Scope

from gateway.audit import CLI
from gateway.body_limit import MAX_BODY, BodyLimit
from gateway.errors import BodyTooLarge
from gateway.services import Services, build_services
from gateway.settings import Settings
from tests.conftest import PassgateProcess
from tests.web_client import ORIGIN, WebClient

pytestmark = pytest.mark.anyio

CHUNK = 8 * 1024


@pytest.fixture
async def live(make_settings: Callable[..., Settings]) -> AsyncIterator[Services]:
    built = build_services(make_settings(db_provider="sqlite"))
    yield built
    await built.close()


@pytest.fixture
async def browser(live: Services) -> AsyncIterator[WebClient]:
    async with WebClient(live) as client:
        yield client


# --- bodies over the limit -------------------------------------------------------------------


@pytest.fixture
async def api_key(live: Services) -> str:
    _, token = await live.admin.create_api_key(CLI, "writer", "write")
    return str(token)


@pytest.fixture
async def calls(browser: WebClient, api_key: str) -> dict[str, tuple[str, dict[str, str], str]]:
    """Each kind of endpoint: its path, the headers it needs and where its message goes."""
    csrf = {"Origin": ORIGIN, "X-CSRF-Token": await browser.csrf()}
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    return {
        "passkey JSON": ("/api/webauthn/register/begin", csrf, "message"),
        "admin API JSON": (
            "/api/admin/users",
            {"Authorization": f"Bearer {api_key}"},
            "error_description",
        ),
        "OIDC token form": ("/api/oidc/token", form, "error_description"),
        "OIDC userinfo form": ("/api/oidc/userinfo", form, "error_description"),
    }


ENDPOINTS = ["passkey JSON", "admin API JSON", "OIDC token form", "OIDC userinfo form"]


def assert_too_large(response: httpx.Response, message_key: str) -> None:
    assert response.status_code == 413, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["error"] == "request_too_large"
    assert body[message_key] == "the request body is over the limit of 64 KiB"


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_body_declared_over_the_limit_is_a_json_413(
    browser: WebClient, calls: dict[str, tuple[str, dict[str, str], str]], endpoint: str
) -> None:
    path, headers, message_key = calls[endpoint]
    response = await browser.http.post(path, content=b"a" * (MAX_BODY + 1), headers=headers)
    assert_too_large(response, message_key)


class Flood:
    """A chunked body of `total` bytes, counting how much of it was taken."""

    def __init__(self, total: int = 10 * 1024 * 1024) -> None:
        self.total = total
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while self.sent < self.total:
            self.sent += CHUNK
            yield b"a" * CHUNK


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_chunked_body_over_the_limit_is_a_json_413_before_it_is_all_read(
    browser: WebClient, calls: dict[str, tuple[str, dict[str, str], str]], endpoint: str
) -> None:
    path, headers, message_key = calls[endpoint]
    flood = Flood()
    response = await browser.http.post(path, content=flood, headers=headers)
    assert "content-length" not in response.request.headers
    assert_too_large(response, message_key)
    assert flood.sent <= MAX_BODY + CHUNK


async def test_body_of_exactly_the_limit_is_read(browser: WebClient, api_key: str) -> None:
    body = json.dumps({"username": "bob"}).encode()
    padded = body + b" " * (MAX_BODY - len(body))
    response = await browser.http.post(
        "/api/admin/users",
        content=padded,
        headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
    )
    assert response.status_code == 201, response.text


async def test_oversized_form_on_a_page_is_an_html_413(browser: WebClient) -> None:
    data = {"csrf_token": await browser.csrf(), "code": "a" * (MAX_BODY + 1)}
    headers = {"Accept": "text/html", "Origin": ORIGIN}
    response = await browser.http.post("/login/code", data=data, headers=headers)
    assert response.status_code == 413
    assert response.headers["content-type"].startswith("text/html")
    assert "over the limit of 64 KiB" in response.text


async def test_declared_length_over_the_limit_is_refused_without_reading_the_body() -> None:
    """The middleware alone: the endpoint asks for the body, and not one receive() happens."""
    received: list[Message] = []
    refused: list[BodyTooLarge] = []

    async def endpoint(scope: Scope, receive: Any, send: Any) -> None:
        try:
            await receive()
        except BodyTooLarge as exc:
            refused.append(exc)

    async def receive() -> Message:
        message: Message = {"type": "http.request", "body": b"a", "more_body": True}
        received.append(message)
        return message

    async def send(message: Message) -> None:
        raise AssertionError("nothing is sent")

    scope = {"type": "http", "headers": [(b"content-length", str(MAX_BODY + 1).encode())]}
    await BodyLimit(endpoint)(scope, receive, send)
    assert refused and refused[0].limit == MAX_BODY
    assert received == []


# --- over a real socket ------------------------------------------------------------------------


@pytest.fixture
def server(start_passgate: Callable[..., PassgateProcess]) -> Iterator[PassgateProcess]:
    yield start_passgate()


def test_chunked_flood_over_the_wire_is_a_json_413(server: PassgateProcess) -> None:
    """uvicorn answers the 413 while the client is still sending, and stays up."""

    def flood() -> Iterator[bytes]:
        for _ in range(10 * 1024 * 1024 // CHUNK):
            yield b"a" * CHUNK

    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    with httpx.Client(base_url=server.url, timeout=30) as http:
        response = http.post("/api/oidc/token", content=flood(), headers=headers)
        assert_too_large(response, "error_description")
        assert http.get("/healthz").status_code == 200
