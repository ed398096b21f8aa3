"""Encryption of secrets at rest, keyed by ENCRYPTION_KEY (or a key generated into the data folder).

Uses Fernet (AES-128-CBC + HMAC-SHA256) from `cryptography`; the key is derived from the
operator's ENCRYPTION_KEY with HKDF so any long random string works.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gateway.core.errors import DecryptionFailed

KEY_FILE_NAME = "encryption.key"


class SecretBox:
    """Encrypts and decrypts small secrets (signing keys, client secrets) for storage."""

    def __init__(self, master_key: str) -> None:
        self._fernet = Fernet(_derive(master_key, b"passgate secrets at rest"))
        self._signing_key = _derive(master_key, b"passgate cookie signing")

    def encrypt(self, plaintext: bytes) -> str:
        return self._fernet.encrypt(plaintext).decode("ascii")

    def decrypt(self, token: str) -> bytes:
        """Return the plaintext; raise DecryptionFailed for a wrong key or tampered data."""
        try:
            return self._fernet.decrypt(token.encode("ascii"))
        except (InvalidToken, ValueError):
            raise DecryptionFailed(
                "cannot decrypt a stored secret: is ENCRYPTION_KEY right?"
            ) from None

    @staticmethod
    def looks_sealed(value: str) -> bool:
        """True if `value` has the shape of something `encrypt` made (a Fernet token: version
        byte 0x80 and a timestamp whose high bytes are zero, so "gAAAAA", padded base64, at least
        one cipher block). Lets a backup find sealed values in any table without a list of them."""
        return value.startswith("gAAAAA") and len(value) >= 100 and len(value) % 4 == 0

    @property
    def cookie_signing_key(self) -> bytes:
        """A key for itsdangerous, separate from the encryption key by derivation."""
        return self._signing_key


def _derive(master_key: str, purpose: bytes) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"passgate/v1", info=purpose)
    return base64.urlsafe_b64encode(hkdf.derive(master_key.encode("utf-8")))


def load_or_create_master_key(configured: str | None, data_dir: Path) -> str:
    """Return ENCRYPTION_KEY, or the key kept in the data folder, generating it on first start."""
    if configured:
        return configured
    path = data_dir / KEY_FILE_NAME
    if path.exists():
        return path.read_text(encoding="ascii").strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(key + "\n")
    return key


def hash_token(token: str) -> str:
    """One-way hash for high-entropy tokens we only need to recognise (login codes, session ids)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def tokens_equal(left: str, right: str) -> bool:
    """Constant-time comparison of two strings."""
    return hmac.compare_digest(left.encode("utf-8"), right.encode("utf-8"))
