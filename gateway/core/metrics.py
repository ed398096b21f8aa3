"""Prometheus metrics: what Passgate counts, and the `/metrics` endpoint that shows it.

With several workers (WORKERS > 1) each process counts for itself into memory-mapped files in
PROMETHEUS_MULTIPROC_DIR, and `/metrics`, whichever worker answers it, adds them all up.
`passgate serve` sets that folder up (fresh) before any worker starts: see `prepare_worker_dir`.
The variable must be set before this module is imported, which is why the workers inherit it.

`/metrics` is not public: with METRICS_TOKEN set it wants `Authorization: Bearer <token>`;
without one it answers only direct requests from loopback (no proxy's forwarding headers), so
it is never readable through Caddy by default.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Awaitable, Callable, Iterable, Iterator
from ipaddress import ip_address
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.core.crypto import tokens_equal

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
if os.environ.get(MULTIPROC_ENV):
    # prometheus_client writes its files there as soon as the metrics below exist.
    Path(os.environ[MULTIPROC_ENV]).mkdir(parents=True, exist_ok=True)

# Outcomes of a forward-auth sub-request; the request log's `decision` uses the same words.
RESULTS = (
    "allow",  # signed in and permitted: 200 with identity headers
    "bypass",  # a bypass rule: 200 without identity
    "redirect",  # anonymous browser sent to the login page: 302
    "unauthorized",  # anonymous API call, or nginx: 401
    "forbidden",  # signed in (or a deny rule) and not permitted: 403
    "unavailable",  # the session store is down: 503 (fail closed)
    "untrusted_proxy",  # the asker is not in TRUSTED_PROXIES: 403
    "invalid_request",  # forwarded headers missing or malformed: 400
)
LOGIN_METHODS = ("passkey", "login_code", "setup", "signup")

FORWARD_AUTH_DECISIONS = Counter(
    "passgate_forward_auth_decisions",
    "Forward-auth answers, by result.",
    ["result"],
)
FORWARD_AUTH_SECONDS = Histogram(
    "passgate_forward_auth_duration_seconds",
    "Time to answer a forward-auth sub-request inside Passgate (not the network).",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1),
)
LOGINS = Counter(
    "passgate_logins",
    "Sign-in attempts, by method (passkey, login_code, setup, signup) and result.",
    ["method", "result"],
)
TOKENS_ISSUED = Counter(
    "passgate_oidc_tokens_issued",
    "OIDC token responses issued, by client and grant type.",
    ["client", "grant"],
)
# machine and TV grants
DEVICE_AUTHORIZATIONS = Counter(
    "passgate_oidc_device_authorizations",
    "Device authorization grant steps (RFC 8628): codes requested, approved, denied, and user "
    "codes typed that matched nothing.",
    ["result"],
)
DEVICE_RESULTS = ("requested", "approved", "denied", "unknown_code")
# --- OIDC refusals (token, userinfo, introspection, revocation), by OAuth error code ---
OIDC_ERRORS = Counter(
    "passgate_oidc_errors",
    "OIDC requests refused, by endpoint and OAuth error code.",
    ["endpoint", "error"],
)
# OIDC client authentication and pushed authorization requests (oidc-app-auth)
CLIENT_AUTHENTICATIONS = Counter(
    "passgate_oidc_client_authentications",
    "Client authentications at the OIDC token endpoints, by method and result.",
    ["method", "result"],
)
PUSHED_REQUESTS = Counter(
    "passgate_oidc_pushed_requests",
    "Pushed authorization requests (RFC 9126), by result (accepted, refused, used, invalid).",
    ["result"],
)
CLIENT_SECRETS_REFUSED = Counter(  # oidc-client-options
    "passgate_oidc_client_secrets_refused",
    "Client authentications with a secret that expired or was revoked, by client and reason.",
    ["client", "reason"],
)
GEOLITE_DOWNLOADS = Counter(  # import-pocket-id-env
    "passgate_geolite_downloads",
    "GeoLite2 City downloads (MAXMIND_LICENSE_KEY), by result: ok or failed.",
    ["result"],
)
SESSION_STORE_ERRORS = Counter(
    "passgate_session_store_errors",
    "Failed calls to the session store (Redis or the database).",
    ["store"],
)

# Every series exists from the start at 0, so rate() and alerts work before the first event.
DECISION_COUNTERS = {result: FORWARD_AUTH_DECISIONS.labels(result) for result in RESULTS}
for _device_result in DEVICE_RESULTS:
    DEVICE_AUTHORIZATIONS.labels(_device_result)
for _method in LOGIN_METHODS:
    for _result in ("success", "failure"):
        LOGINS.labels(_method, _result)
for _download in ("ok", "failed"):
    GEOLITE_DOWNLOADS.labels(_download)


def login(method: str, success: bool) -> None:
    """Count a sign-in attempt (`method` as in LOGIN_METHODS; spaces become underscores)."""
    LOGINS.labels(method.replace(" ", "_"), "success" if success else "failure").inc()


def token_issued(client_id: str, grant_type: str) -> None:
    TOKENS_ISSUED.labels(client_id, grant_type).inc()


def device_authorization(result: str) -> None:
    """Count a device authorization step (`result` as in DEVICE_RESULTS)."""
    DEVICE_AUTHORIZATIONS.labels(result).inc()


def oidc_error(endpoint: str, error: str) -> None:
    OIDC_ERRORS.labels(endpoint, error).inc()


def client_authentication(method: str, success: bool) -> None:
    """Count a client authentication (`method` as the request tried it)."""
    CLIENT_AUTHENTICATIONS.labels(method, "success" if success else "failure").inc()


def pushed_request(result: str) -> None:
    PUSHED_REQUESTS.labels(result).inc()


def client_secret_refused(client_id: str, reason: str) -> None:
    """Count an app still using a secret that expired or was revoked (time to update it)."""
    CLIENT_SECRETS_REFUSED.labels(client_id, reason).inc()


def session_store_error(store: str) -> None:
    SESSION_STORE_ERRORS.labels(store).inc()


# --- several workers ------------------------------------------------------------------------


def prepare_worker_dir(keep_own: bool = False) -> Path:
    """Give the workers about to start an empty PROMETHEUS_MULTIPROC_DIR: the operator's, emptied
    (counts left by an earlier run would be added to this one's), or a fresh private folder.
    `keep_own`: this process serves too (one worker), so its own files stay."""
    configured = os.environ.get(MULTIPROC_ENV)
    if configured:
        folder = Path(configured)
        own = f"_{os.getpid()}"
        for stale in folder.glob("*.db"):
            if not (keep_own and stale.stem.endswith(own)):
                stale.unlink()
    else:
        folder = Path(tempfile.mkdtemp(prefix="passgate-metrics-"))
        os.environ[MULTIPROC_ENV] = str(folder)
    return folder


def remove_worker_dir(folder: Path) -> None:
    """Remove the folder made by prepare_worker_dir when Passgate made it."""
    if folder.name.startswith("passgate-metrics-"):
        shutil.rmtree(folder, ignore_errors=True)


class WorkerProcesses(Collector):
    """process_* metrics (CPU, memory, open files) of every live worker, labelled by pid: in
    multi-process mode the default process collector would only describe whichever worker
    happened to answer the scrape."""

    def __init__(self, folder: str) -> None:
        self._folder = Path(folder)

    def _pids(self) -> Iterator[int]:
        seen = set()
        for path in self._folder.glob("*.db"):
            pid = path.stem.rsplit("_", 1)[-1]
            if pid.isdigit() and pid not in seen and Path(f"/proc/{pid}").exists():
                seen.add(pid)
                yield int(pid)

    def collect(self) -> Iterable:  # type: ignore[type-arg]
        merged: dict[str, object] = {}
        for pid in self._pids():
            collector = ProcessCollector(pid=_constant(pid), registry=None)
            for family in collector.collect():
                target = merged.setdefault(family.name, family)
                if target is not family:
                    target.samples.extend(  # type: ignore[attr-defined]
                        _with_pid(sample, pid) for sample in family.samples
                    )
                else:
                    family.samples = [_with_pid(sample, pid) for sample in family.samples]
        return list(merged.values())


def _constant(pid: int) -> Callable[[], int]:
    return lambda: pid


def _with_pid(sample: Sample, pid: int) -> Sample:
    return sample._replace(labels={**sample.labels, "pid": str(pid)})


def exposition() -> bytes:
    """The current metrics in Prometheus' text format, summed over every worker."""
    folder = os.environ.get(MULTIPROC_ENV)
    if not folder:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=folder)  # type: ignore[no-untyped-call]
    registry.register(WorkerProcesses(folder))
    return generate_latest(registry)


# --- the endpoint ---------------------------------------------------------------------------

_FORWARDING_HEADERS = ("x-forwarded-for", "x-forwarded-host", "x-real-ip", "forwarded")


def _direct_from_loopback(request: Request) -> bool:
    """A request from this machine that no proxy relayed (proxies add forwarding headers)."""
    if request.client is None or any(h in request.headers for h in _FORWARDING_HEADERS):
        return False
    try:
        return ip_address(request.client.host).is_loopback
    except ValueError:
        return False


def endpoint(token: str | None) -> Callable[[Request], Awaitable[Response]]:
    """The `/metrics` endpoint: with `token` (METRICS_TOKEN) it wants that bearer, without one
    it answers only direct requests from loopback. It takes the token, not the services, so that
    this module, imported by every area, imports none of them back."""

    async def metrics(request: Request) -> Response:
        return _answer(request, token)

    return metrics


def _answer(request: Request, token: str | None) -> Response:
    if token is not None:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not tokens_equal(given.strip(), token):
            return JSONResponse(
                {"error": "unauthorized", "error_description": "send METRICS_TOKEN as a bearer"},
                401,
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
    elif not _direct_from_loopback(request):
        return JSONResponse(
            {
                "error": "forbidden",
                "error_description": "metrics answer only direct requests from loopback; "
                "set METRICS_TOKEN to scrape from elsewhere",
            },
            403,
        )
    return Response(exposition(), media_type=CONTENT_TYPE_LATEST)
