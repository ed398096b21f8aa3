"""Running a command: async commands get the services and close them in the same loop."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from gateway.core.settings import Settings
from gateway.services import Services, build_services

if TYPE_CHECKING:
    # what `add_subparsers()` returns: each command group adds its commands to it
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]


def with_services(
    action: Callable[[argparse.Namespace, Services], Awaitable[int]],
) -> Callable[..., int]:
    """Run an async command with services, closing them in the same event loop."""

    def run(args: argparse.Namespace, settings: Settings) -> int:
        services = build_services(settings)

        async def run_and_close() -> int:
            try:
                return await action(args, services)
            finally:
                await services.close()

        return asyncio.run(run_and_close())

    return run
