"""Request bodies at the edge: a body Passgate cannot read (not JSON, not a form, a passkey
answer that is not base64 or CBOR) gets our own message, never the parser's; a body over the
limit gets a 413 in the endpoint's error shape, whether it declares its length or streams in.

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

from gateway.audit.log import CLI
from gateway.core.errors import BodyTooLarge
from gateway.core.settings import Settings
from gateway.passkeys.api import NOT_JSON
from gateway.passkeys.ceremonies import MESSAGES
from gateway.services import Services, build_services
from gateway.web.body_limit import MAX_BODY, BodyLimit
from tests.conftest import PassgateProcess
from tests.soft_authenticator import b64url
from tests.web_client import ORIGIN, WebClient

pytestmark = pytest.mark.anyio

# What Python's JSON and base64 decoders, pydantic, cbor2, py_webauthn and python-multipart say.
PARSER_TEXT = (
    "Expecting",
    "line 1 column",
    "(char ",
    "Incorrect padding",
    "Invalid base64",
    "codec can't decode",
    "validation error",
    "input_value",
    "Input should",
    "CBOR",
    "__cause__",
    "boundary",
    "Traceback",
)
CHUNK = 8 * 1024


def assert_no_parser_text(response: httpx.Response) -> None:
    found = [text for text in PARSER_TEXT if text in response.text]
    assert not found, (found, response.text)


@pytest.fixture
async def live(make_settings: Callable[..., Settings]) -> AsyncIterator[Services]:
    built = build_services(make_settings(db_provider="sqlite"))
    yield built
    await built.close()


@pytest.fixture
async def browser(live: Services) -> AsyncIterator[WebClient]:
    async with WebClient(live) as client:
        yield client


async def post_raw(browser: WebClient, path: str, body: bytes) -> httpx.Response:
    """A passkey endpoint call with the CSRF header and `body` exactly as given."""
    headers = {
        "Origin": ORIGIN,
        "X-CSRF-Token": await browser.csrf(),
        "Content-Type": "application/json",
    }
    return await browser.http.post(path, content=body, headers=headers)


def assert_passkey_error(response: httpx.Response, error: str, message: str) -> None:
    assert response.status_code == 400, response.text
    assert response.json() == {"error": error, "message": message}
    assert_no_parser_text(response)


# --- JSON that is not JSON, or not the JSON an endpoint takes ---------------------------------


@pytest.mark.parametrize(
    "body", [b"{", b"{'credential': 1}", b'{"credential": }', b"\xff\xfe{}"], ids=repr
)
async def test_passkey_endpoint_says_the_body_is_not_json_not_what_the_parser_said(
    browser: WebClient, body: bytes
) -> None:
    response = await post_raw(browser, "/api/webauthn/login/finish", body)
    assert_passkey_error(response, "invalid_request", NOT_JSON)


async def test_passkey_endpoint_names_the_bad_field_without_repeating_its_value(
    browser: WebClient,
) -> None:
    body = json.dumps({"credential": "value-sent-by-the-caller"}).encode()
    response = await post_raw(browser, "/api/webauthn/login/finish", body)
    assert_passkey_error(
        response, "invalid_request", "missing or invalid in the request: credential"
    )
    assert "value-sent-by-the-caller" not in response.text


async def test_passkey_endpoint_does_not_repeat_field_names_it_does_not_know(
    browser: WebClient,
) -> None:
    body = json.dumps({"flow": "setup", "made-up-field": 1}).encode()
    response = await post_raw(browser, "/api/webauthn/register/begin", body)
    assert_passkey_error(
        response, "invalid_request", "the request body is not what this endpoint expects"
    )
    assert "made-up-field" not in response.text


async def test_json_that_is_not_an_object_is_refused_with_our_message(
    browser: WebClient,
) -> None:
    response = await post_raw(browser, "/api/webauthn/login/finish", b"[1, 2]")
    assert_passkey_error(
        response, "invalid_request", "the request body is not what this endpoint expects"
    )


# --- passkey answers that are not base64url or CBOR --------------------------------------------


async def test_sign_in_answer_that_is_not_base64url_gets_the_passkey_message(
    browser: WebClient,
) -> None:
    await browser.begin_sign_in()
    # One character is never whole base64: the decoder's complaint must not reach the caller.
    credential = {
        "id": "a",
        "rawId": "a",
        "type": "public-key",
        "response": {"authenticatorData": "a", "clientDataJSON": "a", "signature": "a"},
    }
    response = await browser.post_json("/api/webauthn/login/finish", {"credential": credential})
    assert_passkey_error(response, "invalid", MESSAGES["invalid"])


async def test_registration_answer_that_is_not_cbor_gets_the_passkey_message(
    browser: WebClient,
) -> None:
    begin = await browser.post_json(
        "/api/webauthn/register/begin",
        {"flow": "setup", "username": "alice", "email": "alice@example.com"},
    )
    assert begin.status_code == 200, begin.text
    credential = browser.auth.create(begin.text, ORIGIN)
    credential["response"]["attestationObject"] = b64url(b"\xff\x00 not cbor")
    response = await browser.post_json(
        "/api/webauthn/register/finish", {"credential": credential, "name": "Laptop"}
    )
    assert_passkey_error(response, "invalid", MESSAGES["invalid"])
    assert browser.services.users.count_users() == 0


# --- forms the parser cannot read ------------------------------------------------------------

BROKEN_MULTIPART = {"Content-Type": "multipart/form-data"}  # no boundary: unreadable


async def test_unreadable_form_at_a_json_endpoint_is_json_with_our_message(
    browser: WebClient,
) -> None:
    response = await browser.http.post(
        "/api/oidc/userinfo", content=b"--x\r\n", headers=BROKEN_MULTIPART
    )
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_request",
        "error_description": "the request body could not be read as a form",
    }
    assert_no_parser_text(response)


async def test_unreadable_form_on_a_page_is_an_html_page_with_our_message(
    browser: WebClient,
) -> None:
    headers = {**BROKEN_MULTIPART, "Accept": "text/html", "Origin": ORIGIN}
    response = await browser.http.post("/login/code", content=b"--x\r\n", headers=headers)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/html")
    assert "could not be read as a form" in response.text
    assert_no_parser_text(response)


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
