"""ID-token signing keys: created at first start, stored encrypted, published in the JWKS.

One active key per algorithm (RS256 always, ES256 for clients that ask for it). Rotation adds a
new key and retires the old one, which stays published for `RETIRED_PUBLISH_SECONDS` so tokens it
signed keep verifying until they expire.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from joserfc.jwk import ECKey, KeyParameters, RSAKey

from gateway.core.crypto import SecretBox
from gateway.core.errors import Conflict, InvalidInput
from gateway.storage.db import Database, Transaction

ALGORITHMS = ("RS256", "ES256")
RETIRED_PUBLISH_SECONDS = 2 * 86400  # longer than any ID/access token lifetime (max 1 day)

Key = RSAKey | ECKey


def _generate(alg: str, kid: str) -> Key:
    parameters: KeyParameters = {"kid": kid, "alg": alg, "use": "sig"}
    if alg == "RS256":
        return RSAKey.generate_key(2048, parameters=parameters, private=True)
    return ECKey.generate_key("P-256", parameters=parameters, private=True)


def _load(alg: str, kid: str, pem: bytes) -> Key:
    parameters: KeyParameters = {"kid": kid, "alg": alg, "use": "sig"}
    if alg == "RS256":
        return RSAKey.import_key(pem, parameters=parameters)
    return ECKey.import_key(pem, parameters=parameters)


class SigningKeys:
    def __init__(self, db: Database, box: SecretBox) -> None:
        self._db = db
        self._box = box
        self._cache: dict[str, Key] = {}

    def ensure(self) -> None:
        """Create an active key for every algorithm that has none (first start)."""
        for alg in ALGORITHMS:
            row = self._db.fetchone(
                "SELECT kid FROM signing_keys WHERE alg = ? AND retired_at IS NULL", (alg,)
            )
            if row is None:
                self._add(alg)

    def _add(self, alg: str) -> str:
        kid = f"{alg.lower()}-{time.strftime('%Y%m%d')}-{secrets.token_hex(4)}"
        key = _generate(alg, kid)
        encrypted = self._box.encrypt(key.as_pem(private=True))
        self._db.execute(
            "INSERT INTO signing_keys (kid, alg, private_key, created_at) VALUES (?, ?, ?, ?)",
            (kid, alg, encrypted, time.time()),
        )
        return kid

    def adopt(self, tx: Transaction, key: Key) -> None:
        """Make another provider's private key (with its kid) the active key of its algorithm,
        inside the caller's transaction, so tokens it signed keep verifying (imports). The key
        it replaces is retired and stays published like a rotated one. InvalidInput for a key
        of an algorithm Passgate does not sign with, or without a kid."""
        alg = "RS256" if isinstance(key, RSAKey) else "ES256"
        kid = key.kid
        if not kid or (isinstance(key, ECKey) and key.curve_name != "P-256"):
            raise InvalidInput("only RSA and P-256 signing keys with a key id can be adopted")
        if tx.fetchone("SELECT 1 FROM signing_keys WHERE kid = ?", (kid,)):
            raise Conflict(f"a signing key with kid {kid!r} already exists")
        now = time.time()
        tx.execute(
            "UPDATE signing_keys SET retired_at = ? WHERE alg = ? AND retired_at IS NULL",
            (now, alg),
        )
        pem = _load(alg, kid, key.as_pem(private=True)).as_pem(private=True)
        tx.execute(
            "INSERT INTO signing_keys (kid, alg, private_key, created_at) VALUES (?, ?, ?, ?)",
            (kid, alg, self._box.encrypt(pem), now),
        )

    def rotate(self) -> list[str]:
        """Add a new key per algorithm and retire the old ones; return the new kids."""
        now = time.time()
        new = [self._add(alg) for alg in ALGORITHMS]
        with self._db.transaction() as tx:
            for kid in new:
                row = tx.fetchone("SELECT alg FROM signing_keys WHERE kid = ?", (kid,))
                assert row is not None
                tx.execute(
                    "UPDATE signing_keys SET retired_at = ? "
                    "WHERE alg = ? AND kid <> ? AND retired_at IS NULL",
                    (now, row[0], kid),
                )
            tx.execute(
                "DELETE FROM signing_keys WHERE retired_at IS NOT NULL AND retired_at < ?",
                (now - RETIRED_PUBLISH_SECONDS,),
            )
        return new

    def _key(self, kid: str, alg: str, encrypted: str) -> Key:
        key = self._cache.get(kid)
        if key is None:
            key = _load(alg, kid, self._box.decrypt(encrypted))
            self._cache[kid] = key
        return key

    def active(self, alg: str) -> Key:
        """The current private key for an algorithm (created if missing)."""
        row = self._db.fetchone(
            "SELECT kid, private_key FROM signing_keys WHERE alg = ? AND retired_at IS NULL "
            "ORDER BY created_at DESC",
            (alg,),
        )
        if row is None:
            self._add(alg)
            return self.active(alg)
        return self._key(str(row[0]), alg, str(row[1]))

    def published(self) -> list[Key]:
        """Active keys and recently retired ones: everything a token may still be signed with."""
        rows = self._db.fetchall(
            "SELECT kid, alg, private_key FROM signing_keys "
            "WHERE retired_at IS NULL OR retired_at > ? ORDER BY created_at",
            (time.time() - RETIRED_PUBLISH_SECONDS,),
        )
        return [self._key(str(kid), str(alg), str(pem)) for kid, alg, pem in rows]

    def jwks(self) -> dict[str, Any]:
        return {"keys": [key.as_dict(private=False) for key in self.published()]}

    def list(self) -> list[tuple[str, str, float, float | None]]:
        rows = self._db.fetchall(
            "SELECT kid, alg, created_at, retired_at FROM signing_keys ORDER BY created_at"
        )
        return [(str(r[0]), str(r[1]), float(r[2]), r[3]) for r in rows]
