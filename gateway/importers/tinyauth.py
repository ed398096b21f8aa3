"""Tinyauth (v5) configuration and Docker labels → Passgate access rules, and its Caddy
`forward_auth` blocks → Passgate's snippet.

Tinyauth v5 reads `TINYAUTH_`-prefixed variables (`TINYAUTH_APPS_<app>_USERS_ALLOW`, ...) and
container labels (`tinyauth.apps.<app>.users.allow`, ...); both flatten to the same dotted,
lower-case keys, so one reader serves both. Per request Tinyauth checks, in this order: IP
bypass, path rules (a matching `path.allow` or a non-matching `path.block` skips the login),
IP block/allow (global lists plus the app's), then the signed-in user (`users.block`,
`users.allow`, the OAuth e-mail `oauth.whitelist`, then `oauth.groups`/`ldap.groups`). The
rules written here keep that order as first-match rules. Where Passgate cannot say the same
thing the conversion leans closed (a narrower bypass, a wider protection, a refused entry) and
records a `Note`; nothing is dropped without one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from io import StringIO
from ipaddress import ip_network
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from dotenv import dotenv_values
from pydantic import ValidationError

from gateway.core.errors import PassgateError
from gateway.forward_auth.rules import RulesFileModel

TINYAUTH_VERSION = "v5"
PREFIX = "tinyauth."

APP_FIELDS = frozenset(
    {
        "config.domain",
        "users.allow",
        "users.block",
        "oauth.whitelist",
        "oauth.groups",
        "ldap.groups",
        "ip.allow",
        "ip.block",
        "ip.bypass",
        "path.allow",
        "path.block",
        "response.headers",
        "response.basicauth.username",
        "response.basicauth.password",
        "response.basicauth.passwordfile",
    }
)

# Tinyauth settings that shape its own server, not who may reach an app: Passgate has its own.
_NOT_NEEDED = {
    "database.path": "Passgate keeps its own database (DATA_DIR / DATABASE_URL)",
    "analytics.enabled": "Passgate sends no analytics",
    "resources.enabled": "Passgate has no resources server",
    "resources.path": "Passgate has no resources server",
    "server.port": "Passgate listens on PORT (1411 by default)",
    "server.address": "Passgate listens on HOST",
    "server.socketpath": "Passgate listens on HOST/PORT",
    "auth.securecookie": "Passgate sets Secure cookies from APP_URL's scheme",
    "auth.sessionexpiry": "Passgate's session lifetime is its own setting (see Settings)",
    "auth.sessionmaxlifetime": "Passgate's session lifetime is its own setting (see Settings)",
    "auth.logintimeout": "Passgate rate-limits sign-ins itself",
    "auth.loginmaxretries": "Passgate rate-limits sign-ins itself",
    "auth.trustedproxies": "set Passgate's TRUSTED_PROXIES to your proxy's address",
    "oidc.privatekeypath": "Passgate keeps its own signing keys (`passgate keys`)",
    "oidc.publickeypath": "Passgate keeps its own signing keys (`passgate keys`)",
}
_NOT_NEEDED_PREFIXES = ("ui.", "log.")

# Tinyauth before v5 read unprefixed names; they are reported, not guessed at.
_OLD_NAMES = frozenset(
    {"APP_URL", "SECRET", "SECRET_FILE", "USERS", "USERS_FILE", "OAUTH_WHITELIST", "APP_TITLE"}
)


class TinyauthImportError(PassgateError):
    """An input file is missing, unreadable or not in the expected format."""


@dataclass(frozen=True, slots=True)
class Note:
    """Something in the Tinyauth configuration that was changed, refused or not carried over.
    `lossy` notes mean the rules do not say exactly what Tinyauth did: read them."""

    where: str
    message: str
    lossy: bool = True

    def __str__(self) -> str:
        return f"{'note' if self.lossy else 'info'}: {self.where}: {self.message}"


@dataclass(slots=True)
class TinyauthApp:
    """One `apps.<name>` entry: its raw fields (dotted, lower-case) and where it came from."""

    name: str
    source: str
    fields: dict[str, str] = field(default_factory=dict)

    def get(self, key: str) -> str:
        return self.fields.get(key, "").strip()

    def items(self, key: str) -> list[str]:
        """A comma-separated list field (Tinyauth's []string and its CheckFilter lists)."""
        return [part.strip() for part in self.get(key).split(",") if part.strip()]


@dataclass(slots=True)
class TinyauthConfig:
    """What the importer read: global settings, apps, and notes made while reading."""

    settings: dict[str, str] = field(default_factory=dict)
    apps: dict[str, TinyauthApp] = field(default_factory=dict)
    notes: list[Note] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Conversion:
    """The rules file (YAML text) and every note about it."""

    yaml: str
    notes: tuple[Note, ...]

    @property
    def lossy(self) -> bool:
        return any(note.lossy for note in self.notes)


# --- reading --------------------------------------------------------------------------------


def read_env_file(path: Path) -> dict[str, str]:
    """`KEY=value` lines (docker compose `.env` style) as a mapping; TinyauthImportError if
    the file cannot be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TinyauthImportError(f"{path}: cannot read the env file ({exc})") from None
    values = dotenv_values(stream=StringIO(text), interpolate=False)
    return {key: value or "" for key, value in values.items()}


def read_docker_inspect(path: Path) -> list[tuple[str, dict[str, str]]]:
    """(container name, labels) for each container in `docker inspect` JSON (a list, or one
    object); TinyauthImportError when it is not that shape."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise TinyauthImportError(f"{path}: cannot read the labels file ({exc})") from None
    except json.JSONDecodeError as exc:
        raise TinyauthImportError(f"{path}: not JSON ({exc})") from None
    containers = data if isinstance(data, list) else [data]
    found = []
    for index, container in enumerate(containers):
        if not isinstance(container, dict):
            raise TinyauthImportError(f"{path}: item {index + 1} is not a docker inspect object")
        config = container.get("Config") or {}
        labels = config.get("Labels") if isinstance(config, dict) else None
        if labels is None:
            labels = container.get("Labels") or {}  # `docker compose config`-like shapes
        if not isinstance(labels, dict):
            raise TinyauthImportError(f"{path}: item {index + 1}: Labels is not a mapping")
        name = str(container.get("Name") or container.get("Id") or f"container {index + 1}")
        found.append((name.lstrip("/"), {str(k): str(v) for k, v in labels.items()}))
    return found


def gather(
    env: Mapping[str, str], containers: Iterable[tuple[str, Mapping[str, str]]] = ()
) -> TinyauthConfig:
    """Sort env variables and labels into settings and apps, noting whatever is unknown.
    Static (env) apps win over labels with the same name, as in Tinyauth."""
    config = TinyauthConfig()
    for raw_key, value in env.items():
        if not raw_key.upper().startswith("TINYAUTH_"):
            if raw_key.upper() in _OLD_NAMES:
                config.notes.append(
                    Note(
                        raw_key,
                        f"an unprefixed pre-v5 Tinyauth name; this importer reads Tinyauth "
                        f"{TINYAUTH_VERSION} (TINYAUTH_...), so it was not converted",
                    )
                )
            else:
                config.notes.append(Note(raw_key, "not a Tinyauth setting, ignored", lossy=False))
            continue
        key = raw_key.lower().replace("_", ".")
        _take(config, key.removeprefix(PREFIX), value, raw_key, "env")
    for container, labels in containers:
        for label, value in labels.items():
            if not label.lower().startswith(PREFIX):
                continue  # other tools' labels (traefik.*, com.docker.*)
            key = label.lower().removeprefix(PREFIX)
            if not key.startswith("apps."):
                config.notes.append(
                    Note(f"{container}: {label}", "unknown Tinyauth label, not converted")
                )
                continue
            _take(config, key, value, f"{container}: {label}", f"container {container}")
    return config


def _take(config: TinyauthConfig, key: str, value: str, where: str, source: str) -> None:
    if key.startswith("apps."):
        _, _, rest = key.partition(".")
        name, _, app_field = rest.partition(".")
        if not name or app_field not in APP_FIELDS:
            config.notes.append(Note(where, "unknown Tinyauth app field, not converted"))
            return
        app = config.apps.get(name)
        if app is None:
            app = config.apps[name] = TinyauthApp(name, source)
        elif app.source != source:  # Tinyauth takes the first definition whole
            config.notes.append(
                Note(
                    where,
                    f"app {name!r} is already defined by {app.source}, which Tinyauth uses "
                    f"first; this value is ignored",
                    lossy=False,
                )
            )
            return
        app.fields[app_field] = value
        return
    config.settings[key] = value
    if key == "experimental.configfile" and value.strip():
        config.notes.append(
            Note(where, "Tinyauth's YAML config file is not read: give its values as --env lines")
        )
    elif key in _NOT_NEEDED:
        config.notes.append(Note(where, _NOT_NEEDED[key], lossy=False))
    elif key.startswith(_NOT_NEEDED_PREFIXES):
        config.notes.append(Note(where, "Tinyauth's own UI and logs: not needed", lossy=False))


# --- converting -----------------------------------------------------------------------------


@dataclass(slots=True)
class _Builder:
    notes: list[Note]
    rules: list[dict[str, Any]] = field(default_factory=list)

    def add(self, **rule: Any) -> None:
        self.rules.append({k: v for k, v in rule.items() if v not in (None, [])})


def convert(
    config: TinyauthConfig, email_users: Mapping[str, str] | None = None, source: str = ""
) -> Conversion:
    """The Passgate rules for `config`. `email_users` maps OAuth e-mails (Tinyauth's
    `oauth.whitelist`) to Passgate usernames, which is what `subject: user:` names."""
    emails = {k.strip().lower(): v.strip() for k, v in (email_users or {}).items()}
    notes = list(config.notes)
    out = _Builder(notes)
    _global_notes(config, notes)
    base = _base_domain(config.settings.get("appurl", ""), notes)
    global_block = _networks(
        _list(config.settings.get("auth.ip.block", "")), "auth.ip.block", notes
    )
    global_allow = _networks(
        _list(config.settings.get("auth.ip.allow", "")), "auth.ip.allow", notes
    )
    # Tinyauth looks in its static (env) apps first, then in container labels.
    domains_seen: dict[str, str] = {}
    for app in sorted(config.apps.values(), key=lambda a: (a.source != "env", a.name)):
        _convert_app(app, base, global_block, global_allow, emails, out, domains_seen)
    if global_block or global_allow:
        if base is None:
            notes.append(
                Note(
                    "auth.ip",
                    "the global IP lists cannot cover hosts without an app entry: TINYAUTH_APPURL "
                    "is not set, so the rest of your domain is unknown",
                )
            )
        else:
            domains = [base, f"*.{base}"]
            if global_block:
                out.add(
                    name="tinyauth-ip-block", domain=domains, networks=global_block, policy="deny"
                )
            if global_allow:
                out.add(
                    name="tinyauth-ip-allow", domain=domains, networks=global_allow, policy="allow"
                )
                out.add(name="tinyauth-ip-not-allowed", domain=domains, policy="deny")
    if any("networks" in rule for rule in out.rules):
        notes.append(
            Note(
                "networks",
                "rules with networks judge the client's address, which Passgate takes from "
                "X-Forwarded-For only when the proxy is in TRUSTED_PROXIES: set it",
                lossy=False,
            )
        )
    document = {"default_policy": "allow", "rules": out.rules}
    try:  # the same validation CONFIG_FILE gets: never hand over a file Passgate refuses
        RulesFileModel.model_validate(document)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise TinyauthImportError(f"the converted rules would not load: {problems}") from None
    header = (
        f"# Passgate access rules converted from Tinyauth {TINYAUTH_VERSION} by "
        "`passgate import tinyauth`" + (f"\n# from {source}" if source else "") + ".\n"
        "# Like Tinyauth, any signed-in user reaches a host no rule names (default_policy: "
        "allow).\n"
        "# Check a URL with `passgate rules check URL --user NAME`. Path patterns match the\n"
        "# canonical path without the query string (Tinyauth matched the raw URI with it).\n"
    )
    lossy = [" ".join(str(note).splitlines()) for note in notes if note.lossy]
    if lossy:  # one line each: a value with a line break must not end the comment
        header += "# Notes from the conversion (also printed on stderr):\n" + "".join(
            f"#   {note}\n" for note in lossy
        )
    body = yaml.dump(document, Dumper=_RulesDumper, sort_keys=False, width=100)
    body = body.replace("\n- name:", "\n\n- name:")  # a blank line between rules
    return Conversion(header + "\n" + body, tuple(notes))


class _RulesDumper(yaml.SafeDumper):
    """Rules as block mappings with one-line lists, and no `&id001` anchors for shared lists."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


_RulesDumper.add_representer(
    list,
    lambda dumper, data: dumper.represent_sequence(
        "tag:yaml.org,2002:seq", data, flow_style=all(isinstance(i, str) for i in data)
    ),
)


def _global_notes(config: TinyauthConfig, notes: list[Note]) -> None:
    settings = config.settings
    users = _list(settings.get("auth.users", ""))
    if users:
        names = [u.split(":", 1)[0] for u in users]
        totp = [u.split(":", 1)[0] for u in users if u.count(":") >= 2]
        notes.append(
            Note(
                "auth.users",
                "local users with passwords are not imported: Passgate is passkey-only. Create "
                "each with `passgate users add NAME` and send a one-time link "
                f"(`passgate one-time-access-token NAME`): {', '.join(names)}"
                + (f"; TOTP secrets (for {', '.join(totp)}) are not carried over" if totp else ""),
            )
        )
    if settings.get("auth.usersfile", "").strip():
        notes.append(
            Note("auth.usersfile", "users file not read: create those users in Passgate too")
        )
    whitelist = _list(settings.get("oauth.whitelist", ""))
    if whitelist:
        notes.append(
            Note(
                "oauth.whitelist",
                "Passgate signs in only people who have an account, so this list is implied: "
                f"create accounts for {', '.join(whitelist)}",
                lossy=False,
            )
        )
    unknown: dict[str, str] = {}
    for key in settings:
        if key in ("appurl", "auth.users", "auth.usersfile", "oauth.whitelist"):
            continue
        if key in ("auth.ip.allow", "auth.ip.block", "experimental.configfile"):
            continue
        if key in _NOT_NEEDED:
            continue
        if key.startswith(_NOT_NEEDED_PREFIXES):
            continue
        if key.startswith(("oauth.providers.", "oauth.autoredirect")):
            unknown.setdefault(
                "oauth.providers",
                "Passgate does not sign people in through other OAuth providers (passkeys "
                "only); those users need Passgate accounts",
            )
        elif key.startswith("ldap."):
            unknown.setdefault(
                "ldap", "Passgate has no LDAP; create the users and groups in Passgate"
            )
        elif key.startswith("oidc.clients."):
            unknown.setdefault(
                "oidc.clients",
                "Tinyauth's OIDC clients are not imported here: register each with "
                "`passgate clients add` and give the app the new client secret",
            )
        else:
            unknown[key] = "unknown Tinyauth setting, not converted"
    notes.extend(Note(key, message) for key, message in unknown.items())


def _base_domain(app_url: str, notes: list[Note]) -> str | None:
    """The domain apps live under: TINYAUTH_APPURL's host without its first label."""
    if not app_url.strip():
        return None
    host = (urlsplit(app_url.strip()).hostname or "").lower()
    _, _, parent = host.partition(".")
    if "." not in parent:
        notes.append(Note("appurl", f"cannot tell the apps' domain from {app_url!r}"))
        return None
    return parent


def _list(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _networks(items: list[str], where: str, notes: list[Note]) -> list[str]:
    """Tinyauth IPs/CIDRs (it also reads `10.0.0.0-24` as a CIDR); invalid ones are noted
    and left out, as Tinyauth skips them too."""
    found = []
    for item in items:
        candidate = item.replace("-", "/")
        try:
            found.append(str(ip_network(candidate, strict=False)))
        except ValueError:
            notes.append(Note(where, f"{item!r} is not an IP or CIDR range; Tinyauth skips it too"))
    return found


def _convert_app(
    app: TinyauthApp,
    base: str | None,
    global_block: list[str],
    global_allow: list[str],
    emails: Mapping[str, str],
    out: _Builder,
    domains_seen: dict[str, str],
) -> None:
    where = f"apps.{app.name}"
    notes = out.notes
    domain = app.get("config.domain").lower()
    if domain:
        domain = urlsplit("//" + domain).hostname or domain  # Tinyauth compares the Host header
    elif base is not None:
        domain = f"{app.name}.{base}"
        notes.append(
            Note(
                where,
                f"no config.domain: Tinyauth matches any host whose first label is "
                f"{app.name!r}; the rules name {domain}",
                lossy=False,
            )
        )
    else:
        notes.append(
            Note(
                where,
                "no config.domain and no TINYAUTH_APPURL: this app's restrictions are NOT in "
                "the rules (any signed-in user reaches it)",
            )
        )
        return
    if domain in domains_seen:
        notes.append(
            Note(
                where,
                f"{domain} is already the domain of app {domains_seen[domain]!r}, whose rules "
                "come first; this app's rules are left out",
            )
        )
        return
    domains_seen[domain] = app.name
    name = app.name
    bypass_ips = _networks(app.items("ip.bypass"), f"{where}.ip.bypass", notes)
    block_ips = global_block + _networks(app.items("ip.block"), f"{where}.ip.block", notes)
    allow_ips = global_allow + _networks(app.items("ip.allow"), f"{where}.ip.allow", notes)
    if bypass_ips:
        out.add(name=f"{name}-ip-bypass", domain=domain, networks=bypass_ips, policy="bypass")
    open_path = app.get("path.allow")
    if open_path:
        pattern = _bypass_pattern(open_path, f"{where}.path.allow", notes)
        if pattern is not None:
            out.add(name=f"{name}-open-paths", domain=domain, resources=[pattern], policy="bypass")
    protected = app.get("path.block")
    guard: list[str] | None = None
    if protected:
        guarded = _protect_pattern(protected, f"{where}.path.block", notes)
        if guarded is None:
            notes.append(
                Note(
                    f"{where}.path.block",
                    "so every path of this app needs a sign-in (Tinyauth left the others open)",
                )
            )
        else:
            guard = [guarded]
    if block_ips:
        out.add(
            name=f"{name}-ip-block",
            domain=domain,
            resources=guard,
            networks=block_ips,
            policy="deny",
        )
    _user_rules(app, domain, guard, allow_ips or None, emails, out)
    if allow_ips:
        out.add(name=f"{name}-ip-not-allowed", domain=domain, resources=guard, policy="deny")
    if guard is not None:
        out.add(name=f"{name}-unprotected-paths", domain=domain, policy="bypass")
    _response_notes(app, where, notes)


def _user_rules(
    app: TinyauthApp,
    domain: str,
    guard: list[str] | None,
    networks: list[str] | None,
    emails: Mapping[str, str],
    out: _Builder,
) -> None:
    """users.block → deny; users.allow, oauth.whitelist and groups → one allow rule for those
    subjects and a deny for every other signed-in user."""
    where = f"apps.{app.name}"
    notes = out.notes
    name = app.name
    common = {"domain": domain, "resources": guard, "networks": networks}
    blocked, blocked_ok = _names(app.get("users.block"), f"{where}.users.block", notes)
    if not blocked_ok:
        notes.append(Note(f"{where}.users.block", "so this app is denied to every signed-in user"))
        out.add(name=f"{name}-unconvertible-block", **common, policy="deny")
        return
    if blocked:
        out.add(
            name=f"{name}-blocked-users",
            **common,
            subject=[f"user:{u}" for u in blocked],
            policy="deny",
        )
    allowed, allowed_ok = _names(app.get("users.allow"), f"{where}.users.allow", notes)
    subjects = [f"user:{u}" for u in allowed]
    asked = bool(app.get("users.allow")) or not allowed_ok
    groups = app.items("oauth.groups") + app.items("ldap.groups")
    if any(g.startswith("/") and g.endswith("/") for g in groups):
        notes.append(Note(f"{where}.oauth.groups", "regex group filters are not converted"))
        groups = [g for g in groups if not (g.startswith("/") and g.endswith("/"))]
        asked = True
    whitelist = app.get("oauth.whitelist")
    if whitelist and groups:
        notes.append(
            Note(
                f"{where}.oauth.whitelist",
                "Tinyauth required both a whitelisted e-mail and a group; Passgate's subject is "
                "'any of', so only the group requirement is kept",
            )
        )
    elif whitelist:
        asked = True
        listed, _ = _names(whitelist, f"{where}.oauth.whitelist", notes)
        for email in listed:
            username = emails.get(email.lower())
            if username is None:
                notes.append(
                    Note(
                        f"{where}.oauth.whitelist",
                        f"{email!r} left out: subjects name Passgate usernames; pass "
                        f"--email-user {email}=USERNAME",
                    )
                )
            else:
                subjects.append(f"user:{username}")
    if app.get("ldap.groups"):
        notes.append(
            Note(
                f"{where}.ldap.groups",
                "Passgate has no LDAP: these are Passgate groups now; put the users in them",
                lossy=False,
            )
        )
    if (groups or whitelist) and not app.get("users.allow"):
        notes.append(
            Note(
                where,
                "Tinyauth checked oauth.whitelist/groups for OAuth/LDAP users only and let every "
                "local user in; here only the listed users and groups are: add the former local "
                "users to the rule or to a group in Passgate",
            )
        )
    subjects += [f"group:{g}" for g in groups]
    asked = asked or bool(groups)
    if subjects:
        out.add(
            name=f"{name}-users",
            **common,
            subject=sorted(set(subjects), key=subjects.index),
            policy="allow",
        )
        out.add(name=f"{name}-others", **common, policy="deny")
    elif asked:
        notes.append(Note(where, "no allow-list entry could be converted, so the app is denied"))
        out.add(name=f"{name}-others", **common, policy="deny")
    else:
        out.add(name=name, **common, policy="allow")


def _names(value: str, where: str, notes: list[Note]) -> tuple[list[str], bool]:
    """A Tinyauth CheckFilter list: comma-separated names, or `/regex/` which Passgate's
    subjects cannot express (refused; False says the list was not converted)."""
    value = value.strip()
    if value.startswith("/") and value.endswith("/") and len(value) > 1:
        notes.append(Note(where, f"regex filter {value!r} cannot be a Passgate subject"))
        return [], False
    return _list(value), True


def _response_notes(app: TinyauthApp, where: str, notes: list[Note]) -> None:
    if app.items("response.headers"):
        headers = ", ".join(h.split("=", 1)[0] for h in app.items("response.headers"))
        notes.append(
            Note(
                f"{where}.response.headers",
                f"Passgate adds no custom headers ({headers}); set them with Caddy's "
                "request_header in the site block",
            )
        )
    if app.get("response.basicauth.username"):
        notes.append(
            Note(
                f"{where}.response.basicauth",
                "Passgate does not inject Basic credentials; add `request_header Authorization "
                '"Basic ..."` after `import passgate` in the site block if the app needs it',
            )
        )


# --- path patterns --------------------------------------------------------------------------

# A plain path: /api/public, optionally anchored and ended (`^/health$`).
_LITERAL = re.compile(r"^(\^?)(/[A-Za-z0-9_~/\-]*)(\$?)$")
# RE2 syntax Python's re reads differently or not at all, and anything aimed at the query.
_UNSAFE = ("\\p", "\\P", "[[:", "\\C", "\\Q", "(?U", "\\?", "[?]", "=", "&")


def _python_regex(pattern: str, where: str, notes: list[Note]) -> bool:
    for token in _UNSAFE:
        if token in pattern:
            notes.append(
                Note(
                    where,
                    f"pattern {pattern!r} refused: {token!r} either means something else in "
                    "Python's re or aims at the query string, which Passgate never matches",
                )
            )
            return False
    try:
        re.compile(pattern)
    except re.error as exc:
        notes.append(Note(where, f"pattern {pattern!r} refused: not a valid regex here ({exc})"))
        return False
    return True


def _bypass_pattern(pattern: str, where: str, notes: list[Note]) -> str | None:
    """A `path.allow` regex as a bypass resource, never wider than Tinyauth's: anchored at the
    start of the path and ending a path segment. None (with a note) if that cannot be done."""
    literal = _LITERAL.match(pattern)
    if literal is not None:
        anchored, path, ended = literal.groups()
        escaped = re.escape(path)
        if ended:
            result = f"^{escaped}$"
        elif path.endswith("/"):
            result = f"^{escaped}"
        else:
            result = f"^{escaped}(/|$)"
        if result != pattern:
            notes.append(
                Note(
                    where,
                    f"{pattern!r} written as {result!r}: "
                    + ("" if anchored else "Tinyauth matched it anywhere in the URI; ")
                    + (
                        "" if ended or path.endswith("/") else "it no longer opens longer names"
                    ).strip(),
                    lossy=False,
                )
            )
        return result
    if not pattern.startswith("^"):
        notes.append(
            Note(
                where,
                f"unanchored pattern {pattern!r} refused: Tinyauth opened any URI containing a "
                "match (query string included); write it starting with '^/' to open those paths",
            )
        )
        return None
    if not _python_regex(pattern, where, notes):
        return None
    body = pattern[1:]
    result = f"^(?:{body})" if "|" in body else pattern
    if not _ends_path(result):
        result += "(/|$)"
    if result != pattern:
        notes.append(Note(where, f"{pattern!r} written as {result!r} (no wider)", lossy=False))
    return result


def _protect_pattern(pattern: str, where: str, notes: list[Note]) -> str | None:
    """A `path.block` regex (the only paths that need a sign-in) as a resource, never
    narrower than Tinyauth's on the path: unanchored stays 'anywhere', `$` also takes a
    trailing '/'. None (with a note) if Python would read it differently."""
    if not _python_regex(pattern, where, notes):
        return None
    result = pattern if pattern.startswith("^") else f"^.*(?:{pattern})"
    if result.endswith("$") and not result.endswith(("/?$", "\\$")):
        result = result[:-1] + "/?$"
    if result != pattern:
        notes.append(Note(where, f"{pattern!r} written as {result!r} (no narrower)", lossy=False))
    return result


def _ends_path(pattern: str) -> bool:
    return pattern.rstrip(".*+?()").endswith(("/", "$", "\\Z", "\\z"))


# --- Caddy ----------------------------------------------------------------------------------

TINYAUTH_CADDY_URI = "/api/auth/caddy"


@dataclass(frozen=True, slots=True)
class CaddySite:
    """A site block that used Tinyauth, rewritten to import Passgate's snippet."""

    addresses: str
    block: str


def convert_caddyfile(text: str, passgate: str, notes: list[Note]) -> list[CaddySite]:
    """Each site block with a Tinyauth `forward_auth ... { uri /api/auth/caddy }`, with that
    block replaced by `import passgate <passgate>`. Other lines are kept as written."""
    sites = []
    blocks = _top_level_blocks(text)
    # Tinyauth's docs put forward_auth in a snippet, `(tinyauth_forwarder)`, that sites import.
    snippets = {
        head[1:-1].strip()
        for head, lines in blocks
        if head.startswith("(") and head.endswith(")") and _has_tinyauth(lines)
    }
    for addresses, lines in blocks:
        if addresses.startswith("("):
            continue
        rewritten: list[str] = []
        found = False
        index = 0
        while index < len(lines):
            line = lines[index]
            stripped = line.strip()
            words = stripped.split()
            if len(words) == 2 and words[0] == "import" and words[1] in snippets:
                found = True
                indent = line[: len(line) - len(line.lstrip())]
                rewritten.append(f"{indent}import passgate {passgate}")
                index += 1
                continue
            if stripped.startswith("forward_auth") and stripped.endswith("{"):
                end = _block_end(lines, index)
                inner = [entry.strip() for entry in lines[index + 1 : end]]
                if any(
                    entry.split()[:2] == ["uri", TINYAUTH_CADDY_URI] for entry in inner if entry
                ):
                    found = True
                    indent = line[: len(line) - len(line.lstrip())]
                    rewritten.append(f"{indent}import passgate {passgate}")
                    extra = [e for e in inner if e and e.split()[0] not in ("uri", "copy_headers")]
                    for entry in inner:
                        if entry.startswith("copy_headers"):
                            names = set(entry.split()[1:]) - {
                                "Remote-User",
                                "Remote-Email",
                                "Remote-Name",
                                "Remote-Groups",
                                "Remote-Sub",
                            }
                            if names:
                                extra.append("copy_headers " + " ".join(sorted(names)))
                    for entry in extra:
                        notes.append(
                            Note(
                                f"Caddyfile {addresses}",
                                f"forward_auth line {entry!r} has no counterpart in Passgate's "
                                "snippet (it copies Remote-User/-Email/-Name/-Groups)",
                            )
                        )
                    index = end + 1
                    continue
            rewritten.append(line)
            index += 1
        if found:
            sites.append(CaddySite(addresses, f"{addresses} {{\n" + "\n".join(rewritten) + "\n}\n"))
    return sites


def _has_tinyauth(lines: list[str]) -> bool:
    return any(line.split()[:2] == ["uri", TINYAUTH_CADDY_URI] for line in lines)


def _top_level_blocks(text: str) -> list[tuple[str, list[str]]]:
    """Top-level `head {` ... `}` blocks: sites and `(snippets)`, not the global options."""
    lines = text.splitlines()
    blocks = []
    index = 0
    while index < len(lines):
        stripped = lines[index].strip()
        if stripped.endswith("{") and not stripped.startswith("#"):
            head = stripped[:-1].strip()
            end = _block_end(lines, index)
            if head:
                blocks.append((head, lines[index + 1 : end]))
            index = end + 1
            continue
        index += 1
    return blocks


def _block_end(lines: list[str], start: int) -> int:
    """The index of the line closing the block opened on `start` (brace depth, comments off)."""
    depth = 0
    for index in range(start, len(lines)):
        code = lines[index].split("#", 1)[0]
        depth += code.count("{") - code.count("}")
        if depth <= 0:
            return index
    raise TinyauthImportError(f"Caddyfile: the block opened on line {start + 1} never closes")


def passgate_snippet(passgate: str) -> str:
    """The minimal site block for a site that had Tinyauth in front of it."""
    return (
        "import /etc/caddy/passgate.caddy\n"
        "app.example.com {\n"
        f"\timport passgate {passgate}\n"
        "\treverse_proxy app:8080\n"
        "}\n"
    )
