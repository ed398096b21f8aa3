"""Authorization codes, access/refresh tokens and consents: stored hashed, revocable by family.

A refresh token is rotated on every use; presenting a used one revokes its whole family (every
token descended from the same authorization). A replayed authorization code revokes the tokens
issued from it.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from gateway.core.crypto import hash_token
from gateway.storage.db import Database

CODE_LIFETIME = 60.0  # seconds; codes are exchanged by the app at once

_ISSUED_COLUMNS = (
    "id, client_id, user_id, scope, family_id, code_hash, auth_time, issued_at, "
    "access_expires_at, refresh_expires_at, refresh_used_at, revoked_at, audience, dpop_jkt"
)


@dataclass(frozen=True, slots=True)
class AuthorizationCode:
    code_hash: str
    client_id: str
    user_id: str
    redirect_uri: str
    scope: str
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    auth_time: float
    expires_at: float
    used_at: float | None
    amr: tuple[str, ...] = ()

    # authlib's AuthorizationCodeMixin and CodeChallenge look for these.
    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return int(self.auth_time)

    def get_acr(self) -> str | None:
        return None

    def get_amr(self) -> list[str] | None:
        return list(self.amr) or None  # left out when the sign-in method is not known

    def is_expired(self) -> bool:
        return time.time() >= self.expires_at

    def get_code_challenge(self) -> str | None:
        return self.code_challenge

    def get_code_challenge_method(self) -> str | None:
        return self.code_challenge_method


@dataclass(frozen=True, slots=True)
class IssuedToken:
    id: str
    client_id: str
    user_id: str | None  # None: a client_credentials token, whose subject is the client
    scope: str
    family_id: str
    code_hash: str | None
    auth_time: float
    issued_at: float
    access_expires_at: float
    refresh_expires_at: float | None
    refresh_used_at: float | None
    revoked_at: float | None
    # --- access tokens: the resource it was issued for (RFC 8707), its DPoP key (RFC 9449) ---
    audience: str | None = None  # None: the client itself
    dpop_jkt: str | None = None  # the JWK SHA-256 thumbprint the token is bound to

    # authlib's TokenMixin.
    def check_client(self, client: object) -> bool:
        return getattr(client, "client_id", None) == self.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return max(0, int(self.access_expires_at - self.issued_at))

    def is_expired(self) -> bool:
        return time.time() >= self.access_expires_at

    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    def access_usable(self) -> bool:
        return not self.is_revoked() and not self.is_expired()

    @property
    def subject(self) -> str:
        """Who the token is about: its user, or for a client_credentials token the client."""
        return self.user_id if self.user_id is not None else self.client_id


def _token(row: tuple[object, ...]) -> IssuedToken:
    return IssuedToken(
        id=str(row[0]),
        client_id=str(row[1]),
        user_id=str(row[2]) if row[2] is not None else None,
        scope=str(row[3]),
        family_id=str(row[4]),
        code_hash=str(row[5]) if row[5] is not None else None,
        auth_time=float(row[6]),  # type: ignore[arg-type]
        issued_at=float(row[7]),  # type: ignore[arg-type]
        access_expires_at=float(row[8]),  # type: ignore[arg-type]
        refresh_expires_at=float(row[9]) if row[9] is not None else None,  # type: ignore[arg-type]
        refresh_used_at=float(row[10]) if row[10] is not None else None,  # type: ignore[arg-type]
        revoked_at=float(row[11]) if row[11] is not None else None,  # type: ignore[arg-type]
        audience=str(row[12]) if row[12] is not None else None,
        dpop_jkt=str(row[13]) if row[13] is not None else None,
    )


class OAuthStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    # codes -------------------------------------------------------------------------------

    def save_code(
        self,
        code: str,
        *,
        client_id: str,
        user_id: str,
        redirect_uri: str,
        scope: str,
        nonce: str | None,
        code_challenge: str | None,
        code_challenge_method: str | None,
        auth_time: float,
        amr: tuple[str, ...] = (),
    ) -> None:
        now = time.time()
        self._db.execute(
            "INSERT INTO oauth_codes (code_hash, client_id, user_id, redirect_uri, scope, nonce, "
            "code_challenge, code_challenge_method, auth_time, created_at, expires_at, amr) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                hash_token(code),
                client_id,
                user_id,
                redirect_uri,
                scope,
                nonce,
                code_challenge,
                code_challenge_method,
                auth_time,
                now,
                now + CODE_LIFETIME,
                " ".join(amr),
            ),
        )

    def find_code(self, code: str, client_id: str) -> AuthorizationCode | None:
        row = self._db.fetchone(
            "SELECT code_hash, client_id, user_id, redirect_uri, scope, nonce, code_challenge, "
            "code_challenge_method, auth_time, expires_at, used_at, amr FROM oauth_codes "
            "WHERE code_hash = ? AND client_id = ?",
            (hash_token(code), client_id),
        )
        if row is None:
            return None
        return AuthorizationCode(
            str(row[0]),
            str(row[1]),
            str(row[2]),
            str(row[3]),
            str(row[4]),
            row[5] and str(row[5]),
            row[6] and str(row[6]),
            row[7] and str(row[7]),
            float(row[8]),
            float(row[9]),
            float(row[10]) if row[10] is not None else None,
            tuple(str(row[11]).split()),
        )

    def mark_code_used(self, code_hash: str) -> bool:
        """True the first time; False if it was already used (a replay)."""
        return (
            self._db.execute(
                "UPDATE oauth_codes SET used_at = ? WHERE code_hash = ? AND used_at IS NULL",
                (time.time(), code_hash),
            )
            == 1
        )

    def revoke_tokens_from_code(self, code_hash: str) -> None:
        """Revoke every token descended from the code, refreshed ones included."""
        self._db.execute(
            "UPDATE oauth_tokens SET revoked_at = ? WHERE revoked_at IS NULL AND family_id IN "
            "(SELECT family_id FROM oauth_tokens WHERE code_hash = ?)",
            (time.time(), code_hash),
        )

    # tokens ------------------------------------------------------------------------------

    def save_token(
        self,
        *,
        access_token: str,
        refresh_token: str | None,
        client_id: str,
        user_id: str | None,
        scope: str,
        auth_time: float,
        access_lifetime: float,
        refresh_lifetime: float,
        family_id: str | None,
        code_hash: str | None,
        audience: str | None = None,
        dpop_jkt: str | None = None,
    ) -> IssuedToken:
        now = time.time()
        token_id = str(uuid.uuid4())
        self._db.execute(
            "INSERT INTO oauth_tokens (id, access_token_hash, refresh_token_hash, client_id, "
            "user_id, scope, family_id, code_hash, auth_time, issued_at, access_expires_at, "
            "refresh_expires_at, audience, dpop_jkt) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                token_id,
                hash_token(access_token),
                hash_token(refresh_token) if refresh_token else None,
                client_id,
                user_id,
                scope,
                family_id or token_id,
                code_hash,
                auth_time,
                now,
                now + access_lifetime,
                now + refresh_lifetime if refresh_token else None,
                audience,
                dpop_jkt,
            ),
        )
        found = self._by("id", token_id)
        assert found is not None
        return found

    def _by(self, column: str, value: str) -> IssuedToken | None:
        assert column in ("id", "access_token_hash", "refresh_token_hash")
        row = self._db.fetchone(
            f"SELECT {_ISSUED_COLUMNS} FROM oauth_tokens WHERE {column} = ?", (value,)
        )
        return _token(row) if row else None

    def by_access_token(self, token: str) -> IssuedToken | None:
        return self._by("access_token_hash", hash_token(token))

    def by_refresh_token(self, token: str) -> IssuedToken | None:
        return self._by("refresh_token_hash", hash_token(token))

    def mark_refresh_used(self, token_id: str) -> bool:
        return (
            self._db.execute(
                "UPDATE oauth_tokens SET refresh_used_at = ? "
                "WHERE id = ? AND refresh_used_at IS NULL",
                (time.time(), token_id),
            )
            == 1
        )

    def revoke(self, token_id: str) -> None:
        self._db.execute(
            "UPDATE oauth_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
            (time.time(), token_id),
        )

    def revoke_family(self, family_id: str) -> None:
        self._db.execute(
            "UPDATE oauth_tokens SET revoked_at = ? WHERE family_id = ? AND revoked_at IS NULL",
            (time.time(), family_id),
        )

    def revoke_for_user_client(self, user_id: str, client_id: str) -> None:
        self._db.execute(
            "UPDATE oauth_tokens SET revoked_at = ? WHERE user_id = ? AND client_id = ? "
            "AND revoked_at IS NULL",
            (time.time(), user_id, client_id),
        )

    def revoke_for_user(self, user_id: str) -> int:
        """Revoke every live token of the user, for every client; return how many."""
        return self._db.execute(
            "UPDATE oauth_tokens SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL",
            (time.time(), user_id),
        )

    # consents ----------------------------------------------------------------------------

    def consented_scope(self, user_id: str, client_id: str) -> set[str]:
        row = self._db.fetchone(
            "SELECT scope FROM oidc_consents WHERE user_id = ? AND client_id = ?",
            (user_id, client_id),
        )
        return set(str(row[0]).split()) if row else set()

    def grant_consent(self, user_id: str, client_id: str, scope: set[str]) -> None:
        merged = self.consented_scope(user_id, client_id) | scope
        with self._db.transaction() as tx:
            tx.execute(
                "DELETE FROM oidc_consents WHERE user_id = ? AND client_id = ?",
                (user_id, client_id),
            )
            tx.execute(
                "INSERT INTO oidc_consents (user_id, client_id, scope, granted_at) "
                "VALUES (?, ?, ?, ?)",
                (user_id, client_id, " ".join(sorted(merged)), time.time()),
            )

    def consents(self, user_id: str) -> list[tuple[str, str, float]]:
        rows = self._db.fetchall(
            "SELECT client_id, scope, granted_at FROM oidc_consents WHERE user_id = ? "
            "ORDER BY granted_at",
            (user_id,),
        )
        return [(str(r[0]), str(r[1]), float(r[2])) for r in rows]

    def revoke_consent(self, user_id: str, client_id: str) -> None:
        """Forget the consent and revoke every token the app holds for this user."""
        self._db.execute(
            "DELETE FROM oidc_consents WHERE user_id = ? AND client_id = ?", (user_id, client_id)
        )
        self.revoke_for_user_client(user_id, client_id)
