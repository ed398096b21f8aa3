"""`passgate import SOURCE ...`: imports from other identity providers (issue 14).

`passgate import FILE` restores a Passgate archive (gateway.cli.admin); when the word after
`import` names a source here, gateway.cli.main parses the rest with `build_parser` instead.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.audit.log import CLI
from gateway.cli.running import with_services
from gateway.core.errors import InvalidInput
from gateway.importers import pocket_id
from gateway.importers.pocket_id_writer import Writer, plan
from gateway.services import Services

if TYPE_CHECKING:
    from gateway.cli.running import Subparsers


# pocket-id --------------------------------------------------------------------------------------


@with_services
async def cmd_pocket_id(args: argparse.Namespace, services: Services) -> int:
    key = None
    if args.encryption_key_env:
        value = os.environ.get(args.encryption_key_env, "")
        if not value:  # not echoed: a key typed here by mistake would land in logs
            raise InvalidInput("the environment variable named by --encryption-key-env is not set")
        key = value.encode("utf-8")
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


def add_pocket_id(sub: Subparsers) -> None:
    """import pocket-id --sqlite PATH | --postgres URL."""
    parser = sub.add_parser(
        "pocket-id",
        help="users, groups, passkeys, clients, signing key and history of a stopped Pocket-ID",
        allow_abbrev=False,
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--sqlite", metavar="PATH", help="Pocket-ID's SQLite file (pocket-id.db)")
    source.add_argument("--postgres", metavar="URL", help="Pocket-ID's PostgreSQL URL")
    parser.add_argument(
        "--encryption-key-env",
        metavar="VAR",
        help="read Pocket-ID's ENCRYPTION_KEY from this variable (to bring its signing key)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print what would be imported; change nothing"
    )
    parser.add_argument(
        "--merge", action="store_true", help="add to a Passgate database that already holds data"
    )
    parser.set_defaults(func=cmd_pocket_id)


# the sources ------------------------------------------------------------------------------------

SOURCES: dict[str, Callable[[Subparsers], None]] = {
    "pocket-id": add_pocket_id,
}


def build_parser() -> argparse.ArgumentParser:
    """The parser for `passgate import SOURCE ...` (given the arguments after `import`)."""
    parser = argparse.ArgumentParser(
        prog="passgate import",
        description="Import from another identity provider (or: passgate import ARCHIVE).",
    )
    sub = parser.add_subparsers(dest="source", required=True)
    for add in SOURCES.values():
        add(sub)
    return parser
