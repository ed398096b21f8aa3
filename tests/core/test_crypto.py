"""Secrets at rest: encrypted with ENCRYPTION_KEY, or a key generated once into the data folder."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from gateway.core.crypto import SecretBox, load_or_create_master_key
from gateway.core.errors import DecryptionFailed


def test_secret_round_trips_and_is_not_stored_in_clear() -> None:
    box = SecretBox("a-long-operator-key-123")
    token = box.encrypt(b"signing key material")
    assert b"signing key material" not in token.encode()
    assert box.decrypt(token) == b"signing key material"


def test_wrong_key_cannot_decrypt() -> None:
    token = SecretBox("a-long-operator-key-123").encrypt(b"secret")
    with pytest.raises(DecryptionFailed):
        SecretBox("another-operator-key-456").decrypt(token)


def test_tampered_secret_is_rejected() -> None:
    box = SecretBox("a-long-operator-key-123")
    token = box.encrypt(b"secret")
    with pytest.raises(DecryptionFailed):
        box.decrypt(token[:-6] + ("A" * 6 if not token.endswith("AAAAAA") else "B" * 6))


def test_configured_key_is_used_and_nothing_written(tmp_path: Path) -> None:
    assert load_or_create_master_key("configured-key-0123456", tmp_path) == "configured-key-0123456"
    assert list(tmp_path.iterdir()) == []


def test_generated_key_is_created_once_private_and_reused(tmp_path: Path) -> None:
    first = load_or_create_master_key(None, tmp_path / "data")
    second = load_or_create_master_key(None, tmp_path / "data")
    assert first == second and len(first) >= 32
    mode = stat.S_IMODE((tmp_path / "data" / "encryption.key").stat().st_mode)
    assert mode == 0o600


def test_cookie_signing_key_differs_from_encryption_key_derivation() -> None:
    box = SecretBox("a-long-operator-key-123")
    assert box.cookie_signing_key != SecretBox("another-operator-key-456").cookie_signing_key
