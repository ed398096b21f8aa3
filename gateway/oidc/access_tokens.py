"""Access tokens: opaque by default, JWTs (RFC 9068) for clients that ask for them and for every
token issued for a resource (RFC 8707), sender-constrained with DPoP (RFC 9449) when the token
request proved a key.

authlib's JWTBearerTokenGenerator builds and signs the JWT (header `typ: at+jwt`; claims iss,
exp, aud, sub, client_id, iat, jti, scope); this module fills in what it leaves to us: the
signing key, the audience, auth_time, groups when the scope asks, and `cnf.jkt`.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator
from joserfc.jwk import KeySet

from gateway.oidc.signing_keys import Key

JWT_ALG = "RS256"  # RFC 9068 4: every resource server must support it


def new_refresh_token(**_: Any) -> str:
    return secrets.token_urlsafe(48)


def opaque_tokens(expires: Callable[..., int]) -> BearerTokenGenerator:
    """Random access and refresh tokens; only their hashes are stored."""
    return BearerTokenGenerator(
        access_token_generator=lambda **_: secrets.token_urlsafe(32),
        refresh_token_generator=new_refresh_token,
        expires_generator=expires,
    )


@dataclass(frozen=True, slots=True)
class Binding:
    """What one token response's access token is for, and whom."""

    audience: str | None  # a resource (RFC 8707), or None for the client itself
    dpop_jkt: str | None  # the DPoP key's thumbprint, or None for a Bearer token
    auth_time: float
    groups: Sequence[str] = ()
    jwt: bool = False  # a JWT access token (RFC 9068) rather than an opaque one

    @property
    def token_type(self) -> str:
        return "DPoP" if self.dpop_jkt else "Bearer"


class JwtAccessTokens(JWTBearerTokenGenerator):  # type: ignore[misc]
    """RFC 9068 access tokens for one token response (made per response: the binding differs)."""

    def __init__(
        self, issuer: str, key: Key, binding: Binding, expires: Callable[..., int]
    ) -> None:
        super().__init__(
            issuer,
            alg=JWT_ALG,
            refresh_token_generator=new_refresh_token,
            expires_generator=expires,
        )
        self._key = key
        self._binding = binding

    def get_jwks(self) -> KeySet:
        return KeySet([self._key])  # joserfc names its kid in the header

    def get_audiences(self, client: Any, user: Any, scope: str) -> str:
        return self._binding.audience or str(client.get_client_id())

    def get_auth_time(self, user: Any) -> int:
        return int(self._binding.auth_time)

    def get_extra_claims(
        self, client: Any, grant_type: str, user: Any, scope: str
    ) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if "groups" in (scope or "").split():
            extra["groups"] = list(self._binding.groups)
        if self._binding.dpop_jkt:
            extra["cnf"] = {"jkt": self._binding.dpop_jkt}
        return extra
