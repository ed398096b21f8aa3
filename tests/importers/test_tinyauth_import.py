"""`passgate import tinyauth`: a Tinyauth v5 env file and `docker inspect` labels become access
rules that Passgate's own "who can reach this?" tester judges as Tinyauth did."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
from collections.abc import Callable, Coroutine
from ipaddress import ip_address
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from gateway.admin.administration import Administration
from gateway.audit.log import Actor
from gateway.core.identity import Identity
from gateway.core.settings import Settings
from gateway.forward_auth.decision import Outcome, decide
from gateway.forward_auth.rules import RuleSet, load_rules
from gateway.http.forwarded import request_from_url
from gateway.importers import tinyauth
from gateway.services import build_services
from tests.conftest import ROOT, CaddyProcess, PassgateProcess, free_port

FIXTURES = Path(__file__).parent / "fixtures"
ENV = FIXTURES / "tinyauth.env"
LABELS = FIXTURES / "docker-inspect.json"
ADMIN = Actor("user", id="u-admin", name="root", ip="192.0.2.7", user_agent="pytest")
T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def passgate(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )


def convert_fixtures() -> tinyauth.Conversion:
    config = tinyauth.gather(tinyauth.read_env_file(ENV), tinyauth.read_docker_inspect(LABELS))
    return tinyauth.convert(config, {"carol@example.com": "carol"}, "fixtures")


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(convert_fixtures().yaml)
    return path


@pytest.fixture
def admin(make_settings: Callable[..., Settings], rules_file: Path) -> Any:
    services = build_services(make_settings(config_file=str(rules_file)))
    administration: Administration = services.admin
    for name in ("alice", "bob", "carol", "mallory", "dave"):
        run(administration.create_user(ADMIN, name))
    yield administration
    run(services.close())


def outcome(admin: Administration, url: str, user: str | None = None) -> Outcome:
    return run(admin.check_access(url, user)).outcome


def from_ip(rules: RuleSet, url: str, ip: str, identity: Identity | None = None) -> Outcome:
    facts = dataclasses.replace(request_from_url(url), client_ip=ip_address(ip))
    return decide(facts, identity, rules).outcome


# --- what the rules decide ---------------------------------------------------------------------


def test_generated_rules_load_without_warnings(rules_file: Path) -> None:
    assert load_rules(rules_file).warnings == ()


def test_allowed_user_reaches_the_app(admin: Administration) -> None:
    assert outcome(admin, "https://wiki.example.com/", "alice") == Outcome.ALLOW


def test_user_not_on_the_allow_list_is_refused(admin: Administration) -> None:
    assert outcome(admin, "https://wiki.example.com/", "dave") == Outcome.FORBIDDEN


def test_blocked_user_is_refused(admin: Administration) -> None:
    assert outcome(admin, "https://wiki.example.com/", "mallory") == Outcome.FORBIDDEN
    assert outcome(admin, "https://git.example.com/admin", "bob") == Outcome.FORBIDDEN
    assert outcome(admin, "https://git.example.com/admin", "alice") == Outcome.ALLOW


def test_whitelisted_email_maps_to_the_given_username(admin: Administration) -> None:
    assert outcome(admin, "https://wiki.example.com/", "carol") == Outcome.ALLOW


def test_allowed_path_is_open_and_only_that_path(admin: Administration) -> None:
    assert outcome(admin, "https://wiki.example.com/public/page") == Outcome.BYPASS
    assert outcome(admin, "https://wiki.example.com/publicity") == Outcome.LOGIN
    assert outcome(admin, "https://grafana.example.com/api/health") == Outcome.BYPASS
    assert outcome(admin, "https://grafana.example.com/x/api/health") == Outcome.LOGIN


def test_path_block_protects_those_paths_and_leaves_the_rest_open(admin: Administration) -> None:
    assert outcome(admin, "https://git.example.com/admin") == Outcome.LOGIN
    assert outcome(admin, "https://git.example.com/admin/") == Outcome.LOGIN
    assert outcome(admin, "https://git.example.com/explore") == Outcome.BYPASS


def test_anonymous_visitor_of_a_protected_app_must_sign_in(admin: Administration) -> None:
    assert outcome(admin, "https://media.example.com/") == Outcome.LOGIN


def test_global_ip_block_holds_even_for_an_allowed_user(rules_file: Path) -> None:
    rules = load_rules(rules_file)
    alice = Identity("u1", "alice", "", "", ())
    assert from_ip(rules, "https://wiki.example.com/", "203.0.113.9", alice) == Outcome.FORBIDDEN
    assert from_ip(rules, "https://wiki.example.com/", "192.0.2.1", alice) == Outcome.ALLOW
    assert from_ip(rules, "https://other.example.com/", "203.0.113.9") == Outcome.FORBIDDEN


def test_app_ip_block_holds_on_the_protected_paths(rules_file: Path) -> None:
    rules = load_rules(rules_file)
    assert from_ip(rules, "https://git.example.com/admin", "198.51.100.7") == Outcome.FORBIDDEN


def test_ip_bypass_skips_the_login(rules_file: Path) -> None:
    rules = load_rules(rules_file)
    assert from_ip(rules, "https://grafana.example.com/", "192.168.1.20") == Outcome.BYPASS
    assert from_ip(rules, "https://grafana.example.com/", "10.0.0.1") == Outcome.LOGIN


def test_app_without_domain_is_named_under_the_app_url_domain() -> None:
    config = tinyauth.gather(
        {"TINYAUTH_APPURL": "https://auth.home.test", "TINYAUTH_APPS_PHOTOS_USERS_ALLOW": "ann"}
    )
    assert "domain: photos.home.test" in tinyauth.convert(config).yaml


# --- what cannot be carried over is said, never dropped ---------------------------------------


def test_passwords_totp_and_unknown_labels_are_reported() -> None:
    notes = [str(n) for n in convert_fixtures().notes if n.lossy]
    assert any("passkey-only" in n and "alice, bob" in n and "TOTP" in n for n in notes)
    assert any("tinyauth.apps.media.users.maybe" in n and "unknown" in n for n in notes)
    assert any("X-WEBAUTH-ORG" in n for n in notes)


def test_unanchored_regex_path_is_refused_rather_than_opened() -> None:
    conversion = convert_fixtures()
    assert "\\.css" not in conversion.yaml.split("\ndefault_policy")[1]
    assert any("'\\\\.css$' refused" in str(n) for n in conversion.notes)


def test_regex_user_block_list_fails_closed() -> None:
    config = tinyauth.gather(
        {
            "TINYAUTH_APPS_APP_CONFIG_DOMAIN": "app.example.com",
            "TINYAUTH_APPS_APP_USERS_BLOCK": "/^guest.*/",
        }
    )
    conversion = tinyauth.convert(config)
    assert "policy: allow" not in conversion.yaml.split("\ndefault_policy")[1]
    assert conversion.lossy


def test_unmapped_whitelist_email_is_left_out_and_the_app_stays_closed() -> None:
    config = tinyauth.gather(
        {
            "TINYAUTH_APPS_APP_CONFIG_DOMAIN": "app.example.com",
            "TINYAUTH_APPS_APP_OAUTH_WHITELIST": "eve@example.com",
        }
    )
    conversion = tinyauth.convert(config)
    rules = conversion.yaml.split("\ndefault_policy")[1]
    assert "eve" not in rules and "app-others" in rules and "policy: allow\n" not in rules
    assert any("--email-user eve@example.com=USERNAME" in str(n) for n in conversion.notes)


def test_regex_that_go_and_python_read_differently_is_refused() -> None:
    config = tinyauth.gather(
        {
            "TINYAUTH_APPS_APP_CONFIG_DOMAIN": "app.example.com",
            "TINYAUTH_APPS_APP_PATH_ALLOW": "^/\\p{L}+/",
        }
    )
    conversion = tinyauth.convert(config)
    assert "app-open-paths" not in conversion.yaml
    assert any("refused" in str(n) and n.lossy for n in conversion.notes)


def test_unanchored_protected_path_still_protects_it_anywhere(tmp_path: Path) -> None:
    config = tinyauth.gather(
        {
            "TINYAUTH_APPS_APP_CONFIG_DOMAIN": "app.example.com",
            "TINYAUTH_APPS_APP_PATH_BLOCK": "/settings",
        }
    )
    rules_path = tmp_path / "rules.yaml"
    rules_path.write_text(tinyauth.convert(config).yaml)
    rules = load_rules(rules_path)
    assert rules.warnings == ()
    assert decide(request_from_url("https://app.example.com/u/settings"), None, rules).outcome == (
        Outcome.LOGIN
    )
    assert decide(request_from_url("https://app.example.com/u/x"), None, rules).outcome == (
        Outcome.BYPASS
    )


def test_domain_passgate_would_refuse_is_an_error_not_a_file() -> None:
    config = tinyauth.gather({"TINYAUTH_APPS_APP_CONFIG_DOMAIN": "my_app.example.com"})
    with pytest.raises(tinyauth.TinyauthImportError, match="would not load"):
        tinyauth.convert(config)


def test_env_app_wins_over_a_label_app_with_the_same_domain() -> None:
    env = {
        "TINYAUTH_APPS_WIKI_CONFIG_DOMAIN": "wiki.example.com",
        "TINYAUTH_APPS_WIKI_USERS_ALLOW": "ann",
    }
    labels = {
        "tinyauth.apps.another.config.domain": "wiki.example.com",
        "tinyauth.apps.another.users.allow": "zed",
    }
    conversion = tinyauth.convert(tinyauth.gather(env, [("wiki2", labels)]))
    assert "user:ann" in conversion.yaml and "user:zed" not in conversion.yaml
    assert any("already the domain of app 'wiki'" in str(n) for n in conversion.notes)


def test_pre_v5_names_are_reported_not_guessed() -> None:
    notes = tinyauth.gather({"APP_URL": "https://auth.example.com"}).notes
    assert notes[0].lossy and "v5" in notes[0].message


# --- the command ------------------------------------------------------------------------------


def test_command_prints_rules_and_exits_1_with_notes_on_stderr(tmp_path: Path) -> None:
    result = passgate("import", "tinyauth", "--env", str(ENV), "--labels", str(LABELS))
    assert result.returncode == 1, result.stderr
    assert result.stdout.startswith("# Passgate access rules converted from Tinyauth v5")
    assert "note: auth.users" in result.stderr
    assert "default_policy: allow" not in result.stderr


def test_command_exits_0_when_everything_converts(tmp_path: Path) -> None:
    env = tmp_path / "tinyauth.env"
    env.write_text(
        "TINYAUTH_APPS_WIKI_CONFIG_DOMAIN=wiki.example.com\nTINYAUTH_APPS_WIKI_USERS_ALLOW=ann\n"
    )
    out = tmp_path / "rules.yaml"
    result = passgate("import", "tinyauth", "--env", str(env), "--output", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert load_rules(out).rules[0].users == frozenset({"ann"})


def test_command_refuses_an_unreadable_labels_file_with_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "labels.json"
    bad.write_text("not json")
    result = passgate("import", "tinyauth", "--labels", str(bad))
    assert result.returncode == 2
    assert "not JSON" in result.stderr


def test_import_of_an_archive_file_still_restores_archives(tmp_path: Path) -> None:
    archive = tmp_path / "missing.passgate"
    settings = {"DATA_DIR": str(tmp_path / "data"), "PHRASE": "x"}
    result = passgate("import", str(archive), "--passphrase-env", "PHRASE", env=settings)
    assert result.returncode == 2
    assert result.stderr.strip() == f"passgate: cannot read {archive}: No such file or directory"


def test_command_prints_the_caddy_site_blocks_with_the_rules(tmp_path: Path) -> None:
    caddyfile = tmp_path / "Caddyfile"
    caddyfile.write_text(
        "wiki.example.com {\n\tforward_auth tinyauth:3000 {\n\t\turi /api/auth/caddy\n\t}\n"
        "\treverse_proxy wiki:8080\n}\n"
    )
    out = tmp_path / "rules.yaml"
    result = passgate(
        "import", "tinyauth", "--env", str(ENV), "--caddyfile", str(caddyfile),
        "--passgate", "pg:1411", "--output", str(out),
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "wiki.example.com {\n\timport passgate pg:1411\n\treverse_proxy wiki:8080\n}" in (
        result.stdout
    )


def test_caddyfile_forward_auth_becomes_the_passgate_snippet() -> None:
    text = (
        "{\n\temail me@example.com\n}\n\n"
        "(tinyauth_forwarder) {\n"
        "\tforward_auth tinyauth:3000 {\n\t\turi /api/auth/caddy\n\t}\n"
        "}\n\n"
        "wiki.example.com {\n"
        "\tforward_auth tinyauth:3000 {\n"
        "\t\turi /api/auth/caddy\n"
        "\t\tcopy_headers Remote-User Remote-Email X-Extra\n"
        "\t}\n"
        "\treverse_proxy wiki:8080\n"
        "}\n"
        "static.example.com {\n\tfile_server\n}\n"
        "git.example.com {\n\timport tinyauth_forwarder\n\treverse_proxy git:3000\n}\n"
    )
    notes: list[tinyauth.Note] = []
    sites = tinyauth.convert_caddyfile(text, "passgate:1411", notes)
    assert [s.addresses for s in sites] == ["wiki.example.com", "git.example.com"]
    assert sites[0].block == (
        "wiki.example.com {\n\timport passgate passgate:1411\n\treverse_proxy wiki:8080\n}\n"
    )
    assert sites[1].block == (
        "git.example.com {\n\timport passgate passgate:1411\n\treverse_proxy git:3000\n}\n"
    )
    assert any("X-Extra" in str(n) for n in notes)


# --- through a real Caddy -----------------------------------------------------------------------


def test_generated_rules_decide_through_caddy(
    start_passgate: Callable[..., PassgateProcess],
    start_caddy: Callable[[str, int], CaddyProcess],
    redis_url: str,
    tmp_path: Path,
) -> None:
    rules = tmp_path / "generated.yaml"
    result = passgate(
        "import", "tinyauth", "--env", str(ENV), "--labels", str(LABELS), "--output", str(rules)
    )
    assert result.returncode == 1, result.stderr
    port = free_port()
    gate = start_passgate(
        app_url=f"http://auth.example.com:{port}",
        cookie_domain="example.com",
        redis_url=redis_url,
        config_file=str(rules),
    )
    pg = f"127.0.0.1:{gate.port}"
    sites = (
        f'http://wiki.example.com:{port} {{\n\timport passgate {pg}\n\trespond "wiki"\n}}\n'
        f"http://auth.example.com:{port} {{\n\treverse_proxy {pg}\n}}\n"
    )
    start_caddy(sites, port)

    def get(path: str) -> httpx.Response:
        return httpx.get(
            f"http://127.0.0.1:{port}{path}",
            headers={"Host": f"wiki.example.com:{port}", "Accept": "text/html"},
            follow_redirects=False,
            timeout=10,
        )

    opened = get("/public/page")
    assert (opened.status_code, opened.text) == (200, "wiki")
    closed = get("/private")
    assert closed.status_code == 302
    assert closed.headers["location"].startswith(f"http://auth.example.com:{port}/login")
