"""Pocket-ID's environment variables, and what Passgate does with each, in one list.

A Pocket-ID env file works unchanged: every variable Pocket-ID documents is either honoured (a
Passgate setting of the same name and meaning, or one converted onto a Passgate setting) or
accepted and reported once at start-up as not used by Passgate, with the reason. The list was
taken from Pocket-ID's `backend/internal/common/env_config.go`, `internal/appconfig/model.go`
(the settings it reads from the environment with UI_CONFIG_DISABLED), its Docker entrypoint
(PUID, PGID) and its documentation's environment-variables page, which still lists names of
earlier versions.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

log = logging.getLogger("passgate.settings")


@dataclass(frozen=True, slots=True)
class Same:
    """A Passgate setting of the same name and meaning; `note` says where it differs.
    `outside_settings`: honoured, but by the Docker image rather than the settings model."""

    note: str = ""
    outside_settings: bool = False


@dataclass(frozen=True, slots=True)
class Converted:
    """Read onto the Passgate setting `setting`, converted as `how` says."""

    setting: str
    how: str


@dataclass(frozen=True, slots=True)
class NotUsed:
    """Accepted, reported once at start-up, otherwise without effect."""

    reason: str


Treatment = Same | Converted | NotUsed

_DIRECTORY = NotUsed("not used yet (directory sync is planned)")
_CONTAINER = Same("Passgate's Docker image runs as PUID:PGID too", outside_settings=True)
_UPLOADS = NotUsed("Passgate keeps logos in its database and has no file storage to configure")
_TLS = NotUsed("Passgate serves plain HTTP behind a TLS-terminating proxy (Caddy, Traefik)")
_LISTENER = NotUsed("Passgate listens on HOST and PORT only")
_KEYS = NotUsed("Passgate keeps its signing keys sealed in its database")
_OLD = NotUsed("a variable of earlier Pocket-ID versions; Passgate has no equivalent")

POCKET_ID_ENV: dict[str, Treatment] = {
    # General (env_config.go)
    "APP_ENV": NotUsed("Passgate has no development mode"),
    "APP_URL": Same(),
    "ENCRYPTION_KEY": Same("Passgate generates one into DATA_DIR when unset"),
    "ENCRYPTION_KEY_FILE": Converted("encryption_key", "the named file's content"),
    "DB_CONNECTION_STRING": Same(
        "a postgres:// or postgresql:// URL selects PostgreSQL, as in Pocket-ID"
    ),
    "DB_CONNECTION_STRING_FILE": Converted("db_connection_string", "the named file's content"),
    "DB_PROVIDER": Same(),
    "TRUST_PROXY": Converted(
        "trust_proxy",
        "true/false as is; a list of proxy addresses trusts those (TRUSTED_PROXIES) and takes "
        "the client IP from them. `true` trusts TRUSTED_PROXIES (loopback by default), not "
        "every peer as in Pocket-ID",
    ),
    "PROXY_PROTOCOL": NotUsed("Passgate reads X-Forwarded-For, not the PROXY protocol"),
    "TRUSTED_PLATFORM": NotUsed("Passgate takes the client IP from X-Forwarded-For only"),
    "AUDIT_LOG_RETENTION_DAYS": Same(),
    "ANALYTICS_DISABLED": NotUsed("Passgate never sends analytics or usage statistics"),
    "ALLOW_DOWNGRADE": NotUsed("Passgate's migrations only go forward"),
    "ALLOW_INSECURE_CALLBACK_URLS": NotUsed(
        "Passgate's redirect URI rules are fixed (http only for loopback and localhost)"
    ),
    "INTERNAL_APP_URL": NotUsed("Passgate's discovery document uses APP_URL only"),
    "UI_CONFIG_DISABLED": NotUsed("Passgate's settings always come from the environment"),
    "DISABLE_RATE_LIMITING": NotUsed("Passgate's rate limits are always on"),
    "VERSION_CHECK_DISABLED": NotUsed("Passgate never checks for new versions"),
    "STATIC_API_KEY": NotUsed("create admin API keys with `passgate api-keys create`"),
    "STATIC_API_KEY_FILE": NotUsed("create admin API keys with `passgate api-keys create`"),
    "FILE_BACKEND": _UPLOADS,
    "UPLOAD_PATH": _UPLOADS,
    "S3_BUCKET": _UPLOADS,
    "S3_REGION": _UPLOADS,
    "S3_ENDPOINT": _UPLOADS,
    "S3_ACCESS_KEY_ID": _UPLOADS,
    "S3_SECRET_ACCESS_KEY": _UPLOADS,
    "S3_SECRET_ACCESS_KEY_FILE": _UPLOADS,
    "S3_FORCE_PATH_STYLE": _UPLOADS,
    "S3_DISABLE_DEFAULT_INTEGRITY_CHECKS": _UPLOADS,
    "PORT": Same(),
    "HOST": Same(),
    "UNIX_SOCKET": _LISTENER,
    "UNIX_SOCKET_MODE": _LISTENER,
    "SYSTEMD_SOCKET": _LISTENER,
    "LOCAL_IPV6_RANGES": NotUsed("Passgate has no notion of local IPv6 ranges"),
    "TLS_CERT": _TLS,
    "TLS_KEY": _TLS,
    "TLS_CERT_FILE": _TLS,
    "TLS_KEY_FILE": _TLS,
    "MAXMIND_LICENSE_KEY": Same(),
    "MAXMIND_LICENSE_KEY_FILE": Converted("maxmind_license_key", "the named file's content"),
    "GEOLITE_DB_PATH": Converted("maxmind_db_path", "the same path (MAXMIND_DB_PATH)"),
    "GEOLITE_DB_URL": Same(),
    "ACTORS_PORT": NotUsed("Passgate runs no separate actor service"),
    "ACTORS_HOST": NotUsed("Passgate runs no separate actor service"),
    "LOG_LEVEL": Converted("log_level", "the same levels; `warn` is `warning`"),
    "LOG_JSON": Same(),
    "LOG_QUERY_ARGS": NotUsed("Passgate never logs SQL parameters"),
    # Docker entrypoint
    "PUID": _CONTAINER,
    "PGID": _CONTAINER,
    # Application configuration (read from the environment with UI_CONFIG_DISABLED)
    "APP_NAME": Same(),
    "SESSION_DURATION": Same(
        "minutes in both; Passgate also takes 12h or 7d; unset means 1440 (Pocket-ID: 60)"
    ),
    "HOME_PAGE_URL": NotUsed("after sign-in Passgate shows the account page"),
    "EMAILS_VERIFIED": NotUsed("Passgate's ID tokens always say email_verified false"),
    "ACCENT_COLOR": NotUsed("Passgate's pages have one fixed theme"),
    "DISABLE_ANIMATIONS": NotUsed("Passgate's pages have no animations"),
    "ALLOW_OWN_ACCOUNT_EDIT": NotUsed("in Passgate only administrators edit account details"),
    "ALLOW_USER_SIGNUPS": Same(),
    "SIGNUP_DEFAULT_USER_GROUP_IDS": NotUsed("new Passgate users join no group"),
    "SIGNUP_DEFAULT_CUSTOM_CLAIMS": NotUsed("new Passgate users get no custom claims"),
    "REQUIRE_USER_EMAIL": NotUsed("Passgate accounts may always be without an email address"),
    "SMTP_HOST": Same(),
    "SMTP_PORT": Same("an empty port means 587"),
    "SMTP_FROM": Same(),
    "SMTP_USER": Same(),
    "SMTP_PASSWORD": Same(),
    "SMTP_PASSWORD_FILE": Converted("smtp_password", "the named file's content"),
    "SMTP_TLS": Same("none, starttls or tls in both; empty means starttls (Pocket-ID: none)"),
    "SMTP_SKIP_CERT_VERIFY": NotUsed("Passgate always verifies the SMTP server's certificate"),
    "EMAIL_LOGIN_NOTIFICATION_ENABLED": NotUsed(
        "Passgate always mails new-device notices when SMTP_HOST is set"
    ),
    "EMAIL_ONE_TIME_ACCESS_AS_UNAUTHENTICATED_ENABLED": NotUsed(
        "Passgate's sign-in page offers passkeys only, never an emailed link"
    ),
    "EMAIL_ONE_TIME_ACCESS_AS_ADMIN_ENABLED": NotUsed(
        "Passgate's administrators can always email a login link when SMTP_HOST is set"
    ),
    "EMAIL_API_KEY_EXPIRATION_ENABLED": NotUsed("Passgate sends no API key expiry mail"),
    "EMAIL_VERIFICATION_ENABLED": NotUsed("Passgate does not verify email addresses"),
    "WEBAUTHN_USER_VERIFICATION": NotUsed("Passgate always requires user verification"),
    "WEBAUTHN_ALLOW_SYNCED_PASSKEYS": NotUsed("Passgate accepts synced and device-bound passkeys"),
    "WEBAUTHN_AUTHENTICATOR_ATTACHMENT": NotUsed("Passgate accepts any authenticator attachment"),
    "CIMD_URL_ALLOWLIST": NotUsed("Passgate does not fetch client ID metadata documents"),
    **{
        name: _DIRECTORY
        for name in (
            "LDAP_ENABLED",
            "LDAP_URL",
            "LDAP_BIND_DN",
            "LDAP_BIND_PASSWORD",
            "LDAP_BIND_PASSWORD_FILE",
            "LDAP_BASE",
            "LDAP_USER_SEARCH_FILTER",
            "LDAP_USER_GROUP_SEARCH_FILTER",
            "LDAP_SKIP_CERT_VERIFY",
            "LDAP_ATTRIBUTE_USER_UNIQUE_IDENTIFIER",
            "LDAP_ATTRIBUTE_USER_USERNAME",
            "LDAP_ATTRIBUTE_USER_EMAIL",
            "LDAP_ATTRIBUTE_USER_FIRST_NAME",
            "LDAP_ATTRIBUTE_USER_LAST_NAME",
            "LDAP_ATTRIBUTE_USER_DISPLAY_NAME",
            "LDAP_ATTRIBUTE_USER_PROFILE_PICTURE",
            "LDAP_ATTRIBUTE_GROUP_MEMBER",
            "LDAP_ATTRIBUTE_GROUP_UNIQUE_IDENTIFIER",
            "LDAP_ATTRIBUTE_GROUP_NAME",
            "LDAP_ADMIN_GROUP_NAME",
            "LDAP_ATTRIBUTE_ADMIN_GROUP",  # the documentation's name for LDAP_ADMIN_GROUP_NAME
            "LDAP_SOFT_DELETE_USERS",
        )
    },
    # Names of earlier Pocket-ID versions, still found in env files
    "PUBLIC_APP_URL": _OLD,
    "PUBLIC_UI_CONFIG_DISABLED": _OLD,
    "BACKEND_PORT": _OLD,
    "CADDY_PORT": _OLD,
    "CADDY_DISABLED": _OLD,
    "SQLITE_DB_PATH": _OLD,
    "POSTGRES_CONNECTION_STRING": _OLD,
    "DB_PATH": _OLD,
    "KEYS_PATH": _KEYS,
    "KEYS_STORAGE": _KEYS,
    "EMAIL_TEMPLATES_PATH": _OLD,
    "METRICS_ENABLED": NotUsed("Passgate always serves Prometheus metrics at /metrics"),
    "TRACING_ENABLED": NotUsed("Passgate has no tracing export"),
    "CLOUDFLARE_LOCATION_HEADERS": NotUsed("Passgate places addresses with GeoLite2 only"),
}

# Whole families, matched by prefix: OpenTelemetry's standard variables.
POCKET_ID_PREFIXES: dict[str, NotUsed] = {
    "OTEL_": NotUsed("Passgate has no OpenTelemetry export; it serves Prometheus /metrics"),
}

_reported = False


def unused_present(environ: Mapping[str, str]) -> list[tuple[str, str]]:
    """The Pocket-ID variables in `environ` that Passgate does not use, sorted, each with the
    reason. Names only: values never leave this function."""
    found: list[tuple[str, str]] = []
    for name in sorted(environ):
        key = name.upper()
        treatment = POCKET_ID_ENV.get(key)
        if treatment is None:
            treatment = next(
                (why for prefix, why in POCKET_ID_PREFIXES.items() if key.startswith(prefix)),
                None,
            )
        if isinstance(treatment, NotUsed):
            found.append((key, treatment.reason))
    return found


def report_unused(environ: Mapping[str, str]) -> None:
    """Log, once per process and at WARNING, each Pocket-ID variable Passgate does not use."""
    global _reported  # one report per process, however often start-up runs
    if _reported:
        return
    _reported = True
    for name, reason in unused_present(environ):
        log.warning("Pocket-ID setting %s is not used by Passgate: %s", name, reason)


def pocket_id_env_table() -> str:
    """The README's "Using a Pocket-ID env file" table, generated from POCKET_ID_ENV."""
    lines = ["| Pocket-ID variable | In Passgate |", "| --- | --- |"]
    for name, treatment in POCKET_ID_ENV.items():
        if isinstance(treatment, Same):
            text = "same setting" + (f" ({treatment.note})" if treatment.note else "")
        elif isinstance(treatment, Converted):
            text = f"read as `{treatment.setting.upper()}`: {treatment.how}"
        else:
            text = f"not used: {treatment.reason}"
        lines.append(f"| `{name}` | {text} |")
    for prefix, why in POCKET_ID_PREFIXES.items():
        lines.append(f"| `{prefix}*` | not used: {why.reason} |")
    return "\n".join(lines)
