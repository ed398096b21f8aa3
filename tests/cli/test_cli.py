"""The `passgate` command as an operator uses it: real processes, real exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.command import run
from tests.conftest import ROOT, free_port, wait_for


def test_version_prints_the_version(tmp_path: Path) -> None:
    result = run(tmp_path, "version")
    assert result.returncode == 0 and result.stdout.startswith("passgate ")


def test_user_lifecycle_from_the_command_line(tmp_path: Path) -> None:
    assert run(tmp_path, "groups", "add", "family").returncode == 0
    added = run(tmp_path, "users", "add", "Alice", "--email", "a@example.com", "--group", "family")
    assert added.returncode == 0 and added.stdout.startswith("alice\ta@example.com")
    assert "alice" in run(tmp_path, "groups", "list").stdout
    assert "disabled" in run(tmp_path, "users", "disable", "alice").stdout
    assert "active" in run(tmp_path, "users", "enable", "alice").stdout
    assert run(tmp_path, "users", "delete", "alice").returncode == 0
    assert run(tmp_path, "users", "list").stdout == ""


def test_bad_input_exits_2_with_one_readable_line(tmp_path: Path) -> None:
    result = run(tmp_path, "users", "add", "bad name")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "username" in result.stderr


def test_unknown_user_is_reported_not_raised(tmp_path: Path) -> None:
    result = run(tmp_path, "one-time-access-token", "nobody")
    assert result.returncode == 2 and "nobody" in result.stderr and "Traceback" not in result.stderr


def test_one_time_access_token_prints_a_login_link(tmp_path: Path) -> None:
    run(tmp_path, "users", "add", "alice")
    result = run(tmp_path, "one-time-access-token", "alice", APP_URL="https://auth.example.com")
    assert result.returncode == 0
    assert result.stdout.startswith("https://auth.example.com/lc/")
    assert len(result.stdout.strip().rsplit("/", 1)[1]) == 16


def test_broken_rules_file_stops_startup_with_one_line(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - domain: a.example.com\n    policy: maybe\n")
    result = run(tmp_path, "serve", CONFIG_FILE=str(rules))
    assert result.returncode == 2
    assert "rules.yaml" in result.stderr and "policy" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("running", [True, False])
def test_healthcheck_exit_code_follows_the_server(tmp_path: Path, running: bool) -> None:
    port = free_port()
    env = {"PORT": str(port), "HOST": "127.0.0.1"}
    server = None
    if running:
        full_env = {
            **os.environ,
            "DATA_DIR": str(tmp_path / "data"),
            "PYTHONPATH": str(ROOT),
            **env,
        }
        server = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve"],
            env=full_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: run(tmp_path, "healthcheck", **env).returncode == 0, what="passgate")
    try:
        assert run(tmp_path, "healthcheck", **env).returncode == (0 if running else 1)
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)


RULES_FOR_CHECK = """
rules:
  - name: public
    domain: app.example.com
    resources: ["^/public/"]
    policy: bypass
  - name: admin
    domain: app.example.com
    resources: ["^/admin"]
    policy: deny
"""


def test_rules_check_shows_the_canonical_form_and_the_winning_rule(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES_FOR_CHECK)
    result = run(
        tmp_path, "rules", "check", "https://App.example.com/%61dmin//x;v=1",
        CONFIG_FILE=str(rules),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(": ", 1) for line in result.stdout.splitlines())
    assert lines["canonical"] == "https://app.example.com/admin/x;v=1"
    assert lines["path matched by rules"] == "/admin/x"
    assert lines["rule"] == "admin"
    assert lines["decision"].startswith("forbidden")


def test_rules_check_names_why_a_url_is_refused(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES_FOR_CHECK)
    result = run(
        tmp_path, "rules", "check", "https://app.example.com/public/%2e%2e/admin",
        CONFIG_FILE=str(rules),
    )  # fmt: skip
    assert result.returncode == 2
    assert "refuses this URL (400): a dot segment" in result.stderr
