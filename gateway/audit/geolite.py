"""Downloading MaxMind's GeoLite2 City database with MAXMIND_LICENSE_KEY, as Pocket-ID does.

At start-up the file is fetched when missing or older than GEOLITE_MAX_AGE_DAYS, then checked
again in the background; each worker reloads its GeoIP when the file on disk changes. A download
is a tar.gz from GEOLITE_DB_URL holding one `GeoLite2-City.mmdb`: only that member is read, by
name, size-capped, into a temporary file beside the target, checked as a MaxMind database, then
renamed over the target. A failure is logged and counted, never fatal: lookups keep the old file
(or answer nothing) until the next attempt. The URL carries the licence key, so it is logged
without its query.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tarfile
import tempfile
import time
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import httpx
import maxminddb
from maxminddb.errors import InvalidDatabaseError

from gateway.audit.geoip import GeoIP
from gateway.core import metrics
from gateway.core.errors import PassgateError, SettingsInvalid
from gateway.core.settings import Settings

log = logging.getLogger("passgate.geoip")

MEMBER = "GeoLite2-City.mmdb"
TIMEOUT = httpx.Timeout(30.0, read=120.0)
MAX_ARCHIVE_BYTES = 200 << 20  # the real archive is about 30 MB
MAX_DATABASE_BYTES = 300 << 20
RETRY_SECONDS = 3600.0


class GeoLiteDownloadFailed(PassgateError):
    """The GeoLite2 download failed; the message says why, without the licence key."""


def redacted(url: str) -> str:
    """The URL without its query (where MaxMind's licence key travels) or user info."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path}"


def download_url(settings: Settings) -> str:
    """GEOLITE_DB_URL with `%s` replaced by the licence key (Pocket-ID's convention)."""
    return settings.geolite_db_url.replace("%s", settings.maxmind_license_key or "")


def is_stale(path: Path, max_age_days: int, now: float | None = None) -> bool:
    """True when `path` is missing or was last written more than `max_age_days` ago."""
    try:
        written = path.stat().st_mtime
    except OSError:
        return True
    return (now if now is not None else time.time()) - written > max_age_days * 86400


def _fetch_archive(url: str, into: Path) -> None:
    """Stream the archive at `url` into the file `into`, refusing more than MAX_ARCHIVE_BYTES."""
    size = 0
    try:
        with (
            httpx.stream("GET", url, timeout=TIMEOUT, follow_redirects=True) as response,
            into.open("wb") as out,
        ):
            if response.status_code != 200:
                raise GeoLiteDownloadFailed(f"HTTP {response.status_code}")
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > MAX_ARCHIVE_BYTES:
                    raise GeoLiteDownloadFailed(f"archive larger than {MAX_ARCHIVE_BYTES} bytes")
                out.write(chunk)
    except httpx.HTTPError as exc:
        raise GeoLiteDownloadFailed(type(exc).__name__) from None


def _extract_database(archive: Path, into: Path) -> None:
    """Copy the archive's GeoLite2-City.mmdb member (a regular file, at any folder depth)
    into the file `into`; nothing else in the archive is read or written."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            member = next(
                (m for m in tar if m.isfile() and PurePosixPath(m.name).name == MEMBER), None
            )
            if member is None:
                raise GeoLiteDownloadFailed(f"the archive holds no {MEMBER}")
            if member.size > MAX_DATABASE_BYTES:
                raise GeoLiteDownloadFailed(f"{MEMBER} larger than {MAX_DATABASE_BYTES} bytes")
            source = tar.extractfile(member)
            if source is None:
                raise GeoLiteDownloadFailed(f"cannot read {MEMBER} in the archive")
            with source, into.open("wb") as out:
                while chunk := source.read(1 << 20):
                    out.write(chunk)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise GeoLiteDownloadFailed(f"not a readable tar.gz ({type(exc).__name__})") from None


def download_geolite(url: str, target: Path) -> None:
    """Download the GeoLite2 City database from `url` and atomically replace `target` with it.
    Raises GeoLiteDownloadFailed; `target` is then untouched."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".geolite-") as work:
        archive, database = Path(work) / "download.tar.gz", Path(work) / MEMBER
        _fetch_archive(url, archive)
        _extract_database(archive, database)
        try:
            maxminddb.open_database(str(database)).close()
        except (OSError, InvalidDatabaseError, ValueError):
            raise GeoLiteDownloadFailed(f"{MEMBER} in the archive is no MaxMind database") from None
        os.replace(database, target)


class GeoLiteUpdater:
    """Keeps the downloaded file fresh and the open GeoIP on the newest file."""

    def __init__(self, settings: Settings, geo: GeoIP) -> None:
        assert settings.geolite_path is not None
        self.path = settings.geolite_path
        self._url = download_url(settings)
        self._max_age_days = settings.geolite_max_age_days
        self._geo = geo
        self._loaded_mtime = self._mtime() if geo.loaded else None

    def _mtime(self) -> float | None:
        try:
            return self.path.stat().st_mtime
        except OSError:
            return None

    def refresh(self) -> bool:
        """Download when the file is missing or stale, then reload GeoIP if the file changed
        (here or by another worker). True when a download was tried and succeeded. Never
        raises: failures are logged and counted."""
        downloaded = False
        if not self._geo.loaded or is_stale(self.path, self._max_age_days):
            try:
                download_geolite(self._url, self.path)
            except GeoLiteDownloadFailed as exc:
                metrics.GEOLITE_DOWNLOADS.labels("failed").inc()
                log.warning("GeoLite2 download from %s failed: %s", redacted(self._url), exc)
            else:
                metrics.GEOLITE_DOWNLOADS.labels("ok").inc()
                log.info("GeoLite2 City downloaded to %s", self.path)
                downloaded = True
        mtime = self._mtime()
        if mtime is not None and mtime != self._loaded_mtime:
            try:
                self._geo.reload(self.path)
                self._loaded_mtime = mtime
            except SettingsInvalid as exc:
                log.warning("GeoLite2 file not loaded: %s", exc)
        return downloaded

    async def run(self, interval: float = RETRY_SECONDS) -> None:
        """Check every `interval` seconds until cancelled (a stale file is fetched again; a
        failed download is retried at the next check)."""
        while True:
            await asyncio.sleep(interval)
            await asyncio.to_thread(self.refresh)
