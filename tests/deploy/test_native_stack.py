"""The docker-compose stack, run natively: the processes compose would start, with compose's own
files. Redis with the compose command line, Passgate from the built wheel installed in a fresh
virtual environment (never the source tree) with config/passgate.env.example and
config/rules.example.yaml, and Caddy with caddy/Caddyfile.example; only hostnames, ports and
paths are swapped for local ones. Then a person in headless Chromium goes through it all.

`PASSGATE_BIN` names an installed `passgate` (CI builds the wheel once and sets it); without it
the test builds the wheel and its virtual environment itself.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis
import yaml
from playwright.sync_api import sync_playwright

from tests.browser import CHROMIUM_FLAGS, DOMAIN, Gate
from tests.conftest import (
    CADDY_DIR,
    ROOT,
    CaddyProcess,
    PassgateProcess,
    free_port,
    port_open,
    require_binary,
    wait_for,
)
from tests.upstream import EchoServer

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())
# One worker: without PASSGATE_BIN, `passgate_bin` builds the wheel in the source tree (build/,
# *.egg-info), and two workers building it there at once would corrupt each other's build.
pytestmark = pytest.mark.xdist_group("native-stack")


def build_passgate_from_wheel(folder: Path) -> Path:
    """`pip wheel` the project, install the wheel into a fresh venv, return its `passgate`."""
    wheels = folder / "wheel"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(ROOT)],
        check=True,
        timeout=300,
    )
    (wheel,) = wheels.glob("passgate-*.whl")
    venv = folder / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", str(wheel)], check=True, timeout=600
    )
    return venv / "bin" / "passgate"


@pytest.fixture(scope="module")
def passgate_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("PASSGATE_BIN")
    binary = Path(given) if given else build_passgate_from_wheel(tmp_path_factory.mktemp("wheel"))
    assert binary.is_file(), f"PASSGATE_BIN={binary} is not a file"
    return binary


def test_passgate_bin_runs_the_installed_wheel_not_the_source_tree(passgate_bin: Path) -> None:
    # -I: no current directory or PYTHONPATH on sys.path, as for the console script itself.
    python = passgate_bin.parent / "python"
    found = subprocess.run(
        [str(python), "-I", "-c", "import gateway; print(gateway.__file__)"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert "/site-packages/gateway/" in found and not found.startswith(str(ROOT / "gateway"))
    package = Path(found).parent  # with its package data
    assert (package / "templates" / "login.html").is_file()
    assert (package / "static" / "passkeys.js").is_file()


# --- the stack ----------------------------------------------------------------------------------


class ComposeRedis:
    """redis-server with compose's command line (append-only file), on a local port."""

    def __init__(self, folder: Path) -> None:
        self.binary = require_binary("redis-server", "apt-get install -y redis-server")
        self.port = free_port()
        self.folder = folder
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary, *arguments = COMPOSE["services"]["redis"]["command"]
        assert binary == "redis-server"
        local = ["--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder)]
        self.process = subprocess.Popen(
            [self.binary, *arguments, *local], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for(lambda: port_open(self.port), what="redis-server")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


def local_env_file(
    port: int, rules: Path, redis_url: str, storage: dict[str, str]
) -> dict[str, str]:
    """config/passgate.env.example with local hostnames; the DB_ lines uncommented for postgres."""
    values = {}
    for line in (ROOT / "config" / "passgate.env.example").read_text().splitlines():
        if storage and line.startswith("# DB_"):
            line = line.removeprefix("# ")
        if line and not line.startswith("#"):
            name, value = line.split("=", 1)
            values[name] = value
    assert values["APP_URL"] == "https://auth.example.com"
    values["APP_URL"] = f"http://auth.{DOMAIN}:{port}"
    values["COOKIE_DOMAIN"] = DOMAIN
    values["REDIS_URL"] = redis_url
    values["CONFIG_FILE"] = str(rules)
    values.update(storage)
    return values


def local_caddyfile(port: int, passgate_port: int, whoami_port: int, storage: Path) -> str:
    """caddy/Caddyfile.example, serving http://*.passgate.test:PORT and local upstreams."""
    text = (CADDY_DIR / "Caddyfile.example").read_text()
    replacements = {
        "{\n\temail admin@example.com\n}": "{\n\temail admin@example.com\n\tadmin off\n"
        f"\tauto_https off\n\thttp_port {port}\n\tstorage file_system {storage}\n}}",
        "passgate:1411": f"127.0.0.1:{passgate_port}",
        "whoami:80": f"127.0.0.1:{whoami_port}",
    }
    for old, new in replacements.items():
        assert old in text, old
        text = text.replace(old, new)
    sites = re.compile(r"^([a-z]+)\.example\.com \{$", re.M)
    assert len(sites.findall(text)) == 2
    return sites.sub(lambda m: f"http://{m.group(1)}.{DOMAIN}:{port} {{", text)


class NativeStack:
    def __init__(self, gate: Gate, redis_server: ComposeRedis) -> None:
        self.gate = gate
        self.redis = redis_server

    def whoami(self) -> str:
        return self.gate.url("whoami", "/headers?from=native")


@pytest.fixture
def start_stack(
    passgate_bin: Path, tmp_path: Path
) -> Iterator[Callable[[dict[str, str]], NativeStack]]:
    chromium = require_binary("chromium", "apt-get install -y chromium")
    stop: list[Callable[[], object]] = []

    def start(storage: dict[str, str]) -> NativeStack:
        port, passgate_port = free_port(), free_port()
        redis_server = ComposeRedis(tmp_path)
        redis_server.start()
        stop.append(redis_server.stop)

        rules = tmp_path / "rules.yaml"
        example = (ROOT / "config" / "rules.example.yaml").read_text()
        rules.write_text(example.replace("example.com", DOMAIN))
        env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}  # no PYTHONPATH: the wheel
        env.update(local_env_file(port, rules, redis_server.url, storage))
        env.update(
            {"HOST": "127.0.0.1", "PORT": str(passgate_port), "DATA_DIR": str(tmp_path / "data")}
        )
        passgate = PassgateProcess(env, passgate_port, command=[str(passgate_bin)])
        passgate.start()
        stop.append(passgate.stop)

        upstream = EchoServer().__enter__()
        stop.append(lambda: upstream.__exit__(None, None, None))
        folder = tmp_path / "caddy"
        folder.mkdir()
        shutil.copy(CADDY_DIR / "passgate.caddy", folder / "passgate.caddy")
        config = folder / "Caddyfile"
        config.write_text(local_caddyfile(port, passgate_port, upstream.port, folder / "data"))
        caddy = CaddyProcess(config, port, folder / "caddy.log")
        caddy.start()
        stop.append(caddy.stop)

        playwright = sync_playwright().start()
        stop.append(playwright.stop)
        origins = f"http://auth.{DOMAIN}:{port},http://whoami.{DOMAIN}:{port}"
        browser = playwright.chromium.launch(
            executable_path=chromium,
            args=[*CHROMIUM_FLAGS, f"--unsafely-treat-insecure-origin-as-secure={origins}"],
        )
        stop.append(browser.close)
        return NativeStack(Gate(passgate, port, browser), redis_server)

    yield start
    for action in reversed(stop):
        action()


@pytest.fixture(params=["sqlite", "postgres"])
def storage(request: pytest.FixtureRequest) -> dict[str, str]:
    """SQLite as compose starts by default; PostgreSQL as the `postgres` profile switches to
    (the env file's DB_ lines uncommented, pointed at the test database)."""
    if request.param == "sqlite":
        return {}
    return {"DB_CONNECTION_STRING": request.getfixturevalue("postgres_url")}


def test_setup_then_the_demo_service_needs_a_passkey_and_gets_the_identity(
    start_stack: Callable[[dict[str, str]], NativeStack], storage: dict[str, str]
) -> None:
    stack = start_stack(storage)
    alice = stack.gate.person(autofill=False)
    alice.page.goto(stack.whoami())
    alice.page.wait_for_url("**/setup")  # a fresh install: the first visitor sets up the admin
    alice.set_up_account("alice", "Alice Liddell")
    alice.sign_out()

    alice.page.goto(stack.whoami())
    alice.page.wait_for_url("**/login?rd=*")
    alice.sign_in_with_button(expect_url=stack.whoami())
    seen = json.loads(alice.page.inner_text("body"))
    assert seen["path"] == "/headers?from=native"
    assert seen["headers"]["remote-user"] == "alice"
    assert seen["headers"]["remote-name"] == "Alice Liddell"
    assert seen["headers"]["remote-groups"] == "admins"
    assert seen["headers"]["x-forwarded-host"] == f"whoami.{DOMAIN}:{stack.gate.port}"

    alice.sign_out()
    alice.page.goto(stack.whoami())
    alice.page.wait_for_url("**/login?rd=*")


def test_sessions_live_in_redis_and_survive_its_restart(
    start_stack: Callable[[dict[str, str]], NativeStack],
) -> None:
    stack = start_stack({})
    alice = stack.gate.person(autofill=False)
    alice.set_up_account("alice", "Alice")
    client = redis.Redis.from_url(stack.redis.url)
    assert client.dbsize() > 0  # REDIS_URL from the env file is where sessions went
    client.close()

    stack.redis.stop()
    stack.redis.start()  # same port and folder: the append-only file is read back
    time.sleep(1.2)  # past Passgate's one-second session cache: the answer comes from Redis
    alice.page.goto(stack.whoami())
    assert json.loads(alice.page.inner_text("body"))["headers"]["remote-user"] == "alice"
    assert httpx.get(stack.gate.passgate.url + "/readyz", timeout=5).status_code == 200
