"""Entry point for uvicorn workers: each builds its own services from the environment."""

from __future__ import annotations

from gateway.app import PassgateApp, create_app
from gateway.logs import configure
from gateway.services import build_services
from gateway.settings import load_settings


def create() -> PassgateApp:
    settings = load_settings()
    configure(settings.log_json, settings.log_level)
    return create_app(build_services(settings))
