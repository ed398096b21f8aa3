"""The backup file format: a compressed document sealed with a passphrase.

    MAGIC | log2(n) r p (1 byte each) | salt (16) | nonce (12) | check (32) | AES-256-GCM(zlib(doc))

Scrypt (n, r, p, salt) turns the passphrase into 64 bytes: the first 32 are the AES-GCM key, the
last 32 are stored as `check` so a wrong passphrase can be told apart from a damaged file. The
whole header is GCM's associated data, so changing any byte of the file makes it unreadable. All
primitives are the `cryptography` library's.
"""

from __future__ import annotations

import hmac
import os
import zlib

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from gateway.core.errors import ArchiveUnreadable, InvalidInput, WrongPassphrase

MAGIC = b"PASSGATE-BACKUP/1\n"
MIN_PASSPHRASE = 12
# OWASP's scrypt recommendation (N=2^17, r=8, p=1): about 128 MiB and a fraction of a second.
LOG2_N, R, P = 17, 8, 1
_SALT, _NONCE, _CHECK = 16, 12, 32
_HEADER = len(MAGIC) + 3 + _SALT + _NONCE + _CHECK


def seal(document: bytes, passphrase: str) -> bytes:
    """Compress and encrypt `document`; InvalidInput for a passphrase that is too short."""
    if len(passphrase) < MIN_PASSPHRASE:
        raise InvalidInput(f"the passphrase must be at least {MIN_PASSPHRASE} characters")
    salt, nonce = os.urandom(_SALT), os.urandom(_NONCE)
    key, check = _derive(passphrase, salt, LOG2_N, R, P)
    header = MAGIC + bytes((LOG2_N, R, P)) + salt + nonce + check
    return header + AESGCM(key).encrypt(nonce, zlib.compress(document, 9), header)


def unseal(data: bytes, passphrase: str) -> bytes:
    """The document inside an archive. WrongPassphrase if the passphrase does not fit;
    ArchiveUnreadable if the file is not a Passgate archive or was changed after it was made."""
    if not data.startswith(MAGIC):
        raise ArchiveUnreadable("this is not a Passgate backup archive")
    if len(data) < _HEADER + 16:
        raise ArchiveUnreadable("the archive is truncated")
    header, body = data[:_HEADER], data[_HEADER:]
    log2_n, r, p = header[len(MAGIC) : len(MAGIC) + 3]
    # Bounds keep a crafted header from asking for gigabytes of scrypt memory.
    if not (14 <= log2_n <= 20 and 1 <= r <= 16 and 1 <= p <= 4):
        raise ArchiveUnreadable("the archive's key-derivation parameters are out of range")
    offset = len(MAGIC) + 3
    salt = header[offset : offset + _SALT]
    nonce = header[offset + _SALT : offset + _SALT + _NONCE]
    stored_check = header[offset + _SALT + _NONCE :]
    key, check = _derive(passphrase, salt, log2_n, r, p)
    if not hmac.compare_digest(check, stored_check):
        raise WrongPassphrase("wrong passphrase for this archive")
    try:
        compressed = AESGCM(key).decrypt(nonce, body, header)
    except InvalidTag:
        raise ArchiveUnreadable(
            "the archive was changed or damaged after it was made: refusing to read it"
        ) from None
    try:
        return zlib.decompress(compressed)
    except zlib.error:
        raise ArchiveUnreadable("the archive's contents are damaged") from None


def _derive(passphrase: str, salt: bytes, log2_n: int, r: int, p: int) -> tuple[bytes, bytes]:
    material = Scrypt(salt=salt, length=64, n=2**log2_n, r=r, p=p).derive(
        passphrase.encode("utf-8")
    )
    return material[:32], material[32:]
