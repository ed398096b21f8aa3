"""Users and groups: the service layer the CLI, the pages and (later) the admin API share."""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass

from gateway.core.errors import Conflict, InvalidInput, NotFound
from gateway.core.identity import Identity
from gateway.storage.db import Database, IntegrityViolation, Transaction

_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_GROUP = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

_USER_COLUMNS = "id, username, email, display_name, disabled, created_at"


@dataclass(frozen=True, slots=True)
class User:
    id: str
    username: str
    email: str
    display_name: str
    disabled: bool
    created_at: float
    groups: tuple[str, ...]

    def identity(self) -> Identity:
        return Identity(self.id, self.username, self.email, self.display_name, self.groups)


@dataclass(frozen=True, slots=True)
class Group:
    id: str
    name: str
    members: tuple[str, ...]


def validate_username(username: str) -> str:
    name = username.strip().lower()
    if not _USERNAME.match(name):
        raise InvalidInput(
            f"username {username!r} must be 1-64 characters: lower-case letters, digits, . _ -",
            "username",
        )
    return name


def validate_email(email: str) -> str:
    value = email.strip()
    if value and not _EMAIL.match(value):
        raise InvalidInput(f"email {email!r} is not an email address", "email")
    return value


def validate_group_name(name: str) -> str:
    """The group name, stripped; InvalidInput unless 1-64 letters, digits, . _ -."""
    value = name.strip()
    if not _GROUP.match(value):
        raise InvalidInput(f"group name {name!r} must be 1-64 characters: letters, digits, . _ -")
    return value


class UserService:
    """Create, read, change and remove users and groups."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # users -----------------------------------------------------------------------------------

    def create_user(
        self,
        username: str,
        email: str = "",
        display_name: str = "",
        groups: tuple[str, ...] = (),
    ) -> User:
        """Create a user; raise InvalidInput for bad values, Conflict if the username is taken,
        NotFound if a named group does not exist."""
        with self._db.transaction() as tx:
            user_id = self.insert_user(tx, username, email, display_name, groups)
        return self.get_user(user_id)

    def insert_user(
        self,
        tx: Transaction,
        username: str,
        email: str = "",
        display_name: str = "",
        groups: tuple[str, ...] = (),
        *,
        # imports (issue 14): keep another provider's user id (it is the `sub` apps know)
        user_id: str | None = None,
        disabled: bool = False,
        created_at: float | None = None,
    ) -> str:
        """Insert a user inside the caller's transaction; return the new id. Raises like
        create_user, so a caller can create a user and its first passkey atomically; Conflict
        also for a given `user_id` that is taken."""
        name = validate_username(username)
        mail = validate_email(email)
        if user_id is None:
            user_id = str(uuid.uuid4())
        elif tx.fetchone("SELECT 1 FROM users WHERE id = ?", (user_id,)):
            raise Conflict(f"a user with id {user_id!r} already exists")
        if tx.fetchone("SELECT 1 FROM users WHERE username = ?", (name,)):
            raise Conflict(f"a user named {name!r} already exists")
        try:
            tx.execute(
                f"INSERT INTO users ({_USER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    user_id,
                    name,
                    mail,
                    display_name.strip() or name,
                    int(disabled),
                    time.time() if created_at is None else created_at,
                ),
            )
        except IntegrityViolation:
            raise Conflict(f"a user named {name!r} already exists") from None
        self._set_groups(tx, user_id, groups)
        return user_id

    def ensure_group(self, tx: Transaction, name: str) -> str:
        """Create the group inside the caller's transaction unless it exists; return its id."""
        row = tx.fetchone("SELECT id FROM groups WHERE name = ?", (name,))
        if row is not None:
            return str(row[0])
        group_id = str(uuid.uuid4())
        tx.execute(
            "INSERT INTO groups (id, name, created_at) VALUES (?, ?, ?)",
            (group_id, validate_group_name(name), time.time()),
        )
        return group_id

    def get_user(self, user_id: str) -> User:
        with self._db.transaction() as tx:
            row = tx.fetchone(f"SELECT {_USER_COLUMNS} FROM users WHERE id = ?", (user_id,))
            if row is None:
                raise NotFound("no such user")
            return self._user(tx, row)

    def find_user(self, user_id: str) -> User | None:
        """The user with that id, or None."""
        try:
            return self.get_user(user_id)
        except NotFound:
            return None

    def get_user_by_name(self, username: str) -> User:
        with self._db.transaction() as tx:
            row = tx.fetchone(
                f"SELECT {_USER_COLUMNS} FROM users WHERE username = ?",
                (username.strip().lower(),),
            )
            if row is None:
                raise NotFound(f"no user named {username!r}")
            return self._user(tx, row)

    def list_users(self) -> list[User]:
        with self._db.transaction() as tx:
            rows = tx.fetchall(f"SELECT {_USER_COLUMNS} FROM users ORDER BY username")
            return [self._user(tx, row) for row in rows]

    def count_users(self) -> int:
        row = self._db.fetchone("SELECT COUNT(*) FROM users")
        return int(row[0]) if row else 0

    def update_user(
        self,
        username: str,
        *,
        email: str | None = None,
        display_name: str | None = None,
        groups: tuple[str, ...] | None = None,
    ) -> User:
        user = self.get_user_by_name(username)
        with self._db.transaction() as tx:
            if email is not None:
                tx.execute(
                    "UPDATE users SET email = ? WHERE id = ?", (validate_email(email), user.id)
                )
            if display_name is not None:
                tx.execute(
                    "UPDATE users SET display_name = ? WHERE id = ?",
                    (display_name.strip() or user.username, user.id),
                )
            if groups is not None:
                tx.execute("DELETE FROM user_groups WHERE user_id = ?", (user.id,))
                self._set_groups(tx, user.id, groups)
        return self.get_user(user.id)

    def set_disabled(self, username: str, disabled: bool) -> User:
        user = self.get_user_by_name(username)
        self._db.execute("UPDATE users SET disabled = ? WHERE id = ?", (int(disabled), user.id))
        return self.get_user(user.id)

    def delete_user(self, username: str) -> User:
        user = self.get_user_by_name(username)
        self._db.execute("DELETE FROM users WHERE id = ?", (user.id,))
        return user

    # groups ----------------------------------------------------------------------------------

    def create_group(self, name: str) -> Group:
        group = validate_group_name(name)
        try:
            self._db.execute(
                "INSERT INTO groups (id, name, created_at) VALUES (?, ?, ?)",
                (str(uuid.uuid4()), group, time.time()),
            )
        except IntegrityViolation:
            raise Conflict(f"a group named {group!r} already exists") from None
        return self.get_group(group)

    def get_group(self, name: str) -> Group:
        with self._db.transaction() as tx:
            row = tx.fetchone("SELECT id, name FROM groups WHERE name = ?", (name.strip(),))
            if row is None:
                raise NotFound(f"no group named {name!r}")
            members = tx.fetchall(
                "SELECT u.username FROM user_groups ug JOIN users u ON u.id = ug.user_id "
                "WHERE ug.group_id = ? ORDER BY u.username",
                (row[0],),
            )
            return Group(row[0], row[1], tuple(m[0] for m in members))

    def list_groups(self) -> list[Group]:
        names = self._db.fetchall("SELECT name FROM groups ORDER BY name")
        return [self.get_group(row[0]) for row in names]

    def rename_group(self, name: str, new_name: str) -> Group:
        group = self.get_group(name)
        new = validate_group_name(new_name)
        try:
            self._db.execute("UPDATE groups SET name = ? WHERE id = ?", (new, group.id))
        except IntegrityViolation:
            raise Conflict(f"a group named {new!r} already exists") from None
        return self.get_group(new)

    def delete_group(self, name: str) -> Group:
        group = self.get_group(name)
        self._db.execute("DELETE FROM groups WHERE id = ?", (group.id,))
        return group

    def add_member(self, group_name: str, username: str) -> Group:
        group = self.get_group(group_name)
        user = self.get_user_by_name(username)
        if user.username not in group.members:
            self._db.execute(
                "INSERT INTO user_groups (user_id, group_id) VALUES (?, ?)", (user.id, group.id)
            )
        return self.get_group(group.name)

    def remove_member(self, group_name: str, username: str) -> Group:
        group = self.get_group(group_name)
        user = self.get_user_by_name(username)
        self._db.execute(
            "DELETE FROM user_groups WHERE user_id = ? AND group_id = ?", (user.id, group.id)
        )
        return self.get_group(group.name)

    # helpers ---------------------------------------------------------------------------------

    def _set_groups(self, tx: Transaction, user_id: str, groups: tuple[str, ...]) -> None:
        for name in dict.fromkeys(g.strip() for g in groups if g.strip()):
            row = tx.fetchone("SELECT id FROM groups WHERE name = ?", (name,))
            if row is None:
                raise NotFound(f"no group named {name!r} (create it with: passgate groups add)")
            tx.execute(
                "INSERT INTO user_groups (user_id, group_id) VALUES (?, ?)", (user_id, row[0])
            )

    @staticmethod
    def _user(tx: Transaction, row: tuple[object, ...]) -> User:
        groups = tx.fetchall(
            "SELECT g.name FROM user_groups ug JOIN groups g ON g.id = ug.group_id "
            "WHERE ug.user_id = ? ORDER BY g.name",
            (row[0],),
        )
        return User(
            id=str(row[0]),
            username=str(row[1]),
            email=str(row[2]),
            display_name=str(row[3]),
            disabled=bool(row[4]),
            created_at=float(row[5]),  # type: ignore[arg-type]
            groups=tuple(str(g[0]) for g in groups),
        )
