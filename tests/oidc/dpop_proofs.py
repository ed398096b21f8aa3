"""DPoP proofs (RFC 9449) as a client makes them, for the OIDC tests: a key pair and proofs
signed with it, each claim overridable so a test can spoil exactly one."""

from __future__ import annotations

import secrets
import time
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey

from gateway.oidc.dpop import access_token_hash


class DpopKey:
    """A client's DPoP key (ES256) and the proofs it signs."""

    def __init__(self) -> None:
        self.key = ECKey.generate_key("P-256", private=True)

    @property
    def jkt(self) -> str:
        return self.key.thumbprint()

    def proof(
        self,
        method: str,
        url: str,
        access_token: str | None = None,
        header: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        """A proof for `method` `url` (with `ath` for `access_token`); `claims` and `header`
        replace or add fields (None removes one)."""
        payload: dict[str, Any] = {
            "jti": secrets.token_urlsafe(16),
            "htm": method,
            "htu": url,
            "iat": int(time.time()),
        }
        if access_token is not None:
            payload["ath"] = access_token_hash(access_token)
        payload.update(claims)
        protected: dict[str, Any] = {
            "typ": "dpop+jwt",
            "alg": "ES256",
            "jwk": self.key.as_dict(private=False),
        }
        protected.update(header or {})
        return jwt.encode(
            {k: v for k, v in protected.items() if v is not None},
            {k: v for k, v in payload.items() if v is not None},
            self.key,
            algorithms=["ES256"],
        )
