"""Passgate's settings: one pydantic-settings model read from the environment.

The names follow Pocket-ID's where the two overlap, so its users already know them. The README's
settings table is generated from this model (`passgate settings-table`).
"""

from __future__ import annotations

import re
from functools import cached_property
from ipaddress import ip_network
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from gateway.core.errors import SettingsInvalid
from gateway.http.forwarded import TrustedProxies

_DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_UNIT_MINUTES = {"": 1.0, "s": 1 / 60, "m": 1.0, "h": 60.0, "d": 1440.0}


def _minutes(value: object) -> object:
    """Accept Pocket-ID style plain minutes ("60") or a suffixed duration ("12h", "7d", "90s")."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ValueError("expected minutes (e.g. 60) or a duration such as 90s, 30m, 12h, 7d")
        return float(match.group(1)) * _UNIT_MINUTES[match.group(2)]
    return value


# Pocket-ID env file: the settings whose value may also come from a file named by `<NAME>_FILE`
# (Pocket-ID's way of passing secrets as Docker secrets). The file wins over the plain variable.
FILE_VARIABLES = ("encryption_key", "db_connection_string", "maxmind_license_key", "smtp_password")

# Pocket-ID's GeoLite2 download URL; `%s` stands for MAXMIND_LICENSE_KEY.
MAXMIND_GEOLITE_CITY_URL = (
    "https://download.maxmind.com/app/geoip_download"
    "?edition_id=GeoLite2-City&license_key=%s&suffix=tar.gz"
)


class _FileVariables(EnvSettingsSource):
    """`ENCRYPTION_KEY_FILE=/run/secrets/key` and the like: the named file's content, trimmed."""

    def __call__(self) -> dict[str, object]:
        values: dict[str, object] = {}
        for name in FILE_VARIABLES:
            path = self.env_vars.get(f"{name}_file")
            if not path:
                continue
            try:
                text = Path(path).read_text(encoding="utf-8")
            except OSError as exc:
                raise SettingsInvalid(
                    f"{name.upper()}_FILE: cannot read {path!r} ({exc.strerror})"
                ) from None
            except UnicodeDecodeError:
                raise SettingsInvalid(f"{name.upper()}_FILE: {path!r} is not UTF-8 text") from None
            # As in Pocket-ID: the key file is taken byte for byte (a trailing newline is part
            # of the key, so data it encrypted stays readable); other values are trimmed.
            values[name] = text if name == "encryption_key" else text.strip()
        return values


def _is_network_list(value: str) -> bool:
    parts = [part.strip() for part in value.split(",") if part.strip()]
    try:
        return bool(parts) and all(ip_network(part, strict=False) for part in parts)
    except ValueError:
        return False


def _pocket_id_trust_proxy(data: dict[str, object]) -> None:
    """Pocket-ID's TRUST_PROXY also takes a list of proxy addresses: Passgate then trusts those
    (as TRUSTED_PROXIES, unless that is set too) and takes the client IP from them. Anything
    else is left for the boolean to accept or refuse."""
    value = data.get("trust_proxy")
    if not isinstance(value, str) or not _is_network_list(value):
        return
    data["trust_proxy"] = True
    data.setdefault("trusted_proxies", value)


class Settings(BaseSettings):
    """Every setting Passgate reads. Environment variable names are the upper-case field names."""

    model_config = SettingsConfigDict(
        env_prefix="", case_sensitive=False, extra="ignore", frozen=True, populate_by_name=True
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        files = _FileVariables(settings_cls, case_sensitive=False)
        return init_settings, files, env_settings, dotenv_settings, file_secret_settings

    app_url: str = Field(
        "http://localhost:1411",
        description="Public URL of Passgate (issuer, login pages, passkey origin).",
    )
    app_name: str = Field("Passgate", description="Name shown on the login pages.")
    host: str = Field("0.0.0.0", description="Address to listen on.")  # noqa: S104
    port: int = Field(1411, ge=1, le=65535, description="Port to listen on.")
    workers: int = Field(
        1, ge=1, le=64, description="Server processes; forward-auth scales with cores."
    )
    trust_proxy: bool = Field(
        False,
        description="On Passgate's own pages, take the client IP (audit log, rate limits) from "
        "X-Forwarded-For sent by TRUSTED_PROXIES. Forward-auth always believes X-Forwarded-* "
        "from TRUSTED_PROXIES only.",
    )
    # Loopback only (Caddy on the same machine); docker-compose.yaml names Caddy's fixed
    # address. A private range would let any host or container in it forge X-Forwarded-For.
    trusted_proxies: str = Field(
        "127.0.0.0/8,::1/128",
        description="Comma-separated CIDRs of the proxies whose X-Forwarded-* headers are "
        "believed: forward-auth refuses any other peer, and TRUST_PROXY takes the client IP "
        "from them. Add your proxy's address if it runs on another host.",
    )
    encryption_key: str | None = Field(
        None,
        description="Key (16+ chars) that encrypts secrets at rest. Without it one is "
        "generated once into the data folder.",
        repr=False,
    )
    data_dir: Path = Field(Path("data"), description="Folder for the SQLite file and keys.")
    db_provider: Literal["sqlite", "postgres"] = Field(
        "sqlite", description="Durable storage: sqlite or postgres."
    )
    db_connection_string: str | None = Field(
        None,
        description="SQLite file path or PostgreSQL URL (postgresql://user:pass@host/db).",
        repr=False,
    )
    redis_url: str | None = Field(
        None,
        description="Redis URL for sessions (redis://host:6379/0). Without it sessions "
        "live in the database.",
        repr=False,
    )
    session_duration: float = Field(
        1440,
        gt=0,
        description="Absolute session lifetime in minutes (or 12h, 7d).",
    )
    session_inactivity: float = Field(
        240,
        gt=0,
        description="Minutes without any request after which a session ends (or 30m, 4h).",
    )
    cookie_domain: str | None = Field(
        None,
        description="Parent domain whose subdomains share the login, e.g. example.com.",
    )
    cookie_name: str = Field(
        "passgate_session",
        description="Name of the session cookie. On https without COOKIE_DOMAIN it is sent as "
        "`__Host-<name>`, which no other host can set or overwrite.",
    )
    allow_user_signups: Literal["disabled", "withToken", "open"] = Field(
        "disabled",
        description="Self-service signups: disabled, withToken (signup links) or open.",
    )
    admin_group: str = Field(
        "admins", description="Group whose members are administrators; the first user joins it."
    )
    audit_log_retention_days: int = Field(
        90, ge=1, le=36500, description="Days the audit log keeps events before deleting them."
    )
    config_file: Path | None = Field(
        None, description="YAML file with access rules (see config/rules.example.yaml)."
    )
    encoded_slashes: Literal["reject", "keep"] = Field(
        "reject",
        description="A protected request whose path holds an encoded slash (%2F): reject (400) "
        "or keep it, matched as %2F inside one segment (for WebDAV or S3-style apps that need "
        "it; rules then see /a%2Fb, not /a/b).",
    )
    maxmind_db_path: Path | None = Field(
        None,
        validation_alias=AliasChoices("maxmind_db_path", "geolite_db_path"),
        description="MaxMind GeoLite2 City .mmdb file; audit events then carry country and city. "
        "Without MAXMIND_LICENSE_KEY it must exist; with it, Passgate downloads it there "
        "(default `DATA_DIR/GeoLite2-City.mmdb`). Pocket-ID's GEOLITE_DB_PATH means the same.",
    )
    # --- Pocket-ID env file: GeoLite2 download (import-pocket-id-env) ---
    maxmind_license_key: str | None = Field(
        None,
        description="MaxMind licence key: Passgate downloads GeoLite2 City into MAXMIND_DB_PATH "
        "at start-up when missing or older than GEOLITE_MAX_AGE_DAYS, and refreshes it in the "
        "background (secret; never logged). Also MAXMIND_LICENSE_KEY_FILE.",
        repr=False,
    )
    geolite_db_url: str = Field(
        MAXMIND_GEOLITE_CITY_URL,
        description="Where the GeoLite2 City tar.gz is downloaded from; `%s` stands for "
        "MAXMIND_LICENSE_KEY (logged without its query).",
    )
    geolite_max_age_days: int = Field(
        14,
        ge=1,
        le=365,
        description="Days after which the downloaded GeoLite2 file is fetched again.",
    )
    # --- end Pocket-ID env file ---
    smtp_host: str | None = Field(
        None, description="SMTP server for email notifications; without it no mail is sent."
    )
    smtp_port: int = Field(587, ge=1, le=65535, description="SMTP server port.")
    smtp_user: str | None = Field(None, description="SMTP user name (optional).")
    smtp_password: str | None = Field(
        None, description="SMTP password (secret; never logged).", repr=False
    )
    smtp_from: str | None = Field(
        None, description="Sender address of notification mail, e.g. Passgate <auth@example.com>."
    )
    smtp_tls: Literal["none", "starttls", "tls"] = Field(
        "starttls", description="SMTP transport security: none, starttls or tls (implicit)."
    )
    log_json: bool = Field(False, description="Log one JSON object per line.")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Log level."
    )
    access_log: Literal["off", "pages", "all"] = Field(
        "pages",
        description="One log line per request: pages (sign-in, account, OIDC, API), all (also "
        "every forward-auth decision: the hot path, costly at thousands per second) or off.",
    )
    metrics_token: str | None = Field(
        None,
        description="Bearer token that unlocks /metrics (16+ chars). Without it /metrics "
        "answers only direct requests from loopback.",
        repr=False,
    )

    @model_validator(mode="before")
    @classmethod
    def _pocket_id_conversions(cls, data: object) -> object:
        """Pocket-ID env file: values Pocket-ID writes differently from Passgate."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        _pocket_id_trust_proxy(data)
        # Pocket-ID picks PostgreSQL from the connection string alone.
        connection = str(data.get("db_connection_string") or "")
        if not data.get("db_provider") and connection.startswith(("postgres://", "postgresql://")):
            data["db_provider"] = "postgres"
        if str(data.get("log_level") or "").strip().lower() == "warn":
            data["log_level"] = "warning"
        if isinstance(data.get("smtp_port"), str) and not str(data["smtp_port"]).strip():
            del data["smtp_port"]  # Pocket-ID's default is an empty port
        if isinstance(data.get("smtp_tls"), str):
            data["smtp_tls"] = str(data["smtp_tls"]).strip().lower() or "starttls"
        return data

    @field_validator("session_duration", "session_inactivity", mode="before")
    @classmethod
    def _parse_minutes(cls, value: object) -> object:
        return _minutes(value)

    @field_validator(
        "maxmind_db_path",
        "smtp_host",
        "smtp_user",
        "smtp_password",
        "smtp_from",
        "maxmind_license_key",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("app_url")
    @classmethod
    def _check_app_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an absolute http(s) URL such as https://auth.example.com")
        if parts.query or parts.fragment or parts.username:
            raise ValueError("must not carry a query, fragment or user info")
        return value.rstrip("/")

    @field_validator("cookie_domain")
    @classmethod
    def _check_cookie_domain(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        domain = value.strip().lower().lstrip(".")
        if "." not in domain or not re.fullmatch(r"[a-z0-9.-]+", domain):
            raise ValueError("must be a domain such as example.com")
        return domain

    @field_validator("cookie_name")
    @classmethod
    def _check_cookie_name(cls, value: str) -> str:
        if not re.fullmatch(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+", value):
            raise ValueError("must be a cookie name: letters, digits and !#$%&'*+-.^_`|~")
        if value.lower().startswith(("__host-", "__secure-")):
            raise ValueError("must not carry a prefix: Passgate adds __Host- where browsers allow")
        return value

    @field_validator("encryption_key")
    @classmethod
    def _check_encryption_key(cls, value: str | None) -> str | None:
        if value is not None and len(value) < 16:
            raise ValueError("must be at least 16 characters (e.g. openssl rand -base64 32)")
        return value or None

    @field_validator("metrics_token")
    @classmethod
    def _check_metrics_token(cls, value: str | None) -> str | None:
        if value is not None and value and len(value) < 16:
            raise ValueError("must be at least 16 characters (e.g. openssl rand -hex 32)")
        return value or None

    @field_validator("trusted_proxies")
    @classmethod
    def _check_trusted_proxies(cls, value: str) -> str:
        for item in filter(None, (part.strip() for part in value.split(","))):
            try:
                ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP network") from None
        return value

    @model_validator(mode="after")
    def _check_combination(self) -> Settings:
        if self.cookie_domain is not None:
            host = self.app_host
            if host != self.cookie_domain and not host.endswith("." + self.cookie_domain):
                raise ValueError(
                    f"COOKIE_DOMAIN {self.cookie_domain!r} must contain APP_URL's host {host!r}"
                )
        if self.db_provider == "postgres" and not self.db_connection_string:
            raise ValueError("DB_PROVIDER=postgres needs DB_CONNECTION_STRING")
        if self.smtp_host and not self.smtp_from:
            raise ValueError("SMTP_HOST needs SMTP_FROM (the sender address)")
        if bool(self.smtp_user) != bool(self.smtp_password):
            raise ValueError("SMTP_USER and SMTP_PASSWORD go together")
        return self

    @cached_property
    def app_host(self) -> str:
        return (urlsplit(self.app_url).hostname or "").lower()

    @cached_property
    def rp_id(self) -> str:
        """WebAuthn RP ID: COOKIE_DOMAIN when APP_URL lives under it (passkeys then work on
        every subdomain), otherwise APP_URL's host."""
        return self.cookie_domain or self.app_host

    @property
    def origin(self) -> str:
        parts = urlsplit(self.app_url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def secure_cookies(self) -> bool:
        return self.app_url.startswith("https://")

    @cached_property
    def session_cookie_name(self) -> str:
        """COOKIE_NAME as sent: `__Host-` on https without COOKIE_DOMAIN (browsers then insist on
        Secure, Path=/ and no Domain, so no sibling subdomain can plant one); plain otherwise,
        since a `__Host-` cookie can carry no Domain and plain http cannot set it."""
        prefix = "__Host-" if self.secure_cookies and self.cookie_domain is None else ""
        return prefix + self.cookie_name

    @cached_property
    def csrf_cookie_name(self) -> str:
        """The CSRF cookie's name. It is always host-only, so `__Host-` whenever on https."""
        return ("__Host-" if self.secure_cookies else "") + "passgate_csrf"

    @cached_property
    def trusted_networks(self) -> TrustedProxies:
        parts = (part.strip() for part in self.trusted_proxies.split(","))
        return TrustedProxies(tuple(ip_network(part, strict=False) for part in parts if part))

    @property
    def geolite_path(self) -> Path | None:
        """Where GeoIP is read from: MAXMIND_DB_PATH, or with a licence key and no path the
        downloaded `DATA_DIR/GeoLite2-City.mmdb`; None without either."""
        if self.maxmind_db_path is not None:
            return self.maxmind_db_path
        if self.maxmind_license_key:
            return self.data_dir / "GeoLite2-City.mmdb"
        return None

    @property
    def sqlite_path(self) -> Path:
        if self.db_connection_string and self.db_provider == "sqlite":
            path = self.db_connection_string.removeprefix("sqlite:///")
            if path.startswith("file:"):  # Pocket-ID's `file:data/pocket-id.db?_pragma=...`
                path = path.removeprefix("file:").split("?", 1)[0]
            return Path(path)
        return self.data_dir / "passgate.db"


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment (and overrides); raise SettingsInvalid on bad values.

    The message names each bad setting by its environment variable and says what is wrong.
    """
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = "_".join(str(part) for part in error["loc"]).upper() or "settings"
            message = str(error["msg"]).removeprefix("Value error, ")
            problems.append(f"{name}: {message}" if error["loc"] else message)
        raise SettingsInvalid("; ".join(problems)) from None


def settings_table() -> str:
    """The README's settings table, generated from this model so the two never drift."""
    lines = ["| Variable | Default | Description |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        default = "" if field.default is None else f"`{field.default}`"
        lines.append(f"| `{name.upper()}` | {default} | {field.description or ''} |")
    return "\n".join(lines)
