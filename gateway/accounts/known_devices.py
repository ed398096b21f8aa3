"""Devices a user has signed in from, so a sign-in from a new one can be told to them.

A device is a browser profile holding Passgate's long-lived random device cookie (on APP_URL's
host only); the database keeps only the cookie's hash. The user agent alone is not a device:
every copy of a browser version shares it.
"""

from __future__ import annotations

import secrets
import time
from enum import Enum

from gateway.core.crypto import hash_token
from gateway.storage.db import Database

DEVICE_COOKIE = "passgate_device"
DEVICE_COOKIE_AGE = 400 * 86400  # the longest lifetime browsers honour


class Sighting(Enum):
    KNOWN = "known"
    FIRST = "first"  # the account's first device: nothing to warn about
    NEW = "new"  # the account has other devices, and this is not one of them


def new_device_token() -> str:
    return secrets.token_urlsafe(32)


class KnownDevices:
    def __init__(self, db: Database) -> None:
        self._db = db

    def sighted(self, user_id: str, device_token: str) -> Sighting:
        """Remember that `user_id` signed in from this device; say whether it was known.
        Raises StorageError."""
        digest = hash_token(device_token)
        now = time.time()
        with self._db.transaction() as tx:
            if tx.execute(
                "UPDATE known_devices SET last_seen = ? WHERE user_id = ? AND device_hash = ?",
                (now, user_id, digest),
            ):
                return Sighting.KNOWN
            others = tx.fetchone("SELECT COUNT(*) FROM known_devices WHERE user_id = ?", (user_id,))
            tx.execute(
                "INSERT INTO known_devices (user_id, device_hash, first_seen, last_seen) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (user_id, device_hash) DO NOTHING",
                (user_id, digest, now, now),
            )
        return Sighting.NEW if others and int(others[0]) > 0 else Sighting.FIRST
