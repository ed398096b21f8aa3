"""OpenID Connect clients in the database: the service the CLI, the console and the OIDC
endpoints share. Declared clients (CONFIG_FILE) are synced at start-up and read-only here."""

from __future__ import annotations

import builtins
import dataclasses
import json
import os
import secrets
import time
import uuid
from base64 import b64decode, b64encode
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import bcrypt

from gateway.core.crypto import SecretBox, hash_token, tokens_equal
from gateway.core.errors import Conflict, InvalidInput, NotFound, PassgateError
from gateway.oidc.clients import (
    ClientsConfigError,
    ClientSecret,
    DeclaredClient,
    FederatedIdentity,
    OidcClient,
    ReadOnlyClient,
    uri_matches,
    validated,
)
from gateway.storage.db import Database, IntegrityViolation, Transaction

_COLUMNS = (
    "client_id, name, public, redirect_uris, post_logout_redirect_uris, "
    "allowed_groups, pkce_required, wildcard_callbacks, id_token_alg, access_token_lifetime, "
    "refresh_token_lifetime, refresh_tokens, logo_url, declared, created_at, "
    # machine and TV grants
    "grant_types, client_credentials_scopes, "
    # access tokens: format, resource indicators, DPoP
    "access_token_format, allowed_resources, dpop_bound_access_tokens, "
    # pushed authorization requests and signed client authentication (oidc-app-auth)
    "require_par, token_endpoint_auth_method, jwks, jwks_uri, federated_identities, secret_sealed, "
    # per-client options (oidc-client-options)
    "skip_consent, require_reauth, launch_url"
)
_SETTABLE = (  # every column but client_id and created_at, in _COLUMNS order (see _row)
    "name",
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
    # machine and TV grants
    "grant_types",
    "client_credentials_scopes",
    "access_token_format",
    "allowed_resources",
    "dpop_bound_access_tokens",
    # oidc-app-auth
    "require_par",
    "token_endpoint_auth_method",
    "jwks",
    "jwks_uri",
    "federated_identities",
    "secret_sealed",
    # oidc-client-options
    "skip_consent",
    "require_reauth",
    "launch_url",
)
_COLUMN_NAMES = tuple(name.strip() for name in _COLUMNS.split(","))
_SECRET_COLUMNS = "id, name, secret_hash, created_at, expires_at, last_used_at, revoked_at"  # noqa: S105
LAST_USED_PRECISION = 60.0  # seconds: last_used_at is written at most this often per secret
SECRET_NAME_LENGTH = 64
LOGO_MAX_BYTES = 48 * 1024  # under MAX_BODY (64 KiB), with room for a form's framing
# Raster formats only, recognised by their signature: an SVG can carry script, and Passgate has
# no sanitiser it would trust, so SVG is refused rather than served.
LOGO_TYPES = {
    b"\x89PNG\r\n\x1a\n": "image/png",
    b"\xff\xd8\xff": "image/jpeg",
}


class SecretRefused(PassgateError):
    """A client secret that does not authenticate: `reason` is wrong, expired or revoked (the
    message says which; it never contains the secret)."""

    def __init__(
        self, message: str, reason: Literal["wrong", "expired", "revoked"], client_id: str
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.client_id = client_id


@dataclass(frozen=True, slots=True)
class ClientLogo:
    content_type: str
    image: bytes
    etag: str
    updated_at: float


class ClientService:
    """Create, read, change and remove OIDC clients; check their secrets and redirect URIs."""

    def __init__(self, db: Database, box: SecretBox | None = None) -> None:
        self._db = db
        self._box = box  # seals the secrets of client_secret_jwt clients

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
        skip_consent: bool = False,
        require_reauth: bool = False,
        launch_url: str = "",
        client_id: str | None = None,
        grant_types: Sequence[str] = (),
        client_credentials_scopes: Sequence[str] = (),
        access_token_format: str = "opaque",  # noqa: S107 - a format name, not a secret
        allowed_resources: Sequence[str] = (),
        dpop_bound_access_tokens: bool = False,
        app_auth: AppAuth | None = None,
    ) -> tuple[OidcClient, str | None]:
        """Create a client; return it and its clear secret (None for public clients), which is
        not stored and cannot be shown again. InvalidInput for bad values, Conflict for a taken
        client_id."""
        secret = None if public else secrets.token_urlsafe(32)
        now = time.time()
        first = () if secret is None else (_new_secret("secret", hash_token(secret), now, None),)
        client = validated(
            OidcClient(
                client_id=str(uuid.uuid4()) if client_id is None else client_id,
                name=name,
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
                created_at=now,
                secrets=first,
                skip_consent=skip_consent,
                require_reauth=require_reauth,
                launch_url=launch_url,
                grant_types=tuple(grant_types),
                client_credentials_scopes=tuple(client_credentials_scopes),
                access_token_format=access_token_format,
                allowed_resources=tuple(allowed_resources),
                dpop_bound_access_tokens=dpop_bound_access_tokens,
                **(app_auth or AppAuth()).values(),
            )
        )
        client = self._sealed(client, secret)
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

    def insert(self, tx: Transaction, client: OidcClient) -> OidcClient:
        """Store a client as given (its id, secrets, timestamps) inside the caller's transaction:
        imports from another provider. InvalidInput for bad values, Conflict for a taken id."""
        checked = validated(client)
        if tx.fetchone("SELECT 1 FROM oidc_clients WHERE client_id = ?", (checked.client_id,)):
            raise Conflict(f"a client with id {checked.client_id!r} already exists")
        self._insert(tx, checked)
        return checked

    @staticmethod
    def insert_logo(tx: Transaction, client_id: str, image: bytes) -> None:
        """Store a logo inside the caller's transaction (imports); InvalidInput unless PNG/JPEG
        of at most LOGO_MAX_BYTES."""
        content_type = logo_type(image)
        encoded = b64encode(image).decode("ascii")
        tx.execute(
            "INSERT INTO oidc_client_logos (client_id, content_type, image, etag, updated_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (client_id, content_type, encoded, hash_token(encoded)[:32], time.time()),
        )

    def get(self, client_id: str) -> OidcClient:
        """The client with that id; NotFound otherwise."""
        row = self._db.fetchone(
            f"SELECT {_COLUMNS} FROM oidc_clients WHERE client_id = ?", (client_id,)
        )
        if row is None:
            raise NotFound(f"no client with id {client_id!r}")
        return self._with_extras([_client(row)])[0]

    def find(self, client_id: str) -> OidcClient | None:
        """The client with that id, or None."""
        try:
            return self.get(client_id)
        except NotFound:
            return None

    def list(self) -> list[OidcClient]:
        rows = self._db.fetchall(f"SELECT {_COLUMNS} FROM oidc_clients ORDER BY name, client_id")
        return self._with_extras([_client(row) for row in rows])

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
        grant_types: Sequence[str] | None = None,
        client_credentials_scopes: Sequence[str] | None = None,
        access_token_format: str | None = None,
        allowed_resources: Sequence[str] | None = None,
        dpop_bound_access_tokens: bool | None = None,
        app_auth: AppAuth | None = None,
        skip_consent: bool | None = None,
        require_reauth: bool | None = None,
        launch_url: str | None = None,
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
            "grant_types": None if grant_types is None else tuple(grant_types),
            "client_credentials_scopes": None
            if client_credentials_scopes is None
            else tuple(client_credentials_scopes),
            "access_token_format": access_token_format,
            "allowed_resources": None if allowed_resources is None else tuple(allowed_resources),
            "dpop_bound_access_tokens": dpop_bound_access_tokens,
            **(app_auth.values() if app_auth is not None else {}),
            "skip_consent": skip_consent,
            "require_reauth": require_reauth,
            "launch_url": launch_url,
        }
        if changes.get("token_endpoint_auth_method", "private_key_jwt") != "private_key_jwt":
            # Keys belong to private_key_jwt: leaving it drops them unless given again.
            for key, empty in (("jwks", ""), ("jwks_uri", ""), ("federated_identities", ())):
                changes.setdefault(key, empty)
        updated = validated(
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
        """Replace a confidential client's secrets at once: every active one is revoked and a
        new one added; return it in clear (shown once). For rotation without downtime use
        add_secret and revoke_secret. NotFound, ReadOnlyClient, InvalidInput for a public
        client."""
        client = self._confidential(client_id)
        secret = secrets.token_urlsafe(32)
        now = time.time()
        with self._db.transaction() as tx:
            tx.execute(
                "UPDATE oidc_client_secrets SET revoked_at = ? "
                "WHERE client_id = ? AND revoked_at IS NULL",
                (now, client_id),
            )
            name = _free_name(client, "secret", now)
            self._insert_secret(tx, client_id, _new_secret(name, hash_token(secret), now, None))
            tx.execute(
                "UPDATE oidc_clients SET secret_sealed = ? WHERE client_id = ?",
                (self._sealed(client, secret).secret_sealed, client_id),
            )
        return secret

    def _sealed(self, client: OidcClient, secret: str | None) -> OidcClient:
        """The client with its secret sealed if it authenticates with client_secret_jwt (the
        only method that needs the secret itself rather than its hash)."""
        if client.auth_method != "client_secret_jwt" or secret is None:
            return dataclasses.replace(client, secret_sealed=None)
        if self._box is None:
            raise InvalidInput("client_secret_jwt needs the encryption key, which is not set up")
        return dataclasses.replace(client, secret_sealed=self._box.encrypt(secret.encode()))

    def jwt_secret(self, client: OidcClient) -> bytes | None:
        """The clear secret of a client_secret_jwt client, to check its HMAC; None when the
        client has none sealed (its secret must be rotated after switching to this method).
        Raises DecryptionFailed for a wrong ENCRYPTION_KEY, SecretRefused when the secret was
        revoked or has expired."""
        if client.auth_method != "client_secret_jwt" or not client.secret_sealed:
            return None
        if self._box is None:
            return None
        clear = self._box.decrypt(client.secret_sealed)
        # The sealed secret signs only while its secret is active: revoking or expiring it
        # must stop client_secret_jwt as it stops client_secret_basic (SecretRefused says so).
        try:
            self.check_secret(client, clear.decode())
        except SecretRefused as refused:
            if refused.reason == "wrong":
                return None
            raise
        return clear

    # several secrets (rotation without downtime) ---------------------------------------------

    def add_secret(
        self, client_id: str, name: str = "", expires_at: float | None = None
    ) -> tuple[ClientSecret, str]:
        """Add a secret to a confidential client, keeping the others; return it and its clear
        value (shown once). NotFound, ReadOnlyClient, InvalidInput for a public client, a bad
        or taken name, or an expiry in the past."""
        client = self._confidential(client_id)
        if client.auth_method == "client_secret_jwt":
            raise InvalidInput(
                "a client_secret_jwt client keeps one secret (it signs with it): use "
                "rotate-secret, then update the app"
            )
        now = time.time()
        label = name.strip()
        if len(label) > SECRET_NAME_LENGTH or any(ord(ch) < 32 for ch in label):
            raise InvalidInput(
                f"a secret's name must be 1-{SECRET_NAME_LENGTH} printable characters"
            )
        if label and any(s.name == label for s in client.active_secrets(now)):
            raise InvalidInput(f"client {client_id!r} already has an active secret named {label!r}")
        if expires_at is not None and expires_at <= now:
            raise InvalidInput("a new secret's expiry must be in the future")
        value = secrets.token_urlsafe(32)
        added = _new_secret(
            label or _free_name(client, "secret", now), hash_token(value), now, expires_at
        )
        with self._db.transaction() as tx:
            self._insert_secret(tx, client_id, added)
        return added, value

    def list_secrets(self, client_id: str) -> tuple[ClientSecret, ...]:
        """A client's secrets, newest first (never their values). NotFound."""
        return self.get(client_id).secrets

    def revoke_secret(self, client_id: str, secret_id: str) -> ClientSecret:
        """Revoke one secret at once; it stops authenticating. NotFound (also for a secret of
        another client), ReadOnlyClient, Conflict for one already revoked."""
        client = self._confidential(client_id)
        found = next((s for s in client.secrets if s.id == secret_id), None)
        if found is None:
            raise NotFound(f"client {client_id!r} has no secret with id {secret_id!r}")
        if found.revoked_at is not None:
            raise Conflict(f"secret {found.name!r} is already revoked")
        now = time.time()
        self._db.execute(
            "UPDATE oidc_client_secrets SET revoked_at = ? WHERE id = ? AND client_id = ?",
            (now, secret_id, client_id),
        )
        return dataclasses.replace(found, revoked_at=now)

    def check_secret(self, client: OidcClient, secret: str) -> ClientSecret:
        """The client's secret that `secret` is, if it may authenticate now (and its last use
        is noted). Every stored secret is compared, each in constant time. SecretRefused for a
        public client, an unknown secret, or one that expired or was revoked."""
        digest = hash_token(secret)
        matched = None
        for candidate in client.secrets:
            if _secret_matches(secret, digest, candidate.secret_hash) and matched is None:
                matched = candidate
        if client.public or matched is None:
            raise SecretRefused("the client secret is wrong", "wrong", client.client_id)
        if matched.secret_hash.startswith(IMPORTED_BCRYPT_PREFIX):
            # Imported from Pocket-ID: re-hashed on first use into Passgate's own storage.
            self._db.execute(
                "UPDATE oidc_client_secrets SET secret_hash = ? WHERE id = ?", (digest, matched.id)
            )
            matched = dataclasses.replace(matched, secret_hash=digest)
        now = time.time()
        state = matched.state(now)
        if state == "revoked":
            raise SecretRefused(
                f"this client secret ({matched.name!r}) was revoked", "revoked", client.client_id
            )
        if state == "expired" and matched.expires_at is not None:
            when = datetime.fromtimestamp(matched.expires_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
            raise SecretRefused(
                f"this client secret ({matched.name!r}) expired on {when}",
                "expired",
                client.client_id,
            )
        if matched.last_used_at is None or now - matched.last_used_at > LAST_USED_PRECISION:
            self._db.execute(
                "UPDATE oidc_client_secrets SET last_used_at = ? WHERE id = ?", (now, matched.id)
            )
        return matched

    def verify_secret(self, client: OidcClient, secret: str) -> bool:
        """True if `secret` is one of the client's active secrets (see check_secret); always
        False for public clients."""
        try:
            self.check_secret(client, secret)
        except SecretRefused:
            return False
        return True

    # uploaded logos --------------------------------------------------------------------------

    def set_logo(self, client_id: str, image: bytes) -> OidcClient:
        """Store an uploaded logo (PNG or JPEG, at most LOGO_MAX_BYTES), replacing any other.
        NotFound, ReadOnlyClient, InvalidInput for anything else (SVG included)."""
        self._writable(client_id)
        content_type = logo_type(image)
        etag = hash_token(b64encode(image).decode("ascii"))[:32]
        with self._db.transaction() as tx:
            tx.execute("DELETE FROM oidc_client_logos WHERE client_id = ?", (client_id,))
            tx.execute(
                "INSERT INTO oidc_client_logos (client_id, content_type, image, etag, updated_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (client_id, content_type, b64encode(image).decode("ascii"), etag, time.time()),
            )
        return self.get(client_id)

    def delete_logo(self, client_id: str) -> OidcClient:
        """Remove an uploaded logo (nothing happens without one). NotFound, ReadOnlyClient."""
        self._writable(client_id)
        self._db.execute("DELETE FROM oidc_client_logos WHERE client_id = ?", (client_id,))
        return self.get(client_id)

    def logo(self, client_id: str) -> ClientLogo | None:
        """The uploaded logo of a client, or None."""
        row = self._db.fetchone(
            "SELECT content_type, image, etag, updated_at FROM oidc_client_logos "
            "WHERE client_id = ?",
            (client_id,),
        )
        if row is None:
            return None
        return ClientLogo(str(row[0]), b64decode(row[1]), str(row[2]), float(row[3]))

    @staticmethod
    def redirect_uri_allowed(client: OidcClient, uri: str) -> bool:
        """True if `uri` is one of the client's redirect URIs (exact, or by its wildcards)."""
        return uri_matches(client.redirect_uris, uri, client.wildcard_callbacks)

    @staticmethod
    def post_logout_uri_allowed(client: OidcClient, uri: str) -> bool:
        """True if `uri` is one of the client's post-logout redirect URIs."""
        return uri_matches(client.post_logout_redirect_uris, uri, client.wildcard_callbacks)

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
                client = self._sealed(client, env.get(entry.secret_env or "") or None)
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
            existing = {c.client_id: c for c in self._with_extras([_client(r) for r in rows], tx)}
            for client_id, client in wanted.items():
                current = existing.get(client_id)
                client = _keeping_use(client, current, time.time())
                if current is None:
                    self._insert(tx, dataclasses.replace(client, created_at=time.time()))
                elif not current.declared:
                    raise ClientsConfigError(
                        f"client {client_id!r} is declared in CONFIG_FILE but a client with that "
                        "id was created by hand: delete it or pick another client_id"
                    )
                else:
                    same = [x.secret_hash for x in client.secrets] == [
                        x.secret_hash for x in current.secrets
                    ]
                    if same and current.secret_sealed:
                        # Same secret: keep its sealed copy (sealing again gives new bytes).
                        client = dataclasses.replace(client, secret_sealed=current.secret_sealed)
                    if dataclasses.replace(client, created_at=current.created_at) != current:
                        self._write(tx, client)
            for client_id, current in existing.items():
                if current.declared and client_id not in wanted:
                    tx.execute("DELETE FROM oidc_clients WHERE client_id = ?", (client_id,))

    # helpers ---------------------------------------------------------------------------------

    def _with_extras(
        self, clients: Sequence[OidcClient], tx: Transaction | None = None
    ) -> builtins.list[OidcClient]:
        """The clients with their secrets and logo etags (two queries for all of them)."""
        if not clients:
            return []
        reader = tx or self._db
        ids = [c.client_id for c in clients]
        marks = ", ".join("?" * len(ids))
        found: dict[str, list[ClientSecret]] = {i: [] for i in ids}
        for row in reader.fetchall(
            f"SELECT client_id, {_SECRET_COLUMNS} FROM oidc_client_secrets "
            f"WHERE client_id IN ({marks}) ORDER BY created_at DESC, id",
            tuple(ids),
        ):
            found[str(row[0])].append(_secret(row[1:]))
        etags: dict[str, str] = dict(
            reader.fetchall(
                f"SELECT client_id, etag FROM oidc_client_logos WHERE client_id IN ({marks})",
                tuple(ids),
            )
        )
        return [
            dataclasses.replace(
                c, secrets=tuple(found[c.client_id]), logo_etag=str(etags.get(c.client_id, ""))
            )
            for c in clients
        ]

    def _confidential(self, client_id: str) -> OidcClient:
        client = self._writable(client_id)
        if client.public:
            raise InvalidInput(f"client {client_id!r} is public: it has no secret")
        return client

    @staticmethod
    def _insert_secret(tx: Transaction, client_id: str, secret: ClientSecret) -> None:
        tx.execute(
            f"INSERT INTO oidc_client_secrets (client_id, {_SECRET_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                client_id,
                secret.id,
                secret.name,
                secret.secret_hash,
                secret.created_at,
                secret.expires_at,
                secret.last_used_at,
                secret.revoked_at,
            ),
        )

    def _writable(self, client_id: str) -> OidcClient:
        client = self.get(client_id)
        if client.declared:
            raise ReadOnlyClient(
                f"client {client_id!r} is declared in CONFIG_FILE; change it there"
            )
        return client

    @classmethod
    def _insert(cls, tx: Transaction, client: OidcClient) -> None:
        values = _row(client)
        tx.execute(
            f"INSERT INTO oidc_clients ({_COLUMNS}) VALUES ({', '.join('?' * len(values))})",
            values,
        )
        for secret in client.secrets:
            cls._insert_secret(tx, client.client_id, secret)

    @classmethod
    def _write(cls, tx: Transaction, client: OidcClient) -> None:
        """Write a client's settings; a declared client's secrets are replaced too (the others'
        change only through the secret methods)."""
        assignments = ", ".join(f"{column} = ?" for column in _SETTABLE)
        row = dict(zip(_COLUMN_NAMES, _row(client), strict=True))
        tx.execute(
            f"UPDATE oidc_clients SET {assignments} WHERE client_id = ?",
            (*(row[column] for column in _SETTABLE), client.client_id),
        )
        if client.declared:
            tx.execute("DELETE FROM oidc_client_secrets WHERE client_id = ?", (client.client_id,))
            for secret in client.secrets:
                cls._insert_secret(tx, client.client_id, secret)


def logo_type(image: bytes) -> str:
    """The Content-Type of an acceptable logo; InvalidInput for one too big or of another kind."""
    if not image:
        raise InvalidInput("the logo file is empty")
    if len(image) > LOGO_MAX_BYTES:
        raise InvalidInput(f"the logo is larger than {LOGO_MAX_BYTES // 1024} KiB")
    for signature, content_type in LOGO_TYPES.items():
        if image.startswith(signature):
            return content_type
    if b"<svg" in image[:1024].lower():
        raise InvalidInput("SVG logos are not accepted (they can carry script): use PNG or JPEG")
    raise InvalidInput("the logo must be a PNG or JPEG image")


# imports (issue 14) ---------------------------------------------------------------------------
IMPORTED_BCRYPT_PREFIX = "bcrypt:"  # a marker: the rest is another provider's bcrypt hash


def _secret_matches(secret: str, digest: str, stored: str) -> bool:
    """Whether `secret` is the stored one: sha256 hex compared in constant time, or an imported
    bcrypt hash checked by bcrypt (which compares in constant time itself)."""
    if not stored.startswith(IMPORTED_BCRYPT_PREFIX):
        return tokens_equal(digest, stored)
    try:
        return bcrypt.checkpw(
            secret.encode("utf-8"), stored[len(IMPORTED_BCRYPT_PREFIX) :].encode("ascii")
        )
    except ValueError:  # not a bcrypt hash after all, or a secret longer than bcrypt takes
        return False


def _new_secret(name: str, digest: str, now: float, expires_at: float | None) -> ClientSecret:
    return ClientSecret(secrets.token_hex(8), name, digest, now, expires_at)


def _free_name(client: OidcClient, base: str, now: float) -> str:
    """`base`, or `base-2`, `base-3`... whichever no active secret of the client has."""
    taken = {s.name for s in client.active_secrets(now)}
    return next(
        n
        for n in (base if i == 1 else f"{base}-{i}" for i in range(1, len(taken) + 2))
        if n not in taken
    )


def _keeping_use(client: OidcClient, current: OidcClient | None, now: float) -> OidcClient:
    """A declared client as read from CONFIG_FILE, with what the database knows about its
    unchanged secrets (when they were first seen, when last used); new ones are first seen now."""
    known = {(s.id, s.secret_hash): s for s in current.secrets} if current else {}
    kept = []
    for secret in client.secrets:
        before = known.get((secret.id, secret.secret_hash))
        kept.append(
            dataclasses.replace(secret, created_at=now)
            if before is None
            else dataclasses.replace(
                secret, created_at=before.created_at, last_used_at=before.last_used_at
            )
        )
    etag = current.logo_etag if current else ""
    return dataclasses.replace(client, secrets=tuple(kept), logo_etag=etag)


def _secret(row: Sequence[Any]) -> ClientSecret:
    return ClientSecret(
        id=str(row[0]),
        name=str(row[1]),
        secret_hash=str(row[2]),
        created_at=float(row[3]),
        expires_at=None if row[4] is None else float(row[4]),
        last_used_at=None if row[5] is None else float(row[5]),
        revoked_at=None if row[6] is None else float(row[6]),
    )


def _row(client: OidcClient) -> tuple[object, ...]:
    """Column values in _COLUMNS order."""
    values: dict[str, object] = {
        "client_id": client.client_id,
        "name": client.name,
        "public": int(client.public),
        "redirect_uris": json.dumps(list(client.redirect_uris)),
        "post_logout_redirect_uris": json.dumps(list(client.post_logout_redirect_uris)),
        "allowed_groups": json.dumps(list(client.allowed_groups)),
        "pkce_required": int(client.pkce_required),
        "wildcard_callbacks": int(client.wildcard_callbacks),
        "id_token_alg": client.id_token_alg,
        "access_token_lifetime": client.access_token_lifetime,
        "refresh_token_lifetime": client.refresh_token_lifetime,
        "refresh_tokens": int(client.refresh_tokens),
        "logo_url": client.logo_url,
        "declared": int(client.declared),
        "created_at": client.created_at,
        "grant_types": json.dumps(list(client.grant_types)),
        "client_credentials_scopes": json.dumps(list(client.client_credentials_scopes)),
        "access_token_format": client.access_token_format,
        "allowed_resources": json.dumps(list(client.allowed_resources)),
        "dpop_bound_access_tokens": int(client.dpop_bound_access_tokens),
        "require_par": int(client.require_par),
        "token_endpoint_auth_method": client.token_endpoint_auth_method,
        "jwks": client.jwks,
        "jwks_uri": client.jwks_uri,
        "federated_identities": json.dumps(
            [dataclasses.asdict(i) for i in client.federated_identities]
        ),
        "secret_sealed": client.secret_sealed,
        "skip_consent": int(client.skip_consent),
        "require_reauth": int(client.require_reauth),
        "launch_url": client.launch_url,
    }
    return tuple(values[column] for column in _COLUMN_NAMES)


def _client(row: Sequence[Any]) -> OidcClient:
    """The client of a row read with _COLUMNS (its secrets come from _with_extras)."""
    r = dict(zip(_COLUMN_NAMES, row, strict=True))
    public = bool(r["public"])
    return OidcClient(
        client_id=str(r["client_id"]),
        name=str(r["name"]),
        public=public,
        redirect_uris=tuple(json.loads(r["redirect_uris"])),
        post_logout_redirect_uris=tuple(json.loads(r["post_logout_redirect_uris"])),
        allowed_groups=tuple(json.loads(r["allowed_groups"])),
        pkce_required=bool(r["pkce_required"]),
        wildcard_callbacks=bool(r["wildcard_callbacks"]),
        id_token_alg=str(r["id_token_alg"]),
        access_token_lifetime=int(r["access_token_lifetime"]),
        refresh_token_lifetime=int(r["refresh_token_lifetime"]),
        refresh_tokens=bool(r["refresh_tokens"]),
        logo_url=str(r["logo_url"]),
        declared=bool(r["declared"]),
        created_at=float(r["created_at"]),
        grant_types=tuple(json.loads(r["grant_types"])),
        client_credentials_scopes=tuple(json.loads(r["client_credentials_scopes"])),
        access_token_format=str(r["access_token_format"]),
        allowed_resources=tuple(json.loads(r["allowed_resources"])),
        dpop_bound_access_tokens=bool(r["dpop_bound_access_tokens"]),
        require_par=bool(r["require_par"]),
        token_endpoint_auth_method=str(r["token_endpoint_auth_method"])
        or ("none" if public else "client_secret_basic"),
        jwks=str(r["jwks"]),
        jwks_uri=str(r["jwks_uri"]),
        federated_identities=tuple(
            FederatedIdentity(**i) for i in json.loads(r["federated_identities"])
        ),
        secret_sealed=None if r["secret_sealed"] is None else str(r["secret_sealed"]),
        skip_consent=bool(r["skip_consent"]),
        require_reauth=bool(r["require_reauth"]),
        launch_url=str(r["launch_url"]),
    )


@dataclass(frozen=True, slots=True)
class AppAuth:
    """A client's PAR and signed-client-authentication settings, as the CLI, console and API
    give them (None keeps the current value on update)."""

    require_par: bool | None = None
    token_endpoint_auth_method: str | None = None
    jwks: str | None = None
    jwks_uri: str | None = None
    federated_identities: Sequence[FederatedIdentity] | None = None

    def values(self) -> dict[str, Any]:
        given = {
            "require_par": self.require_par,
            "token_endpoint_auth_method": self.token_endpoint_auth_method,
            "jwks": self.jwks,
            "jwks_uri": self.jwks_uri,
            "federated_identities": None
            if self.federated_identities is None
            else tuple(self.federated_identities),
        }
        return {k: v for k, v in given.items() if v is not None}
