"""GeoLite2 City downloads with MAXMIND_LICENSE_KEY, against a local stand-in for MaxMind's
server: the database lands in the data folder, atomically, from the archive's one .mmdb member;
a stale file is fetched again and every GeoIP switches to it; failures keep the old file, are
counted and logged without the licence key, and never stop Passgate."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gateway.audit import geolite
from gateway.audit.geoip import GeoIP, Location
from gateway.audit.geolite import GeoLiteDownloadFailed, GeoLiteUpdater, download_geolite
from gateway.core import metrics
from gateway.core.settings import MAXMIND_GEOLITE_CITY_URL, Settings
from gateway.services import build_services
from tests.geolite_server import ArchiveServer, city_mmdb, geolite_archive, tar_gz

KEY = "licence-key-0123456789"
WELLINGTON = Location("New Zealand", "Wellington")


@pytest.fixture
def archive(tmp_path: Path) -> bytes:
    return geolite_archive(city_mmdb(tmp_path / "source.mmdb"))


@pytest.fixture
def maxmind(archive: bytes) -> Iterator[ArchiveServer]:
    with ArchiveServer(archive) as server:
        yield server


@pytest.fixture
def key_settings(
    make_settings: Callable[..., Settings], maxmind: ArchiveServer
) -> Callable[..., Settings]:
    def make(**overrides: object) -> Settings:
        values: dict[str, object] = {
            "maxmind_license_key": KEY,
            "geolite_db_url": maxmind.url + "/geoip_download?license_key=%s&suffix=tar.gz",
            "db_provider": "sqlite",
        }
        return make_settings(**{**values, **overrides})

    return make


def _failures() -> float:
    return metrics.GEOLITE_DOWNLOADS.labels("failed")._value.get()


def test_default_url_is_maxmind_permalink_with_the_key_as_a_query_parameter() -> None:
    assert MAXMIND_GEOLITE_CITY_URL.startswith("https://download.maxmind.com/")
    assert "edition_id=GeoLite2-City" in MAXMIND_GEOLITE_CITY_URL
    assert "license_key=%s" in MAXMIND_GEOLITE_CITY_URL


def test_with_a_licence_key_the_file_lives_in_the_data_folder(
    key_settings: Callable[..., Settings],
) -> None:
    settings = key_settings()
    assert settings.geolite_path == settings.data_dir / "GeoLite2-City.mmdb"


def test_an_empty_licence_key_downloads_nothing(key_settings: Callable[..., Settings]) -> None:
    services = build_services(key_settings(maxmind_license_key=""))
    assert services.geolite is None and services.geo is None
    asyncio.run(services.close())


def test_missing_file_is_downloaded_with_the_key_and_looked_up_at_once(
    key_settings: Callable[..., Settings], maxmind: ArchiveServer
) -> None:
    services = build_services(key_settings())
    assert services.geo is not None and services.geolite is not None
    assert services.geo.lookup("198.51.100.9") is None  # nothing downloaded yet
    assert services.geolite.refresh() is True
    assert maxmind.paths == [f"/geoip_download?license_key={KEY}&suffix=tar.gz"]
    assert services.geo.lookup("198.51.100.9") == WELLINGTON
    leftovers = [p.name for p in services.geolite.path.parent.iterdir() if "geolite" in p.name]
    assert leftovers == [], "no temporary file is left behind"
    asyncio.run(services.close())


def test_a_fresh_file_is_not_downloaded_again(
    key_settings: Callable[..., Settings], maxmind: ArchiveServer
) -> None:
    settings = key_settings()
    settings.data_dir.mkdir(parents=True)
    city_mmdb(settings.data_dir / "GeoLite2-City.mmdb", city="Auckland")
    services = build_services(settings)
    assert services.geolite is not None and services.geo is not None
    assert services.geolite.refresh() is False
    assert maxmind.paths == []
    assert services.geo.lookup("198.51.100.9") == Location("New Zealand", "Auckland")
    asyncio.run(services.close())


def test_a_stale_file_is_replaced_and_the_open_lookup_switches_to_it(
    key_settings: Callable[..., Settings], maxmind: ArchiveServer
) -> None:
    settings = key_settings(geolite_max_age_days=14)
    settings.data_dir.mkdir(parents=True)
    old = city_mmdb(settings.data_dir / "GeoLite2-City.mmdb", city="Auckland")
    fifteen_days_ago = time.time() - 15 * 86400
    os.utime(old, (fifteen_days_ago, fifteen_days_ago))
    services = build_services(settings)
    assert services.geo is not None and services.geolite is not None
    assert services.geo.lookup("198.51.100.9") == Location("New Zealand", "Auckland")
    assert services.geolite.refresh() is True
    assert services.geo.lookup("198.51.100.9") == WELLINGTON
    asyncio.run(services.close())


def test_a_worker_picks_up_a_file_another_worker_downloaded(
    key_settings: Callable[..., Settings], maxmind: ArchiveServer, tmp_path: Path
) -> None:
    settings = key_settings()
    settings.data_dir.mkdir(parents=True)
    target = city_mmdb(settings.data_dir / "GeoLite2-City.mmdb", city="Auckland")
    geo = GeoIP.open(target)
    updater = GeoLiteUpdater(settings, geo)
    newer = city_mmdb(tmp_path / "newer.mmdb")
    os.replace(newer, target)
    os.utime(target, (time.time() + 5, time.time() + 5))  # a different mtime, as a rename gives
    assert updater.refresh() is False
    assert geo.lookup("198.51.100.9") == WELLINGTON


def test_only_the_mmdb_member_is_written_and_paths_in_the_archive_are_ignored(
    tmp_path: Path,
) -> None:
    mmdb = city_mmdb(tmp_path / "source.mmdb").read_bytes()
    hostile = tar_gz(
        {
            "../../escaped.txt": b"outside",
            str(tmp_path / "absolute.txt"): b"absolute",
            "../GeoLite2-City.mmdb": mmdb,
        }
    )
    target = tmp_path / "data" / "GeoLite2-City.mmdb"
    with ArchiveServer(hostile) as server:
        download_geolite(server.url, target)
    assert GeoIP.open(target).lookup("198.51.100.1") == WELLINGTON
    assert not (tmp_path / "escaped.txt").exists()
    assert not (tmp_path.parent / "escaped.txt").exists()
    assert not (tmp_path / "absolute.txt").exists()
    assert sorted(p.name for p in target.parent.iterdir()) == ["GeoLite2-City.mmdb"]


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (b"", 401, "HTTP 401"),
        (b"not a tar.gz at all", 200, "not a readable tar.gz"),
        (tar_gz({"README.txt": b"no database here"}), 200, "holds no GeoLite2-City.mmdb"),
        (tar_gz({"x/GeoLite2-City.mmdb": b"junk" * 100}), 200, "is no MaxMind database"),
    ],
)
def test_a_failed_download_leaves_the_target_untouched(
    tmp_path: Path, body: bytes, status: int, reason: str
) -> None:
    target = city_mmdb(tmp_path / "GeoLite2-City.mmdb", city="Auckland")
    before = target.read_bytes()
    with ArchiveServer(body, status) as server, pytest.raises(GeoLiteDownloadFailed, match=reason):
        download_geolite(server.url, target)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["GeoLite2-City.mmdb"]


def test_an_archive_over_the_size_cap_is_refused(
    tmp_path: Path, archive: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(geolite, "MAX_ARCHIVE_BYTES", len(archive) - 1)
    with ArchiveServer(archive) as server, pytest.raises(GeoLiteDownloadFailed, match="larger"):
        download_geolite(server.url, tmp_path / "GeoLite2-City.mmdb")
    assert not (tmp_path / "GeoLite2-City.mmdb").exists()


def test_a_database_over_the_size_cap_is_refused(
    tmp_path: Path, archive: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(geolite, "MAX_DATABASE_BYTES", 100)
    with ArchiveServer(archive) as server, pytest.raises(GeoLiteDownloadFailed, match="larger"):
        download_geolite(server.url, tmp_path / "GeoLite2-City.mmdb")


def test_an_unreachable_server_is_a_download_failure(tmp_path: Path) -> None:
    with ArchiveServer() as server:
        url = server.url
    with pytest.raises(GeoLiteDownloadFailed, match="ConnectError"):
        download_geolite(url, tmp_path / "GeoLite2-City.mmdb")


def test_failure_is_logged_without_the_key_counted_and_not_fatal(
    key_settings: Callable[..., Settings],
    maxmind: ArchiveServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    maxmind.status = 500
    services = build_services(key_settings())
    assert services.geolite is not None and services.geo is not None
    before = _failures()
    with caplog.at_level(logging.INFO, logger="passgate.geoip"):
        assert services.geolite.refresh() is False
    assert _failures() == before + 1
    assert "GeoLite2 download from http://127.0.0.1:" in caplog.text
    assert "/geoip_download failed: HTTP 500" in caplog.text
    assert KEY not in caplog.text
    assert services.geo.lookup("198.51.100.9") is None
    asyncio.run(services.close())


def test_an_unreadable_downloaded_file_is_fetched_again_not_a_start_up_error(
    key_settings: Callable[..., Settings], maxmind: ArchiveServer
) -> None:
    settings = key_settings()
    settings.data_dir.mkdir(parents=True)
    (settings.data_dir / "GeoLite2-City.mmdb").write_bytes(b"truncated")
    services = build_services(settings)
    assert services.geolite is not None and services.geo is not None
    assert services.geolite.refresh() is True
    assert services.geo.lookup("198.51.100.9") == WELLINGTON
    asyncio.run(services.close())


@pytest.mark.anyio
async def test_background_refresh_downloads_once_the_file_goes_stale(
    key_settings: Callable[..., Settings], maxmind: ArchiveServer
) -> None:
    services = build_services(key_settings())
    assert services.geolite is not None and services.geo is not None
    task = asyncio.create_task(services.geolite.run(interval=0.05))
    try:
        for _ in range(200):
            if services.geo.lookup("198.51.100.9") is not None:
                break
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
    assert services.geo.lookup("198.51.100.9") == WELLINGTON
    assert len(maxmind.paths) == 1, "a fresh file is not fetched again"
    await services.close()
