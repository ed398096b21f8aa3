"""The admin API's operation table and its HTTP plumbing: authentication (API key or admin
session), input validation with pydantic, and JSON output. Routes and the OpenAPI document are
both generated from OPERATIONS, so they cannot drift apart.

Callers authenticate with `Authorization: Bearer <API key>` (read keys may only GET) or with a
signed-in admin's session cookie; cookie callers pass the CSRF token in `X-CSRF-Token` on every
change. Errors are raised as types and turned into JSON in one place (gateway.web.app).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.admin.administration import Administration
from gateway.admin.api_models import plain_text
from gateway.audit.log import Actor
from gateway.core.errors import Forbidden, RequestInvalid, Unauthenticated
from gateway.sessions.csrf import CsrfRejected, verify
from gateway.web.helpers import actor_of, services_of, signed_in

PREFIX = "/api/admin"
READ_METHODS = frozenset({"GET", "HEAD"})
M = TypeVar("M", bound=BaseModel)


# operations ------------------------------------------------------------------------------------


@dataclass
class Call:
    """One authenticated request to an operation, its inputs validated."""

    request: Request
    actor: Actor
    admin: Administration
    query: BaseModel | None
    body: BaseModel | None

    def param(self, name: str) -> str:
        value = str(self.request.path_params[name])
        try:
            plain_text(value)
        except ValueError as exc:
            raise RequestInvalid("invalid path", {name: str(exc)}) from None
        return value

    def body_as(self, model: type[M]) -> M:
        assert isinstance(self.body, model)
        return self.body

    def query_as(self, model: type[M]) -> M:
        assert isinstance(self.query, model)
        return self.query

    @property
    def app_url(self) -> str:
        return services_of(self.request).settings.app_url


Handler = Callable[[Call], Awaitable[Any]]


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # below PREFIX, with {name} path parameters
    handler: Handler
    summary: str
    tag: str
    body: type[BaseModel] | None
    query: type[BaseModel] | None
    response: Any  # a type for TypeAdapter; None for 204 No Content
    status: int
    media_type: str
    operation_id: str
    uploads: tuple[str, ...] = ()  # media types of a raw (non-JSON) body the handler reads

    @property
    def full_path(self) -> str:
        return PREFIX + self.path


OPERATIONS: list[Operation] = []


def operation(
    method: str,
    path: str,
    summary: str,
    *,
    tag: str,
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    response: Any = None,
    status: int = 200,
    media_type: str = "application/json",
    operation_id: str | None = None,
    uploads: tuple[str, ...] = (),
) -> Callable[[Handler], Handler]:
    """Register a handler as an admin API operation (the route table and OpenAPI both read
    OPERATIONS). `response` None means 204 No Content."""

    def register(handler: Handler) -> Handler:
        OPERATIONS.append(
            Operation(
                method,
                path,
                handler,
                summary,
                tag,
                body,
                query,
                response,
                status,
                media_type,
                operation_id or handler.__name__,
                uploads,
            )
        )
        return handler

    return register


# authentication and dispatch -------------------------------------------------------------------


async def authenticate(request: Request) -> Actor:
    """The actor behind a request: an API key (Bearer) or a signed-in admin (cookie, with CSRF
    checks on changes). Raises Unauthenticated (401) or Forbidden (403)."""
    services = services_of(request)
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("send an API key as: Authorization: Bearer pgk_...")
        key = await run_in_threadpool(services.api_keys.authenticate, token.strip())
        if key is None:
            raise Unauthenticated(
                "the API key is invalid, expired or revoked",
                'Bearer realm="passgate", error="invalid_token"',
            )
        if not key.allows(request.method):
            raise Forbidden("this API key is read-only", "insufficient_scope")
        return actor_of(request, key.id, key.name, kind="api_key")
    found = await signed_in(request)
    if found is None:
        raise Unauthenticated("sign in as an administrator or send an API key")
    identity = found[1]
    if services.settings.admin_group not in identity.groups:
        raise Forbidden("only administrators may use the admin API")
    if request.method not in READ_METHODS:
        try:
            verify(request, services.settings, request.headers.get("x-csrf-token"))
        except CsrfRejected as exc:
            raise Forbidden(str(exc), "csrf") from None
    return actor_of(request, identity.user_id, identity.username)


def _validated(model: type[BaseModel], data: Any, where: str) -> BaseModel:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        fields: dict[str, str] = {}
        for error in exc.errors(include_url=False):
            name = ".".join(str(part) for part in error["loc"]) or where
            fields.setdefault(name, str(error["msg"]).removeprefix("Value error, "))
        raise RequestInvalid(f"the {where} has invalid fields", fields) from None


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        raise RequestInvalid(
            "the body is not valid JSON", {"body": "not valid JSON"}, unparseable=True
        ) from None


def _endpoint(op: Operation) -> Callable[[Request], Awaitable[Response]]:
    adapter = TypeAdapter(op.response) if op.response is not None else None

    async def endpoint(request: Request) -> Response:
        actor = await authenticate(request)
        query = (
            _validated(op.query, dict(request.query_params), "query")
            if op.query is not None
            else None
        )
        body = (
            _validated(op.body, await _json_body(request), "body") if op.body is not None else None
        )
        services = services_of(request)
        result = await op.handler(Call(request, actor, services.admin, query, body))
        if isinstance(result, Response):
            return result
        if adapter is None:
            return Response(status_code=op.status)
        return JSONResponse(adapter.dump_python(result, mode="json"), op.status)

    endpoint.__name__ = op.operation_id
    return endpoint


def routes() -> list[Route]:
    """One route per path, dispatching on the method to its operation."""
    by_path: dict[str, dict[str, Operation]] = {}
    for op in OPERATIONS:
        by_path.setdefault(op.full_path, {})[op.method] = op
    routes = []
    for path, methods in by_path.items():
        endpoints = {method: _endpoint(op) for method, op in methods.items()}

        async def dispatch(
            request: Request,
            endpoints: dict[str, Callable[[Request], Awaitable[Response]]] = endpoints,
        ) -> Response:
            method = "GET" if request.method == "HEAD" else request.method
            return await endpoints[method](request)

        routes.append(Route(path, dispatch, methods=list(methods)))
    return routes
