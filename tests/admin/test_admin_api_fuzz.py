"""An OpenAPI-driven fuzz run of the admin API (schemathesis): whatever it sends, no 5xx, and
every response matches the status codes and schemas the document promises."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from gateway.audit.log import CLI
from gateway.core.settings import Settings
from gateway.services import build_services
from gateway.web.app import create_app

EXAMPLES = 12  # per operation: ~40 operations run in well under a minute


@pytest.fixture
def admin_api(make_settings: Callable[..., Settings]) -> Iterator[tuple[Any, str]]:
    """The app's schema loaded by schemathesis, and a write key."""
    services = build_services(make_settings())
    _, token = asyncio.run(services.admin.create_api_key(CLI, "fuzz", "write"))
    services.users.create_group("family")
    services.users.create_user("alice", groups=("family",))
    yield schemathesis.openapi.from_asgi("/api/openapi.json", create_app(services)), token
    asyncio.run(services.close())


def test_admin_api_never_fails_with_a_server_error(admin_api: tuple[Any, str]) -> None:
    schema, token = admin_api
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 30
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def fuzz(case: Any) -> None:
            response = case.call(headers={"Authorization": f"Bearer {token}"})
            case.validate_response(
                response,
                checks=[not_a_server_error, status_code_conformance, response_schema_conformance],
            )

        fuzz()
