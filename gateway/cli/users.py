"""`passgate users`, `groups`, `one-time-access-token` and `signup-token`."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from gateway.audit.log import CLI
from gateway.cli.output import print_user
from gateway.cli.running import with_services
from gateway.services import Services

if TYPE_CHECKING:
    from gateway.cli.running import Subparsers


@with_services
async def cmd_users(args: argparse.Namespace, services: Services) -> int:
    admin = services.admin
    if args.action == "add":
        print_user(
            await admin.create_user(CLI, args.username, args.email, args.name, tuple(args.group))
        )
    elif args.action == "list":
        for user in await admin.list_users():
            print_user(user)
    elif args.action == "show":
        print_user(await admin.get_user(args.username))
    elif args.action == "update":
        groups = tuple(args.group) if args.group is not None else None
        print_user(
            await admin.update_user(
                CLI, args.username, email=args.email, display_name=args.name, groups=groups
            )
        )
    elif args.action in ("disable", "enable"):
        print_user(await admin.set_disabled(CLI, args.username, args.action == "disable"))
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
async def cmd_signup_token(args: argparse.Namespace, services: Services) -> int:
    invite = await services.admin.create_signup_token(CLI, args.days, args.uses)
    print(invite.url)
    if services.settings.allow_user_signups != "withToken":
        print(
            "note: ALLOW_USER_SIGNUPS is not withToken, so this link does not work yet",
            file=sys.stderr,
        )
    return 0


def add_users(sub: Subparsers) -> None:
    """users add|list|show|disable|enable|delete|update."""
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


def add_groups(sub: Subparsers) -> None:
    """groups list|add|delete|rename|add-member|remove-member."""
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


def add_one_time_access_token(sub: Subparsers) -> None:
    """one-time-access-token USER."""
    ota = sub.add_parser(
        "one-time-access-token", help="print a single-use sign-in link (APP_URL/lc/<code>)"
    )
    ota.add_argument("username")
    ota.add_argument("--minutes", type=int, default=60, choices=range(1, 1441), metavar="1-1440")
    ota.add_argument(
        "--email", action="store_true", help="email the link to the user (needs SMTP_*)"
    )
    ota.set_defaults(func=cmd_one_time_access_token)


def add_signup_token(sub: Subparsers) -> None:
    """signup-token create."""
    signup = sub.add_parser("signup-token", help="signup links (ALLOW_USER_SIGNUPS=withToken)")
    signup.set_defaults(func=cmd_signup_token)
    create = signup.add_subparsers(dest="action", required=True).add_parser(
        "create", help="print a signup link"
    )
    create.add_argument("--days", type=float, default=7.0, help="valid for (default 7)")
    create.add_argument("--uses", type=int, default=1, help="how many signups (default 1)")
