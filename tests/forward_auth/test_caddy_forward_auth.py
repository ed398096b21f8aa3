"""End to end through a real Caddy running caddy/passgate.caddy, a real Passgate process and a
real Redis: what a browser, an API client and an upstream service actually see."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx
import pytest

from tests.conftest import CaddyProcess, PassgateProcess, free_port, wait_for
from tests.upstream import EchoServer

BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8", "Sec-Fetch-Mode": "navigate"}
RULES = """
default_policy: deny
rules:
  - name: webhooks
    domain: hooks.example.com
    resources: ["^/api/webhook"]
    policy: bypass
  - name: admin-only
    domain: admin.example.com
    subject: ["group:admins"]
    policy: allow
  - name: everyone
    domain: ["app.example.com", "hooks.example.com"]
    policy: allow
"""


def csrf_cookie(response: httpx.Response) -> str:
    match = re.search(r"passgate_csrf=([^;]+)", response.headers.get("set-cookie", ""))
    assert match is not None, response.headers
    return match.group(1)


@dataclass
class Stack:
    caddy: CaddyProcess
    passgate: PassgateProcess
    upstream: EchoServer
    port: int

    def url(self, host: str, path: str = "/") -> str:
        return f"http://{host}.example.com:{self.port}{path}"

    def get(self, host: str, path: str = "/", **kwargs: object) -> httpx.Response:
        """A request to Caddy as if DNS pointed host.example.com at it."""
        headers = dict(kwargs.pop("headers", {}) or {})  # type: ignore[call-overload]
        headers["Host"] = f"{host}.example.com:{self.port}"
        method = str(kwargs.pop("method", "GET"))
        return httpx.request(
            method,
            f"http://127.0.0.1:{self.port}{path}",
            headers=headers,
            follow_redirects=False,
            timeout=10,
            **kwargs,  # type: ignore[arg-type]
        )

    def login(self, username: str, return_to: str) -> str:
        """Sign in with a one-time link the way a person would; return the session cookie."""
        link = self.passgate.cli("one-time-access-token", username)
        assert link.returncode == 0, link.stderr
        path = urlsplit(link.stdout.strip()).path
        page = self.get("auth", path + "?rd=" + quote(return_to, safe=""), headers=BROWSER)
        assert page.status_code == 200
        csrf = csrf_cookie(page)
        fields = dict(re.findall(r'name="(\w+)" value="([^"]*)"', page.text))
        done = self.get(
            "auth",
            "/login/code",
            method="POST",
            headers={"Cookie": f"passgate_csrf={csrf}", "Origin": self.url("auth")[:-1]},
            data={**fields, "csrf_token": csrf},
        )
        assert done.status_code == 303, done.text
        assert done.headers["location"] == return_to
        set_cookie = done.headers["set-cookie"]
        assert "Domain=example.com" in set_cookie and "HttpOnly" in set_cookie
        assert "SameSite=lax" in set_cookie
        match = re.search(r"passgate_session=([^;]+)", set_cookie)
        assert match is not None
        return match.group(1)


@pytest.fixture
def stack(
    start_passgate: Callable[..., PassgateProcess],
    start_caddy: Callable[[str, int], CaddyProcess],
    redis_url: str,
    tmp_path: Path,
) -> Iterator[Stack]:
    port = free_port()
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    passgate = start_passgate(
        app_url=f"http://auth.example.com:{port}",
        cookie_domain="example.com",
        redis_url=redis_url,
        config_file=str(rules),
    )
    for args in (
        ("groups", "add", "admins"),
        (
            "users",
            "add",
            "alice",
            "--email",
            "alice@example.com",
            "--name",
            "Alice Liddell",
            "--group",
            "admins",
        ),
        ("users", "add", "bob"),
    ):
        result = passgate.cli(*args)
        assert result.returncode == 0, result.stderr
    with EchoServer() as upstream:
        up = f"127.0.0.1:{upstream.port}"
        pg = f"127.0.0.1:{passgate.port}"
        sites = (
            "\n".join(
                f"http://{name}.example.com:{port} {{\n"
                f"\timport passgate {pg}\n\treverse_proxy {up}\n}}\n"
                for name in ("app", "admin", "hooks")
            )
            + f"http://auth.example.com:{port} {{\n\treverse_proxy {pg}\n}}\n"
        )
        yield Stack(start_caddy(sites, port), passgate, upstream, port)


def test_anonymous_browser_is_sent_to_login_and_back_after_a_one_time_link(stack: Stack) -> None:
    target = stack.url("app", "/photos?album=2024")
    first = stack.get("app", "/photos?album=2024", headers=BROWSER)
    assert first.status_code == 302
    assert first.headers["location"] == stack.url("auth", "/login?rd=") + quote(target, safe="")
    cookie = stack.login("alice", target)
    back = stack.get(
        "app", "/photos?album=2024", headers={**BROWSER, "Cookie": f"passgate_session={cookie}"}
    )
    assert back.status_code == 200
    assert back.json()["path"] == "/photos?album=2024"


def test_json_client_without_session_gets_401_not_a_redirect(stack: Stack) -> None:
    response = stack.get("app", "/api/items", headers={"Accept": "application/json"})
    assert response.status_code == 401
    assert "location" not in response.headers
    assert response.headers["www-authenticate"].startswith("Passgate")
    assert response.json()["error"] == "unauthorized"


def test_non_get_request_without_session_gets_401(stack: Stack) -> None:
    response = stack.get("app", "/form", method="POST", headers=BROWSER)
    assert response.status_code == 401


def test_allowed_user_reaches_upstream_with_identity_headers(stack: Stack) -> None:
    cookie = stack.login("alice", stack.url("admin"))
    response = stack.get("admin", "/", headers={"Cookie": f"passgate_session={cookie}"})
    assert response.status_code == 200
    seen = response.json()["headers"]
    assert seen["remote-user"] == "alice"
    assert seen["remote-email"] == "alice@example.com"
    assert seen["remote-name"] == "Alice Liddell"
    assert seen["remote-groups"] == "admins"


def test_user_outside_allowed_group_gets_403_page_naming_the_service(stack: Stack) -> None:
    cookie = stack.login("bob", stack.url("app"))
    response = stack.get("admin", "/", headers={**BROWSER, "Cookie": f"passgate_session={cookie}"})
    assert response.status_code == 403
    assert "admin.example.com" in response.text
    assert (
        stack.get("app", "/", headers={"Cookie": f"passgate_session={cookie}"}).status_code == 200
    )


def test_forged_cookie_is_refused(stack: Stack) -> None:
    cookie = stack.login("alice", stack.url("app"))
    forged = cookie[:-4] + ("AAAA" if not cookie.endswith("AAAA") else "BBBB")
    response = stack.get("app", "/", headers={**BROWSER, "Cookie": f"passgate_session={forged}"})
    assert response.status_code == 302


def test_logged_out_cookie_is_refused_on_the_next_request(stack: Stack) -> None:
    cookie = stack.login("alice", stack.url("app"))
    assert (
        stack.get("app", "/", headers={"Cookie": f"passgate_session={cookie}"}).status_code == 200
    )
    page = stack.get("auth", "/logout", headers={**BROWSER, "Cookie": f"passgate_session={cookie}"})
    csrf = csrf_cookie(page)
    out = stack.get(
        "auth",
        "/logout",
        method="POST",
        headers={
            "Cookie": f"passgate_session={cookie}; passgate_csrf={csrf}",
            "Origin": stack.url("auth")[:-1],
        },
        data={"csrf_token": csrf, "rd": stack.url("app", "/bye")},
    )
    assert out.status_code == 303
    assert out.headers["location"] == stack.url("app", "/bye")
    # Logout through the same process evicts its cache at once; other processes within 1 s.
    response = stack.get("app", "/", headers={**BROWSER, "Cookie": f"passgate_session={cookie}"})
    assert response.status_code == 302


def test_logout_without_csrf_token_changes_nothing(stack: Stack) -> None:
    cookie = stack.login("alice", stack.url("app"))
    out = stack.get(
        "auth", "/logout", method="POST", headers={"Cookie": f"passgate_session={cookie}"}, data={}
    )
    assert out.status_code == 403
    assert (
        stack.get("app", "/", headers={"Cookie": f"passgate_session={cookie}"}).status_code == 200
    )


def test_expired_session_is_refused(
    start_passgate: Callable[..., PassgateProcess],
    start_caddy: Callable[[str, int], CaddyProcess],
    redis_url: str,
) -> None:
    port = free_port()
    passgate = start_passgate(
        app_url=f"http://auth.example.com:{port}",
        cookie_domain="example.com",
        redis_url=redis_url,
        session_duration="2s",
    )
    assert passgate.cli("users", "add", "alice").returncode == 0
    with EchoServer() as upstream:
        pg = f"127.0.0.1:{passgate.port}"
        sites = (
            f"http://app.example.com:{port} {{\n\timport passgate {pg}\n"
            f"\treverse_proxy 127.0.0.1:{upstream.port}\n}}\n"
            f"http://auth.example.com:{port} {{\n\treverse_proxy {pg}\n}}\n"
        )
        stack = Stack(start_caddy(sites, port), passgate, upstream, port)
        cookie = stack.login("alice", stack.url("app"))
        assert (
            stack.get("app", "/", headers={"Cookie": f"passgate_session={cookie}"}).status_code
            == 200
        )
        time.sleep(3.2)
        response = stack.get(
            "app", "/", headers={**BROWSER, "Cookie": f"passgate_session={cookie}"}
        )
        assert response.status_code == 302


@pytest.mark.parametrize("host,path", [("app", "/"), ("hooks", "/api/webhook/github")])
def test_spoofed_identity_headers_never_reach_the_upstream(
    stack: Stack, host: str, path: str
) -> None:
    spoof = {
        "Remote-User": "evil",
        "Remote-Email": "evil@evil.com",
        "Remote-Name": "Evil",
        "Remote-Groups": "admins",
    }
    if host == "app":
        cookie = stack.login("bob", stack.url("app"))
        spoof["Cookie"] = f"passgate_session={cookie}"
    response = stack.get(host, path, headers=spoof)
    assert response.status_code == 200
    seen = response.json()["headers"]
    for name in ("remote-user", "remote-email", "remote-name", "remote-groups"):
        assert seen.get(name, "") in ("", "bob"), (name, seen.get(name))
        assert "evil" not in seen.get(name, "") and "{" not in seen.get(name, "")


def test_bypass_path_needs_no_login(stack: Stack) -> None:
    assert stack.get("hooks", "/api/webhook/x", method="POST").status_code == 200
    assert stack.get("hooks", "/other", headers=BROWSER).status_code == 302


def test_redis_outage_fails_closed_with_503_and_recovers(
    stack: Stack, redis_server: object
) -> None:
    from tests.conftest import RedisServer

    assert isinstance(redis_server, RedisServer)
    cookie = stack.login("alice", stack.url("app"))
    redis_server.stop()
    try:
        time.sleep(1.2)  # past the one-second session cache
        down = stack.get("app", "/", headers={"Cookie": f"passgate_session={cookie}"})
        assert down.status_code == 503
    finally:
        redis_server.start()
    headers = {"Accept": "application/json", "Cookie": f"passgate_session={cookie}"}
    # Passgate reconnects on the next request, which on a loaded machine can outlast its 0.5 s
    # Redis timeout once or twice: wait for the 503s to end rather than for a fixed moment.
    wait_for(lambda: stack.get("app", "/", headers=headers).status_code != 503, what="recovery")
    # A restarted Redis kept nothing (no persistence in tests): the session is gone, refused.
    assert stack.get("app", "/", headers=headers).status_code == 401
    log = stack.passgate.log_path.read_text()
    assert log.count("Redis is unreachable") == 1
