"""The request log: one JSON object per request with LOG_JSON, request ids, and no secrets."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from gateway.core.logs import JsonFormatter
from gateway.core.settings import Settings
from gateway.services import Services, build_services
from gateway.web.app import create_app
from tests.conftest import PassgateProcess

ORIGINAL = {
    "X-Forwarded-Method": "GET",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "app.example.com",
    "X-Forwarded-Uri": "/reports/42?token=s3cr3t-query-token",
}
PROXY = "10.0.0.5"  # Caddy on another host, named in TRUSTED_PROXIES where a test trusts it


class Lines:
    """Everything logged while a test runs, as JSON objects."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    def all(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines()]

    def access(self) -> list[dict[str, Any]]:
        return [entry for entry in self.all() if entry["logger"] == "passgate.access"]


@pytest.fixture
def lines() -> Iterator[Lines]:
    captured = Lines()
    handler = logging.StreamHandler(captured.stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # the test's own client, not Passgate
    yield captured
    root.removeHandler(handler)
    root.setLevel(level)
    logging.getLogger("httpx").setLevel(logging.NOTSET)


@pytest.fixture
def build(make_settings: Callable[..., Settings]) -> Iterator[Callable[..., Services]]:
    built: list[Services] = []

    def make(**overrides: Any) -> Services:
        services = build_services(make_settings(**overrides))
        if services.users.count_users() == 0:
            services.users.create_user("alice", "alice@example.com", "Alice", ())
        built.append(services)
        return services

    yield make
    for services in built:
        asyncio.run(services.close())


def call(
    services: Services,
    path: str,
    peer: str = "127.0.0.1",
    signed_in: bool = False,
    method: str = "GET",
    **headers: str,
) -> httpx.Response:
    async def run() -> httpx.Response:
        sent = {k.replace("_", "-"): v for k, v in headers.items()}
        if signed_in:
            user = services.users.get_user_by_name("alice")
            cookie, _ = await services.sessions.start(user.id, "127.0.0.1", "test")
            sent["Cookie"] = f"{services.settings.cookie_name}={cookie}"
        transport = httpx.ASGITransport(app=create_app(services), client=(peer, 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://passgate") as client:
            return await client.request(method, path, headers=sent)

    return asyncio.run(run())


def test_page_request_logs_one_json_line_with_every_field(
    build: Callable[..., Services], lines: Lines
) -> None:
    services = build()
    response = call(services, "/account?tab=passkeys", signed_in=True, Accept="text/html")
    [entry] = lines.access()
    assert entry["level"] == "info"
    assert entry["request_id"] == response.headers["x-request-id"]
    assert entry["method"] == "GET"
    assert entry["host"] == "passgate"
    assert entry["path"] == "/account"  # never the query string
    assert entry["status"] == response.status_code == 200
    assert isinstance(entry["duration_ms"], float) and entry["duration_ms"] >= 0
    assert entry["user"] == "alice"
    assert entry["client_ip"] == "127.0.0.1"
    assert "decision" not in entry


def test_anonymous_page_request_logs_no_user(build: Callable[..., Services], lines: Lines) -> None:
    call(build(), "/login")
    [entry] = lines.access()
    assert entry["user"] is None and entry["status"] == 200


def test_request_id_is_generated_when_none_is_given(
    build: Callable[..., Services], lines: Lines
) -> None:
    first = call(build(), "/healthz").headers["x-request-id"]
    second = call(build(), "/healthz").headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", first) and first != second


def test_request_id_from_a_trusted_proxy_is_kept_and_echoed(
    build: Callable[..., Services], lines: Lines
) -> None:
    services = build(trust_proxy=True, trusted_proxies=PROXY)
    response = call(services, "/healthz", peer=PROXY, X_Request_Id="caddy-7f3a-11ee")
    assert response.headers["x-request-id"] == "caddy-7f3a-11ee"
    assert lines.access()[0]["request_id"] == "caddy-7f3a-11ee"


def test_request_id_from_an_untrusted_peer_is_replaced(
    build: Callable[..., Services], lines: Lines
) -> None:
    services = build(trust_proxy=True)
    response = call(services, "/healthz", peer="203.0.113.9", X_Request_Id="chosen-by-client")
    assert response.headers["x-request-id"] != "chosen-by-client"


def test_request_id_is_not_taken_from_proxies_without_trust_proxy(
    build: Callable[..., Services], lines: Lines
) -> None:
    services = build(trusted_proxies=PROXY)
    response = call(services, "/healthz", peer=PROXY, X_Request_Id="caddy-7f3a-11ee")
    assert response.headers["x-request-id"] != "caddy-7f3a-11ee"


def test_malformed_request_id_is_replaced(build: Callable[..., Services], lines: Lines) -> None:
    services = build(trust_proxy=True, trusted_proxies=PROXY)
    forged = "abc\\u0000 injected=1"
    response = call(services, "/healthz", peer=PROXY, X_Request_Id=forged)
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


def test_client_ip_comes_from_x_forwarded_for_of_a_trusted_proxy(
    build: Callable[..., Services], lines: Lines
) -> None:
    services = build(trust_proxy=True, trusted_proxies=PROXY)
    call(services, "/healthz", peer=PROXY, X_Forwarded_For="198.51.100.4")
    assert lines.access()[0]["client_ip"] == "198.51.100.4"


def test_other_log_lines_during_a_request_carry_its_request_id(
    build: Callable[..., Services], lines: Lines
) -> None:
    services = build(app_url="http://auth.example.com")

    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=create_app(services), client=("127.0.0.1", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://passgate") as client:
            csrf = csrf_of(await client.get("/login/code"))
            return await client.post(
                "/login/code",
                data={"code": "WRONG-CODE", "csrf_token": csrf},
                headers={"Origin": services.settings.origin, "Cookie": f"passgate_csrf={csrf}"},
            )

    response = asyncio.run(run())
    assert response.status_code == 400
    rejected = [e for e in lines.all() if "login code rejected" in e["message"]]
    assert rejected and rejected[0]["request_id"] == response.headers["x-request-id"]


def test_login_link_path_is_logged_without_its_code(
    build: Callable[..., Services], lines: Lines
) -> None:
    call(build(), "/lc/ABCD1234EFGH")
    [entry] = lines.access()
    assert entry["path"] == "/lc/…"
    assert "ABCD1234EFGH" not in json.dumps(lines.all())


def test_forward_auth_is_not_logged_per_request_by_default(
    build: Callable[..., Services], lines: Lines
) -> None:
    response = call(build(), "/api/auth/caddy", signed_in=True, **ORIGINAL)
    assert response.status_code == 200
    assert lines.access() == []
    assert "x-request-id" not in response.headers


def test_forward_auth_line_with_access_log_all_names_decision_and_protected_url(
    build: Callable[..., Services], lines: Lines
) -> None:
    services = build(access_log="all")
    response = call(
        services, "/api/auth/caddy", signed_in=True, X_Forwarded_For="198.51.100.4", **ORIGINAL
    )
    [entry] = lines.access()
    assert entry["decision"] == "allow" and entry["status"] == 200
    assert entry["url_host"] == "app.example.com"
    assert entry["url_path"] == "/reports/42"
    assert entry["user"] == "alice"
    assert entry["client_ip"] == "198.51.100.4"
    assert entry["path"] == "/api/auth/caddy"
    assert entry["request_id"] == response.headers["x-request-id"]
    assert "s3cr3t-query-token" not in lines.stream.getvalue()


@pytest.mark.parametrize(
    ("headers", "decision", "status"),
    [
        ({"Accept": "text/html", "Sec-Fetch-Mode": "navigate"}, "redirect", 302),
        ({}, "unauthorized", 401),
    ],
)
def test_forward_auth_line_for_anonymous_visitors(
    build: Callable[..., Services],
    lines: Lines,
    headers: dict[str, str],
    decision: str,
    status: int,
) -> None:
    services = build(access_log="all")
    response = call(
        services,
        "/api/auth/caddy",
        **{k.replace("-", "_"): v for k, v in {**ORIGINAL, **headers}.items()},
    )
    assert response.status_code == status
    [entry] = lines.access()
    assert entry["decision"] == decision and entry["status"] == status and entry["user"] is None


def test_forward_auth_keeps_the_proxys_request_id(
    build: Callable[..., Services], lines: Lines
) -> None:
    services = build(access_log="all")
    response = call(services, "/api/auth/caddy", X_Request_Id="from-caddy-1", **ORIGINAL)
    assert response.headers["x-request-id"] == "from-caddy-1"
    assert lines.access()[0]["request_id"] == "from-caddy-1"


def test_access_log_off_logs_no_request_lines(build: Callable[..., Services], lines: Lines) -> None:
    call(build(access_log="off"), "/login")
    assert lines.access() == []


def test_plain_text_line_reads_as_a_sentence(build: Callable[..., Services]) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    logger = logging.getLogger("passgate.access")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        response = call(build(access_log="all"), "/api/auth/caddy", **ORIGINAL)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
    rid = response.headers["x-request-id"]
    assert stream.getvalue().strip() == (
        "passgate.access: forward-auth unauthorized app.example.com/reports/42 401 "
        + re.search(r"401 (\S+ms)", stream.getvalue()).group(1)  # type: ignore[union-attr]
        + f" user=- ip=127.0.0.1 id={rid}"
    )


# --- real flows, real process: nothing secret reaches the log ---------------------------------


def csrf_of(response: httpx.Response) -> str:
    match = re.search(r"passgate_csrf=([^;]+)", response.headers.get("set-cookie", ""))
    assert match is not None, response.headers
    return match.group(1)


def run_real_flows(passgate: PassgateProcess, metrics_token: str) -> list[str]:
    """Sign in with a one-time link (and fail once with a wrong code), pass forward-auth, open
    the account page, scrape /metrics, run the OIDC code flow with a refresh, sign out. Returns
    every secret that went over the wire."""
    secrets_seen: list[str] = [metrics_token, "test-encryption-key-0123456789"]
    assert passgate.cli("users", "add", "alice", "--email", "alice@example.com").returncode == 0
    added = passgate.cli("clients", "add", "Memos", "--redirect-uri", "https://rp.example/cb")
    client_id = re.search(r"client_id:\s+(\S+)", added.stdout)
    client_secret = re.search(r"client_secret:\s+(\S+)", added.stdout)
    assert client_id is not None and client_secret is not None, added.stdout
    secrets_seen.append(client_secret.group(1))
    http = httpx.Client(base_url=passgate.url, follow_redirects=False, timeout=10)

    # Sign in with a one-time link (the code is in the path of the link).
    link = passgate.cli("one-time-access-token", "alice").stdout.strip()
    code = urlsplit(link).path.rsplit("/", 1)[-1]
    secrets_seen.append(code)
    page = http.get(urlsplit(link).path)
    csrf = csrf_of(page)
    secrets_seen.append(csrf)
    signed_in = http.post(
        "/login/code",
        data={"code": code, "csrf_token": csrf},
        headers={"Cookie": f"passgate_csrf={csrf}", "Origin": passgate.url},
    )
    assert signed_in.status_code == 303, signed_in.text
    session = re.search(r"passgate_session=([^;]+)", signed_in.headers["set-cookie"])
    assert session is not None
    secrets_seen.append(session.group(1))
    cookies = f"passgate_session={session.group(1)}; passgate_csrf={csrf}"

    # A wrong code, forward-auth with the cookie, the account page, metrics with the token.
    http.post(
        "/login/code",
        data={"code": "NOPE-NOPE", "csrf_token": csrf},
        headers={"Cookie": f"passgate_csrf={csrf}", "Origin": passgate.url},
    )
    assert http.get("/api/auth/caddy", headers={**ORIGINAL, "Cookie": cookies}).status_code == 200
    assert http.get("/account", headers={"Cookie": cookies}).status_code == 200
    scraped = http.get("/metrics", headers={"Authorization": f"Bearer {metrics_token}"})
    assert scraped.status_code == 200

    # OpenID Connect: consent, code, token, userinfo, refresh.
    query = urlencode(
        {
            "client_id": client_id.group(1),
            "redirect_uri": "https://rp.example/cb",
            "response_type": "code",
            "scope": "openid profile offline_access",
            "state": "state-1234",
            "nonce": "nonce-1234",
            "prompt": "consent",
        }
    )
    consent = http.get(f"/authorize?{query}", headers={"Cookie": cookies})
    assert consent.status_code == 200, consent.text
    allowed = http.post(
        f"/authorize?{query}",
        data={"decision": "allow", "csrf_token": csrf},
        headers={"Cookie": cookies, "Origin": passgate.url},
    )
    assert allowed.status_code in (302, 303), allowed.text
    auth_code = parse_qs(urlsplit(allowed.headers["location"]).query)["code"][0]
    secrets_seen.append(auth_code)
    basic = (client_id.group(1), client_secret.group(1))
    tokens = http.post(
        "/api/oidc/token",
        data={
            "grant_type": "authorization_code",
            "code": auth_code,
            "redirect_uri": "https://rp.example/cb",
        },
        auth=basic,
    ).json()
    assert "access_token" in tokens, tokens
    secrets_seen += [tokens["access_token"], tokens["id_token"]]
    info = http.get(
        "/api/oidc/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert info.status_code == 200
    refreshed = http.post(
        "/api/oidc/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=basic,
    ).json()
    assert "access_token" in refreshed, refreshed
    secrets_seen += [tokens["refresh_token"], refreshed["access_token"], refreshed["refresh_token"]]
    logout = http.post(
        "/logout", data={"csrf_token": csrf}, headers={"Cookie": cookies, "Origin": passgate.url}
    )
    assert logout.status_code in (302, 303)

    return secrets_seen


def test_real_flows_leave_no_cookie_code_token_or_secret_in_the_log(
    start_passgate: Callable[..., PassgateProcess], redis_url: str
) -> None:
    metrics_token = "metrics-token-0123456789abcdef"
    passgate = start_passgate(
        log_json="true",
        log_level="debug",
        access_log="all",
        redis_url=redis_url,
        metrics_token=metrics_token,
    )
    secrets_seen = run_real_flows(passgate, metrics_token)
    passgate.stop()
    log = passgate.log_path.read_text()
    entries = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    paths = {e.get("path") for e in entries if e["logger"] == "passgate.access"}
    assert {"/login/code", "/api/auth/caddy", "/authorize", "/api/oidc/token", "/lc/…"} <= paths
    for secret in secrets_seen:
        assert secret not in log, f"a secret reached the log: {secret[:6]}…"
    assert "state-1234" not in log and "nonce-1234" not in log  # query strings stay out
