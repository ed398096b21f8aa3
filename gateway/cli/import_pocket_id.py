"""`passgate import pocket-id --sqlite PATH | --postgres URL [--encryption-key-env VAR]
[--dry-run] [--merge]`: a stopped Pocket-ID's users, groups, claims, passkeys, OIDC clients,
signing key and audit history, in one transaction (gateway.importers.pocket_id_writer).
`passgate import` hands it what follows `pocket-id` (gateway.cli.admin IMPORT_SOURCES)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from gateway.audit.log import CLI
from gateway.cli.running import with_services
from gateway.core.errors import InvalidInput
from gateway.core.settings import Settings
from gateway.importers import pocket_id
from gateway.importers.pocket_id_writer import Writer, plan
from gateway.services import Services


@with_services
async def cmd_pocket_id(args: argparse.Namespace, services: Services) -> int:
    key = None
    if args.encryption_key_env:
        value = os.environ.get(args.encryption_key_env, "")
        if not value:  # not echoed: a key typed here by mistake would land in logs
            raise InvalidInput("the environment variable named by --encryption-key-env is not set")
        key = value.encode("utf-8")
    elif services.settings.encryption_key:
        # Started with Pocket-ID's env file, Passgate's ENCRYPTION_KEY is Pocket-ID's own.
        key = services.settings.encryption_key.encode("utf-8")
    conn = (
        pocket_id.open_sqlite(Path(args.sqlite))
        if args.sqlite
        else pocket_id.open_postgres(args.postgres)
    )
    try:
        data = pocket_id.read(conn, key)
    finally:
        conn.close()
    chosen = plan(data, services.settings.admin_group)
    writer = Writer(services.db, services.users, services.clients, services.keys)
    writer.run(chosen, CLI, merge=args.merge, dry_run=args.dry_run)
    print("\n".join(chosen.describe()))
    if args.dry_run:
        print("dry run: nothing was changed", file=sys.stderr)
    else:
        print(
            "imported from Pocket-ID; restart Passgate if it is running. Apps keep their client "
            "ids and secrets: point their issuer URL at Passgate's APP_URL",
            file=sys.stderr,
        )
    print(
        f"passkeys work if Pocket-ID was served at {services.settings.rp_id} (Passgate's RP ID)",
        file=sys.stderr,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="passgate import pocket-id",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--sqlite", metavar="PATH", help="Pocket-ID's SQLite file (pocket-id.db)")
    source.add_argument("--postgres", metavar="URL", help="Pocket-ID's PostgreSQL URL")
    parser.add_argument(
        "--encryption-key-env",
        metavar="VAR",
        help="read Pocket-ID's ENCRYPTION_KEY from this variable, to bring its signing key "
        "(default: Passgate's own ENCRYPTION_KEY, the same when Pocket-ID's env file is used)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print what would be imported; change nothing"
    )
    parser.add_argument(
        "--merge", action="store_true", help="add to a Passgate database that already holds data"
    )
    return parser


def run(argv: Sequence[str], settings: Settings) -> int:
    """Parse `argv` (what follows `passgate import pocket-id`) and import."""
    result: int = cmd_pocket_id(build_parser().parse_args(list(argv)), settings)
    return result
