"""One-time access codes: single use, expiring, useless for disabled users."""

from __future__ import annotations

import asyncio

import pytest

from gateway.audit.log import CLI
from gateway.core.errors import LoginCodeRejected
from gateway.services import Services


def test_code_signs_in_its_user_once(services: Services) -> None:
    services.users.create_user("alice")
    code = services.login_codes.issue("alice")
    assert services.login_codes.redeem(code).username == "alice"
    with pytest.raises(LoginCodeRejected):
        services.login_codes.redeem(code)


def test_code_typed_with_spaces_and_lower_case_works(services: Services) -> None:
    services.users.create_user("alice")
    code = services.login_codes.issue("alice")
    typed = " ".join(code[i : i + 4] for i in range(0, len(code), 4)).lower()
    assert services.login_codes.redeem(typed).username == "alice"


def test_expired_code_is_rejected(services: Services) -> None:
    services.users.create_user("alice")
    code = services.login_codes.issue("alice", lifetime=-1)
    with pytest.raises(LoginCodeRejected):
        services.login_codes.redeem(code)


def test_unknown_code_is_rejected(services: Services) -> None:
    with pytest.raises(LoginCodeRejected):
        services.login_codes.redeem("AAAABBBBCCCCDDDD")


def test_code_of_disabled_user_is_rejected(services: Services) -> None:
    services.users.create_user("alice")
    code = services.login_codes.issue("alice")
    asyncio.run(services.admin.set_disabled(CLI, "alice", True))
    with pytest.raises(LoginCodeRejected):
        services.login_codes.redeem(code)


def test_codes_are_stored_hashed(services: Services) -> None:
    services.users.create_user("alice")
    code = services.login_codes.issue("alice")
    rows = services.db.fetchall("SELECT code_hash FROM login_codes")
    assert rows and all(code not in str(row) for row in rows)
