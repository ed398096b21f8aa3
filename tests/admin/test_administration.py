"""The administration layer under CLI, console and API: changes go through and are audited."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from gateway.admin.administration import Administration
from gateway.audit.log import Actor, AuditEvent
from gateway.core.errors import Conflict, InvalidInput, NotFound
from gateway.core.settings import Settings
from gateway.forward_auth.decision import Outcome
from gateway.services import Services, build_services

T = TypeVar("T")
ADMIN = Actor("user", id="u-admin", name="root", ip="192.0.2.7", user_agent="Firefox")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def events(services: Services, event: str | None = None) -> list[AuditEvent]:
    page = services.audit.search(limit=1000, **({"event": event} if event else {}))
    return page.events


def test_created_user_is_audited_with_actor_and_details(services: Services) -> None:
    admin = services.admin
    run(admin.create_group(ADMIN, "family"))
    user = run(admin.create_user(ADMIN, "alice", "a@example.com", "Alice", ["family"]))
    [entry] = events(services, "user_created")
    assert entry.actor == ADMIN and entry.user_id == user.id
    assert entry.details == {
        "username": "alice",
        "email": "a@example.com",
        "display_name": "Alice",
        "groups": "family",
    }


def test_failed_change_is_not_audited(services: Services) -> None:
    with pytest.raises(InvalidInput):
        run(services.admin.create_user(ADMIN, "bad name"))
    assert events(services) == []


def test_update_records_only_what_changed(services: Services) -> None:
    admin = services.admin
    run(admin.create_user(ADMIN, "bob", "b@example.com"))
    updated = run(admin.update_user(ADMIN, "bob", display_name="Bobby"))
    assert updated.display_name == "Bobby" and updated.email == "b@example.com"
    [entry] = events(services, "user_updated")
    assert entry.details == {"username": "bob", "display_name": "Bobby"}


def test_disabling_a_user_ends_their_sessions(services: Services) -> None:
    admin = services.admin
    user = run(admin.create_user(ADMIN, "carol"))
    cookie, _ = run(services.sessions.start(user.id, "192.0.2.1", "Firefox"))
    assert run(admin.set_disabled(ADMIN, "carol", True)).disabled
    assert run(services.current_user.identify(cookie)) is None
    assert run(admin.list_sessions("carol")) == []
    assert not run(admin.set_disabled(ADMIN, "carol", False)).disabled
    assert [e.event for e in events(services)][:2] == ["user_enabled", "user_disabled"]


def test_deleting_a_user_ends_sessions_and_is_audited(services: Services) -> None:
    admin = services.admin
    user = run(admin.create_user(ADMIN, "dave"))
    cookie, _ = run(services.sessions.start(user.id, "192.0.2.1", "Firefox"))
    run(admin.delete_user(ADMIN, "dave"))
    assert run(services.sessions.resolve(cookie)) is None
    with pytest.raises(NotFound):
        run(admin.get_user("dave"))
    assert events(services, "user_deleted")[0].details == {"username": "dave"}


def test_ending_one_session_leaves_the_others(services: Services) -> None:
    admin = services.admin
    user = run(admin.create_user(ADMIN, "erin"))
    first, record = run(services.sessions.start(user.id, "192.0.2.1", "Firefox"))
    second, _ = run(services.sessions.start(user.id, "192.0.2.2", "Safari"))
    run(admin.end_session(ADMIN, "erin", record.key))
    assert run(services.sessions.resolve(first)) is None
    assert run(services.sessions.resolve(second)) is not None
    assert [s.ip for s in run(admin.list_sessions("erin"))] == ["192.0.2.2"]
    with pytest.raises(NotFound):
        run(admin.end_session(ADMIN, "erin", record.key))
    assert run(admin.end_all_sessions(ADMIN, "erin")) == 1
    assert run(admin.list_sessions("erin")) == []


def test_revoking_a_passkey_removes_it(services: Services) -> None:
    admin = services.admin
    user = run(admin.create_user(ADMIN, "frank"))
    services.passkeys.add(
        credential_id="cred-1",
        user_id=user.id,
        public_key="pk",
        sign_count=0,
        transports=(),
        aaguid="",
        backup_eligible=False,
        backed_up=False,
        name="Phone",
    )
    assert [p.credential_id for p in run(admin.list_passkeys("frank"))] == ["cred-1"]
    run(admin.delete_passkey(ADMIN, "frank", "cred-1"))
    assert run(admin.list_passkeys("frank")) == []
    assert events(services, "passkey_revoked")[0].details["name"] == "Phone"
    with pytest.raises(NotFound):
        run(admin.delete_passkey(ADMIN, "frank", "cred-1"))


def test_login_link_is_a_working_code_and_no_code_is_audited(services: Services) -> None:
    admin = services.admin
    run(admin.create_user(ADMIN, "gina"))
    url = run(admin.create_login_link(ADMIN, "gina", minutes=5))
    assert url.startswith("https://auth.example.com/lc/")
    code = url.rsplit("/", 1)[1]
    assert services.login_codes.redeem(code).username == "gina"
    [entry] = events(services, "login_link_created")
    assert code not in json.dumps(entry.to_dict())
    with pytest.raises(InvalidInput):
        run(admin.create_login_link(ADMIN, "gina", minutes=0))


def test_signup_token_link_works_and_bounds_are_checked(services: Services) -> None:
    invite = run(services.admin.create_signup_token(ADMIN, days=1, uses=2))
    token = invite.url.split("token=", 1)[1]
    services.signups.check(token)
    assert invite.usage_limit == 2
    assert token not in json.dumps(events(services, "signup_token_created")[0].to_dict())
    with pytest.raises(InvalidInput):
        run(services.admin.create_signup_token(ADMIN, days=0))
    with pytest.raises(InvalidInput):
        run(services.admin.create_signup_token(ADMIN, uses=0))


def test_group_changes_are_audited(services: Services) -> None:
    admin = services.admin
    run(admin.create_user(ADMIN, "hal"))
    run(admin.create_group(ADMIN, "media"))
    assert run(admin.add_member(ADMIN, "media", "hal")).members == ("hal",)
    assert run(admin.rename_group(ADMIN, "media", "movies")).name == "movies"
    assert run(admin.remove_member(ADMIN, "movies", "hal")).members == ()
    run(admin.delete_group(ADMIN, "movies"))
    assert [e.event for e in reversed(events(services))][1:] == [
        "group_created",
        "group_member_added",
        "group_renamed",
        "group_member_removed",
        "group_deleted",
    ]
    run(admin.create_group(ADMIN, "crew"))
    with pytest.raises(Conflict):
        run(admin.create_group(ADMIN, "crew"))


def test_group_membership_change_reaches_the_signed_in_identity(services: Services) -> None:
    admin = services.admin
    user = run(admin.create_user(ADMIN, "ivy"))
    run(admin.create_group(ADMIN, "staff"))
    cookie, _ = run(services.sessions.start(user.id, "192.0.2.1", "Firefox"))
    found = run(services.current_user.identify(cookie))
    assert found is not None and found[1].groups == ()
    run(admin.add_member(ADMIN, "staff", "ivy"))
    found = run(services.current_user.identify(cookie))
    assert found is not None and found[1].groups == ("staff",)


def test_claims_are_set_listed_and_unset(services: Services) -> None:
    admin = services.admin
    user = run(admin.create_user(ADMIN, "jack"))
    assert run(admin.set_claim(ADMIN, "user:jack", "department", "ops")) == {"department": "ops"}
    assert run(admin.unset_claim(ADMIN, "user:jack", "department")) == {}
    with pytest.raises(NotFound):
        run(admin.unset_claim(ADMIN, "user:jack", "department"))
    entry = events(services, "claim_set")[0]
    assert entry.user_id == user.id and "ops" not in json.dumps(entry.to_dict())


def test_client_lifecycle_never_audits_the_secret(services: Services) -> None:
    admin = services.admin
    client, secret = run(
        admin.create_client(ADMIN, "Wiki", ["https://wiki.example.com/cb"], pkce_required=True)
    )
    assert secret is not None and client.pkce_required
    updated = run(admin.update_client(ADMIN, client.client_id, name="Team wiki"))
    assert updated.name == "Team wiki"
    new_secret = run(admin.rotate_client_secret(ADMIN, client.client_id))
    assert services.clients.verify_secret(services.clients.get(client.client_id), new_secret)
    run(admin.delete_client(ADMIN, client.client_id))
    log = json.dumps([e.to_dict() for e in events(services)])
    assert secret not in log and new_secret not in log
    assert [e.event for e in reversed(events(services))] == [
        "client_created",
        "client_updated",
        "client_secret_rotated",
        "client_deleted",
    ]
    assert events(services, "client_updated")[0].details["changed"] == "name"


def test_api_key_lifecycle_is_audited_without_the_token(services: Services) -> None:
    admin = services.admin
    key, token = run(admin.create_api_key(ADMIN, "backup job", "write", days=30))
    assert token.startswith("pgk_") and key.created_by == "user:root"
    assert services.api_keys.authenticate(token) == key
    revoked = run(admin.revoke_api_key(ADMIN, key.id))
    assert revoked.revoked_at is not None and services.api_keys.authenticate(token) is None
    assert token not in json.dumps([e.to_dict() for e in events(services)])


def test_audit_search_by_username(services: Services) -> None:
    admin = services.admin
    run(admin.create_user(ADMIN, "kim"))
    run(admin.create_user(ADMIN, "lee"))
    page = run(admin.search_audit(user="kim"))
    assert [e.details["username"] for e in page.events] == ["kim"]


def _rules_services(make_settings: Any, tmp_path: Path) -> Services:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "default_policy: deny\n"
        "rules:\n"
        "  - domain: public.example.com\n    policy: bypass\n"
        "  - name: media\n    domain: media.example.com\n    subject: [group:family]\n"
        "    policy: allow\n"
    )
    settings: Settings = make_settings(config_file=str(rules))
    return build_services(settings)


def test_access_check_for_a_user_names_the_matching_rule(
    make_settings: Any, tmp_path: Path
) -> None:
    services = _rules_services(make_settings, tmp_path)
    admin: Administration = services.admin
    run(admin.create_group(ADMIN, "family"))
    run(admin.create_user(ADMIN, "mia", groups=["family"]))
    run(admin.create_user(ADMIN, "ned"))
    check = run(admin.check_access("https://media.example.com/films", "mia"))
    assert (check.outcome, check.rule) == (Outcome.ALLOW, "media")
    assert run(admin.check_access("https://media.example.com/", "ned")).outcome == (
        Outcome.FORBIDDEN
    )
    anonymous = run(admin.check_access("https://media.example.com/"))
    assert anonymous.outcome == Outcome.LOGIN and anonymous.allowed_users == ("mia",)
    with pytest.raises(InvalidInput):
        run(admin.check_access("ftp://media.example.com/"))
    run(services.close())


@pytest.fixture
def sole_admin(services: Services) -> str:
    run(services.admin.create_group(ADMIN, "admins"))
    run(services.admin.create_user(ADMIN, "root", groups=["admins"]))
    return "root"


@pytest.mark.parametrize(
    "change",
    [
        lambda admin: admin.set_disabled(ADMIN, "root", True),
        lambda admin: admin.delete_user(ADMIN, "root"),
        lambda admin: admin.remove_member(ADMIN, "admins", "root"),
        lambda admin: admin.update_user(ADMIN, "root", groups=[]),
        lambda admin: admin.delete_group(ADMIN, "admins"),
        lambda admin: admin.rename_group(ADMIN, "admins", "staff"),
    ],
    ids=["disable", "delete", "remove-member", "update-groups", "delete-group", "rename-group"],
)
def test_the_last_administrator_cannot_be_locked_out(
    services: Services, sole_admin: str, change: Any
) -> None:
    with pytest.raises(Conflict):
        run(change(services.admin))
    root = run(services.admin.get_user(sole_admin))
    assert not root.disabled and "admins" in root.groups


def test_an_administrator_can_go_once_another_is_enabled(
    services: Services, sole_admin: str
) -> None:
    admin = services.admin
    run(admin.create_user(ADMIN, "second", groups=["admins"]))
    run(admin.set_disabled(ADMIN, "second", True))
    with pytest.raises(Conflict):  # a disabled administrator does not count
        run(admin.delete_user(ADMIN, sole_admin))
    run(admin.set_disabled(ADMIN, "second", False))
    run(admin.delete_user(ADMIN, sole_admin))
    assert [u.username for u in run(admin.list_users())] == ["second"]
