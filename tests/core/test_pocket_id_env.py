"""A Pocket-ID env file works unchanged: every variable Pocket-ID documents is honoured (same
name and meaning, or converted) or accepted and reported once at start-up as not used, by name,
never by value."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from gateway.core import pocket_id_env
from gateway.core.errors import SettingsInvalid, StorageError
from gateway.core.pocket_id_env import (
    POCKET_ID_ENV,
    Converted,
    NotUsed,
    Same,
    pocket_id_env_table,
    report_unused,
    unused_present,
)
from gateway.core.settings import Settings, load_settings
from gateway.http.forwarded import parse_ip
from gateway.services import build_services
from gateway.storage.db import Database
from tests.conftest import ROOT
from tests.geolite_server import ArchiveServer, city_mmdb, geolite_archive

# Pocket-ID's variables at pocket-id/pocket-id d258d952 (2026-08-22): the `env:` tags of
# backend/internal/common/env_config.go and internal/appconfig/model.go, the `_FILE` variants of
# its `options:"file"` fields, and PUID/PGID from scripts/docker/entrypoint.sh; then the names on
# the documentation's page (pocket-id/website docs/configuration/environment-variables.md).
DOCUMENTED = """
APP_ENV ENCRYPTION_KEY APP_URL DB_CONNECTION_STRING TRUST_PROXY PROXY_PROTOCOL TRUSTED_PLATFORM
AUDIT_LOG_RETENTION_DAYS ANALYTICS_DISABLED ALLOW_DOWNGRADE ALLOW_INSECURE_CALLBACK_URLS
INTERNAL_APP_URL UI_CONFIG_DISABLED DISABLE_RATE_LIMITING VERSION_CHECK_DISABLED STATIC_API_KEY
FILE_BACKEND UPLOAD_PATH S3_BUCKET S3_REGION S3_ENDPOINT S3_ACCESS_KEY_ID S3_SECRET_ACCESS_KEY
S3_FORCE_PATH_STYLE S3_DISABLE_DEFAULT_INTEGRITY_CHECKS PORT HOST UNIX_SOCKET UNIX_SOCKET_MODE
SYSTEMD_SOCKET LOCAL_IPV6_RANGES TLS_CERT TLS_KEY TLS_CERT_FILE TLS_KEY_FILE MAXMIND_LICENSE_KEY
GEOLITE_DB_PATH GEOLITE_DB_URL ACTORS_PORT ACTORS_HOST LOG_LEVEL LOG_JSON LOG_QUERY_ARGS
ENCRYPTION_KEY_FILE DB_CONNECTION_STRING_FILE STATIC_API_KEY_FILE S3_SECRET_ACCESS_KEY_FILE
MAXMIND_LICENSE_KEY_FILE PUID PGID
APP_NAME SESSION_DURATION HOME_PAGE_URL EMAILS_VERIFIED ACCENT_COLOR DISABLE_ANIMATIONS
ALLOW_OWN_ACCOUNT_EDIT ALLOW_USER_SIGNUPS SIGNUP_DEFAULT_USER_GROUP_IDS
SIGNUP_DEFAULT_CUSTOM_CLAIMS REQUIRE_USER_EMAIL SMTP_HOST SMTP_PORT SMTP_FROM SMTP_USER
SMTP_PASSWORD SMTP_TLS SMTP_SKIP_CERT_VERIFY EMAIL_LOGIN_NOTIFICATION_ENABLED
EMAIL_ONE_TIME_ACCESS_AS_UNAUTHENTICATED_ENABLED EMAIL_ONE_TIME_ACCESS_AS_ADMIN_ENABLED
EMAIL_API_KEY_EXPIRATION_ENABLED EMAIL_VERIFICATION_ENABLED LDAP_ENABLED LDAP_URL LDAP_BIND_DN
LDAP_BIND_PASSWORD LDAP_BASE LDAP_USER_SEARCH_FILTER LDAP_USER_GROUP_SEARCH_FILTER
LDAP_SKIP_CERT_VERIFY LDAP_ATTRIBUTE_USER_UNIQUE_IDENTIFIER LDAP_ATTRIBUTE_USER_USERNAME
LDAP_ATTRIBUTE_USER_EMAIL LDAP_ATTRIBUTE_USER_FIRST_NAME LDAP_ATTRIBUTE_USER_LAST_NAME
LDAP_ATTRIBUTE_USER_DISPLAY_NAME LDAP_ATTRIBUTE_USER_PROFILE_PICTURE LDAP_ATTRIBUTE_GROUP_MEMBER
LDAP_ATTRIBUTE_GROUP_UNIQUE_IDENTIFIER LDAP_ATTRIBUTE_GROUP_NAME LDAP_ADMIN_GROUP_NAME
LDAP_SOFT_DELETE_USERS WEBAUTHN_USER_VERIFICATION WEBAUTHN_ALLOW_SYNCED_PASSKEYS
WEBAUTHN_AUTHENTICATOR_ATTACHMENT CIMD_URL_ALLOWLIST
DB_PROVIDER KEYS_STORAGE KEYS_PATH SMTP_PASSWORD_FILE LDAP_BIND_PASSWORD_FILE
LDAP_ATTRIBUTE_ADMIN_GROUP TRACING_ENABLED METRICS_ENABLED OTEL_METRICS_EXPORTER
OTEL_EXPORTER_PROMETHEUS_HOST OTEL_EXPORTER_PROMETHEUS_PORT
""".split()  # noqa: SIM905 - a block as it reads in Pocket-ID's source

ENV_FILE = ROOT / "config" / "pocket-id.env.example"
SECRETS = ("ENCRYPTION_KEY", "MAXMIND_LICENSE_KEY", "SMTP_PASSWORD", "LDAP_BIND_PASSWORD")


def _read_env_file(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines())
    return {name: value for name, value in (p for p in pairs if len(p) == 2) if name[0] != "#"}


@pytest.fixture(autouse=True)
def _report_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pocket_id_env, "_reported", False)


def test_every_documented_pocket_id_variable_is_classified() -> None:
    otel = [name for name in DOCUMENTED if name.startswith("OTEL_")]
    assert [name for name in DOCUMENTED if name not in POCKET_ID_ENV and name not in otel] == []
    assert [name for name, _ in unused_present(dict.fromkeys(otel, "x"))] == sorted(otel)


def test_honoured_names_are_passgate_settings() -> None:
    fields = Settings.model_fields
    for name, treatment in POCKET_ID_ENV.items():
        if isinstance(treatment, Same) and not treatment.outside_settings:
            assert name.lower() in fields, name
        elif isinstance(treatment, Converted):
            assert treatment.setting in fields, name


def test_ldap_variables_are_reported_as_planned_directory_sync() -> None:
    ldap = {n: t for n, t in POCKET_ID_ENV.items() if n.startswith("LDAP_")}
    assert len(ldap) == 22
    assert {t for t in ldap.values()} == {NotUsed("not used yet (directory sync is planned)")}


def test_unused_lists_pocket_id_names_only_with_reasons() -> None:
    environ = {
        "LDAP_URL": "ldap://dir",
        "STATIC_API_KEY": "a-static-api-key-0123456789",
        "APP_URL": "https://id.example.com",  # honoured: not reported
        "COOKIE_DOMAIN": "example.com",  # Passgate's own
        "HOME": "/root",  # nobody's
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317",
    }
    found = dict(unused_present(environ))
    assert sorted(found) == ["LDAP_URL", "OTEL_EXPORTER_OTLP_ENDPOINT", "STATIC_API_KEY"]
    assert "ldap://dir" not in str(found) and "a-static-api-key" not in str(found)


def test_report_logs_each_unused_variable_once_at_warning_without_values(
    caplog: pytest.LogCaptureFixture,
) -> None:
    environ = {"LDAP_BIND_PASSWORD": "hunter2-very-secret", "ANALYTICS_DISABLED": "true"}
    with caplog.at_level(logging.INFO, logger="passgate.settings"):
        report_unused(environ)
        report_unused(environ)  # start-up code may run twice in one process
    assert [(r.levelname, r.getMessage().split(":")[0]) for r in caplog.records] == [
        ("WARNING", "Pocket-ID setting ANALYTICS_DISABLED is not used by Passgate"),
        ("WARNING", "Pocket-ID setting LDAP_BIND_PASSWORD is not used by Passgate"),
    ]
    assert "hunter2" not in caplog.text


def test_readme_table_is_generated_from_the_list() -> None:
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- pocket-id-env:start -->\n", 1)[1].split("<!-- pocket-id-env:end", 1)
    assert block[0].strip() == pocket_id_env_table().strip()


# --- conversions -------------------------------------------------------------------------------


def test_trust_proxy_list_trusts_those_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRUST_PROXY", "10.0.0.7, 172.16.0.0/12")
    settings = load_settings()
    assert settings.trust_proxy is True
    assert parse_ip("172.20.1.1") in settings.trusted_networks
    assert parse_ip("127.0.0.1") not in settings.trusted_networks


def test_trust_proxy_list_leaves_an_explicit_trusted_proxies_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRUST_PROXY", "10.0.0.7")
    monkeypatch.setenv("TRUSTED_PROXIES", "192.168.1.1/32")
    assert load_settings().trusted_proxies == "192.168.1.1/32"


def test_trust_proxy_booleans_keep_their_meaning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRUST_PROXY", "false")
    assert load_settings().trust_proxy is False
    monkeypatch.setenv("TRUST_PROXY", "true")
    assert load_settings().trust_proxy is True
    assert load_settings().trusted_proxies == "127.0.0.0/8,::1/128"


def test_trust_proxy_neither_boolean_nor_addresses_is_an_error_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRUST_PROXY", "sometimes")
    with pytest.raises(SettingsInvalid, match=r"^TRUST_PROXY: "):
        load_settings()


def test_a_postgres_url_selects_postgres_as_in_pocket_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DB_PROVIDER", raising=False)
    monkeypatch.setenv("DB_CONNECTION_STRING", "postgres://pocket:secret@db:5432/pocket")
    assert load_settings().db_provider == "postgres"


def test_an_explicit_db_provider_still_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_PROVIDER", "sqlite")
    monkeypatch.setenv("DB_CONNECTION_STRING", "data/pocket.db")
    assert load_settings().sqlite_path == Path("data/pocket.db")


def test_pocket_id_sqlite_uri_names_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_CONNECTION_STRING", "file:data/pocket-id.db?_pragma=journal_mode(WAL)")
    assert load_settings().sqlite_path == Path("data/pocket-id.db")


def _pocket_id_schema(db: Database) -> None:
    """The tables that tell Pocket-ID's database apart (golang-migrate's schema_migrations)."""
    db.execute("CREATE TABLE schema_migrations (version BIGINT NOT NULL, dirty BOOLEAN NOT NULL)")
    db.execute("CREATE TABLE users (id TEXT PRIMARY KEY, username TEXT NOT NULL)")
    db.execute("CREATE TABLE webauthn_credentials (id TEXT PRIMARY KEY, user_id TEXT)")


def test_pocket_id_database_is_refused_before_any_migration(
    make_settings: Callable[..., Settings], storage_env: dict[str, str], tmp_path: Path
) -> None:
    if storage_env["db_provider"] == "sqlite":
        storage_env["db_connection_string"] = str(tmp_path / "pocket-id.db")
        db = Database.sqlite(tmp_path / "pocket-id.db")
    else:
        db = Database.postgres(storage_env["db_connection_string"])
    _pocket_id_schema(db)
    with pytest.raises(StorageError, match="DB_CONNECTION_STRING points at Pocket-ID's own"):
        build_services(make_settings(**storage_env))
    assert db.fetchall("SELECT version FROM schema_migrations") == []
    db.close()


def test_log_level_warn_is_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_LEVEL", "warn")
    assert load_settings().log_level == "warning"


def test_empty_smtp_port_and_tls_mean_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMTP_PORT", "")
    monkeypatch.setenv("SMTP_TLS", "")
    settings = load_settings()
    assert (settings.smtp_port, settings.smtp_tls) == (587, "starttls")


def test_geolite_db_path_is_maxmind_db_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEOLITE_DB_PATH", "/data/GeoLite2-City.mmdb")
    assert load_settings().maxmind_db_path == Path("/data/GeoLite2-City.mmdb")
    monkeypatch.setenv("MAXMIND_DB_PATH", "/elsewhere.mmdb")
    assert load_settings().maxmind_db_path == Path("/elsewhere.mmdb"), "Passgate's name wins"


def test_file_variables_read_the_named_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "key").write_text("key-from-a-docker-secret-0123")
    (tmp_path / "licence").write_text("licence-from-a-file\n")
    monkeypatch.setenv("ENCRYPTION_KEY", "plain-variable-key-0123456789")
    monkeypatch.setenv("ENCRYPTION_KEY_FILE", str(tmp_path / "key"))
    monkeypatch.setenv("MAXMIND_LICENSE_KEY_FILE", str(tmp_path / "licence"))
    settings = load_settings()
    assert settings.encryption_key == "key-from-a-docker-secret-0123", "the file wins"
    assert settings.maxmind_license_key == "licence-from-a-file"


def test_the_key_file_is_taken_byte_for_byte_as_in_pocket_id(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "key").write_text("key-ending-in-a-newline-0123\n")
    monkeypatch.setenv("ENCRYPTION_KEY_FILE", str(tmp_path / "key"))
    assert load_settings().encryption_key == "key-ending-in-a-newline-0123\n"


def test_an_unreadable_file_variable_is_a_start_up_error_naming_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DB_CONNECTION_STRING_FILE", str(tmp_path / "missing"))
    with pytest.raises(SettingsInvalid, match="DB_CONNECTION_STRING_FILE: cannot read"):
        load_settings()


def test_licence_key_never_appears_in_the_settings_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAXMIND_LICENSE_KEY", "licence-key-0123456789")
    assert "licence-key-0123456789" not in repr(load_settings())


# --- the seed-style env file, in a real process ------------------------------------------------


def test_passgate_starts_with_the_pocket_id_env_file_unchanged(
    start_passgate, tmp_path: Path
) -> None:
    env = _read_env_file(ENV_FILE)
    with ArchiveServer(geolite_archive(city_mmdb(tmp_path / "city.mmdb"))) as maxmind:
        # The only addition: MaxMind's server is a local stand-in (GEOLITE_DB_URL, as Pocket-ID).
        url = maxmind.url + "/geoip_download?edition_id=GeoLite2-City&license_key=%s"
        process = start_passgate(**env, geolite_db_url=url)
        discovery = httpx.get(process.url + "/.well-known/openid-configuration").json()
        login = httpx.get(process.url + "/login", follow_redirects=True).text
        cli = process.cli("users", "list")
        health = process.cli("healthcheck")
        assert maxmind.paths == [
            f"/geoip_download?edition_id=GeoLite2-City&license_key={env['MAXMIND_LICENSE_KEY']}"
        ]
    log = process.log_path.read_text()

    assert discovery["issuer"] == env["APP_URL"]
    assert "Example ID" in login  # APP_NAME
    assert (Path(process.env["DATA_DIR"]) / "GeoLite2-City.mmdb").is_file()
    assert cli.returncode == 0, cli.stderr
    assert health.returncode == 0 and "Pocket-ID" not in health.stderr, "Docker runs it often"
    unused = [name for name in env if isinstance(POCKET_ID_ENV.get(name), NotUsed)]
    assert {"ANALYTICS_DISABLED", "UI_CONFIG_DISABLED", "LDAP_ENABLED"} <= set(unused)
    assert "PUID" not in unused, "the Docker image honours PUID and PGID"
    for name in unused:
        line = f"Pocket-ID setting {name} is not used by Passgate"
        assert log.count(line) == 1, name
        assert cli.stderr.count(line) == 1, f"the CLI reports {name} too"
    honoured = [name for name in env if not isinstance(POCKET_ID_ENV.get(name), NotUsed)]
    for name in honoured:
        assert f"setting {name} " not in log
    for name in SECRETS:
        if env.get(name):
            assert env[name] not in log and env[name] not in cli.stderr, name
    assert re.search(r"WARNING .*GeoLite|ERROR", log) is None, log
