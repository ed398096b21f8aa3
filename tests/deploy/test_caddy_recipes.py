"""Each recipe in caddy/recipes/, run by a real Caddy in front of a real Passgate, over HTTPS as
written. Only names and addresses are swapped for local ones: example.com becomes passgate.test,
upstreams become a local echo server, and Caddy's ACME certificates come from its own local CA
(`local_certs`, which the client trusts) on free ports instead of 80/443."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.conftest import (
    CADDY_DIR,
    CaddyProcess,
    PassgateProcess,
    free_port,
    port_open,
    wait_for,
)
from tests.proxy_client import BROWSER, ProxyClient
from tests.upstream import EchoServer

RECIPES = CADDY_DIR / "recipes"
DOMAIN = "passgate.test"
UPSTREAM = re.compile(r"\b(?:app|immich|memos|wiki|jellyfin):\d+\b")


def localise(
    recipe: str, folder: Path, https_port: int, http_port: int, passgate: int, upstream: int
) -> str:
    """The recipe with local names, addresses and ports, and Caddy's test-only global options."""
    options = (
        f"\tadmin off\n\tskip_install_trust\n\thttp_port {http_port}\n\thttps_port {https_port}\n"
        f"\tstorage file_system {folder / 'data'}\n"
    )
    if "tls internal" not in recipe:
        options += "\tlocal_certs\n"  # instead of Let's Encrypt
    text = recipe.replace("example.com", DOMAIN).replace("passgate:1411", f"127.0.0.1:{passgate}")
    text = UPSTREAM.sub(f"127.0.0.1:{upstream}", text)
    if re.search(r"^\{$", text, re.M):
        return re.sub(r"^\{$", "{\n" + options.rstrip("\n"), text, count=1, flags=re.M)
    return "{\n" + options + "}\n\n" + text


@dataclass
class RecipeStack:
    client: ProxyClient
    plain: ProxyClient
    passgate: PassgateProcess
    caddy: CaddyProcess
    domain: str

    def host(self, name: str) -> str:
        return f"{name}.{self.domain}"

    def sign_in(self, username: str = "alice") -> str:
        result = self.passgate.cli("users", "add", username, "--name", "Alice Liddell")
        assert result.returncode == 0, result.stderr
        return self.client.sign_in(self.passgate, username, self.host("auth"))

    def login_redirect(self, host: str, path: str) -> str:
        target = quote(self.client.url(self.host(host), path), safe="")
        return self.client.url(self.host("auth"), "/login?rd=") + target


@pytest.fixture
def run_recipe(
    start_passgate: Callable[..., PassgateProcess], tmp_path: Path
) -> Iterator[Callable[..., RecipeStack]]:
    running: list[CaddyProcess] = []
    upstream = EchoServer().__enter__()

    def run(
        name: str, domain: str = DOMAIN, passgate: PassgateProcess | None = None
    ) -> RecipeStack:
        https_port, http_port = free_port(), free_port()
        if passgate is None:
            passgate = start_passgate(
                app_url=f"https://auth.{domain}:{https_port}",
                cookie_domain=domain,
                trust_proxy="true",
            )
        folder = tmp_path / name
        (folder / "recipes").mkdir(parents=True)
        shutil.copy(CADDY_DIR / "passgate.caddy", folder / "passgate.caddy")
        config = folder / "recipes" / name
        recipe = (RECIPES / name).read_text()
        config.write_text(
            localise(recipe, folder, https_port, http_port, passgate.port, upstream.port)
        )
        caddy = CaddyProcess(config, https_port, folder / "caddy.log")
        caddy.start()
        running.append(caddy)
        wait_for(lambda: port_open(http_port), what="caddy's http port")
        root = folder / "data" / "pki" / "authorities" / "local" / "root.crt"
        client = ProxyClient("https", https_port, root)
        stack = RecipeStack(client, ProxyClient("http", http_port), passgate, caddy, domain)

        # Caddy issues each site's certificate in the background: wait for every one.
        addresses = re.findall(r"^([a-z0-9][a-z0-9., -]*) \{$", config.read_text(), re.M)
        hosts = [host for line in addresses for host in re.split(r"[, ]+", line) if "." in host]
        assert hosts
        for host in hosts:
            wait_for(
                lambda host=host: stack.client.get(host, "/healthz").status_code > 0,
                what=f"a certificate for {host} (log: {caddy.log_path})",
            )
        return stack

    yield run
    for caddy in running:
        caddy.stop()
    upstream.__exit__(None, None, None)


def test_recipes_are_the_ones_the_readme_lists() -> None:
    readme = (CADDY_DIR.parent / "README.md").read_text()
    names = sorted(path.name for path in RECIPES.glob("*.Caddyfile"))
    assert names == [
        "bypass-paths.Caddyfile",
        "lan-tls-internal.Caddyfile",
        "many-subdomains.Caddyfile",
        "passgate-https.Caddyfile",
        "whole-site.Caddyfile",
    ]
    for name in names:
        assert f"caddy/recipes/{name}" in readme, name


# --- whole-site ---------------------------------------------------------------------------------


def test_whole_site_sends_anonymous_browsers_to_https_login_and_back(
    run_recipe: Callable[..., RecipeStack],
) -> None:
    stack = run_recipe("whole-site.Caddyfile")
    response = stack.client.get(stack.host("app"), "/photos?year=2024", headers=BROWSER)
    assert response.status_code == 302
    assert response.headers["location"] == stack.login_redirect("app", "/photos?year=2024")


def test_whole_site_passes_the_identity_and_drops_forged_headers(
    run_recipe: Callable[..., RecipeStack],
) -> None:
    stack = run_recipe("whole-site.Caddyfile")
    cookie = stack.sign_in()
    response = stack.client.get(
        stack.host("app"), "/", cookie=cookie, headers={"Remote-Groups": "admins"}
    )
    assert response.status_code == 200
    seen = response.json()["headers"]
    assert seen["remote-user"] == "alice" and seen["remote-name"] == "Alice Liddell"
    assert seen.get("remote-groups", "") == ""  # alice is in no group: the forged value is gone
    assert seen["x-forwarded-proto"] == "https"


def test_whole_site_redirects_plain_http_to_https(run_recipe: Callable[..., RecipeStack]) -> None:
    stack = run_recipe("whole-site.Caddyfile")
    response = stack.plain.get(stack.host("app"), "/x")
    assert response.status_code in (301, 308)
    # Caddy leaves out the https port: 443 in real life, a free port in this test.
    assert response.headers["location"] == f"https://{stack.host('app')}/x"


# --- bypass-paths ---------------------------------------------------------------------------------


def test_bypassed_paths_reach_the_app_without_login_or_identity(
    run_recipe: Callable[..., RecipeStack],
) -> None:
    stack = run_recipe("bypass-paths.Caddyfile")
    forged = {"Remote-User": "admin", "Remote-Groups": "admins"}
    for method, path in (
        ("POST", "/api/webhook"),
        ("POST", "/api/webhook/github?delivery=1"),
        ("GET", "/healthz"),
    ):
        response = stack.client.request(method, stack.host("app"), path, headers=forged)
        assert response.status_code == 200, (path, response.text)
        seen = response.json()
        assert seen["path"] == path
        assert "remote-user" not in seen["headers"] and "remote-groups" not in seen["headers"]


def test_every_other_path_needs_a_login(run_recipe: Callable[..., RecipeStack]) -> None:
    stack = run_recipe("bypass-paths.Caddyfile")
    for path in ("/", "/api/webhooks-admin", "/api/webhookx", "/healthz/x"):
        response = stack.client.get(stack.host("app"), path, headers=BROWSER)
        assert response.status_code == 302, path
        assert response.headers["location"] == stack.login_redirect("app", path)


@pytest.mark.parametrize(
    "target",
    [
        "/admin/../api/webhook",
        "/admin/%2e%2e/api/webhook",
        "/admin/..%2fapi/webhook",
        "/admin;/../api/webhook",
        "/admin/./../healthz",
        "/x//../healthz",
    ],
)
def test_dot_segments_do_not_ride_a_bypassed_path_to_the_app(
    run_recipe: Callable[..., RecipeStack], target: str
) -> None:
    # Caddy's path matcher resolves them, the app gets them as sent: they must ask Passgate.
    stack = run_recipe("bypass-paths.Caddyfile")
    status, response = stack.client.raw("POST", stack.host("app"), target)
    assert status in (400, 401), response[:300]
    assert b'"path"' not in response  # the echo app never answered


def test_bypassed_paths_work_while_passgate_is_down(
    run_recipe: Callable[..., RecipeStack],
) -> None:
    stack = run_recipe("bypass-paths.Caddyfile")
    stack.passgate.stop()
    assert stack.client.get(stack.host("app"), "/healthz").status_code == 200
    assert stack.client.get(stack.host("app"), "/", headers=BROWSER).status_code >= 500


# --- many-subdomains ------------------------------------------------------------------------------


def test_one_sign_in_covers_every_subdomain(run_recipe: Callable[..., RecipeStack]) -> None:
    stack = run_recipe("many-subdomains.Caddyfile")
    for name in ("photos", "notes", "wiki"):
        response = stack.client.get(stack.host(name), "/", headers=BROWSER)
        assert response.headers["location"] == stack.login_redirect(name, "/")
    cookie = stack.sign_in()
    for name in ("photos", "notes", "wiki"):
        response = stack.client.get(stack.host(name), "/", cookie=cookie)
        assert response.status_code == 200
        assert response.json()["headers"]["remote-user"] == "alice"
        assert response.json()["headers"]["host"] == stack.client.url(stack.host(name))[8:-1]
    # Hosts are case-insensitive to Caddy's site and host matchers and to Passgate alike.
    response = stack.client.get(stack.host("photos").upper(), "/", cookie=cookie)
    assert response.status_code == 200 and response.json()["headers"]["remote-user"] == "alice"


# --- passgate-https -------------------------------------------------------------------------------


def test_passgate_behind_caddy_serves_https_with_secure_cookies(
    run_recipe: Callable[..., RecipeStack],
) -> None:
    stack = run_recipe("passgate-https.Caddyfile")
    assert stack.sign_in()  # the sign-in form's Origin check passes behind the proxy
    page = stack.client.get(stack.host("auth"), "/login", headers=BROWSER)
    assert page.status_code == 200
    csrf_cookie = page.headers["set-cookie"]
    assert csrf_cookie.startswith("__Host-passgate_csrf=") and "Secure" in csrf_cookie


def test_passgate_behind_caddy_redirects_plain_http(
    run_recipe: Callable[..., RecipeStack],
) -> None:
    stack = run_recipe("passgate-https.Caddyfile")
    response = stack.plain.get(stack.host("auth"), "/login")
    assert response.status_code in (301, 308)
    assert response.headers["location"] == f"https://{stack.host('auth')}/login"


# --- lan-tls-internal -----------------------------------------------------------------------------


def test_lan_recipe_protects_a_service_with_certificates_from_caddys_own_ca(
    run_recipe: Callable[..., RecipeStack],
) -> None:
    recipe = (RECIPES / "lan-tls-internal.Caddyfile").read_text()
    assert "\tlocal_certs" not in recipe and recipe.count("\ttls internal\n") == 2
    stack = run_recipe("lan-tls-internal.Caddyfile", domain=f"home.{DOMAIN}")
    response = stack.client.get(stack.host("jellyfin"), "/web", headers=BROWSER)
    assert response.headers["location"] == stack.login_redirect("jellyfin", "/web")
    cookie = stack.sign_in()
    response = stack.client.get(stack.host("jellyfin"), "/web", cookie=cookie)
    assert response.json()["headers"]["remote-user"] == "alice"
