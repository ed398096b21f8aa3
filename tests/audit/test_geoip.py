"""GeoIP from a local MaxMind file: lookups, audit events carrying country and city, and a clear
start-up error for a missing or unreadable file. The test database is written here with
mmdb-writer in the GeoLite2 City layout, and read back by MaxMind's own reader."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from gateway.audit.geoip import GeoIP, Location
from gateway.audit.log import Actor
from gateway.core.errors import SettingsInvalid
from gateway.core.settings import Settings
from gateway.services import Services, build_services
from tests.web_client import WebClient, audit_rows


def _place(country: str, iso: str, city: str | None) -> dict[str, object]:
    record: dict[str, object] = {"country": {"iso_code": iso, "names": {"en": country}}}
    if city is not None:
        record["city"] = {"names": {"en": city, "de": city + " (de)"}}
    return record


@pytest.fixture
def city_db(tmp_path: Path) -> Path:
    """A tiny GeoLite2-City-shaped database: two documentation networks, one without a city."""
    writer = MMDBWriter(
        ip_version=6, ipv4_compatible=True, database_type="GeoLite2-City", languages=["en"]
    )
    writer.insert_network(IPSet(["198.51.100.0/24"]), _place("New Zealand", "NZ", "Wellington"))
    writer.insert_network(IPSet(["203.0.113.0/24"]), _place("Iceland", "IS", None))
    writer.insert_network(IPSet(["2001:db8::/32"]), _place("Japan", "JP", "Osaka"))
    path = tmp_path / "GeoLite2-City.mmdb"
    writer.to_db_file(str(path))
    return path


def test_lookup_finds_country_and_city(city_db: Path) -> None:
    geo = GeoIP.open(city_db)
    assert geo.lookup("198.51.100.23") == Location("New Zealand", "Wellington")
    assert geo.lookup("2001:db8::1") == Location("Japan", "Osaka")


def test_lookup_without_a_city_gives_the_country_alone(city_db: Path) -> None:
    assert GeoIP.open(city_db).lookup("203.0.113.5") == Location("Iceland", "")


def test_unknown_private_and_malformed_addresses_have_no_location(city_db: Path) -> None:
    geo = GeoIP.open(city_db)
    assert geo.lookup("192.0.2.1") is None
    assert geo.lookup("10.1.2.3") is None
    assert geo.lookup("not an ip") is None
    assert geo.lookup("") is None


def test_missing_file_is_a_start_up_error_naming_the_setting(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(maxmind_db_path=str(tmp_path / "nope.mmdb"))
    with pytest.raises(SettingsInvalid, match="MAXMIND_DB_PATH"):
        build_services(settings)


def test_a_file_that_is_not_a_maxmind_database_is_a_start_up_error(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    junk = tmp_path / "GeoLite2-City.mmdb"
    junk.write_bytes(b"this is not a MaxMind database" * 10)
    with pytest.raises(SettingsInvalid, match="MAXMIND_DB_PATH: cannot read"):
        build_services(make_settings(maxmind_db_path=str(junk)))


def test_empty_setting_means_no_geoip(make_settings: Callable[..., Settings]) -> None:
    assert make_settings(maxmind_db_path="").maxmind_db_path is None


@pytest.fixture
def geo_services(
    make_settings: Callable[..., Settings], storage_env: dict[str, str], city_db: Path
) -> Iterator[Services]:
    """Services with MAXMIND_DB_PATH set, on each durable store."""
    built = build_services(make_settings(**storage_env, maxmind_db_path=str(city_db)))
    yield built
    asyncio.run(built.close())


def test_audit_event_carries_country_and_city_of_the_actor(geo_services: Services) -> None:
    entry = geo_services.audit.record("sign_in", actor=Actor("user", ip="198.51.100.40"))
    (row,) = geo_services.db.fetchall("SELECT details FROM audit_log WHERE id = ?", (entry.id,))
    assert row[0] == '{"city": "Wellington", "country": "New Zealand"}'


def test_audit_event_from_an_unknown_address_has_no_location(geo_services: Services) -> None:
    entry = geo_services.audit.record("sign_in", actor=Actor("user", ip="192.0.2.1"))
    assert dict(entry.details) == {}


@pytest.fixture
async def geo_live(
    make_settings: Callable[..., Settings], city_db: Path
) -> AsyncIterator[Services]:
    built = build_services(make_settings(db_provider="sqlite", maxmind_db_path=str(city_db)))
    yield built
    await built.close()


@pytest.mark.anyio
async def test_passkey_sign_in_is_recorded_with_the_country_and_city(geo_live: Services) -> None:
    async with WebClient(geo_live, "198.51.100.77") as client:
        await client.set_up("alice")
        assert (await client.sign_in()).status_code == 200
    row = audit_rows(geo_live, "sign_in")[-1]
    assert row["details"]["country"] == "New Zealand"
    assert row["details"]["city"] == "Wellington"
