"""`passgate rules check`: how forward-auth reads a URL, and which access rule wins."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from gateway.cli.running import with_services
from gateway.forward_auth.decision import VERDICTS
from gateway.services import Services

if TYPE_CHECKING:
    from gateway.cli.running import Subparsers


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


def add_rules(sub: Subparsers) -> None:
    """rules check."""
    rules = sub.add_parser("rules", help="the access rules in CONFIG_FILE")
    rules.set_defaults(func=cmd_rules)
    rule_actions = rules.add_subparsers(dest="action", required=True)
    rules_check = rule_actions.add_parser(
        "check", help="show how forward-auth reads a URL and which rule wins"
    )
    rules_check.add_argument("url", help="absolute URL, e.g. https://app.example.com/%61dmin")
    rules_check.add_argument("--user", help="judge for this user (default: not signed in)")
    rules_check.add_argument("--method", default="GET", help="HTTP method (default: GET)")
