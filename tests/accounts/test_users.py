"""The users and groups service, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import pytest

from gateway.core.errors import Conflict, InvalidInput, NotFound
from gateway.services import Services


def test_created_user_is_listed_with_groups(services: Services) -> None:
    services.users.create_group("family")
    user = services.users.create_user("Alice", "alice@example.com", "Alice A.", ("family",))
    assert user.username == "alice"
    assert [u.username for u in services.users.list_users()] == ["alice"]
    assert services.users.get_user_by_name("ALICE").groups == ("family",)


def test_duplicate_username_is_a_conflict(services: Services) -> None:
    services.users.create_user("bob")
    with pytest.raises(Conflict):
        services.users.create_user("bob")


@pytest.mark.parametrize("name", ["", "-bob", "bob smith", "bo\nb", "b" * 65, "böb"])
def test_invalid_username_is_rejected(services: Services, name: str) -> None:
    with pytest.raises(InvalidInput):
        services.users.create_user(name)


def test_invalid_email_is_rejected(services: Services) -> None:
    with pytest.raises(InvalidInput):
        services.users.create_user("carol", email="not-an-email")


def test_unknown_group_on_create_leaves_no_user_behind(services: Services) -> None:
    with pytest.raises(NotFound):
        services.users.create_user("dave", groups=("nope",))
    assert services.users.list_users() == []


def test_group_membership_can_change(services: Services) -> None:
    services.users.create_group("admins")
    services.users.create_user("erin")
    assert services.users.add_member("admins", "erin").members == ("erin",)
    assert services.users.remove_member("admins", "erin").members == ()


def test_renamed_group_keeps_members(services: Services) -> None:
    services.users.create_group("media")
    services.users.create_user("frank", groups=("media",))
    services.users.rename_group("media", "movies")
    assert services.users.get_user_by_name("frank").groups == ("movies",)


def test_deleting_user_removes_memberships(services: Services) -> None:
    services.users.create_group("g1")
    services.users.create_user("gina", groups=("g1",))
    services.users.delete_user("gina")
    assert services.users.get_group("g1").members == ()
    with pytest.raises(NotFound):
        services.users.get_user_by_name("gina")


def test_update_replaces_groups_and_profile(services: Services) -> None:
    services.users.create_group("a")
    services.users.create_group("b")
    services.users.create_user("hank", groups=("a",))
    user = services.users.update_user(
        "hank", email="h@example.com", display_name="Hank", groups=("b",)
    )
    assert (user.email, user.display_name, user.groups) == ("h@example.com", "Hank", ("b",))
