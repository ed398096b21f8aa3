"""`passgate serve`, `healthcheck`, `version` and `settings-table`."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

from gateway import __version__
from gateway.core import metrics
from gateway.core.logs import configure
from gateway.core.pocket_id_env import report_unused
from gateway.core.settings import Settings, settings_table
from gateway.services import build_services

if TYPE_CHECKING:
    from gateway.cli.running import Subparsers


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from gateway.web.app import create_app
    from gateway.web.asgi import settle_garbage_collector

    configure(settings.log_json, settings.log_level)
    report_unused(os.environ)
    services = build_services(settings)  # migrate once, before any worker starts
    if services.geolite is not None:
        services.geolite.refresh()  # MAXMIND_LICENSE_KEY: fetch a missing or stale GeoLite2
    workers = args.workers or settings.workers
    host, port = args.host or settings.host, args.port or settings.port
    print(
        f"Passgate {__version__} listening on http://{host}:{port} ({workers} worker(s)); "
        f"public URL {settings.app_url}",
        file=sys.stderr,
    )
    if services.users.count_users() == 0:
        print(
            f"No users yet: open {settings.app_url}/setup to create the administrator "
            "and their passkey",
            file=sys.stderr,
        )
    common: dict[str, Any] = {
        "host": host,
        "port": port,
        "access_log": False,
        "log_config": None,
        "proxy_headers": False,  # Passgate reads X-Forwarded-* itself, from TRUSTED_PROXIES only
        "server_header": False,
    }
    if workers == 1:
        if os.environ.get(metrics.MULTIPROC_ENV):
            metrics.prepare_worker_dir(keep_own=True)
        app = create_app(services)
        settle_garbage_collector()
        uvicorn.run(app, **common)
    else:
        asyncio.run(services.close())
        os.environ.update({"HOST": host, "PORT": str(port)})
        # Before any worker starts (and imports prometheus_client): they count into this folder.
        folder = metrics.prepare_worker_dir()
        try:
            uvicorn.run("gateway.web.asgi:create", factory=True, workers=workers, **common)
        finally:
            metrics.remove_worker_dir(folder)
    return 0


def cmd_healthcheck(args: argparse.Namespace, settings: Settings) -> int:
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host  # noqa: S104
    url = f"http://{host}:{settings.port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=args.timeout) as response:
            ok = response.status == 200 and json.load(response).get("status") == "ok"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return 1
    print("healthy" if ok else "unhealthy")
    return 0 if ok else 1


def cmd_settings_table(args: argparse.Namespace, settings: Settings | None) -> int:
    print(settings_table())
    return 0


def add_server_commands(sub: Subparsers) -> None:
    """serve, healthcheck, version, settings-table."""
    serve = sub.add_parser("serve", help="run the server")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int)
    serve.set_defaults(func=cmd_serve)

    health = sub.add_parser("healthcheck", help="exit 0 when the local server answers /healthz")
    health.add_argument("--timeout", type=float, default=3.0)
    health.set_defaults(func=cmd_healthcheck)

    sub.add_parser("version", help="print the version").set_defaults(func=None)
    sub.add_parser("settings-table", help="print the settings as a Markdown table").set_defaults(
        func=cmd_settings_table
    )
