"""Backups: `passgate export` / `passgate import` carry every durable table, in one encrypted
archive, between SQLite and PostgreSQL and between machines with different ENCRYPTION_KEYs."""

from __future__ import annotations

import asyncio
import os
import secrets
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gateway.admin.backup import SHORT_LIVED, fitted, read_snapshot
from gateway.core.crypto import SecretBox
from gateway.core.errors import (
    ArchiveUnreadable,
    DecryptionFailed,
    ImportRefused,
    InvalidInput,
    WrongPassphrase,
)
from gateway.core.settings import Settings
from gateway.services import Services, build_services
from tests.conftest import ROOT, postgres_schema

SOURCE_KEY = "source-encryption-key-0123456789"
TARGET_KEY = "target-encryption-key-9876543210"
PASSPHRASE = "correct horse battery staple"
CREDENTIAL_ID = "q8f0X2r1b9YcQm4u7LZkVw"
PUBLIC_KEY = "pQECAyYgASFYIBX3sLqHQm9bWnTq3Ac0Lw6Xx2y1K8pQmZs4D5eF6gH7IlggM3Wq9ZrT"
ACCESS_TOKEN = "access-" + "A" * 40
REFRESH_TOKEN = "refresh-" + "B" * 56
SIGNUP = 7


@dataclass
class Known:
    """Values put into a source instance, to look for on the target (and not in the archive)."""

    alice_id: str
    client_id: str
    client_secret: str
    signing_pems: list[bytes]
    sealed_values: list[str]


@pytest.fixture
def instance(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> Iterator[Callable[[str, str], Services]]:
    """Open a fresh Passgate store ("sqlite" or "postgres") with the given ENCRYPTION_KEY."""
    opened: list[Services] = []
    schemas = ExitStack()

    def open_instance(kind: str, key: str) -> Services:
        values: dict[str, Any] = {
            "data_dir": str(tmp_path / f"instance-{len(opened)}"),
            "encryption_key": key,
            "db_provider": kind,
        }
        if kind == "postgres":
            values["db_connection_string"] = schemas.enter_context(postgres_schema("b_"))
        opened.append(build_services(make_settings(**values)))
        return opened[-1]

    yield open_instance
    for services in opened:
        asyncio.run(services.close())
    schemas.close()


def populate(s: Services) -> Known:
    s.users.create_group("admins")
    s.users.create_group("family")
    alice = s.users.create_user("alice", "alice@example.com", "Alice Liddell", ("admins", "family"))
    s.users.create_user("bob", "", "Bob", ())
    s.users.set_disabled("bob", True)
    s.passkeys.user_handle(alice.id)
    s.passkeys.add(
        credential_id=CREDENTIAL_ID,
        user_id=alice.id,
        public_key=PUBLIC_KEY,
        sign_count=7,
        transports=("internal", "hybrid"),
        aaguid="08987058-cadc-4b81-b6e1-30de50dcbe96",
        backup_eligible=True,
        backed_up=False,
        name="Laptop",
    )
    s.passkeys.record_use(CREDENTIAL_ID, 9, True)
    client, secret = s.clients.create(
        "Memos", ["https://memos.example.com/cb"], allowed_groups=["family"], refresh_tokens=True
    )
    assert secret is not None
    s.clients.create("Public app", ["https://app.example.com/cb"], public=True)
    s.oauth.grant_consent(alice.id, client.client_id, {"openid", "profile"})
    s.oauth.save_token(
        access_token=ACCESS_TOKEN,
        refresh_token=REFRESH_TOKEN,
        client_id=client.client_id,
        user_id=alice.id,
        scope="openid profile",
        auth_time=time.time(),
        access_lifetime=3600,
        refresh_lifetime=86400,
        family_id=None,
        code_hash=None,
    )
    s.custom_claims.set("user:alice", "tier", "gold")
    s.custom_claims.set("group:family", "house", "wonderland")
    s.signups.create(usage_limit=SIGNUP)
    s.audit.record("test.populated", user_id=alice.id, details={"ok": True, "n": 1})
    s.keys.rotate()  # a retired key too
    # Short-lived state, which stays behind:
    s.login_codes.issue("alice")
    s.oauth.save_code(
        "a-code",
        client_id=client.client_id,
        user_id=alice.id,
        redirect_uri="https://memos.example.com/cb",
        scope="openid",
        nonce=None,
        code_challenge=None,
        code_challenge_method=None,
        auth_time=time.time(),
    )
    sealed = [str(row[0]) for row in s.db.fetchall("SELECT private_key FROM signing_keys")]
    return Known(
        alice_id=alice.id,
        client_id=client.client_id,
        client_secret=secret,
        signing_pems=[s.secrets.decrypt(value) for value in sealed],
        sealed_values=sealed,
    )


def schema_tables(s: Services) -> set[str]:
    """Table names, asked of the database directly (independently of gateway.storage.schema)."""
    if s.db.dialect == "sqlite":
        sql = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    else:
        sql = (
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
        )
    return {str(row[0]) for row in s.db.fetchall(sql)}


def contents(s: Services, table: str) -> list[list[tuple[str, Any]]]:
    """Every row, each value with its Python type; sealed values opened with the instance's key;
    the backup's own audit events left out."""
    rows = s.db.fetchall(f"SELECT * FROM {table}")
    typed = [
        [
            ("sealed", s.secrets.decrypt(v))
            if isinstance(v, str) and s.secrets.looks_sealed(v)
            else (type(v).__name__, v)
            for v in row
        ]
        for row in rows
    ]
    if table == "audit_log":
        typed = [row for row in typed if not str(row[2][1]).startswith("backup_")]
    return sorted(typed, key=repr)


def durable(s: Services) -> set[str]:
    return schema_tables(s) - set(SHORT_LIVED)


def move(source: Services, target: Services, tmp_path: Path, replace: bool = False) -> Path:
    archive = tmp_path / f"passgate-{secrets.token_hex(3)}.backup"
    source.backups.export_to(archive, PASSPHRASE)
    target.backups.import_from(archive, PASSPHRASE, replace=replace)
    return archive


def assert_same_durable_data(source: Services, target: Services, known: Known) -> None:
    assert durable(source) == durable(target)
    for table in durable(source):
        assert contents(target, table) == contents(source, table), table
    # ...and it works: the passkey, the client secret, the refresh token, claims, keys.
    passkey = target.passkeys.get(CREDENTIAL_ID)
    assert passkey.user_id == known.alice_id and passkey.sign_count == 9 and passkey.backed_up
    assert passkey.public_key == PUBLIC_KEY and passkey.transports == ("internal", "hybrid")
    alice = target.users.get_user_by_name("alice")
    assert alice.groups == ("admins", "family") and not alice.disabled
    assert target.users.get_user_by_name("bob").disabled
    client = target.clients.get(known.client_id)
    assert target.clients.verify_secret(client, known.client_secret)
    token = target.oauth.by_refresh_token(REFRESH_TOKEN)
    assert token is not None and token.user_id == known.alice_id
    assert target.oauth.consented_scope(known.alice_id, known.client_id) == {"openid", "profile"}
    assert target.custom_claims.for_user(known.alice_id) == {"tier": "gold", "house": "wonderland"}
    assert source.keys.jwks() == target.keys.jwks()


def test_round_trip_on_the_same_store_with_another_encryption_key(
    services: Services, instance: Callable[[str, str], Services], tmp_path: Path
) -> None:
    known = populate(services)
    target = instance(services.db.dialect, TARGET_KEY)
    move(services, target, tmp_path)
    assert_same_durable_data(services, target, known)


@pytest.mark.parametrize(
    ("source_kind", "target_kind"), [("sqlite", "postgres"), ("postgres", "sqlite")]
)
def test_moves_between_sqlite_and_postgresql_with_another_encryption_key(
    instance: Callable[[str, str], Services], tmp_path: Path, source_kind: str, target_kind: str
) -> None:
    source = instance(source_kind, SOURCE_KEY)
    known = populate(source)
    target = instance(target_kind, TARGET_KEY)
    move(source, target, tmp_path)
    assert_same_durable_data(source, target, known)


def test_sealed_secrets_are_sealed_again_with_the_target_key(
    instance: Callable[[str, str], Services], tmp_path: Path
) -> None:
    source = instance("sqlite", SOURCE_KEY)
    known = populate(source)
    target = instance("sqlite", TARGET_KEY)
    move(source, target, tmp_path)
    stored = [str(row[0]) for row in target.db.fetchall("SELECT private_key FROM signing_keys")]
    assert not set(stored) & set(known.sealed_values)
    assert sorted(target.secrets.decrypt(v) for v in stored) == sorted(known.signing_pems)
    with pytest.raises(DecryptionFailed):
        SecretBox(SOURCE_KEY).decrypt(stored[0])


def test_short_lived_state_stays_behind(services: Services, tmp_path: Path) -> None:
    populate(services)
    archive = tmp_path / "a.backup"
    services.backups.export_to(archive, PASSPHRASE)
    names = set(read_snapshot(archive.read_bytes(), PASSPHRASE).row_counts())
    assert names == schema_tables(services) - set(SHORT_LIVED)
    assert {"sessions", "ephemeral", "login_codes", "oauth_codes"} & names == set()
    assert {
        "users",
        "groups",
        "user_groups",
        "passkeys",
        "oidc_clients",
        "oidc_consents",
        "oauth_tokens",
        "custom_claims",
        "signing_keys",
        "signup_tokens",
        "audit_log",
    } <= names


def test_a_table_added_by_a_later_migration_is_carried_without_code_changes(
    instance: Callable[[str, str], Services], tmp_path: Path
) -> None:
    gadgets = (
        "CREATE TABLE gadgets (id TEXT PRIMARY KEY, "
        "user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE, token TEXT, "
        "weight DOUBLE PRECISION, uses BIGINT NOT NULL, note TEXT)"
    )
    source, target = instance("sqlite", SOURCE_KEY), instance("postgres", TARGET_KEY)
    for s in (source, target):
        s.db.execute(gadgets)
    known = populate(source)
    sealed = source.secrets.encrypt(b"gadget secret")
    source.db.execute(
        "INSERT INTO gadgets VALUES (?, ?, ?, ?, ?, ?)",
        ("g1", known.alice_id, sealed, 1.5, 2**40, None),
    )
    move(source, target, tmp_path)
    ((gid, user_id, token, weight, uses, note),) = target.db.fetchall("SELECT * FROM gadgets")
    assert (gid, user_id, weight, uses, note) == ("g1", known.alice_id, 1.5, 2**40, None)
    assert target.secrets.decrypt(token) == b"gadget secret"


def test_wrong_passphrase_is_refused_and_nothing_is_written(
    instance: Callable[[str, str], Services], tmp_path: Path
) -> None:
    source, target = instance("sqlite", SOURCE_KEY), instance("sqlite", TARGET_KEY)
    populate(source)
    archive = tmp_path / "a.backup"
    source.backups.export_to(archive, PASSPHRASE)
    with pytest.raises(WrongPassphrase, match="wrong passphrase"):
        target.backups.import_from(archive, "correct horse battery stapler")
    assert target.users.count_users() == 0


@pytest.mark.parametrize("where", ["body", "end", "header"])
def test_tampered_archive_is_refused_and_nothing_is_written(
    instance: Callable[[str, str], Services], tmp_path: Path, where: str
) -> None:
    source, target = instance("sqlite", SOURCE_KEY), instance("sqlite", TARGET_KEY)
    populate(source)
    archive = tmp_path / "a.backup"
    source.backups.export_to(archive, PASSPHRASE)
    data = bytearray(archive.read_bytes())
    # "header": the scrypt work factor, which is not secret but is authenticated.
    index = {"body": 200, "end": len(data) - 1, "header": len(b"PASSGATE-BACKUP/1\n") + 1}[where]
    data[index] ^= 0x01
    archive.write_bytes(bytes(data))
    with pytest.raises(ArchiveUnreadable):
        target.backups.import_from(archive, PASSPHRASE)
    assert target.users.count_users() == 0


def test_truncated_or_foreign_file_is_refused(
    instance: Callable[[str, str], Services], tmp_path: Path
) -> None:
    source, target = instance("sqlite", SOURCE_KEY), instance("sqlite", TARGET_KEY)
    archive = tmp_path / "a.backup"
    source.backups.export_to(archive, PASSPHRASE)
    archive.write_bytes(archive.read_bytes()[:-20])
    with pytest.raises(ArchiveUnreadable, match="changed or damaged"):
        target.backups.import_from(archive, PASSPHRASE)
    archive.write_bytes(b"SQLite format 3\x00" + b"\x00" * 100)
    with pytest.raises(ArchiveUnreadable, match="not a Passgate backup"):
        target.backups.import_from(archive, PASSPHRASE)


def test_archive_from_a_newer_schema_is_refused(
    instance: Callable[[str, str], Services], tmp_path: Path
) -> None:
    source, target = instance("sqlite", SOURCE_KEY), instance("postgres", TARGET_KEY)
    populate(source)
    source.db.execute(
        "INSERT INTO schema_migrations (version, description, applied_at) VALUES (?, ?, ?)",
        (99, "from the future", time.time()),
    )
    archive = tmp_path / "a.backup"
    source.backups.export_to(archive, PASSPHRASE)
    with pytest.raises(ImportRefused, match=r"newer Passgate \(schema version 99.*upgrade"):
        target.backups.import_from(archive, PASSPHRASE)
    assert target.users.count_users() == 0


def test_populated_target_is_refused_and_left_alone(
    instance: Callable[[str, str], Services], tmp_path: Path
) -> None:
    source, target = instance("sqlite", SOURCE_KEY), instance("postgres", TARGET_KEY)
    populate(source)
    target.users.create_user("mallory", "", "", ())
    with pytest.raises(ImportRefused, match=r"already holds data \(users 1\).*--replace"):
        move(source, target, tmp_path)
    assert [u.username for u in target.users.list_users()] == ["mallory"]


def test_replace_wipes_the_target_and_restores_the_archive(
    instance: Callable[[str, str], Services], tmp_path: Path
) -> None:
    source, target = instance("postgres", SOURCE_KEY), instance("sqlite", TARGET_KEY)
    known = populate(source)
    populate(target)  # same names, other ids: would clash without the wipe
    target.users.create_user("mallory", "", "", ())
    move(source, target, tmp_path, replace=True)
    assert_same_durable_data(source, target, known)
    assert target.db.fetchall("SELECT * FROM login_codes") == []


def test_a_value_that_does_not_fit_rolls_back_the_whole_import(
    instance: Callable[[str, str], Services], tmp_path: Path
) -> None:
    source, target = instance("sqlite", SOURCE_KEY), instance("postgres", TARGET_KEY)
    populate(source)
    # SQLite keeps whatever it is given; PostgreSQL's BIGINT column cannot hold this.
    source.db.execute("UPDATE passkeys SET sign_count = 'many'")
    target.users.create_user("mallory", "", "", ())
    with pytest.raises(ImportRefused, match=r"passkeys\.sign_count.*nothing was imported"):
        move(source, target, tmp_path, replace=True)
    # users were deleted and re-inserted before passkeys failed: all of it was rolled back.
    assert [u.username for u in target.users.list_users()] == ["mallory"]


def test_archive_holds_no_plaintext_secret_or_personal_data(
    services: Services, tmp_path: Path
) -> None:
    known = populate(services)
    archive = tmp_path / "a.backup"
    services.backups.export_to(archive, PASSPHRASE)
    data = archive.read_bytes()
    pem_lines = [line for pem in known.signing_pems for line in pem.splitlines() if len(line) > 40]
    needles = [
        known.client_secret.encode(),
        PUBLIC_KEY.encode(),
        CREDENTIAL_ID.encode(),
        b"alice@example.com",
        b"Alice Liddell",
        b"wonderland",
        b"PRIVATE KEY",
        *pem_lines,
        *(value.encode() for value in known.sealed_values),
        b"gAAAAA",
    ]
    assert [needle for needle in needles if needle in data] == []
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600


def test_export_refuses_to_overwrite_a_file_or_use_a_short_passphrase(
    services: Services, tmp_path: Path
) -> None:
    existing = tmp_path / "keep.backup"
    existing.write_bytes(b"precious")
    with pytest.raises(InvalidInput, match="already exists"):
        services.backups.export_to(existing, PASSPHRASE)
    assert existing.read_bytes() == b"precious"
    with pytest.raises(InvalidInput, match="at least 12 characters"):
        services.backups.export_to(tmp_path / "new.backup", "short")
    assert not (tmp_path / "new.backup").exists()


def test_export_under_the_wrong_encryption_key_fails_and_writes_nothing(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    folder = str(tmp_path / "instance")
    right = build_services(make_settings(data_dir=folder, encryption_key=SOURCE_KEY))
    populate(right)
    asyncio.run(right.close())
    wrong = build_services(make_settings(data_dir=folder, encryption_key=TARGET_KEY))
    try:
        with pytest.raises(DecryptionFailed, match=r"signing_keys\.private_key .* cannot decrypt"):
            wrong.backups.export_to(tmp_path / "a.backup", PASSPHRASE)
    finally:
        asyncio.run(wrong.close())
    assert list(tmp_path.glob("*a.backup*")) == []


def test_export_and_import_are_in_the_audit_log(
    instance: Callable[[str, str], Services], tmp_path: Path
) -> None:
    source, target = instance("sqlite", SOURCE_KEY), instance("sqlite", TARGET_KEY)
    populate(source)
    move(source, target, tmp_path)
    for s, event in ((source, "backup_exported"), (target, "backup_imported")):
        rows = s.db.fetchall("SELECT actor_kind FROM audit_log WHERE event = ?", (event,))
        assert rows == [("cli",)]


# --- the command line -------------------------------------------------------------------------


def passgate(
    tmp_path: Path, folder: str, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "REDIS", "APP_"))}
    full.update({"DATA_DIR": str(tmp_path / folder), "PYTHONPATH": str(ROOT), **env})
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def test_cli_moves_an_instance_with_the_passphrase_from_the_environment(tmp_path: Path) -> None:
    secret = {"BACKUP_PASSPHRASE": PASSPHRASE}
    assert passgate(tmp_path, "old", "users", "add", "alice").returncode == 0
    exported = passgate(
        tmp_path, "old", "export", str(tmp_path / "a.backup"), "--passphrase-env",
        "BACKUP_PASSPHRASE", **secret,
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    assert "users 1" in exported.stdout and PASSPHRASE not in exported.stdout + exported.stderr
    imported = passgate(
        tmp_path, "new", "import", str(tmp_path / "a.backup"), "--passphrase-env",
        "BACKUP_PASSPHRASE", **secret,
    )  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    assert passgate(tmp_path, "new", "users", "list").stdout.startswith("alice\t")
    again = passgate(
        tmp_path, "new", "import", str(tmp_path / "a.backup"), "--passphrase-env",
        "BACKUP_PASSPHRASE", **secret,
    )  # fmt: skip
    assert again.returncode == 2 and "--replace" in again.stderr
    assert "Traceback" not in again.stderr


def test_cli_without_a_terminal_asks_for_passphrase_env(tmp_path: Path) -> None:
    result = passgate(tmp_path, "old", "export", str(tmp_path / "a.backup"))
    assert result.returncode == 2 and "--passphrase-env" in result.stderr
    unset = passgate(
        tmp_path, "old", "export", str(tmp_path / "a.backup"), "--passphrase-env", "NOPE_UNSET"
    )
    assert unset.returncode == 2 and "--passphrase-env is not set" in unset.stderr
    assert "NOPE_UNSET" not in unset.stderr  # in case a passphrase was typed there by mistake
    assert not (tmp_path / "a.backup").exists()


def test_cli_passphrase_is_not_an_argument(tmp_path: Path) -> None:
    for command in ("export", "import"):
        result = passgate(tmp_path, "old", command, str(tmp_path / "a"), "--passphrase", "s3cret")
        assert result.returncode == 2 and "unrecognized arguments" in result.stderr


@pytest.mark.parametrize(
    ("value", "kind", "stored"),
    [
        (True, "integer", 1),  # a PostgreSQL boolean into a SQLite integer flag
        (3.0, "integer", 3),
        (1, "boolean", True),  # and back
        (0, "boolean", False),
        (1700000000, "real", 1700000000.0),
        (None, "integer", None),
        (b"\x00\xff", "bytes", b"\x00\xff"),
        ("text", "text", "text"),
    ],
)
def test_values_are_stored_as_the_target_column_wants(value: Any, kind: str, stored: Any) -> None:
    result = fitted(value, kind, "t.c")
    assert result == stored and type(result) is type(stored)


@pytest.mark.parametrize(
    ("value", "kind"), [("7", "integer"), (2.5, "integer"), (2, "boolean"), (1, "text")]
)
def test_a_value_that_does_not_fit_names_the_column_not_the_value(value: Any, kind: str) -> None:
    with pytest.raises(ImportRefused, match=r"^t\.c: .* wants " + kind) as refused:
        fitted(value, kind, "t.c")
    assert repr(value) not in str(refused.value)
