"""`passgate api-keys` and `passgate audit` as an operator uses them: real processes."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.command import run


def test_api_key_is_created_listed_and_revoked(tmp_path: Path) -> None:
    created = run(tmp_path, "api-keys", "create", "backup", "--scope", "write", "--days", "30")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert token.startswith("pgk_") and "shown only now" in created.stderr
    listed = run(tmp_path, "api-keys", "list").stdout
    key_id, name, scope, state = listed.split("\t")[:4]
    assert (name, scope, state) == ("backup", "write", "active") and token not in listed
    assert run(tmp_path, "api-keys", "revoke", key_id).returncode == 0
    assert "\trevoked\t" in run(tmp_path, "api-keys", "list").stdout
    again = run(tmp_path, "api-keys", "revoke", key_id)
    assert again.returncode == 2 and "already revoked" in again.stderr


def test_api_key_with_a_bad_scope_is_refused(tmp_path: Path) -> None:
    result = run(tmp_path, "api-keys", "create", "x", "--scope", "admin")
    assert result.returncode == 2 and "scope" in result.stderr


def test_cli_changes_appear_in_the_audit_list_with_the_cli_actor(tmp_path: Path) -> None:
    run(tmp_path, "users", "add", "alice")
    run(tmp_path, "groups", "add", "family")
    listed = run(tmp_path, "audit", "list", "--since", "1h").stdout.splitlines()
    assert [line.split("\t")[1] for line in listed] == ["group_created", "user_created"]
    assert all("\tcli:command line\t" in line for line in listed)
    only_alice = run(tmp_path, "audit", "list", "--user", "alice").stdout.splitlines()
    assert len(only_alice) == 1 and "user_created" in only_alice[0]


def test_audit_export_writes_json_lines_to_a_file_or_stdout(tmp_path: Path) -> None:
    run(tmp_path, "users", "add", "bob")
    target = tmp_path / "audit.jsonl"
    result = run(tmp_path, "audit", "export", str(target), "--event", "user_created")
    assert result.returncode == 0 and "exported 1 events" in result.stderr
    [line] = target.read_text().splitlines()
    assert json.loads(line)["details"]["username"] == "bob"
    assert json.loads(run(tmp_path, "audit", "export", "-").stdout)["event"] == "user_created"


def test_audit_list_rejects_an_unreadable_time(tmp_path: Path) -> None:
    result = run(tmp_path, "audit", "list", "--since", "last tuesday")
    assert result.returncode == 2 and "is not a time" in result.stderr
