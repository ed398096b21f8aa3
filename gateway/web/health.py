"""Liveness (`/healthz`: the process answers) and readiness (`/readyz`: storage and sessions
work)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from gateway.core.errors import SessionStoreUnavailable, StorageError
from gateway.services import Services


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    services: Services = request.app.state.services
    checks: dict[str, str] = {}
    try:
        await run_in_threadpool(services.db.fetchone, "SELECT 1")
        checks["database"] = "ok"
    except StorageError:
        checks["database"] = "unreachable"
    try:
        await services.sessions.store.ping()
        checks["sessions"] = "ok"
    except SessionStoreUnavailable:
        checks["sessions"] = "unreachable"
    ready = all(value == "ok" for value in checks.values())
    return JSONResponse(
        {"status": "ok" if ready else "unavailable", **checks}, 200 if ready else 503
    )
