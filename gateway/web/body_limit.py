"""The one cap on request bodies: no page, form or JSON endpoint reads more than MAX_BODY bytes.

Nothing is refused until an endpoint asks for the body. Then a Content-Length over the limit is
refused before a byte is read, and a body without one (chunked) is counted as it streams in and
refused at the chunk that crosses the limit, so a huge body is never read whole. The refusal is
`BodyTooLarge`, raised into the endpoint and turned into a 413 where errors become responses.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.core.errors import BodyTooLarge

# Passgate's largest bodies (a passkey answer, a client's form) are a few KiB.
MAX_BODY = 64 * 1024


def declared_length(scope: Scope) -> int | None:
    """The request's Content-Length, if it has a well-formed one."""
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-length":
            return int(value) if value.isdigit() else None
    return None


class BodyLimit:
    """ASGI middleware: `receive` raises BodyTooLarge once a body is known to exceed `limit`."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = declared_length(scope)
        received = 0

        async def limited() -> Message:
            nonlocal received
            if declared is not None and declared > self.limit:
                raise BodyTooLarge(self.limit)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        await self.app(scope, limited, send)
