"""OpenID Connect clients: the service the CLI, the console and the OIDC endpoints share.

Clients are created from the CLI or console, or declared in CONFIG_FILE under `clients:`
(GitOps); declared clients are synced at start-up and are read-only everywhere else. Redirect
URIs match exactly, string for string; with `wildcard_callbacks` a `*` stands for the inside of
one host label or one path segment and nothing more.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import secrets
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from ipaddress import ip_address
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from gateway.accounts.users import _check_group
from gateway.core.crypto import hash_token, tokens_equal
from gateway.core.errors import Conflict, InvalidInput, NotFound, PassgateError
from gateway.forward_auth.rules import _StrictLoader, _yaml_problem
from gateway.storage.db import Database, IntegrityViolation, Transaction

IdTokenAlg = Literal["RS256", "ES256"]
ID_TOKEN_ALGS: tuple[str, ...] = ("RS256", "ES256")
ACCESS_TOKEN_LIFETIME = (60, 86400)  # seconds, inclusive bounds
REFRESH_TOKEN_LIFETIME = (3600, 365 * 86400)

_CLIENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._~-]{0,127}$")
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*$")
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?"
_HOST = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
# What a `*` may stand for: never empty, never a dot or slash, never a dot-segment or %-escape.
_HOST_WILDCARD = "[a-z0-9-]+"
_PATH_WILDCARD = "[A-Za-z0-9_~-][A-Za-z0-9._~-]*"

_COLUMNS = (
    "client_id, name, secret_hash, public, redirect_uris, post_logout_redirect_uris, "
    "allowed_groups, pkce_required, wildcard_callbacks, id_token_alg, access_token_lifetime, "
    "refresh_token_lifetime, refresh_tokens, logo_url, declared, created_at"
)
_SETTABLE = (  # every column but client_id and created_at, in _COLUMNS order
    "name",
    "secret_hash",
    "public",
    "redirect_uris",
    "post_logout_redirect_uris",
    "allowed_groups",
    "pkce_required",
    "wildcard_callbacks",
    "id_token_alg",
    "access_token_lifetime",
    "refresh_token_lifetime",
    "refresh_tokens",
    "logo_url",
    "declared",
)


class ReadOnlyClient(PassgateError):
    """The client is declared in CONFIG_FILE, so only that file can change it."""


class ClientsConfigError(PassgateError):
    """The `clients:` section of CONFIG_FILE is invalid; the message says where and why."""


@dataclass(frozen=True, slots=True)
class OidcClient:
    client_id: str
    name: str
    secret_hash: str | None  # sha256 hex of the secret; None for public clients
    public: bool
    redirect_uris: tuple[str, ...]
    post_logout_redirect_uris: tuple[str, ...]
    allowed_groups: tuple[str, ...]  # empty: every user may sign in
    pkce_required: bool
    wildcard_callbacks: bool
    id_token_alg: str
    access_token_lifetime: int  # seconds
    refresh_token_lifetime: int  # seconds
    refresh_tokens: bool  # issue refresh tokens even without the offline_access scope
    logo_url: str
    declared: bool
    created_at: float


# validation ----------------------------------------------------------------------------------


def validate_redirect_uri(uri: str, wildcards: bool, field: str = "redirect URI") -> str:
    """Return the URI unchanged if a client may register it; raise InvalidInput otherwise.

    Allowed: https; http on loopback hosts only; private-use schemes with a dot such as
    `com.example.app:/cb` (RFC 8252). `*` only with `wildcards`: in https/http host labels left
    of the last two, and in path segments."""
    if not uri or any(ch.isspace() or ord(ch) < 32 or ch == "\\" for ch in uri):
        raise InvalidInput(f"{field} {uri!r} must be a URL without spaces or backslashes")
    if "#" in uri:
        raise InvalidInput(f"{field} {uri!r} must not have a #fragment")
    parts = urlsplit(uri)
    if not _SCHEME.match(parts.scheme) or _recompose(uri) != uri:
        raise InvalidInput(f"{field} {uri!r} must be an absolute URL with a lower-case scheme")
    if "*" in uri and not wildcards:
        raise InvalidInput(f"{field} {uri!r} has a * but wildcard callbacks are off")
    if "*" in parts.scheme or "*" in parts.query:
        raise InvalidInput(f"{field} {uri!r}: a * is allowed only in the host or the path")
    if parts.scheme in ("https", "http"):
        _check_web_host(uri, parts.netloc, parts.scheme, field)
    elif "." not in parts.scheme:
        raise InvalidInput(
            f"{field} {uri!r} must use https, http on localhost, or an app scheme with a dot "
            "such as com.example.app:/callback"
        )
    elif not parts.path or "*" in parts.netloc:
        raise InvalidInput(
            f"{field} {uri!r} needs a path (com.example.app:/callback) and no * before it"
        )
    return uri


def _recompose(uri: str) -> str:
    """The URI rebuilt from urlsplit's parts: differs from `uri` if urlsplit read it oddly."""
    parts = urlsplit(uri)
    authority = "//" + parts.netloc if uri[len(parts.scheme) + 1 :].startswith("//") else ""
    query = uri[uri.index("?") :] if "?" in uri else ""
    return f"{parts.scheme}:{authority}{parts.path}{query}"


def _check_web_host(uri: str, netloc: str, scheme: str, field: str) -> None:
    if "@" in netloc:
        raise InvalidInput(f"{field} {uri!r} must not carry user@ information")
    if netloc.startswith("["):
        host, bracket, port = netloc[1:].partition("]")
        try:
            ip_address(host)
        except ValueError:
            raise InvalidInput(f"{field} {uri!r} has an invalid IPv6 address") from None
        if not bracket or (port and not port.startswith(":")):
            raise InvalidInput(f"{field} {uri!r} has an invalid host")
        port = port[1:]
    else:
        host, colon, port = netloc.partition(":")
        if not _HOST.match(host.replace("*", "x")):
            raise InvalidInput(f"{field} {uri!r} has an invalid host name")
        if colon and not port:
            raise InvalidInput(f"{field} {uri!r} has an empty port")
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        raise InvalidInput(f"{field} {uri!r} has an invalid port")
    if scheme == "http" and host.lower() not in _LOOPBACK_HOSTS:
        raise InvalidInput(
            f"{field} {uri!r}: http is allowed only for localhost, 127.0.0.1 and [::1]; use https"
        )
    labels = host.split(".")
    if "*" in "".join(labels[-2:]):
        raise InvalidInput(
            f"{field} {uri!r}: a * in the host must leave at least two fixed labels to its "
            "right, as in https://*.example.com/callback"
        )


@lru_cache(maxsize=1024)
def _wildcard_pattern(pattern: str) -> re.Pattern[str]:
    """A regex for a validated wildcard URI: a host `*` stays within one label, a path `*`
    within one segment; everything else is literal."""
    parts = urlsplit(pattern)
    authority = "//" if pattern[len(parts.scheme) + 1 :].startswith("//") else ""
    query = pattern[pattern.index("?") :] if "?" in pattern else ""
    return re.compile(
        re.escape(f"{parts.scheme}:{authority}")
        + _literal_with(parts.netloc, _HOST_WILDCARD)
        + _literal_with(parts.path, _PATH_WILDCARD)
        + re.escape(query)
    )


def _literal_with(text: str, wildcard: str) -> str:
    return wildcard.join(re.escape(piece) for piece in text.split("*"))


def _uri_matches(patterns: tuple[str, ...], uri: str, wildcards: bool) -> bool:
    for pattern in patterns:
        if uri == pattern:
            return True
        if wildcards and "*" in pattern and _wildcard_pattern(pattern).fullmatch(uri):
            return True
    return False


def _check_lifetime(field: str, value: int, bounds: tuple[int, int]) -> int:
    low, high = bounds
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(f"{field} must be whole seconds between {low} and {high}")
    return value


def _check_logo_url(url: str) -> str:
    value = url.strip()
    if value and not value.startswith(("https://", "http://")):
        raise InvalidInput(f"logo_url {url!r} must be an https URL")
    return validate_redirect_uri(value, False, "logo_url") if value else value


def _validated(client: OidcClient) -> OidcClient:
    """The client with normalised values; InvalidInput naming the first bad field."""
    if not _CLIENT_ID.match(client.client_id):
        raise InvalidInput(
            f"client_id {client.client_id!r} must be 1-128 characters: letters, digits, . _ ~ -"
        )
    name = client.name.strip()
    if not 1 <= len(name) <= 100:
        raise InvalidInput("name must be 1-100 characters")
    if not client.redirect_uris:
        raise InvalidInput("redirect_uris needs at least one redirect URI")
    wild = client.wildcard_callbacks
    redirects = tuple(validate_redirect_uri(u, wild) for u in client.redirect_uris)
    logouts = tuple(
        validate_redirect_uri(u, wild, "post-logout redirect URI")
        for u in client.post_logout_redirect_uris
    )
    groups = tuple(dict.fromkeys(_check_group(g) for g in client.allowed_groups))
    if client.id_token_alg not in ID_TOKEN_ALGS:
        raise InvalidInput(f"id_token_alg {client.id_token_alg!r} must be RS256 or ES256")
    return dataclasses.replace(
        client,
        name=name,
        redirect_uris=tuple(dict.fromkeys(redirects)),
        post_logout_redirect_uris=tuple(dict.fromkeys(logouts)),
        allowed_groups=groups,
        access_token_lifetime=_check_lifetime(
            "access_token_lifetime", client.access_token_lifetime, ACCESS_TOKEN_LIFETIME
        ),
        refresh_token_lifetime=_check_lifetime(
            "refresh_token_lifetime", client.refresh_token_lifetime, REFRESH_TOKEN_LIFETIME
        ),
        logo_url=_check_logo_url(client.logo_url),
    )


# declared clients (CONFIG_FILE) -------------------------------------------------------------


def _as_list(value: object) -> object:
    return [value] if isinstance(value, str) else ([] if value is None else value)


class DeclaredClient(BaseModel):
    """One entry of `clients:` in CONFIG_FILE. Confidential clients name their secret by
    `secret_env` (an environment variable read at start-up) or `secret_hash` (sha256 hex)."""

    model_config = ConfigDict(extra="forbid")

    client_id: str
    name: str
    redirect_uris: list[str]
    post_logout_redirect_uris: list[str] = []
    allowed_groups: list[str] = []
    public: bool = False
    secret_env: str | None = None
    secret_hash: str | None = None
    pkce_required: bool = False  # public clients always need PKCE
    wildcard_callbacks: bool = False
    id_token_alg: IdTokenAlg = "RS256"  # noqa: S105 - an algorithm name, not a secret
    access_token_lifetime: int = 3600
    refresh_token_lifetime: int = 30 * 86400
    refresh_tokens: bool = False
    logo_url: str = ""

    _listify = field_validator(
        "redirect_uris", "post_logout_redirect_uris", "allowed_groups", mode="before"
    )(_as_list)

    @field_validator("secret_hash")
    @classmethod
    def _check_hash(cls, value: str | None) -> str | None:
        if value is not None and not _SHA256_HEX.match(value.strip().lower()):
            raise ValueError("must be the 64 hex digits of the secret's SHA-256")
        return None if value is None else value.strip().lower()

    @model_validator(mode="after")
    def _check_secret(self) -> DeclaredClient:
        given = [k for k in ("secret_env", "secret_hash") if getattr(self, k)]
        if self.public and given:
            raise ValueError(f"a public client has no secret: remove {given[0]}")
        if not self.public and len(given) != 1:
            raise ValueError("give exactly one of secret_env or secret_hash, or public: true")
        return self

    def to_client(self, environ: Mapping[str, str]) -> OidcClient:
        """The client this entry declares, secret read from `environ`; ClientsConfigError for a
        missing environment variable, InvalidInput for a bad value."""
        secret_hash = self.secret_hash
        if self.secret_env:
            secret = environ.get(self.secret_env)
            if not secret:
                raise ClientsConfigError(
                    f"CONFIG_FILE client {self.client_id!r}: environment variable "
                    f"{self.secret_env} (its secret_env) is not set"
                )
            secret_hash = hash_token(secret)
        values = self.model_dump(exclude={"secret_env", "secret_hash"})
        for key in ("redirect_uris", "post_logout_redirect_uris", "allowed_groups"):
            values[key] = tuple(values[key])
        client = OidcClient(**values, secret_hash=secret_hash, declared=True, created_at=0.0)
        return _validated(client)


def load_declared_clients(path: Path) -> list[DeclaredClient]:
    """The `clients:` list of a CONFIG_FILE (empty if absent); ClientsConfigError when the file
    cannot be read or an entry is invalid (secrets are resolved later, by sync_declared)."""
    try:
        text = path.read_text(encoding="utf-8")
        data = yaml.load(text, Loader=_StrictLoader) or {}  # noqa: S506 - a SafeLoader subclass
    except OSError as exc:
        raise ClientsConfigError(f"{path}: cannot read the file ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ClientsConfigError(f"{path}: not valid YAML ({_yaml_problem(exc)})") from None
    raw = data.get("clients") if isinstance(data, dict) else None
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ClientsConfigError(f"{path}: clients must be a list of clients")
    declared: list[DeclaredClient] = []
    for index, entry in enumerate(raw, start=1):
        label = f"client {index}"
        if isinstance(entry, dict) and entry.get("client_id"):
            label += f" ({entry['client_id']!r})"
        try:
            model = DeclaredClient.model_validate(entry)
            model.to_client({model.secret_env: "x"} if model.secret_env else {})
        except ValidationError as exc:
            raise ClientsConfigError(f"{path}: {label}: {_describe(exc)}") from None
        except InvalidInput as exc:
            raise ClientsConfigError(f"{path}: {label}: {exc}") from None
        if any(d.client_id == model.client_id for d in declared):
            raise ClientsConfigError(f"{path}: {label}: client_id is declared twice")
        declared.append(model)
    return declared


def _describe(error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"] if not isinstance(part, int))
        if item["type"] == "extra_forbidden":
            message = "unknown key (allowed: " + ", ".join(DeclaredClient.model_fields) + ")"
        else:
            message = str(item["msg"]).removeprefix("Value error, ")
        problems.append(f"{field + ': ' if field else ''}{message}")
    return "; ".join(problems)


# the service ---------------------------------------------------------------------------------


class ClientService:
    """Create, read, change and remove OIDC clients; check their secrets and redirect URIs."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def create(
        self,
        name: str,
        redirect_uris: Sequence[str],
        *,
        public: bool = False,
        post_logout_redirect_uris: Sequence[str] = (),
        allowed_groups: Sequence[str] = (),
        pkce_required: bool = False,
        wildcard_callbacks: bool = False,
        id_token_alg: str = "RS256",  # noqa: S107 - an algorithm name, not a secret
        access_token_lifetime: int = 3600,
        refresh_token_lifetime: int = 30 * 86400,
        refresh_tokens: bool = False,
        logo_url: str = "",
        client_id: str | None = None,
    ) -> tuple[OidcClient, str | None]:
        """Create a client; return it and its clear secret (None for public clients), which is
        not stored and cannot be shown again. InvalidInput for bad values, Conflict for a taken
        client_id."""
        secret = None if public else secrets.token_urlsafe(32)
        client = _validated(
            OidcClient(
                client_id=str(uuid.uuid4()) if client_id is None else client_id,
                name=name,
                secret_hash=None if secret is None else hash_token(secret),
                public=public,
                redirect_uris=tuple(redirect_uris),
                post_logout_redirect_uris=tuple(post_logout_redirect_uris),
                allowed_groups=tuple(allowed_groups),
                pkce_required=pkce_required,
                wildcard_callbacks=wildcard_callbacks,
                id_token_alg=id_token_alg,
                access_token_lifetime=access_token_lifetime,
                refresh_token_lifetime=refresh_token_lifetime,
                refresh_tokens=refresh_tokens,
                logo_url=logo_url,
                declared=False,
                created_at=time.time(),
            )
        )
        taken = Conflict(f"a client with id {client.client_id!r} already exists")
        try:
            with self._db.transaction() as tx:
                found = tx.fetchone(
                    "SELECT 1 FROM oidc_clients WHERE client_id = ?", (client.client_id,)
                )
                if found:
                    raise taken
                self._insert(tx, client)
        except IntegrityViolation:
            raise taken from None
        return self.get(client.client_id), secret

    def get(self, client_id: str) -> OidcClient:
        """The client with that id; NotFound otherwise."""
        row = self._db.fetchone(
            f"SELECT {_COLUMNS} FROM oidc_clients WHERE client_id = ?", (client_id,)
        )
        if row is None:
            raise NotFound(f"no client with id {client_id!r}")
        return _client(row)

    def find(self, client_id: str) -> OidcClient | None:
        """The client with that id, or None."""
        try:
            return self.get(client_id)
        except NotFound:
            return None

    def list(self) -> list[OidcClient]:
        rows = self._db.fetchall(f"SELECT {_COLUMNS} FROM oidc_clients ORDER BY name, client_id")
        return [_client(row) for row in rows]

    def update(
        self,
        client_id: str,
        *,
        name: str | None = None,
        redirect_uris: Sequence[str] | None = None,
        public: bool | None = None,
        post_logout_redirect_uris: Sequence[str] | None = None,
        allowed_groups: Sequence[str] | None = None,
        pkce_required: bool | None = None,
        wildcard_callbacks: bool | None = None,
        id_token_alg: str | None = None,
        access_token_lifetime: int | None = None,
        refresh_token_lifetime: int | None = None,
        refresh_tokens: bool | None = None,
        logo_url: str | None = None,
    ) -> OidcClient:
        """Change the given settings (None keeps a value). NotFound, ReadOnlyClient for a
        declared client, InvalidInput for bad values or for switching public/confidential."""
        client = self._writable(client_id)
        if public is not None and public != client.public:
            raise InvalidInput(
                "a client cannot switch between public and confidential: create a new one"
            )
        changes: dict[str, Any] = {
            "name": name,
            "redirect_uris": None if redirect_uris is None else tuple(redirect_uris),
            "post_logout_redirect_uris": None
            if post_logout_redirect_uris is None
            else tuple(post_logout_redirect_uris),
            "allowed_groups": None if allowed_groups is None else tuple(allowed_groups),
            "pkce_required": pkce_required,
            "wildcard_callbacks": wildcard_callbacks,
            "id_token_alg": id_token_alg,
            "access_token_lifetime": access_token_lifetime,
            "refresh_token_lifetime": refresh_token_lifetime,
            "refresh_tokens": refresh_tokens,
            "logo_url": logo_url,
        }
        updated = _validated(
            dataclasses.replace(client, **{k: v for k, v in changes.items() if v is not None})
        )
        with self._db.transaction() as tx:
            self._write(tx, updated)
        return self.get(client_id)

    def delete(self, client_id: str) -> OidcClient:
        """Delete a client with its codes, tokens and consents. NotFound, ReadOnlyClient."""
        client = self._writable(client_id)
        self._db.execute("DELETE FROM oidc_clients WHERE client_id = ?", (client_id,))
        return client

    def rotate_secret(self, client_id: str) -> str:
        """Replace a confidential client's secret; return the new clear secret (shown once).
        NotFound, ReadOnlyClient, InvalidInput for a public client."""
        client = self._writable(client_id)
        if client.public:
            raise InvalidInput(f"client {client_id!r} is public: it has no secret")
        secret = secrets.token_urlsafe(32)
        self._db.execute(
            "UPDATE oidc_clients SET secret_hash = ? WHERE client_id = ?",
            (hash_token(secret), client_id),
        )
        return secret

    @staticmethod
    def verify_secret(client: OidcClient, secret: str) -> bool:
        """True if `secret` is the confidential client's secret (constant-time comparison);
        always False for public clients."""
        if client.public or client.secret_hash is None:
            return False
        return tokens_equal(hash_token(secret), client.secret_hash)

    @staticmethod
    def redirect_uri_allowed(client: OidcClient, uri: str) -> bool:
        """True if `uri` is one of the client's redirect URIs (exact, or by its wildcards)."""
        return _uri_matches(client.redirect_uris, uri, client.wildcard_callbacks)

    @staticmethod
    def post_logout_uri_allowed(client: OidcClient, uri: str) -> bool:
        """True if `uri` is one of the client's post-logout redirect URIs."""
        return _uri_matches(client.post_logout_redirect_uris, uri, client.wildcard_callbacks)

    def sync_declared(
        self, declared: Sequence[DeclaredClient], environ: Mapping[str, str] | None = None
    ) -> None:
        """Make the declared clients in the database exactly `declared`: insert, update, and
        delete those no longer listed; never touch clients made by the CLI or console.
        ClientsConfigError for a missing secret_env variable, a bad value or an id that a
        non-declared client already has."""
        env = os.environ if environ is None else environ
        wanted: dict[str, OidcClient] = {}
        for entry in declared:
            try:
                client = entry.to_client(env)
            except InvalidInput as exc:
                raise ClientsConfigError(f"CONFIG_FILE client {entry.client_id!r}: {exc}") from None
            if client.client_id in wanted:
                raise ClientsConfigError(
                    f"CONFIG_FILE client {client.client_id!r} is declared twice"
                )
            wanted[client.client_id] = client
        try:
            self._sync(wanted)
        except IntegrityViolation:
            self._sync(wanted)  # another worker synced at the same moment: its rows are there now

    def _sync(self, wanted: dict[str, OidcClient]) -> None:
        with self._db.transaction() as tx:
            rows = tx.fetchall(f"SELECT {_COLUMNS} FROM oidc_clients")
            existing = {str(row[0]): _client(row) for row in rows}
            for client_id, client in wanted.items():
                current = existing.get(client_id)
                if current is None:
                    self._insert(tx, dataclasses.replace(client, created_at=time.time()))
                elif not current.declared:
                    raise ClientsConfigError(
                        f"client {client_id!r} is declared in CONFIG_FILE but a client with that "
                        "id was created by hand: delete it or pick another client_id"
                    )
                elif dataclasses.replace(client, created_at=current.created_at) != current:
                    self._write(tx, client)
            for client_id, current in existing.items():
                if current.declared and client_id not in wanted:
                    tx.execute("DELETE FROM oidc_clients WHERE client_id = ?", (client_id,))

    # helpers ---------------------------------------------------------------------------------

    def _writable(self, client_id: str) -> OidcClient:
        client = self.get(client_id)
        if client.declared:
            raise ReadOnlyClient(
                f"client {client_id!r} is declared in CONFIG_FILE; change it there"
            )
        return client

    @staticmethod
    def _insert(tx: Transaction, client: OidcClient) -> None:
        values = _row(client)
        tx.execute(
            f"INSERT INTO oidc_clients ({_COLUMNS}) VALUES ({', '.join('?' * len(values))})",
            values,
        )

    @staticmethod
    def _write(tx: Transaction, client: OidcClient) -> None:
        assignments = ", ".join(f"{column} = ?" for column in _SETTABLE)
        values = _row(client)[1:-1]  # without client_id and created_at
        tx.execute(
            f"UPDATE oidc_clients SET {assignments} WHERE client_id = ?",
            (*values, client.client_id),
        )


def _row(client: OidcClient) -> tuple[object, ...]:
    """Column values in _COLUMNS order."""
    return (
        client.client_id,
        client.name,
        client.secret_hash,
        int(client.public),
        json.dumps(list(client.redirect_uris)),
        json.dumps(list(client.post_logout_redirect_uris)),
        json.dumps(list(client.allowed_groups)),
        int(client.pkce_required),
        int(client.wildcard_callbacks),
        client.id_token_alg,
        client.access_token_lifetime,
        client.refresh_token_lifetime,
        int(client.refresh_tokens),
        client.logo_url,
        int(client.declared),
        client.created_at,
    )


def _client(row: tuple[Any, ...]) -> OidcClient:
    return OidcClient(
        client_id=str(row[0]),
        name=str(row[1]),
        secret_hash=None if row[2] is None else str(row[2]),
        public=bool(row[3]),
        redirect_uris=tuple(json.loads(row[4])),
        post_logout_redirect_uris=tuple(json.loads(row[5])),
        allowed_groups=tuple(json.loads(row[6])),
        pkce_required=bool(row[7]),
        wildcard_callbacks=bool(row[8]),
        id_token_alg=str(row[9]),
        access_token_lifetime=int(row[10]),
        refresh_token_lifetime=int(row[11]),
        refresh_tokens=bool(row[12]),
        logo_url=str(row[13]),
        declared=bool(row[14]),
        created_at=float(row[15]),
    )
