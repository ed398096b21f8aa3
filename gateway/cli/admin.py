"""`passgate api-keys`, `audit`, `export` and `import`."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.audit.log import CLI, AuditFilters
from gateway.cli import import_pocket_id, import_tinyauth
from gateway.cli.running import with_services
from gateway.core.errors import InvalidInput
from gateway.core.settings import Settings
from gateway.services import Services

if TYPE_CHECKING:
    from gateway.cli.running import Subparsers


@with_services
async def cmd_api_keys(args: argparse.Namespace, services: Services) -> int:
    admin = services.admin
    if args.action == "create":
        key, token = await admin.create_api_key(CLI, args.name, args.scope, args.days)
        print(token)
        print(
            f"API key {key.id} ({key.scope}) created; the token is shown only now",
            file=sys.stderr,
        )
    elif args.action == "list":
        now = time.time()
        for key in await admin.list_api_keys():
            state = (
                "revoked"
                if key.revoked_at is not None
                else ("active" if key.usable(now) else "expired")
            )
            print(
                f"{key.id}\t{key.name}\t{key.scope}\t{state}\t"
                f"expires {_date(key.expires_at)}\tlast used {_date(key.last_used_at)}\t"
                f"{key.created_by}"
            )
    else:
        key = await admin.revoke_api_key(CLI, args.key_id)
        print(f"revoked {key.id}\t{key.name}")
    return 0


def _date(timestamp: float | None) -> str:
    return "never" if timestamp is None else time.strftime("%Y-%m-%d", time.gmtime(timestamp))


def _moment(value: str) -> float:
    """A time for --since/--until: ISO 8601 (UTC unless an offset is given) or an age such as
    90m, 12h, 7d (that long ago)."""
    text = value.strip()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if text[:-1].isdigit() and text[-1:] in units:
        return time.time() - int(text[:-1]) * units[text[-1]]
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a time: use 2026-01-31, 2026-01-31T08:00 or an age like 7d"
        ) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _audit_filters(args: argparse.Namespace) -> AuditFilters:
    filters = AuditFilters()
    for name in ("event", "actor", "since", "until"):
        if getattr(args, name) is not None:
            filters[name] = getattr(args, name)
    if args.failed:
        filters["success"] = False
    return filters


@with_services
async def cmd_audit(args: argparse.Namespace, services: Services) -> int:
    admin = services.admin
    if args.action == "list":
        page = await admin.search_audit(user=args.user, limit=args.limit, **_audit_filters(args))
        for event in page.events:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(event.at))
            actor = f"{event.actor.kind}:{event.actor.name or event.actor.id}"
            outcome = "ok" if event.success else f"failed ({event.reason})"
            details = json.dumps(dict(event.details), sort_keys=True)
            print(f"{when}\t{event.event}\t{outcome}\t{actor}\t{event.actor.ip or '-'}\t{details}")
        return 0
    lines = admin.export_audit(user=args.user, **_audit_filters(args))
    if args.file == "-":
        sys.stdout.writelines(lines)
        return 0
    count = 0
    with open(args.file, "w", encoding="utf-8") as out:
        for line in lines:
            out.write(line)
            count += 1
    print(f"exported {count} events to {args.file}", file=sys.stderr)
    return 0


def _passphrase(args: argparse.Namespace, confirm: bool) -> str:
    """From the variable named by --passphrase-env, or asked at the terminal; never an argument,
    which would land in shell history and the process list."""
    if args.passphrase_env:
        value = os.environ.get(args.passphrase_env, "")
        if not value:  # not echoed: a passphrase typed here by mistake would land in logs
            raise InvalidInput("the environment variable named by --passphrase-env is not set")
        return value
    if not sys.stdin.isatty():
        raise InvalidInput("no terminal to ask for the passphrase: use --passphrase-env VAR")
    passphrase = getpass.getpass("Archive passphrase: ")
    if confirm and getpass.getpass("Repeat the passphrase: ") != passphrase:
        raise InvalidInput("the two passphrases differ")
    return passphrase


@with_services
async def cmd_export(args: argparse.Namespace, services: Services) -> int:
    snapshot = services.backups.export_to(Path(args.file), _passphrase(args, confirm=True))
    print(f"exported {snapshot.describe()} to {args.file}")
    print("keep the passphrase safe: without it the archive cannot be opened", file=sys.stderr)
    return 0


@with_services
async def cmd_import(args: argparse.Namespace, services: Services) -> int:
    snapshot = services.backups.import_from(
        Path(args.file), _passphrase(args, confirm=False), replace=args.replace
    )
    print(f"imported {snapshot.describe()}")
    print(
        "sessions are not carried over: people sign in again, with the same passkeys; "
        "restart Passgate if it is running",
        file=sys.stderr,
    )
    return 0


def add_api_keys(sub: Subparsers) -> None:
    """api-keys create|list|revoke."""
    api_keys = sub.add_parser("api-keys", help="API keys for the admin API")
    api_keys.set_defaults(func=cmd_api_keys)
    api_key_actions = api_keys.add_subparsers(dest="action", required=True)
    api_create = api_key_actions.add_parser("create", help="create a key (prints its token once)")
    api_create.add_argument("name")
    api_create.add_argument("--scope", choices=("read", "write"), default="read")
    api_create.add_argument("--days", type=float, help="expire after this many days")
    api_key_actions.add_parser("list", help="list keys")
    api_key_actions.add_parser("revoke", help="revoke a key").add_argument("key_id")


def add_audit(sub: Subparsers) -> None:
    """audit list|export."""
    audit = sub.add_parser("audit", help="the audit log")
    audit.set_defaults(func=cmd_audit)
    audit_actions = audit.add_subparsers(dest="action", required=True)
    audit_list = audit_actions.add_parser("list", help="show events, newest first")
    audit_export = audit_actions.add_parser("export", help="write events as JSON lines")
    audit_export.add_argument("file", help="output file, or - for standard output")
    audit_list.add_argument("--limit", type=int, default=50, help="at most (default 50)")
    for audit_parser in (audit_list, audit_export):
        audit_parser.add_argument("--user", help="username (or a deleted user's id)")
        audit_parser.add_argument("--event", help="event name, e.g. sign_in or user_created")
        audit_parser.add_argument("--actor", help="actor id or name")
        audit_parser.add_argument("--since", type=_moment, help="ISO time or age (7d, 12h)")
        audit_parser.add_argument("--until", type=_moment, help="ISO time or age (7d, 12h)")
        audit_parser.add_argument("--failed", action="store_true", help="failures only")


# `passgate import FILE`'s options, also read from what follows FILE (see cmd_import_any).
_ARCHIVE_OPTIONS = argparse.ArgumentParser(
    prog="passgate import", add_help=False, allow_abbrev=False
)
_ARCHIVE_OPTIONS.add_argument(
    "--passphrase-env",
    metavar="VAR",
    help="read the archive passphrase from this environment variable (else asked)",
)
_ARCHIVE_OPTIONS.add_argument(
    "--replace", action="store_true", help="wipe a database that holds data, in the same step"
)


def add_archive_commands(sub: Subparsers) -> None:
    """export FILE and import FILE."""
    from_env = "read the archive passphrase from this environment variable (else asked)"
    # No abbreviations: `--passphrase SECRET` must be an error, not --passphrase-env SECRET.
    export = sub.add_parser(
        "export", help="write every durable table to an encrypted archive", allow_abbrev=False
    )
    export.add_argument("file", help="archive to create (must not exist)")
    export.add_argument("--passphrase-env", metavar="VAR", help=from_env)
    export.set_defaults(func=cmd_export)
    restore = sub.add_parser(
        "import",
        help="restore an archive into an empty database (or import from another provider)",
        allow_abbrev=False,
        parents=[_ARCHIVE_OPTIONS],
    )
    restore.add_argument(
        "file",
        help="archive made by passgate export; or `tinyauth` to convert Tinyauth's configuration "
        "(`passgate import tinyauth --help`); or `pocket-id` to bring a Pocket-ID's data over "
        "(`passgate import pocket-id --help`)",
    )
    # --- import-tinyauth: `passgate import SOURCE ...` hands the rest to that importer.
    restore.add_argument("source_args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    restore.set_defaults(func=cmd_import_any)


# What follows `passgate import SOURCE`, and the settings (an importer that writes needs them).
ImportSource = Callable[[Sequence[str], Settings], int]
IMPORT_SOURCES: dict[str, ImportSource] = {
    "tinyauth": lambda argv, _settings: import_tinyauth.run(argv),  # converts files only
    "pocket-id": import_pocket_id.run,  # import-pocket-id
}


def cmd_import_any(args: argparse.Namespace, settings: Settings) -> int:
    """`passgate import FILE` restores an archive; `passgate import SOURCE ...` converts."""
    importer = IMPORT_SOURCES.get(args.file)
    if importer is None:  # options written after FILE landed in source_args
        _ARCHIVE_OPTIONS.parse_args(args.source_args, namespace=args)
        return cmd_import(args, settings)
    if args.replace or args.passphrase_env:
        raise InvalidInput(f"--replace and --passphrase-env are for archives, not {args.file}")
    return importer(args.source_args, settings)
