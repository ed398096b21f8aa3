"""The `passgate` command: serve, health check, users, groups, OIDC clients and login links."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from gateway import __version__
from gateway.cli import admin, oidc, rules, server, users
from gateway.core.errors import PassgateError
from gateway.core.pocket_id_env import report_unused
from gateway.core.settings import load_settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="passgate", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    # In the order `passgate --help` lists them.
    server.add_server_commands(sub)
    users.add_users(sub)
    users.add_groups(sub)
    oidc.add_clients(sub)
    users.add_one_time_access_token(sub)
    users.add_signup_token(sub)
    oidc.add_claims(sub)
    admin.add_api_keys(sub)
    admin.add_audit(sub)
    rules.add_rules(sub)
    oidc.add_keys(sub)
    admin.add_archive_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "version":
        print(f"passgate {__version__}")
        return 0
    if args.command == "settings-table":
        return server.cmd_settings_table(args, None)
    try:
        settings = load_settings()
        # serve reports once its logging is set up; Docker runs healthcheck every few seconds.
        if args.command not in ("serve", "healthcheck"):
            report_unused(os.environ)
        result: int = args.func(args, settings)
        return result
    except PassgateError as exc:
        print(f"passgate: {type(exc).__name__ if not str(exc) else ''}{exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
