"""DPoP proofs (RFC 9449): checking the `DPoP` header a client sends to bind tokens to its key.

A proof is a JWT the client signs with a private key whose public half rides in the header.
`verify_proof` checks one proof against the request it came with and returns the key's
thumbprint (`jkt`, RFC 7638), which the token is bound to; the caller refuses a replayed `jti`
through the shared short-lived store (the check needs it across workers). joserfc does the
JOSE; this module only says what a proof must hold.
"""

from __future__ import annotations

import base64
import hashlib
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import Key, import_key

from gateway.core.crypto import tokens_equal
from gateway.core.errors import PassgateError

# Asymmetric algorithms only (RFC 9449 4.2): a shared secret would prove nothing.
ALGORITHMS = ("ES256", "ES384", "ES512", "RS256", "PS256", "EdDSA")
IAT_LEEWAY = 60  # seconds a proof's iat may sit in the past or future
REPLAY_WINDOW = 2 * IAT_LEEWAY  # how long a jti is remembered: longer than a proof is accepted
MAX_JTI = 256


class DpopRejected(PassgateError):
    """The DPoP proof is missing, malformed, or does not match the request; the message says
    which (fit for error_description: it names no secret)."""


@dataclass(frozen=True, slots=True)
class DpopProof:
    jkt: str  # base64url SHA-256 thumbprint of the proof's public key
    jti: str


def access_token_hash(access_token: str) -> str:
    """`ath` (RFC 9449 4.2): base64url of the SHA-256 of the access token, no padding."""
    digest = hashlib.sha256(access_token.encode("ascii", "replace")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def canonical_htu(url: str) -> str:
    """The URL as RFC 9449 4.3 compares it: scheme and host lower-cased, default port
    dropped, no query or fragment."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    default = {"https": 443, "http": 80}.get(scheme)
    netloc = host if port in (None, default) else f"{host}:{port}"
    return f"{scheme}://{netloc}{parts.path or '/'}"


def _proof_key(header: dict[str, Any]) -> Key:
    if header.get("typ") != "dpop+jwt":
        raise DpopRejected("the DPoP proof's typ must be dpop+jwt")
    if header.get("alg") not in ALGORITHMS:
        raise DpopRejected("the DPoP proof must be signed with " + ", ".join(ALGORITHMS))
    jwk = header.get("jwk")
    if not isinstance(jwk, dict):
        raise DpopRejected("the DPoP proof must carry its public key in the jwk header")
    try:
        key = import_key(jwk)
    except (JoseError, ValueError, TypeError):
        raise DpopRejected("the DPoP proof's jwk is not a valid public key") from None
    if key.key_type == "oct" or key.is_private:
        raise DpopRejected("the DPoP proof's jwk must be a public key")
    return key


def verify_proof(
    proof: str,
    method: str,
    url: str,
    access_token: str | None = None,
    now: float | None = None,
) -> DpopProof:
    """Check a DPoP proof for a request (`method` and the public `url`), and its `ath` when
    `access_token` is given (at resource endpoints). Raises DpopRejected."""
    if not proof or proof.count(".") != 2:
        raise DpopRejected("the DPoP header must hold one proof JWT")
    keys: list[Key] = []

    def resolve(obj: Any) -> Key:
        key = _proof_key(obj.headers())
        keys.append(key)
        return key

    try:
        token = jwt.decode(proof, resolve, algorithms=list(ALGORITHMS))
    except DpopRejected:
        raise
    except (JoseError, ValueError, TypeError):
        raise DpopRejected("the DPoP proof's signature does not verify") from None
    claims = token.claims
    jti = claims.get("jti")
    if not isinstance(jti, str) or not 0 < len(jti) <= MAX_JTI:
        raise DpopRejected("the DPoP proof needs a jti")
    if claims.get("htm") != method:
        raise DpopRejected(f"the DPoP proof's htm must be {method}")
    htu = claims.get("htu")
    if not isinstance(htu, str) or canonical_htu(htu) != canonical_htu(url):
        raise DpopRejected("the DPoP proof's htu is not this endpoint's URL")
    iat = claims.get("iat")
    moment = time.time() if now is None else now
    if isinstance(iat, bool) or not isinstance(iat, int | float):
        raise DpopRejected("the DPoP proof needs an iat")
    if abs(moment - iat) > IAT_LEEWAY:
        raise DpopRejected("the DPoP proof's iat is too old or in the future")
    if access_token is not None:
        ath = claims.get("ath")
        if not isinstance(ath, str) or not tokens_equal(ath, access_token_hash(access_token)):
            raise DpopRejected("the DPoP proof's ath does not match the access token")
    return DpopProof(jkt=keys[0].thumbprint(), jti=jti)


def replay_key(proof: DpopProof) -> str:
    """The short-lived store's key for a proof's jti (per key: jtis are the client's to pick)."""
    digest = hashlib.sha256(f"{proof.jkt}:{proof.jti}".encode()).hexdigest()
    return f"dpop-jti:{digest}"
