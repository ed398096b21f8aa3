"""The `passgate` command: serve, health check, users, groups, OIDC clients and login links."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from gateway import __version__
from gateway.accounts.users import User
from gateway.admin.administration import ClientChanges, ClientSettings
from gateway.audit.log import CLI, AuditFilters
from gateway.core import metrics
from gateway.core.errors import InvalidInput, PassgateError
from gateway.core.logs import configure
from gateway.core.settings import Settings, load_settings, settings_table
from gateway.forward_auth.decision import VERDICTS
from gateway.oidc.clients import OidcClient
from gateway.oidc.endpoints import discovery_url, endpoints
from gateway.services import Services, build_services


def _print_user(user: User) -> None:
    state = "disabled" if user.disabled else "active"
    groups = ",".join(user.groups) or "-"
    print(f"{user.username}\t{user.email or '-'}\t{user.display_name}\t{groups}\t{state}")


def _print_client_line(client: OidcClient) -> None:
    kind = "public" if client.public else "confidential"
    origin = "declared" if client.declared else "-"
    uris = ",".join(client.redirect_uris)
    print(f"{client.client_id}\t{client.name}\t{kind}\t{origin}\t{uris}")


def _print_client(client: OidcClient, app_url: str) -> None:
    rows = {
        "client_id": client.client_id,
        "name": client.name,
        "type": "public" if client.public else "confidential",
        "declared in CONFIG_FILE": "yes" if client.declared else "no",
        "redirect_uris": " ".join(client.redirect_uris),
        "post_logout_redirect_uris": " ".join(client.post_logout_redirect_uris) or "-",
        "allowed_groups": ",".join(client.allowed_groups) or "- (every user)",
        "pkce_required": "yes" if client.pkce_required else "no",
        "wildcard_callbacks": "yes" if client.wildcard_callbacks else "no",
        "id_token_alg": client.id_token_alg,
        "access_token_lifetime": f"{client.access_token_lifetime}s",
        "refresh_token_lifetime": f"{client.refresh_token_lifetime}s",
        "refresh_tokens": "always" if client.refresh_tokens else "with offline_access only",
        "logo_url": client.logo_url or "-",
        "discovery_url": discovery_url(app_url),
    }
    shown = ("issuer", "authorization_endpoint", "token_endpoint", "userinfo_endpoint")
    rows.update({name: url for name, url in endpoints(app_url).items() if name in shown})
    for key, value in rows.items():
        print(f"{key}: {value}")


def _print_secret(secret: str) -> None:
    print(f"client_secret: {secret}")
    print(
        "warning: the client secret is shown only now; it will not be shown again", file=sys.stderr
    )


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from gateway.web.app import create_app
    from gateway.web.asgi import settle_garbage_collector

    configure(settings.log_json, settings.log_level)
    services = build_services(settings)  # migrate once, before any worker starts
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


@with_services
async def cmd_users(args: argparse.Namespace, services: Services) -> int:
    admin = services.admin
    if args.action == "add":
        _print_user(
            await admin.create_user(CLI, args.username, args.email, args.name, tuple(args.group))
        )
    elif args.action == "list":
        for user in await admin.list_users():
            _print_user(user)
    elif args.action == "show":
        _print_user(await admin.get_user(args.username))
    elif args.action == "update":
        groups = tuple(args.group) if args.group is not None else None
        _print_user(
            await admin.update_user(
                CLI, args.username, email=args.email, display_name=args.name, groups=groups
            )
        )
    elif args.action in ("disable", "enable"):
        _print_user(await admin.set_disabled(CLI, args.username, args.action == "disable"))
    elif args.action == "delete":
        await admin.delete_user(CLI, args.username)
        print(f"deleted {args.username}")
    return 0


@with_services
async def cmd_groups(args: argparse.Namespace, services: Services) -> int:
    admin = services.admin
    if args.action == "add":
        group = await admin.create_group(CLI, args.name)
    elif args.action == "list":
        for group in await admin.list_groups():
            print(f"{group.name}\t{','.join(group.members) or '-'}")
        return 0
    elif args.action == "rename":
        group = await admin.rename_group(CLI, args.name, args.new_name)
    elif args.action == "delete":
        group = await admin.delete_group(CLI, args.name)
        print(f"deleted {group.name}")
        return 0
    elif args.action == "add-member":
        group = await admin.add_member(CLI, args.name, args.username)
    else:
        group = await admin.remove_member(CLI, args.name, args.username)
    print(f"{group.name}\t{','.join(group.members) or '-'}")
    return 0


@with_services
async def cmd_one_time_access_token(args: argparse.Namespace, services: Services) -> int:
    if args.email:
        user = await services.admin.email_login_link(CLI, args.username, args.minutes)
        print(f"sign-in link emailed to {user.username} <{user.email}>", file=sys.stderr)
        return 0
    url = await services.admin.create_login_link(CLI, args.username, args.minutes)
    print(url)
    print(f"Valid once, for {args.minutes} minutes. Code: {url.rsplit('/', 1)[1]}", file=sys.stderr)
    return 0


@with_services
async def cmd_claims(args: argparse.Namespace, services: Services) -> int:
    admin = services.admin
    if args.action == "set":
        claims = await admin.set_claim(CLI, args.subject, args.claim, args.value)
    elif args.action == "unset":
        claims = await admin.unset_claim(CLI, args.subject, args.claim)
    else:
        claims = await admin.list_claims(args.subject)
    for claim, value in claims.items():
        print(f"{claim}\t{value}")
    return 0


@with_services
async def cmd_keys(args: argparse.Namespace, services: Services) -> int:
    if args.action == "rotate":
        for kid in services.keys.rotate():
            print(f"new signing key {kid}")
        print(
            "old keys stay in the JWKS for two days, until tokens they signed expire",
            file=sys.stderr,
        )
    for kid, alg, created, retired in services.keys.list():
        state = (
            "active"
            if retired is None
            else "retired " + time.strftime("%Y-%m-%d %H:%M", time.gmtime(retired))
        )
        print(f"{kid}\t{alg}\t{time.strftime('%Y-%m-%d', time.gmtime(created))}\t{state}")
    return 0


@with_services
async def cmd_signup_token(args: argparse.Namespace, services: Services) -> int:
    invite = await services.admin.create_signup_token(CLI, args.days, args.uses)
    print(invite.url)
    if services.settings.allow_user_signups != "withToken":
        print(
            "note: ALLOW_USER_SIGNUPS is not withToken, so this link does not work yet",
            file=sys.stderr,
        )
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


# argparse dests that are ClientService.create/update keyword arguments of the same name
_CLIENT_OPTIONS = (
    "post_logout_redirect_uris",
    "allowed_groups",
    "pkce_required",
    "wildcard_callbacks",
    "id_token_alg",
    "refresh_tokens",
    "access_token_lifetime",
    "refresh_token_lifetime",
    "logo_url",
)


def _client_settings(args: argparse.Namespace) -> ClientSettings:
    changes: dict[str, Any] = {
        k: getattr(args, k) for k in _CLIENT_OPTIONS if getattr(args, k) is not None
    }
    for key in ("post_logout_redirect_uris", "allowed_groups"):
        if key in changes:  # `--group ''` clears the list
            changes[key] = [value for value in changes[key] if value]
    return cast(ClientSettings, changes)


@with_services
async def cmd_clients(args: argparse.Namespace, services: Services) -> int:
    admin, app_url = services.admin, services.settings.app_url
    if args.action == "add":
        client, secret = await admin.create_client(
            CLI, args.name, args.redirect_uris, public=args.public, **_client_settings(args)
        )
        _print_client(client, app_url)
        if secret is not None:
            _print_secret(secret)
    elif args.action == "list":
        for client in await admin.list_clients():
            _print_client_line(client)
    elif args.action == "show":
        _print_client(await admin.get_client(args.client_id), app_url)
    elif args.action == "update":
        changes = cast(ClientChanges, dict(_client_settings(args)))
        if args.name is not None:
            changes["name"] = args.name
        if args.redirect_uris is not None:
            changes["redirect_uris"] = args.redirect_uris
        _print_client(await admin.update_client(CLI, args.client_id, **changes), app_url)
    elif args.action == "delete":
        await admin.delete_client(CLI, args.client_id)
        print(f"deleted {args.client_id}")
    else:
        _print_secret(await admin.rotate_client_secret(CLI, args.client_id))
    return 0


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


@with_services
async def cmd_rules(args: argparse.Namespace, services: Services) -> int:
    """`passgate rules check URL`: the canonical form forward-auth judges and the rule that wins."""
    # Warnings about the rules themselves are logged when they load (stderr).
    check = await services.admin.check_access(args.url, args.user, args.method)
    print(f"url: {check.url}")
    print(f"canonical: {check.canonical_url}")
    print(f"path matched by rules: {check.path}")
    print(f"as: {check.username or 'someone not signed in'} ({check.method})")
    print(f"decision: {check.outcome.value}: {VERDICTS[check.outcome]}")
    print(f"rule: {check.rule}")
    if check.allowed_users is not None:
        print(f"signed-in users let in: {', '.join(check.allowed_users) or '-'}")
    return 0


def _add_client_options(parser: argparse.ArgumentParser, adding: bool) -> None:
    parser.add_argument(
        "--redirect-uri",
        dest="redirect_uris",
        action="append",
        required=adding,
        help="redirect URI (repeatable" + ("" if adding else "; replaces the list") + ")",
    )
    parser.add_argument(
        "--post-logout-uri",
        dest="post_logout_redirect_uris",
        action="append",
        help="post-logout redirect URI (repeatable; '' clears)",
    )
    parser.add_argument(
        "--group",
        dest="allowed_groups",
        action="append",
        help="only members of this group may sign in (repeatable; '' clears)",
    )
    flag = argparse.BooleanOptionalAction
    parser.add_argument(
        "--pkce",
        dest="pkce_required",
        action=flag,
        help="require PKCE from this confidential client (public clients always must)",
    )
    parser.add_argument(
        "--wildcard-callbacks", action=flag, help="allow * in redirect URIs (default: no)"
    )
    parser.add_argument(
        "--refresh-tokens",
        action=flag,
        help="issue refresh tokens even without offline_access (default: no)",
    )
    parser.add_argument("--id-token-alg", choices=("RS256", "ES256"))
    parser.add_argument("--access-token-lifetime", type=int, metavar="SECONDS")
    parser.add_argument("--refresh-token-lifetime", type=int, metavar="SECONDS")
    parser.add_argument("--logo-url")


def cmd_settings_table(args: argparse.Namespace, settings: Settings | None) -> int:
    print(settings_table())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="passgate", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

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

    users = sub.add_parser("users", help="manage users").add_subparsers(
        dest="action", required=True
    )
    add = users.add_parser("add", help="create a user")
    add.add_argument("username")
    add.add_argument("--email", default="")
    add.add_argument("--name", default="", help="display name")
    add.add_argument("--group", action="append", default=[], help="group (repeatable)")
    users.add_parser("list", help="list users")
    for action in ("show", "disable", "enable", "delete"):
        users.add_parser(action, help=f"{action} a user").add_argument("username")
    update = users.add_parser("update", help="change a user's email, name or groups")
    update.add_argument("username")
    update.add_argument("--email")
    update.add_argument("--name")
    update.add_argument("--group", action="append", help="replace groups (repeatable)")
    for name in ("users",):
        sub.choices[name].set_defaults(func=cmd_users)

    groups = sub.add_parser("groups", help="manage groups")
    groups.set_defaults(func=cmd_groups)
    gsub = groups.add_subparsers(dest="action", required=True)
    gsub.add_parser("list", help="list groups and members")
    for action in ("add", "delete"):
        gsub.add_parser(action, help=f"{action} a group").add_argument("name")
    rename = gsub.add_parser("rename", help="rename a group")
    rename.add_argument("name")
    rename.add_argument("new_name")
    for action in ("add-member", "remove-member"):
        member = gsub.add_parser(action, help=f"{action.replace('-', ' ')} to/from a group")
        member.add_argument("name")
        member.add_argument("username")

    clients = sub.add_parser("clients", help="manage OpenID Connect clients")
    clients.set_defaults(func=cmd_clients)
    csub = clients.add_subparsers(dest="action", required=True)
    cadd = csub.add_parser("add", help="create a client (prints its secret once)")
    cadd.add_argument("name")
    cadd.add_argument("--public", action="store_true", help="public client: no secret")
    _add_client_options(cadd, adding=True)
    csub.add_parser("list", help="list clients")
    cupdate = csub.add_parser("update", help="change a client's settings")
    cupdate.add_argument("client_id")
    cupdate.add_argument("--name")
    _add_client_options(cupdate, adding=False)
    for action, text in (
        ("show", "show a client and the values to paste into the app"),
        ("delete", "delete a client and its tokens"),
        ("rotate-secret", "replace a client's secret (prints it once)"),
    ):
        csub.add_parser(action, help=text).add_argument("client_id")

    ota = sub.add_parser(
        "one-time-access-token", help="print a single-use sign-in link (APP_URL/lc/<code>)"
    )
    ota.add_argument("username")
    ota.add_argument("--minutes", type=int, default=60, choices=range(1, 1441), metavar="1-1440")
    ota.add_argument(
        "--email", action="store_true", help="email the link to the user (needs SMTP_*)"
    )
    ota.set_defaults(func=cmd_one_time_access_token)
    signup = sub.add_parser("signup-token", help="signup links (ALLOW_USER_SIGNUPS=withToken)")
    signup.set_defaults(func=cmd_signup_token)
    create = signup.add_subparsers(dest="action", required=True).add_parser(
        "create", help="print a signup link"
    )
    create.add_argument("--days", type=float, default=7.0, help="valid for (default 7)")
    create.add_argument("--uses", type=int, default=1, help="how many signups (default 1)")
    claims = sub.add_parser("claims", help="custom claims for a user or group")
    claims.set_defaults(func=cmd_claims)
    claim_actions = claims.add_subparsers(dest="action", required=True)
    claim_list = claim_actions.add_parser("list", help="list a subject's custom claims")
    claim_list.add_argument("subject", help="user:NAME or group:NAME")
    claim_set = claim_actions.add_parser("set", help="set a custom claim")
    claim_set.add_argument("subject", help="user:NAME or group:NAME")
    claim_set.add_argument("claim")
    claim_set.add_argument("value")
    claim_unset = claim_actions.add_parser("unset", help="remove a custom claim")
    claim_unset.add_argument("subject", help="user:NAME or group:NAME")
    claim_unset.add_argument("claim")

    api_keys = sub.add_parser("api-keys", help="API keys for the admin API")
    api_keys.set_defaults(func=cmd_api_keys)
    api_key_actions = api_keys.add_subparsers(dest="action", required=True)
    api_create = api_key_actions.add_parser("create", help="create a key (prints its token once)")
    api_create.add_argument("name")
    api_create.add_argument("--scope", choices=("read", "write"), default="read")
    api_create.add_argument("--days", type=float, help="expire after this many days")
    api_key_actions.add_parser("list", help="list keys")
    api_key_actions.add_parser("revoke", help="revoke a key").add_argument("key_id")

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

    rules = sub.add_parser("rules", help="the access rules in CONFIG_FILE")
    rules.set_defaults(func=cmd_rules)
    rule_actions = rules.add_subparsers(dest="action", required=True)
    rules_check = rule_actions.add_parser(
        "check", help="show how forward-auth reads a URL and which rule wins"
    )
    rules_check.add_argument("url", help="absolute URL, e.g. https://app.example.com/x/../admin")
    rules_check.add_argument("--user", help="judge for this user (default: not signed in)")
    rules_check.add_argument("--method", default="GET", help="HTTP method (default: GET)")

    keys = sub.add_parser("keys", help="ID-token signing keys")
    keys.set_defaults(func=cmd_keys)
    key_actions = keys.add_subparsers(dest="action", required=True)
    key_actions.add_parser("list", help="list signing keys")
    key_actions.add_parser("rotate", help="add new keys; old ones stay published until expiry")

    from_env = "read the archive passphrase from this environment variable (else asked)"
    # No abbreviations: `--passphrase SECRET` must be an error, not --passphrase-env SECRET.
    export = sub.add_parser(
        "export", help="write every durable table to an encrypted archive", allow_abbrev=False
    )
    export.add_argument("file", help="archive to create (must not exist)")
    export.add_argument("--passphrase-env", metavar="VAR", help=from_env)
    export.set_defaults(func=cmd_export)
    restore = sub.add_parser(
        "import", help="restore an archive into an empty database", allow_abbrev=False
    )
    restore.add_argument("file", help="archive made by passgate export")
    restore.add_argument("--passphrase-env", metavar="VAR", help=from_env)
    restore.add_argument(
        "--replace", action="store_true", help="wipe a database that holds data, in the same step"
    )
    restore.set_defaults(func=cmd_import)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "version":
        print(f"passgate {__version__}")
        return 0
    if args.command == "settings-table":
        return cmd_settings_table(args, None)
    try:
        settings = load_settings()
        result: int = args.func(args, settings)
        return result
    except PassgateError as exc:
        print(f"passgate: {type(exc).__name__ if not str(exc) else ''}{exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
