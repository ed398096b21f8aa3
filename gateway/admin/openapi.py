"""The admin API's OpenAPI 3.1 document and the README's route list, both generated from the
operation table and its pydantic models (`TypeAdapter.json_schemas`), never written by hand."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pydantic import TypeAdapter

from gateway import __version__
from gateway.admin import operations as admin_operations
from gateway.admin.api_models import Error
from gateway.admin.operations import Operation

_ERRORS = {
    "401": "No API key or admin session, or the key is invalid, expired or revoked",
    "403": "Not an administrator, a read-only key on a change, or a failed CSRF check",
    "404": "No such user, group, client, key, passkey or session",
    "409": "Already exists, already revoked, or declared in CONFIG_FILE (read-only)",
    "400": "The body is not JSON",
    "422": "Invalid input; `fields` names each bad field",
}
_PARAM = re.compile(r"{(\w+)}")


def openapi_document(
    operations: Sequence[Operation], app_url: str, cookie_name: str = "passgate_session"
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the admin API, built from its operations and models."""
    adapters: list[tuple[tuple[str, str], Any, TypeAdapter[Any]]] = [
        (("error", "body"), "serialization", TypeAdapter(Error))
    ]
    for op in operations:
        if op.body is not None:
            adapters.append(((op.operation_id, "body"), "validation", TypeAdapter(op.body)))
        if op.query is not None:
            adapters.append(((op.operation_id, "query"), "validation", TypeAdapter(op.query)))
        if op.response is not None:
            adapters.append(
                ((op.operation_id, "response"), "serialization", TypeAdapter(op.response))
            )
    schemas, definitions = TypeAdapter.json_schemas(
        adapters, ref_template="#/components/schemas/{model}"
    )
    components = dict(definitions.get("$defs", {}))

    def schema(key: tuple[str, str], mode: str) -> dict[str, Any]:
        return dict(schemas[(key, mode)])  # type: ignore[index]

    error_ref = schema(("error", "body"), "serialization")
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        parameters: list[dict[str, Any]] = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in _PARAM.findall(op.path)
        ]
        if op.query is not None:
            query = schema((op.operation_id, "query"), "validation")
            query = components.get(query.get("$ref", "").rsplit("/", 1)[-1], query)
            required = set(query.get("required", []))
            for name, prop in query.get("properties", {}).items():
                parameters.append(
                    {"name": name, "in": "query", "required": name in required, "schema": prop}
                )
        responses: dict[str, Any] = {}
        if op.response is None:
            responses[str(op.status)] = {"description": "Done"}
        else:
            body_schema = schema((op.operation_id, "response"), "serialization")
            responses[str(op.status)] = {
                "description": "OK",
                "content": {op.media_type: {"schema": body_schema}},
            }
        for status, text in _ERRORS.items():
            responses[status] = {
                "description": text,
                "content": {"application/json": {"schema": error_ref}},
            }
        entry: dict[str, Any] = {
            "operationId": op.operation_id,
            "summary": op.summary,
            "tags": [op.tag],
            "parameters": parameters,
            "responses": responses,
        }
        if op.body is not None:
            entry["requestBody"] = {
                "required": True,
                "content": {
                    "application/json": {"schema": schema((op.operation_id, "body"), "validation")}
                },
            }
        if op.uploads:  # a raw upload (a client's logo), not JSON
            binary = {"schema": {"type": "string", "contentMediaType": "application/octet-stream"}}
            entry["requestBody"] = {
                "required": True,
                "content": {media_type: binary for media_type in op.uploads},
            }
            responses["413"] = {
                "description": "The body is larger than Passgate takes",
                "content": {"application/json": {"schema": error_ref}},
            }
        paths.setdefault(op.full_path, {})[op.method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Passgate admin API",
            "version": __version__,
            "description": admin_operations.__doc__,
        },
        "servers": [{"url": app_url}],
        "security": [{"apiKey": []}, {"adminSession": []}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key (pgk_...): read scope may only GET.",
                },
                "adminSession": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": cookie_name,
                    "description": "A signed-in admin's session; changes need X-CSRF-Token.",
                },
            },
        },
    }


def routes_table(operations: Sequence[Operation]) -> str:
    """The README's admin API route list, generated from the operations so the two never drift."""
    lines = ["| Method | Path | What it does |", "| --- | --- | --- |"]
    lines.extend(f"| `{op.method}` | `{op.full_path}` | {op.summary} |" for op in operations)
    return "\n".join(lines)
