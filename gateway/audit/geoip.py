"""Country and city of an IP address, from a local MaxMind GeoLite2 City file.

The operator downloads the file (MAXMIND_DB_PATH); Passgate only reads it, never fetches it.
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

    def __init__(self, reader: maxminddb.Reader) -> None:
        self._reader = reader

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
        if not ip:
            return None
        try:
            record = self._reader.get(ip)
        except (ValueError, InvalidDatabaseError):
            return None
        location = Location(_english(record, "country"), _english(record, "city"))
        return location if location.country or location.city else None

    def close(self) -> None:
        self._reader.close()
