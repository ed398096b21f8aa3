"""Settings: Pocket-ID names, clear one-line errors, derived values."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gateway.core.errors import SettingsInvalid
from gateway.core.settings import load_settings
from gateway.http.forwarded import parse_ip


def test_defaults_run_on_embedded_storage() -> None:
    settings = load_settings()
    assert settings.port == 1411 and settings.db_provider == "sqlite" and settings.redis_url is None


def test_session_duration_accepts_minutes_and_suffixed_durations() -> None:
    assert load_settings(session_duration="60").session_duration == 60
    assert load_settings(session_duration="12h").session_duration == 720
    assert load_settings(session_duration="90s").session_duration == 1.5


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"app_url": "auth.example.com"}, "APP_URL"),
        ({"port": "99999"}, "PORT"),
        ({"db_provider": "mysql"}, "DB_PROVIDER"),
        ({"session_duration": "soon"}, "SESSION_DURATION"),
        ({"encryption_key": "short"}, "ENCRYPTION_KEY"),
        ({"cookie_domain": "other.org", "app_url": "https://auth.example.com"}, "COOKIE_DOMAIN"),
        ({"trusted_proxies": "10.0.0.0/8,banana"}, "TRUSTED_PROXIES"),
        ({"db_provider": "postgres"}, "DB_CONNECTION_STRING"),
        ({"cookie_name": "passgate session"}, "COOKIE_NAME"),
        ({"cookie_name": "a;b"}, "COOKIE_NAME"),
        ({"cookie_name": "__Host-passgate_session"}, "COOKIE_NAME"),
        ({"cookie_name": "__Secure-passgate_session"}, "COOKIE_NAME"),
    ],
)
def test_invalid_setting_is_named_in_the_error(overrides: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsInvalid) as caught:
        load_settings(**overrides)
    assert named in str(caught.value)


@pytest.mark.parametrize("peer", ["127.0.0.1", "127.0.1.1", "::1"])
def test_default_trusted_proxies_trust_loopback(peer: str) -> None:
    assert parse_ip(peer) in load_settings().trusted_networks


@pytest.mark.parametrize("peer", ["10.1.2.3", "172.17.0.2", "192.168.1.10", "fd00::5"])
def test_default_trusted_proxies_refuse_private_networks(peer: str) -> None:
    assert parse_ip(peer) not in load_settings().trusted_networks


def test_trusted_proxies_widen_to_a_named_proxy() -> None:
    trusted = load_settings(trusted_proxies="127.0.0.1/32, 10.0.0.5/32").trusted_networks
    assert parse_ip("10.0.0.5") in trusted and parse_ip("10.0.0.6") not in trusted


def test_cookies_are_secure_only_on_https() -> None:
    assert load_settings(app_url="https://auth.example.com").secure_cookies
    assert not load_settings(app_url="http://localhost:1411").secure_cookies


def test_session_cookie_is_host_prefixed_only_on_https_without_cookie_domain() -> None:
    https, http = "https://auth.example.com", "http://auth.example.com"
    assert load_settings(app_url=https).session_cookie_name == "__Host-passgate_session"
    assert load_settings(app_url=https, cookie_name="sso").session_cookie_name == "__Host-sso"
    with_domain = load_settings(app_url=https, cookie_domain="example.com")
    assert with_domain.session_cookie_name == "passgate_session"
    assert load_settings(app_url=http).session_cookie_name == "passgate_session"


def test_invalid_setting_stops_startup_with_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "serve"],
        env={"APP_URL": "not a url", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "APP_URL" in result.stderr
    assert "Traceback" not in result.stderr
