"""The deployment files agree with the code. No Docker engine runs here, so these tests read
docker-compose.yaml, the Dockerfile, config/ and caddy/ and check every service, volume,
variable and port against the settings model Passgate actually reads (gateway/core/settings.py)."""

from __future__ import annotations

import re
from ipaddress import IPv4Address, IPv4Network
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import yaml

from gateway.core.settings import Settings, load_settings
from gateway.forward_auth.rules import load_rules
from tests.conftest import ROOT

COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
SETTINGS = {name.upper() for name in Settings.model_fields}
DOCKERFILE = (ROOT / "Dockerfile").read_text()
# Read by docker/run-as-puid, not by Passgate: whose ids the process takes.
CONTAINER_VARIABLES = {"PUID", "PGID"}
# Files the README has you copy from an example before the first `docker compose up`.
COPIED_FROM = {
    "config/passgate.env": "config/passgate.env.example",
    "config/rules.yaml": "config/rules.example.yaml",
    "caddy/Caddyfile": "caddy/Caddyfile.example",
}
_INTERPOLATION = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


def interpolate(value: str) -> str:
    """Compose's `${NAME:-default}` with nothing set in the environment."""
    return _INTERPOLATION.sub(lambda match: match.group(2) or "", value)


def shipped(path: str) -> str:
    """The file in the repository behind a compose path: itself or the example it is copied from."""
    relative = path.removeprefix("./")
    return COPIED_FROM.get(relative, relative)


def env_example(*, uncomment_postgres: bool = False) -> dict[str, str]:
    values = {}
    for line in (ROOT / "config" / "passgate.env.example").read_text().splitlines():
        if uncomment_postgres and line.startswith("# DB_"):
            line = line.removeprefix("# ")
        if line and not line.startswith("#"):
            name, value = line.split("=", 1)
            values[name] = value
    return values


def commented_env_example_names() -> set[str]:
    text = (ROOT / "config" / "passgate.env.example").read_text()
    return set(re.findall(r"^# ([A-Z_]+)=", text, re.M))


def dockerfile_env() -> dict[str, str]:
    values: dict[str, str] = {}
    for block in re.findall(r"^ENV ((?:.*\\\n)*.*)$", DOCKERFILE, re.M):
        values.update(re.findall(r"(\w+)=(\S+)", block))
    return values


def passgate_environment() -> dict[str, str]:
    """What Passgate's container sees: image ENV, then env_file, then `environment:`."""
    service = SERVICES["passgate"]
    values = dockerfile_env()
    values.update(env_example())
    values.update({k: interpolate(str(v)) for k, v in service.get("environment", {}).items()})
    return values


def mounts(service: str) -> dict[str, str]:
    """target → source of a service's volumes."""
    result = {}
    for volume in SERVICES[service].get("volumes", []):
        source, target = volume.split(":")[:2]
        result[target] = source
    return result


def caddyfile() -> str:
    return (ROOT / "caddy" / "Caddyfile.example").read_text()


def caddy_sites() -> dict[str, str]:
    """Site address → its block, for the top-level sites of the compose Caddyfile."""
    return dict(re.findall(r"^([a-z0-9.-]+\.[a-z]+) \{\n(.*?)^\}", caddyfile(), re.M | re.S))


# --- config/ ----------------------------------------------------------------------------------


def test_example_env_file_sets_only_real_settings() -> None:
    names = set(env_example()) | commented_env_example_names()
    assert names and names <= SETTINGS, names - SETTINGS


def test_example_env_file_is_accepted_by_the_settings_model() -> None:
    settings = load_settings(**{k.lower(): v for k, v in env_example().items()})
    assert settings.app_url == "https://auth.example.com" and settings.secure_cookies
    assert settings.rp_id == "example.com"


def test_example_env_file_switches_to_postgres_when_its_db_lines_are_uncommented() -> None:
    values = env_example(uncomment_postgres=True)
    settings = load_settings(**{k.lower(): v for k, v in values.items()})
    assert settings.db_provider == "postgres"


def test_example_rules_file_loads() -> None:
    rules = load_rules(ROOT / "config" / "rules.example.yaml")
    assert rules.rules


# --- docker-compose.yaml ------------------------------------------------------------------------


def test_compose_runs_passgate_redis_caddy_and_a_demo_service_with_postgres_as_a_profile() -> None:
    assert set(SERVICES) == {"passgate", "redis", "caddy", "whoami", "postgres"}
    assert SERVICES["postgres"]["profiles"] == ["postgres"]
    assert all("profiles" not in SERVICES[name] for name in SERVICES if name != "postgres")


def test_redis_keeps_sessions_across_a_restart() -> None:
    redis = SERVICES["redis"]
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert mounts("redis")["/data"] in COMPOSE["volumes"]


def test_passgate_environment_holds_only_settings_and_the_container_ids() -> None:
    service = SERVICES["passgate"]
    names = set(service.get("environment", {})) | set(env_example())
    assert names <= SETTINGS | CONTAINER_VARIABLES, names - SETTINGS - CONTAINER_VARIABLES
    assert set(service.get("environment", {})) & CONTAINER_VARIABLES == CONTAINER_VARIABLES
    run_as_puid = (ROOT / "docker" / "run-as-puid").read_text()
    assert all(f"${{{name}:-1000}}" in run_as_puid for name in CONTAINER_VARIABLES)


def test_passgate_container_environment_is_valid_settings() -> None:
    environment = passgate_environment()
    settings = load_settings(**{k.lower(): v for k, v in environment.items() if k in SETTINGS})
    assert settings.host == "0.0.0.0"
    assert str(settings.data_dir) == "/app/data"


def test_compose_env_files_and_mounts_exist_in_the_repository() -> None:
    for name, service in SERVICES.items():
        env_files = service.get("env_file", [])
        for path in [env_files] if isinstance(env_files, str) else env_files:
            assert (ROOT / shipped(path)).is_file(), (name, path)
        for source in mounts(name).values():
            if source.startswith("./"):
                assert (ROOT / shipped(source)).is_file(), (name, source)


def test_copied_files_are_ignored_by_git() -> None:
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert all("/" + path in ignored for path in COPIED_FROM)


def test_named_volumes_are_declared_and_every_declared_volume_is_used() -> None:
    used = {
        source
        for name in SERVICES
        for source in mounts(name).values()
        if not source.startswith(("./", "/"))
    }
    assert used == set(COMPOSE["volumes"])


def test_passgate_data_volume_is_its_data_dir() -> None:
    data_dir = passgate_environment()["DATA_DIR"]
    assert mounts("passgate")[data_dir] == "passgate-data"
    assert f'VOLUME ["{data_dir}"]' in DOCKERFILE


def test_config_file_setting_names_the_mounted_rules_file() -> None:
    config_file = passgate_environment()["CONFIG_FILE"]
    source = mounts("passgate")[config_file]
    assert shipped(source) == "config/rules.example.yaml"


def test_redis_url_names_the_redis_service_on_its_port() -> None:
    url = urlsplit(passgate_environment()["REDIS_URL"])
    assert url.scheme == "redis" and url.hostname == "redis" and url.port == 6379
    assert "--port" not in SERVICES["redis"]["command"]  # so Redis listens on 6379


def test_postgres_connection_string_matches_the_postgres_service() -> None:
    url = urlsplit(env_example(uncomment_postgres=True)["DB_CONNECTION_STRING"])
    postgres = SERVICES["postgres"]["environment"]
    assert url.scheme == "postgresql" and url.hostname == "postgres" and url.port == 5432
    assert url.username == postgres["POSTGRES_USER"]
    assert url.password == postgres["POSTGRES_PASSWORD"]
    assert url.path == "/" + postgres["POSTGRES_DB"]


def compose_network() -> tuple[IPv4Network, IPv4Network]:
    """The default network's fixed subnet and the range Docker hands out addresses from."""
    (pool,) = COMPOSE["networks"]["default"]["ipam"]["config"]
    return IPv4Network(pool["subnet"]), IPv4Network(pool["ip_range"])


def caddy_address() -> IPv4Address:
    return IPv4Address(SERVICES["caddy"]["networks"]["default"]["ipv4_address"])


def test_compose_network_has_a_fixed_subnet_outside_dockers_default_pools() -> None:
    subnet, dynamic = compose_network()
    assert dynamic.subnet_of(subnet)
    for pool in ("172.16.0.0/12", "192.168.0.0/16"):  # Docker's default address pools
        assert not subnet.overlaps(IPv4Network(pool)), pool


def test_caddy_has_a_fixed_address_no_other_container_can_be_given() -> None:
    subnet, dynamic = compose_network()
    assert caddy_address() in subnet and caddy_address() not in dynamic
    assert caddy_address() != subnet.network_address + 1  # Docker's gateway
    assert [name for name in SERVICES if "networks" in SERVICES[name]] == ["caddy"]


def test_passgate_believes_forwarded_headers_from_caddy_and_no_other_container() -> None:
    environment = passgate_environment()
    settings = load_settings(**{k.lower(): v for k, v in environment.items() if k in SETTINGS})
    subnet, dynamic = compose_network()
    assert settings.trust_proxy
    assert caddy_address() in settings.trusted_networks
    assert subnet.network_address + 1 not in settings.trusted_networks
    assert not any(network.overlaps(dynamic) for network in settings.trusted_networks.networks)


def test_passgate_exposes_the_port_it_listens_on() -> None:
    port = passgate_environment()["PORT"]
    assert port == str(Settings.model_fields["port"].default)
    assert [str(p) for p in SERVICES["passgate"]["expose"]] == [port]
    assert f"EXPOSE {port}" in DOCKERFILE


def test_caddy_publishes_http_and_https() -> None:
    assert {"80:80", "443:443", "443:443/udp"} == set(SERVICES["caddy"]["ports"])
    assert all("ports" not in SERVICES[name] for name in SERVICES if name != "caddy")


# --- caddy/Caddyfile.example, as compose mounts it ------------------------------------------------


def test_caddy_mounts_the_snippet_beside_the_caddyfile_that_imports_it() -> None:
    targets = mounts("caddy")
    assert shipped(targets["/etc/caddy/Caddyfile"]) == "caddy/Caddyfile.example"
    (imported,) = re.findall(r"^import (\S+)$", caddyfile(), re.M)
    snippet = targets[str(PurePosixPath("/etc/caddy") / imported)]
    assert snippet == "./caddy/passgate.caddy"


def test_caddyfile_upstreams_are_compose_services_on_their_ports() -> None:
    exposed = {name: [str(p) for p in spec.get("expose", [])] for name, spec in SERVICES.items()}
    upstreams = re.findall(r"(?:reverse_proxy|import passgate) (\S+):(\d+)$", caddyfile(), re.M)
    assert upstreams
    for host, port in upstreams:
        assert host in SERVICES, host
        assert port in exposed[host], (host, port)


def test_caddyfile_serves_passgate_at_app_url_and_every_site_under_cookie_domain() -> None:
    environment = passgate_environment()
    sites = caddy_sites()
    app_host = urlsplit(environment["APP_URL"]).hostname
    assert app_host in sites and "reverse_proxy passgate:1411" in sites[app_host]
    protected = [site for site, block in sites.items() if "import passgate " in block]
    assert protected == ["whoami.example.com"]
    for site in sites:
        assert site.endswith("." + environment["COOKIE_DOMAIN"]), site


def test_every_protected_site_is_allowed_by_the_example_rules() -> None:
    rules = (ROOT / "config" / "rules.example.yaml").read_text()
    sites = caddy_sites()
    assert "domain: auth.example.com\n    policy: bypass" in rules
    assert "whoami.example.com" in sites and 'domain: "*.example.com"\n    policy: allow' in rules


# --- Dockerfile ---------------------------------------------------------------------------------


def test_container_drops_root_for_puid_before_passgate_runs() -> None:
    assert 'ENTRYPOINT ["passgate"]' in DOCKERFILE
    assert 'exec run-as-puid /opt/passgate/bin/passgate "$@"' in DOCKERFILE
    assert "COPY docker/run-as-puid /usr/local/bin/run-as-puid" in DOCKERFILE
    assert not re.search(r"^USER ", DOCKERFILE, re.M)  # root only until run-as-puid drops it
    assert dockerfile_env()["PUID"] == dockerfile_env()["PGID"] == "1000"


def test_container_health_check_is_passgate_healthcheck() -> None:
    assert re.search(r'^HEALTHCHECK .* CMD \["passgate", "healthcheck"\]$', DOCKERFILE, re.M)


def test_container_image_is_slim_and_ships_the_wheel_only() -> None:
    assert re.findall(r"^FROM (\S+)", DOCKERFILE, re.M) == ["python:3.11-slim"] * 2
    assert "COPY --from=build /opt/passgate /opt/passgate" in DOCKERFILE
    assert "pip install --no-cache-dir ." in DOCKERFILE


def test_readme_walkthrough_copies_exactly_the_files_compose_needs() -> None:
    readme = (ROOT / "README.md").read_text()
    copies = re.findall(r"^\s*cp (\S+) (\S+)$", readme, re.M)
    assert {target: source for source, target in copies} == COPIED_FROM
