"""`passgate clients`, `claims` and `keys`: OpenID Connect clients, custom claims, signing keys."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from gateway.admin.administration import ClientChanges, ClientSettings
from gateway.audit.log import CLI
from gateway.cli.output import print_client, print_client_line, print_secret, print_secret_line
from gateway.cli.running import with_services
from gateway.core.errors import InvalidInput
from gateway.oidc.client_service import LOGO_MAX_BYTES, AppAuth
from gateway.oidc.clients import parse_federated_identity
from gateway.services import Services

if TYPE_CHECKING:
    from gateway.cli.running import Subparsers


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
    # machine and TV grants
    "grant_types",
    "client_credentials_scopes",
    "access_token_format",
    "allowed_resources",
    "dpop_bound_access_tokens",
    "skip_consent",
    "require_reauth",
    "launch_url",
)


def _client_settings(args: argparse.Namespace) -> ClientSettings:
    changes: dict[str, Any] = {
        k: getattr(args, k) for k in _CLIENT_OPTIONS if getattr(args, k) is not None
    }
    lists = (
        "post_logout_redirect_uris",
        "allowed_groups",
        "grant_types",
        "client_credentials_scopes",
        "allowed_resources",
    )
    for key in lists:
        if key in changes:  # `--group ''` clears the list
            changes[key] = [value for value in changes[key] if value]
    app_auth = _app_auth(args)
    if app_auth != AppAuth():
        changes["app_auth"] = app_auth
    return cast(ClientSettings, changes)


# pushed authorization requests and signed client authentication (oidc-app-auth) -------------


def _app_auth(args: argparse.Namespace) -> AppAuth:
    """The PAR and client-authentication flags; InvalidInput for an unreadable JWKS file or a
    malformed --federated-identity."""
    jwks = None
    if args.jwks_file is not None:
        try:
            jwks = Path(args.jwks_file).read_text(encoding="utf-8") if args.jwks_file else ""
        except OSError as exc:
            raise InvalidInput(f"--jwks-file {args.jwks_file}: {exc.strerror}") from None
    identities = None
    if args.federated_identities is not None:
        identities = [parse_federated_identity(text) for text in args.federated_identities if text]
    return AppAuth(
        require_par=args.require_par,
        token_endpoint_auth_method=args.auth_method,
        jwks=jwks,
        jwks_uri=args.jwks_uri,
        federated_identities=identities,
    )


def _add_app_auth_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--require-par",
        action=argparse.BooleanOptionalAction,
        help="accept /authorize only with a pushed request's request_uri (default: no)",
    )
    parser.add_argument(
        "--auth-method",
        choices=(
            "client_secret_basic",
            "client_secret_post",
            "client_secret_jwt",
            "private_key_jwt",
        ),
        help="how the client authenticates at the token endpoints (default: "
        "client_secret_basic, which also accepts client_secret_post)",
    )
    parser.add_argument(
        "--jwks-file",
        metavar="PATH",
        help="private_key_jwt: the client's public JWK Set ('' clears)",
    )
    parser.add_argument(
        "--jwks-uri", metavar="URL", help="private_key_jwt: fetch the JWK Set here ('' clears)"
    )
    parser.add_argument(
        "--federated-identity",
        dest="federated_identities",
        action="append",
        metavar="issuer=URL[,subject=..][,audience=..][,jwks=URL][,replay_protection=yes]",
        help="private_key_jwt: a trusted issuer whose tokens authenticate the client "
        "(repeatable; replaces the list; '' clears)",
    )


@with_services
async def cmd_clients(args: argparse.Namespace, services: Services) -> int:
    admin, app_url = services.admin, services.settings.app_url
    if args.action == "add":
        client, secret = await admin.create_client(
            CLI, args.name, args.redirect_uris, public=args.public, **_client_settings(args)
        )
        print_client(client, app_url)
        if secret is not None:
            print_secret(secret)
    elif args.action == "list":
        for client in await admin.list_clients():
            print_client_line(client)
    elif args.action == "show":
        print_client(await admin.get_client(args.client_id), app_url)
    elif args.action == "update":
        changes = cast(ClientChanges, dict(_client_settings(args)))
        if args.name is not None:
            changes["name"] = args.name
        if args.redirect_uris is not None:
            changes["redirect_uris"] = args.redirect_uris
        print_client(await admin.update_client(CLI, args.client_id, **changes), app_url)
    elif args.action == "delete":
        await admin.delete_client(CLI, args.client_id)
        print(f"deleted {args.client_id}")
    elif args.action == "secret":
        await _secret_command(args, services)
    elif args.action == "logo":
        if args.logo_step == "set":
            image = _read_logo(args.file)
            client = await admin.set_client_logo(CLI, args.client_id, image)
        else:
            client = await admin.delete_client_logo(CLI, args.client_id)
        print_client(client, app_url)
    else:
        print_secret(await admin.rotate_client_secret(CLI, args.client_id))
    return 0


async def _secret_command(args: argparse.Namespace, services: Services) -> None:
    """clients secret add|list|revoke: several secrets per client, for rotation."""
    admin = services.admin
    if args.step == "add":
        expires_at = _expiry(args.expires_in, args.expires)
        added, value = await admin.add_client_secret(CLI, args.client_id, args.name, expires_at)
        print_secret_line(added)
        print_secret(value)
        print(
            "the client's other secrets keep working until they expire or are revoked",
            file=sys.stderr,
        )
    elif args.step == "list":
        for secret in await admin.list_client_secrets(args.client_id):
            print_secret_line(secret)
    else:
        print_secret_line(await admin.revoke_client_secret(CLI, args.client_id, args.secret_id))


def _expiry(days: float | None, date: str | None) -> float | None:
    """When a new secret expires: in DAYS, or at an ISO 8601 date/time (UTC unless it says)."""
    if days is not None and date is not None:
        raise InvalidInput("give --expires-in or --expires, not both")
    if days is not None:
        if not 0 < days <= 3650:
            raise InvalidInput("--expires-in must be between 0 and 3650 days")
        return time.time() + days * 86400
    if date is None:
        return None
    try:
        when = datetime.fromisoformat(date)
    except ValueError:
        raise InvalidInput(f"--expires {date!r} is not an ISO 8601 date or time") from None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def _read_logo(path: str) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read(LOGO_MAX_BYTES + 1)
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from None


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
    # machine and TV grants
    parser.add_argument(
        "--grant",
        dest="grant_types",
        action="append",
        choices=("client_credentials", "device_code", ""),
        help="also allow this grant (repeatable; '' clears; authorization_code is always on)",
    )
    parser.add_argument(
        "--client-credentials-scope",
        dest="client_credentials_scopes",
        action="append",
        metavar="SCOPE",
        help="a scope client_credentials may ask for, such as backup:read (repeatable; '' clears)",
    )
    # access tokens: format, resource indicators (RFC 8707), DPoP (RFC 9449)
    parser.add_argument(
        "--access-token-format",
        choices=("opaque", "jwt"),
        help="jwt: RFC 9068 access tokens, verifiable offline (default: opaque)",
    )
    parser.add_argument(
        "--resource",
        dest="allowed_resources",
        action="append",
        metavar="URI",
        help="an API resource (audience) the client may ask tokens for (repeatable; '' clears)",
    )
    parser.add_argument(
        "--dpop",
        dest="dpop_bound_access_tokens",
        action=argparse.BooleanOptionalAction,
        help="require DPoP proofs: sender-constrained tokens (default: no)",
    )
    _add_app_auth_options(parser)
    parser.add_argument(
        "--skip-consent",
        action=flag,
        help="trusted first-party app: never ask for consent, record it (default: no)",
    )
    parser.add_argument(
        "--reauth",
        dest="require_reauth",
        action=flag,
        help="every sign-in to this app needs a fresh passkey ceremony (default: no)",
    )
    parser.add_argument(
        "--launch-url", help="https URL that My apps opens ('' removes the app from My apps)"
    )


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


def add_clients(sub: Subparsers) -> None:
    """clients add|list|update|show|delete|rotate-secret|secret|logo."""
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
        ("rotate-secret", "replace all of a client's secrets at once (prints the new one once)"),
    ):
        csub.add_parser(action, help=text).add_argument("client_id")
    secret = csub.add_parser("secret", help="a client's secrets: add, list, revoke (rotation)")
    ssub = secret.add_subparsers(dest="step", required=True)
    sadd = ssub.add_parser("add", help="add a secret, keeping the others (prints it once)")
    sadd.add_argument("client_id")
    sadd.add_argument("--name", default="", help='a label (default "secret", "secret-2", ...)')
    sadd.add_argument("--expires-in", type=float, metavar="DAYS", help="expire after DAYS")
    sadd.add_argument("--expires", metavar="WHEN", help="expire at an ISO 8601 date or time")
    ssub.add_parser("list", help="list a client's secrets (never their values)").add_argument(
        "client_id"
    )
    srevoke = ssub.add_parser("revoke", help="revoke one secret at once")
    srevoke.add_argument("client_id")
    srevoke.add_argument("secret_id", help="the id shown by `clients secret list`")
    logo = csub.add_parser("logo", help="upload or remove a client's logo (PNG or JPEG)")
    lsub = logo.add_subparsers(dest="logo_step", required=True)
    lset = lsub.add_parser("set", help="upload a logo file")
    lset.add_argument("client_id")
    lset.add_argument("file")
    lsub.add_parser("remove", help="remove the uploaded logo").add_argument("client_id")


def add_claims(sub: Subparsers) -> None:
    """claims list|set|unset."""
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


def add_keys(sub: Subparsers) -> None:
    """keys list|rotate."""
    keys = sub.add_parser("keys", help="ID-token signing keys")
    keys.set_defaults(func=cmd_keys)
    key_actions = keys.add_subparsers(dest="action", required=True)
    key_actions.add_parser("list", help="list signing keys")
    key_actions.add_parser("rotate", help="add new keys; old ones stay published until expiry")
