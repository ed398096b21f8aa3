"""Country and city of an IP address, from a local MaxMind GeoLite2 City file.

The operator downloads the file (MAXMIND_DB_PATH), or Passgate does with MAXMIND_LICENSE_KEY
(gateway/audit/geolite.py); a newer file replaces the open one without a restart (`reload`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import maxminddb
from maxminddb.errors import InvalidDatabaseError

from gateway.core.errors import SettingsInvalid

log = logging.getLogger("passgate.geoip")


@dataclass(frozen=True, slots=True)
class Location:
    country: str
    city: str


def _english(record: Any, key: str) -> str:
    part = record.get(key) if isinstance(record, dict) else None
    if not isinstance(part, dict):
        return ""
    names = part.get("names")
    name = names.get("en") if isinstance(names, dict) else None
    return str(name or part.get("iso_code") or "")


class GeoIP:
    """Look addresses up in an open .mmdb file (memory-mapped, safe to share across threads)."""

    def __init__(self, reader: maxminddb.Reader | None) -> None:
        self._reader = reader

    @classmethod
    def empty(cls) -> GeoIP:
        """No database yet (a download is pending): every lookup answers None."""
        return cls(None)

    @property
    def loaded(self) -> bool:
        return self._reader is not None

    def reload(self, path: Path) -> None:
        """Swap in the database at `path`. Raises SettingsInvalid if it cannot be read; the
        open one then stays. The old reader is left to the garbage collector, since a lookup on
        another thread may still be using it."""
        self._reader = GeoIP.open(path)._reader

    @classmethod
    def open(cls, path: Path) -> GeoIP:
        """Open the file; raise SettingsInvalid naming MAXMIND_DB_PATH if it is missing or not a
        MaxMind database."""
        try:
            reader = maxminddb.open_database(str(path))
        except (OSError, InvalidDatabaseError, ValueError) as exc:
            raise SettingsInvalid(
                f"MAXMIND_DB_PATH: cannot read {str(path)!r} as a MaxMind .mmdb file ({exc})"
            ) from None
        log.info("GeoIP: %s (%s)", path, reader.metadata().database_type)
        return cls(reader)

    def lookup(self, ip: str) -> Location | None:
        """Where `ip` is, or None for unknown, private or malformed addresses."""
        reader = self._reader
        if not ip or reader is None:
            return None
        try:
            record = reader.get(ip)
        except (ValueError, InvalidDatabaseError):
            return None
        location = Location(_english(record, "country"), _english(record, "city"))
        return location if location.country or location.city else None

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
