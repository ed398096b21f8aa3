"""`passgate import tinyauth --env FILE [--labels FILE] [--caddyfile FILE]`: Tinyauth's access
control as Passgate access rules (stdout or --output), notes on stderr.

Exit codes: 0 converted exactly, 1 converted with notes to read (something has no Passgate
equivalent), 2 an input could not be read (nothing written)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from gateway.core.errors import InvalidInput
from gateway.importers import tinyauth

EXIT_EXACT = 0
EXIT_WITH_NOTES = 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="passgate import tinyauth",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("--env", type=Path, help="Tinyauth's env file (TINYAUTH_... lines)")
    parser.add_argument(
        "--labels", type=Path, action="append", default=[], help="`docker inspect` JSON"
    )
    parser.add_argument(
        "--caddyfile", type=Path, help="a Caddyfile using Tinyauth's forward_auth blocks"
    )
    parser.add_argument(
        "--passgate", default="passgate:1411", help="where Caddy reaches Passgate (host:port)"
    )
    parser.add_argument(
        "--email-user",
        action="append",
        default=[],
        metavar="EMAIL=USERNAME",
        help="the Passgate username for an oauth.whitelist e-mail (repeatable)",
    )
    parser.add_argument(
        "--output", type=Path, help="write the rules here (must not exist) instead of stdout"
    )
    return parser


def run(argv: Sequence[str]) -> int:
    """Parse `argv` (what follows `passgate import tinyauth`) and convert."""
    args = build_parser().parse_args(list(argv))
    if args.env is None and not args.labels:
        raise InvalidInput("give --env FILE and/or --labels FILE")
    env = tinyauth.read_env_file(args.env) if args.env is not None else {}
    containers = [c for path in args.labels for c in tinyauth.read_docker_inspect(path)]
    email_users = {}
    for pair in args.email_user:
        email, sep, username = pair.partition("=")
        if not sep or not email.strip() or not username.strip():
            raise InvalidInput(f"--email-user {pair!r}: expected EMAIL=USERNAME")
        email_users[email.strip()] = username.strip()
    sources = ", ".join(str(p) for p in [args.env, *args.labels] if p is not None)
    conversion = tinyauth.convert(tinyauth.gather(env, containers), email_users, sources)
    notes = list(conversion.notes)
    caddy_text = None
    if args.caddyfile is not None:
        try:
            text = args.caddyfile.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"{args.caddyfile}: cannot read ({exc})") from None
        sites = tinyauth.convert_caddyfile(text, args.passgate, notes)
        if not sites:
            notes.append(
                tinyauth.Note(
                    str(args.caddyfile),
                    f"no forward_auth block with `uri {tinyauth.TINYAUTH_CADDY_URI}` found; "
                    "use Passgate's snippet as below",
                    lossy=False,
                )
            )
            caddy_text = tinyauth.passgate_snippet(args.passgate)
        else:
            caddy_text = "import /etc/caddy/passgate.caddy\n\n" + "\n".join(s.block for s in sites)
    if args.output is not None:
        try:
            with args.output.open("x", encoding="utf-8") as out:
                out.write(conversion.yaml)
        except OSError as exc:
            raise InvalidInput(f"{args.output}: cannot write ({exc.strerror})") from None
        print(f"wrote the access rules to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(conversion.yaml)
    if caddy_text is not None:
        target = sys.stderr if args.output is None else sys.stdout
        print("\n# Caddy: replace the Tinyauth site blocks with these", file=target)
        target.write(caddy_text)
    for note in notes:
        print(note, file=sys.stderr)
    lossy = any(note.lossy for note in notes)
    if lossy:
        print(
            "converted with notes: read every 'note:' line above before relying on the rules",
            file=sys.stderr,
        )
    return EXIT_WITH_NOTES if lossy else EXIT_EXACT
