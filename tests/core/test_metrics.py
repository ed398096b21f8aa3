"""Prometheus metrics: what moves when, who may read /metrics, and sums across real workers."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from itsdangerous import Signer
from prometheus_client import REGISTRY

from gateway.core.settings import Settings
from gateway.services import Services, build_services
from gateway.web.app import create_app
from tests.conftest import CaddyProcess, PassgateProcess, free_port

RULES = """
default_policy: allow
rules:
  - domain: closed.example.com
    policy: deny
  - domain: public.example.com
    policy: bypass
"""
ORIGINAL = {
    "X-Forwarded-Method": "GET",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "app.example.com",
    "X-Forwarded-Uri": "/dash",
}
BROWSER = {"Accept": "text/html", "Sec-Fetch-Mode": "navigate"}
TOKEN = "metrics-token-0123456789abcdef"


@pytest.fixture
def gateway(make_settings: Callable[..., Settings], tmp_path: Path) -> Iterator[Services]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    built = build_services(make_settings(config_file=str(rules)))
    built.users.create_user("alice", "alice@example.com", "Alice", ())
    yield built
    asyncio.run(built.close())


def call(
    services: Services,
    path: str,
    peer: str = "127.0.0.1",
    cookie_for: str | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    async def run() -> httpx.Response:
        sent = dict(headers or {})
        if cookie_for is not None:
            user = services.users.get_user_by_name(cookie_for)
            cookie, _ = await services.sessions.start(user.id, "127.0.0.1", "test")
            sent["Cookie"] = f"{services.settings.cookie_name}={cookie}"
        transport = httpx.ASGITransport(app=create_app(services), client=(peer, 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://passgate") as client:
            return await client.get(path, headers=sent)

    return asyncio.run(run())


def decisions(result: str) -> float:
    value = REGISTRY.get_sample_value("passgate_forward_auth_decisions_total", {"result": result})
    return value or 0.0


def latency_count() -> float:
    return REGISTRY.get_sample_value("passgate_forward_auth_duration_seconds_count") or 0.0


CASES: dict[str, tuple[dict[str, str], str | None, str, int]] = {
    # result: (headers, signed-in user, peer, expected status)
    "allow": (ORIGINAL, "alice", "127.0.0.1", 200),
    "bypass": ({**ORIGINAL, "X-Forwarded-Host": "public.example.com"}, None, "127.0.0.1", 200),
    "redirect": ({**ORIGINAL, **BROWSER}, None, "127.0.0.1", 302),
    "unauthorized": (ORIGINAL, None, "127.0.0.1", 401),
    "forbidden": (
        {**ORIGINAL, "X-Forwarded-Host": "closed.example.com"},
        "alice",
        "127.0.0.1",
        403,
    ),
    "untrusted_proxy": (ORIGINAL, None, "203.0.113.9", 403),
    "invalid_request": ({"X-Forwarded-Host": "app.example.com"}, None, "127.0.0.1", 400),
}


@pytest.mark.parametrize("result", sorted(CASES))
def test_each_forward_auth_result_moves_its_own_counter_and_the_histogram(
    gateway: Services, result: str
) -> None:
    headers, user, peer, status = CASES[result]
    before = {name: decisions(name) for name in CASES}
    observed = latency_count()
    response = call(gateway, "/api/auth/caddy", peer=peer, cookie_for=user, headers=headers)
    assert response.status_code == status
    assert decisions(result) == before[result] + 1
    assert all(decisions(name) == before[name] for name in CASES if name != result)
    assert latency_count() == observed + 1


def test_unreachable_session_store_counts_unavailable_and_a_store_error(
    make_settings: Callable[..., Settings],
) -> None:
    built = build_services(make_settings(redis_url=f"redis://127.0.0.1:{free_port()}/0"))
    labels = {"store": "redis"}
    errors = REGISTRY.get_sample_value("passgate_session_store_errors_total", labels) or 0.0
    before = decisions("unavailable")
    try:
        signed = Signer(built.secrets.cookie_signing_key, salt="passgate.session").sign(b"id")
        response = call(
            built,
            "/api/auth/caddy",
            headers={**ORIGINAL, "Cookie": f"passgate_session={signed.decode()}"},
        )
        assert response.status_code == 503
    finally:
        asyncio.run(built.close())
    assert decisions("unavailable") == before + 1
    assert REGISTRY.get_sample_value("passgate_session_store_errors_total", labels) > errors


def test_metrics_page_lists_every_series_with_histogram_buckets(gateway: Services) -> None:
    response = call(gateway, "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    for result in (*CASES, "unavailable"):
        assert f'passgate_forward_auth_decisions_total{{result="{result}"}}' in text
    for bound in ("0.0001", "0.00025", "0.001", "0.01", "0.1", "+Inf"):
        assert f'passgate_forward_auth_duration_seconds_bucket{{le="{bound}"}}' in text
    assert 'passgate_logins_total{method="passkey",result="failure"}' in text
    assert "# TYPE passgate_oidc_tokens_issued_total counter" in text
    assert "# TYPE passgate_session_store_errors_total counter" in text
    assert "process_resident_memory_bytes" in text


def test_metrics_refuse_a_remote_address_without_a_token(gateway: Services) -> None:
    assert call(gateway, "/metrics", peer="192.168.1.20").status_code == 403


def test_metrics_refuse_loopback_requests_relayed_by_a_proxy(gateway: Services) -> None:
    relayed = {"X-Forwarded-For": "203.0.113.9"}
    assert call(gateway, "/metrics", headers=relayed).status_code == 403


def test_metrics_token_is_required_from_everywhere_once_set(
    make_settings: Callable[..., Settings],
) -> None:
    built = build_services(make_settings(metrics_token=TOKEN))
    try:
        assert call(built, "/metrics").status_code == 401
        wrong = call(built, "/metrics", headers={"Authorization": "Bearer " + "x" * 30})
        assert wrong.status_code == 401 and wrong.headers["www-authenticate"].startswith("Bearer")
        right = call(
            built, "/metrics", peer="192.168.1.20", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert right.status_code == 200 and "passgate_logins_total" in right.text
    finally:
        asyncio.run(built.close())


def test_short_metrics_token_is_refused_at_start(make_settings: Callable[..., Settings]) -> None:
    from gateway.core.errors import SettingsInvalid

    with pytest.raises(SettingsInvalid, match="METRICS_TOKEN"):
        make_settings(metrics_token="short")


def test_metrics_are_not_readable_through_caddy(
    start_passgate: Callable[..., PassgateProcess],
    start_caddy: Callable[[str, int], CaddyProcess],
) -> None:
    port = free_port()
    passgate = start_passgate(app_url=f"http://auth.example.com:{port}")
    caddy_site = (
        f"http://auth.example.com:{port} {{\n\treverse_proxy 127.0.0.1:{passgate.port}\n}}\n"
    )
    start_caddy(caddy_site, port)
    through_caddy = httpx.get(
        f"http://127.0.0.1:{port}/metrics", headers={"Host": f"auth.example.com:{port}"}
    )
    assert through_caddy.status_code == 403
    assert "passgate_" not in through_caddy.text
    assert httpx.get(passgate.url + "/metrics").status_code == 200  # direct, on the machine


# --- several workers ------------------------------------------------------------------------


def scrape(passgate: PassgateProcess) -> str:
    # A new connection each time, so the kernel may hand it to either worker.
    with httpx.Client() as client:
        response = client.get(passgate.url + "/metrics", headers={"Connection": "close"})
    assert response.status_code == 200
    return response.text


def sample(text: str, name: str, labels: str) -> float:
    series = f"{name}{{{labels}}}" if labels else name
    match = re.search(rf"^{re.escape(series)} (\S+)$", text, re.M)
    assert match is not None, f"{series} missing"
    return float(match.group(1))


def ask_anonymously(passgate: PassgateProcess, times: int) -> None:
    for _ in range(times):
        with httpx.Client() as client:
            response = client.get(
                passgate.url + "/api/auth/caddy", headers={**ORIGINAL, "Connection": "close"}
            )
        assert response.status_code == 401


def test_two_workers_add_up_to_one_total_and_each_reports_its_process(
    start_passgate: Callable[..., PassgateProcess],
) -> None:
    passgate = start_passgate(workers="2")
    ask_anonymously(passgate, 40)
    pids: set[str] = set()
    for _ in range(8):
        text = scrape(passgate)
        total = 'result="unauthorized"'
        assert sample(text, "passgate_forward_auth_decisions_total", total) == 40
        assert sample(text, "passgate_forward_auth_duration_seconds_count", "") >= 40
        pids |= set(re.findall(r'^process_resident_memory_bytes\{pid="(\d+)"\}', text, re.M))
    assert len(pids) == 2  # both workers counted and both are described


def test_restart_starts_counting_from_zero_in_the_same_folder(
    start_passgate: Callable[..., PassgateProcess], tmp_path: Path
) -> None:
    folder = tmp_path / "prometheus"
    port = str(free_port())
    first = start_passgate(workers="2", port=port, prometheus_multiproc_dir=str(folder))
    ask_anonymously(first, 5)
    assert (
        sample(scrape(first), "passgate_forward_auth_decisions_total", 'result="unauthorized"') == 5
    )
    first.stop()
    again = start_passgate(workers="2", port=port, prometheus_multiproc_dir=str(folder))
    ask_anonymously(again, 2)
    text = scrape(again)
    assert sample(text, "passgate_forward_auth_decisions_total", 'result="unauthorized"') == 2


# --- health ---------------------------------------------------------------------------------


def test_liveness_answers_while_the_session_store_is_down(
    make_settings: Callable[..., Settings],
) -> None:
    built = build_services(make_settings(redis_url=f"redis://127.0.0.1:{free_port()}/0"))
    try:
        response = call(built, "/healthz")
    finally:
        asyncio.run(built.close())
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readiness_is_ok_when_database_and_redis_answer(
    make_settings: Callable[..., Settings], redis_url: str
) -> None:
    built = build_services(make_settings(redis_url=redis_url))

    async def ask_then_close() -> httpx.Response:
        # One event loop for both: the Redis connection belongs to the loop that opened it.
        transport = httpx.ASGITransport(app=create_app(built), client=("127.0.0.1", 5000))
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://passgate") as c:
                return await c.get("/readyz")
        finally:
            await built.close()

    response = asyncio.run(ask_then_close())
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "sessions": "ok"}


def test_readiness_is_503_when_redis_is_unreachable(
    make_settings: Callable[..., Settings],
) -> None:
    built = build_services(make_settings(redis_url=f"redis://127.0.0.1:{free_port()}/0"))
    try:
        response = call(built, "/readyz")
    finally:
        asyncio.run(built.close())
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "database": "ok", "sessions": "unreachable"}


# --- sign-ins and tokens ---------------------------------------------------------------------


def test_sign_ins_and_issued_tokens_are_counted_by_method_result_client_and_grant(
    start_passgate: Callable[..., PassgateProcess], redis_url: str
) -> None:
    from tests.http.test_request_logs import run_real_flows

    passgate = start_passgate(redis_url=redis_url, metrics_token=TOKEN)
    run_real_flows(passgate, TOKEN)  # one good code, one wrong code, a code grant, a refresh
    client_id = passgate.cli("clients", "list").stdout.split()[0]
    text = httpx.get(passgate.url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).text
    logins = "passgate_logins_total"
    assert sample(text, logins, 'method="login_code",result="success"') == 1
    assert sample(text, logins, 'method="login_code",result="failure"') == 1
    assert sample(text, logins, 'method="passkey",result="success"') == 0
    tokens = "passgate_oidc_tokens_issued_total"
    assert sample(text, tokens, f'client="{client_id}",grant="authorization_code"') == 1
    assert sample(text, tokens, f'client="{client_id}",grant="refresh_token"') == 1
    allowed = 'result="allow"'
    assert sample(text, "passgate_forward_auth_decisions_total", allowed) == 1
