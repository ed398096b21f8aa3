"""OpenID Connect clients in the database: the service the CLI, the console and the OIDC
endpoints share. Declared clients (CONFIG_FILE) are synced at start-up and read-only here."""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.core.crypto import SecretBox, hash_token, tokens_equal
from gateway.core.errors import Conflict, InvalidInput, NotFound
from gateway.oidc.clients import (
    ClientsConfigError,
    DeclaredClient,
    FederatedIdentity,
    OidcClient,
    ReadOnlyClient,
    uri_matches,
    validated,
)
from gateway.storage.db import Database, IntegrityViolation, Transaction

_COLUMNS = (
    "client_id, name, secret_hash, public, redirect_uris, post_logout_redirect_uris, "
    "allowed_groups, pkce_required, wildcard_callbacks, id_token_alg, access_token_lifetime, "
    "refresh_token_lifetime, refresh_tokens, logo_url, declared, created_at, "
    # machine and TV grants
    "grant_types, client_credentials_scopes, "
    # access tokens: format, resource indicators, DPoP
    "access_token_format, allowed_resources, dpop_bound_access_tokens, "
    # pushed authorization requests and signed client authentication (oidc-app-auth)
    "require_par, token_endpoint_auth_method, jwks, jwks_uri, federated_identities, secret_sealed"
)
_SETTABLE = (  # every column but client_id and created_at, in _COLUMNS order (see _row)
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
)
_COLUMN_NAMES = tuple(name.strip() for name in _COLUMNS.split(","))


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
        client = validated(
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
        grant_types: Sequence[str] | None = None,
        client_credentials_scopes: Sequence[str] | None = None,
        access_token_format: str | None = None,
        allowed_resources: Sequence[str] | None = None,
        dpop_bound_access_tokens: bool | None = None,
        app_auth: AppAuth | None = None,
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
        """Replace a confidential client's secret; return the new clear secret (shown once).
        NotFound, ReadOnlyClient, InvalidInput for a public client."""
        client = self._writable(client_id)
        if client.public:
            raise InvalidInput(f"client {client_id!r} is public: it has no secret")
        secret = secrets.token_urlsafe(32)
        sealed = self._sealed(client, secret).secret_sealed
        self._db.execute(
            "UPDATE oidc_clients SET secret_hash = ?, secret_sealed = ? WHERE client_id = ?",
            (hash_token(secret), sealed, client_id),
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
        Raises DecryptionFailed for a wrong ENCRYPTION_KEY."""
        if client.auth_method != "client_secret_jwt" or not client.secret_sealed:
            return None
        if self._box is None:
            return None
        return self._box.decrypt(client.secret_sealed)

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
                else:
                    if client.secret_hash == current.secret_hash and current.secret_sealed:
                        # Same secret: keep its sealed copy (sealing again gives new bytes).
                        client = dataclasses.replace(client, secret_sealed=current.secret_sealed)
                    if dataclasses.replace(client, created_at=current.created_at) != current:
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
        row = dict(zip(_COLUMN_NAMES, _row(client), strict=True))
        tx.execute(
            f"UPDATE oidc_clients SET {assignments} WHERE client_id = ?",
            (*(row[column] for column in _SETTABLE), client.client_id),
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
        json.dumps(list(client.grant_types)),
        json.dumps(list(client.client_credentials_scopes)),
        client.access_token_format,
        json.dumps(list(client.allowed_resources)),
        int(client.dpop_bound_access_tokens),
        int(client.require_par),
        client.token_endpoint_auth_method,
        client.jwks,
        client.jwks_uri,
        json.dumps([dataclasses.asdict(i) for i in client.federated_identities]),
        client.secret_sealed,
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
        grant_types=tuple(json.loads(row[16])),
        client_credentials_scopes=tuple(json.loads(row[17])),
        access_token_format=str(row[18]),
        allowed_resources=tuple(json.loads(row[19])),
        dpop_bound_access_tokens=bool(row[20]),
        require_par=bool(row[21]),
        token_endpoint_auth_method=str(row[22]) or ("none" if row[3] else "client_secret_basic"),
        jwks=str(row[23]),
        jwks_uri=str(row[24]),
        federated_identities=tuple(FederatedIdentity(**i) for i in json.loads(row[25])),
        secret_sealed=None if row[26] is None else str(row[26]),
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
