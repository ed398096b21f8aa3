"""Entry point for uvicorn workers: each builds its own services from the environment."""

from __future__ import annotations

import gc

from gateway.core.logs import configure
from gateway.core.settings import load_settings
from gateway.services import build_services
from gateway.web.app import PassgateApp, create_app


def create() -> PassgateApp:
    settings = load_settings()
    configure(settings.log_json, settings.log_level)
    app = create_app(build_services(settings))
    settle_garbage_collector()
    return app


def settle_garbage_collector() -> None:
    """Move start-up objects out of the collector's way: the hot path allocates little, so
    rarer, smaller collections keep forward-auth's tail latency down."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
