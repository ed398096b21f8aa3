"""The deployment files agree with the code: every variable they set is a real setting, every
file they mount exists, and the container runs as a non-root user with a health check."""

from __future__ import annotations

import re

import yaml

from gateway.settings import Settings
from tests.conftest import ROOT

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())
SETTINGS = {name.upper() for name in Settings.model_fields}


def test_example_env_file_sets_only_real_settings() -> None:
    lines = (ROOT / "config" / "passgate.env.example").read_text().splitlines()
    names = {line.split("=", 1)[0] for line in lines if line and not line.startswith("#")}
    assert names and names <= SETTINGS, names - SETTINGS


def test_compose_runs_passgate_redis_and_caddy_with_postgres_as_a_profile() -> None:
    services = COMPOSE["services"]
    assert {"passgate", "redis", "caddy"} <= set(services)
    assert services["postgres"]["profiles"] == ["postgres"]
    assert "--appendonly" in services["redis"]["command"]  # sessions survive a restart


def test_compose_mounts_only_files_that_exist() -> None:
    for service in COMPOSE["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), source


def test_compose_volumes_are_declared() -> None:
    declared = set(COMPOSE.get("volumes", {}))
    for service in COMPOSE["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if not source.startswith(("./", "/")):
                assert source in declared, source


def test_container_is_non_root_with_a_health_check() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^USER (?!root)\S+", dockerfile, re.M)
    assert "HEALTHCHECK" in dockerfile and "passgate" in dockerfile.split("HEALTHCHECK", 1)[1]
    assert "EXPOSE 1411" in dockerfile
