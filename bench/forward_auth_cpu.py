"""Forward-auth CPU cost per decision, in-process: the ASGI handler called directly N times.

Not a test, and no HTTP: it builds Passgate's services (SQLite storage, sessions in the database,
which the one-second session cache keeps out of the loop), signs a user in, and calls the
forward-auth ASGI app N times with the signed cookie, like `bench/forward_auth.py` does over HTTP.
It prints CPU microseconds per decision (best of several rounds).

On a busy machine CPU time still wobbles; instruction counts do not. For those, run it twice under
callgrind and divide the difference by the difference in calls (start-up cancels out):

  valgrind --tool=callgrind --callgrind-out-file=/dev/null python bench/forward_auth_cpu.py -n 1000
  valgrind --tool=callgrind --callgrind-out-file=/dev/null python bench/forward_auth_cpu.py -n 3000

Pass the same --data-dir to both runs (made on the first) so that neither generates signing keys,
whose cost varies from run to run.

`--uri` sets the protected request's target (X-Forwarded-Uri, default /dashboard); a `{i}` in
it is replaced by the call's number, so every decision sees a new target and no cache helps
(e.g. --uri '/a/./b/%2e%2e/c{i};v=1' for the canonicalisation's slow path).

Usage: python bench/forward_auth_cpu.py [-n CALLS] [--rounds 5] [--data-dir DIR] [--access-log]
                                        [--uri TARGET]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from typing import Any

from gateway.core.settings import load_settings
from gateway.services import build_services
from gateway.sessions import current_user, sessions
from gateway.web.app import create_app


def steady_caches() -> None:
    """Under callgrind a round takes minutes, so the one-second caches would expire and pull
    in store reads (and thread-pool hops) that a real second of traffic amortises over
    thousands of decisions: hold them for the whole run instead."""
    sessions.CACHE_SECONDS = current_user.CACHE_SECONDS = 3600.0


async def run(
    calls: int, rounds: int, data_dir: str | None, extra: dict[str, Any], uri: str
) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        settings = load_settings(
            app_url="https://auth.example.com",
            cookie_domain="example.com",
            data_dir=data_dir or scratch,
            encryption_key="bench-encryption-key-0123456789",
            **extra,
        )
        services = build_services(settings)
        if services.users.count_users() == 0:
            services.users.create_user("alice", "alice@example.com", "Alice", ())
        user = services.users.get_user_by_name("alice")
        cookie, _ = await services.sessions.start(user.id, "127.0.0.1", "bench")
        app = create_app(services)
        scope = {
            "type": "http",
            "method": "GET",
            "path": "/api/auth/caddy",
            "client": ("127.0.0.1", 40000),
            "headers": [
                (b"host", b"auth.example.com"),
                (b"x-forwarded-method", b"GET"),
                (b"x-forwarded-proto", b"https"),
                (b"x-forwarded-host", b"app.example.com"),
                (b"x-forwarded-uri", uri.encode()),
                (b"x-forwarded-for", b"203.0.113.7"),
                (b"accept", b"text/html"),
                (b"cookie", f"{settings.session_cookie_name}={cookie}".encode()),
            ],
        }
        scopes = [scope]
        if "{i}" in uri:
            scopes = [_with_uri(scope, uri.replace("{i}", str(i)).encode()) for i in range(calls)]
        statuses: list[int] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        best = float("inf")
        for _ in range(rounds):
            statuses.clear()
            started = time.process_time()
            for i in range(calls):
                await app(scopes[i % len(scopes)], receive, send)
            best = min(best, time.process_time() - started)
            if set(statuses) != {200}:
                raise SystemExit(f"unexpected statuses: {sorted(set(statuses))}")
        await services.close()
    print(f"{calls} decisions per round, best of {rounds}: {best / calls * 1e6:.2f} us CPU each")


def _with_uri(scope: dict[str, Any], uri: bytes) -> dict[str, Any]:
    headers = [(k, uri if k == b"x-forwarded-uri" else v) for k, v in scope["headers"]]
    return {**scope, "headers": headers}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--calls", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--data-dir", help="reuse this data folder (default: a fresh one)")
    parser.add_argument(
        "--access-log", action="store_true", help="with ACCESS_LOG=all (lines to /dev/null)"
    )
    parser.add_argument("--uri", default="/dashboard", help="X-Forwarded-Uri ({i}: call number)")
    args = parser.parse_args()
    extra: dict[str, Any] = {}
    if args.access_log:
        import logging

        from gateway.core.logs import configure

        extra["access_log"] = "all"
        configure(json_lines=True, level="info")
        logging.getLogger().handlers[0].setStream(open("/dev/null", "w"))  # noqa: SIM115
    steady_caches()
    asyncio.run(run(args.calls, args.rounds, args.data_dir, extra, args.uri))


if __name__ == "__main__":
    main()
