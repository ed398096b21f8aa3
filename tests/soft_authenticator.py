"""A software WebAuthn authenticator for tests: real ES256 (P-256) keys, real signatures.

`create` answers registration options with a "none" attestation; `get` answers authentication
options with a signed assertion. Both return the WebAuthn JSON form that py_webauthn's
`parse_registration_credential_json` / `parse_authentication_credential_json` accept. Every
field a relying party checks can be overridden, so tests can craft precisely wrong answers.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import struct
import uuid
from dataclasses import dataclass
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

FLAG_UP = 0x01
FLAG_UV = 0x04
FLAG_BE = 0x08
FLAG_BS = 0x10
FLAG_AT = 0x40

DEFAULT_AAGUID = uuid.UUID("7e57ab1e-0000-4000-8000-5af7a07e57ed")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def from_b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class SoftCredential:
    credential_id: bytes
    private_key: ec.EllipticCurvePrivateKey
    rp_id: str
    user_handle: bytes
    sign_count: int = 0

    @property
    def id(self) -> str:
        return b64url(self.credential_id)

    def cose_public_key(self) -> bytes:
        numbers = self.private_key.public_key().public_numbers()
        return cbor2.dumps(
            {
                1: 2,  # kty: EC2
                3: -7,  # alg: ES256
                -1: 1,  # crv: P-256
                -2: numbers.x.to_bytes(32, "big"),
                -3: numbers.y.to_bytes(32, "big"),
            }
        )


class SoftAuthenticator:
    """A platform authenticator holding discoverable ES256 credentials in memory."""

    def __init__(self, *, aaguid: uuid.UUID = DEFAULT_AAGUID, backup_eligible: bool = True) -> None:
        self.aaguid = aaguid
        self.backup_eligible = backup_eligible
        self.credentials: dict[str, SoftCredential] = {}
        self.last: SoftCredential | None = None

    # --- helpers ---------------------------------------------------------------------------

    @staticmethod
    def _client_data(kind: str, challenge: str, origin: str) -> bytes:
        return json.dumps(
            {"type": kind, "challenge": challenge, "origin": origin, "crossOrigin": False},
            separators=(",", ":"),
        ).encode()

    def _flags(self, user_verified: bool, *, attested: bool) -> int:
        flags = FLAG_UP
        if user_verified:
            flags |= FLAG_UV
        if self.backup_eligible:
            flags |= FLAG_BE | FLAG_BS
        if attested:
            flags |= FLAG_AT
        return flags

    def credential(self, credential_id: str | None = None) -> SoftCredential:
        if credential_id is None:
            if self.last is None:
                raise LookupError("this authenticator holds no credential yet")
            return self.last
        return self.credentials[credential_id]

    # --- registration ----------------------------------------------------------------------

    def create(
        self,
        options_json: str,
        origin: str,
        *,
        user_verified: bool = True,
        rp_id: str | None = None,
        challenge: str | None = None,
        reuse: str | None = None,
    ) -> dict[str, Any]:
        """Make a new credential for the options (or re-register `reuse`, an existing id)."""
        options = json.loads(options_json)
        rp = rp_id if rp_id is not None else options["rp"]["id"]
        if reuse is not None:
            cred = self.credentials[reuse]
        else:
            cred = SoftCredential(
                credential_id=secrets.token_bytes(32),
                private_key=ec.generate_private_key(ec.SECP256R1()),
                rp_id=options["rp"]["id"],
                user_handle=from_b64url(options["user"]["id"]),
            )
            self.credentials[cred.id] = cred
        self.last = cred
        attested = (
            self.aaguid.bytes
            + struct.pack(">H", len(cred.credential_id))
            + cred.credential_id
            + cred.cose_public_key()
        )
        auth_data = (
            hashlib.sha256(rp.encode()).digest()
            + bytes([self._flags(user_verified, attested=True)])
            + struct.pack(">I", 0)
            + attested
        )
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        client_data = self._client_data(
            "webauthn.create", challenge or options["challenge"], origin
        )
        return {
            "id": cred.id,
            "rawId": cred.id,
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "attestationObject": b64url(attestation),
                "transports": ["internal"],
            },
            "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
        }

    # --- authentication --------------------------------------------------------------------

    def get(
        self,
        options_json: str,
        origin: str,
        *,
        user_verified: bool = True,
        sign_count: int | None = None,
        rp_id: str | None = None,
        challenge: str | None = None,
        credential_id: str | None = None,
        user_handle: bytes | None = None,
    ) -> dict[str, Any]:
        """Sign an assertion with a held credential (the last one created by default)."""
        options = json.loads(options_json)
        cred = self.credential(credential_id)
        if sign_count is None:
            cred.sign_count += 1
            count = cred.sign_count
        else:
            count = sign_count
        rp = rp_id if rp_id is not None else options.get("rpId", cred.rp_id)
        auth_data = (
            hashlib.sha256(rp.encode()).digest()
            + bytes([self._flags(user_verified, attested=False)])
            + struct.pack(">I", count)
        )
        client_data = self._client_data("webauthn.get", challenge or options["challenge"], origin)
        signature = cred.private_key.sign(
            auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256())
        )
        handle = user_handle if user_handle is not None else cred.user_handle
        return {
            "id": cred.id,
            "rawId": cred.id,
            "type": "public-key",
            "response": {
                "authenticatorData": b64url(auth_data),
                "clientDataJSON": b64url(client_data),
                "signature": b64url(signature),
                "userHandle": b64url(handle),
            },
            "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
        }
