"""Access rules from a YAML file (Authelia-like; first match wins), compiled for the hot path.

The file is validated with pydantic at the edge and compiled into frozen dataclasses with
precompiled regexes and networks, so a request never re-parses anything. `RulesStore` re-reads
the file when it changes and keeps the old rules (with one clear log line) when the new ones
are broken.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_network
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from gateway.core.errors import PassgateError

log = logging.getLogger("passgate.rules")

CHECK_INTERVAL = 1.0  # seconds between stat() calls on the rules file

Policy = Literal["bypass", "allow", "deny"]
METHODS = frozenset(
    {
        "GET",
        "HEAD",
        "POST",
        "PUT",
        "PATCH",
        "DELETE",
        "OPTIONS",
        "CONNECT",
        "TRACE",
        "PROPFIND",
        "PROPPATCH",
        "MKCOL",
        "COPY",
        "MOVE",
        "LOCK",
        "UNLOCK",
        "REPORT",
        "SEARCH",
    }
)
_DOMAIN = re.compile(r"^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")


class RulesError(PassgateError):
    """The rules file is missing, unreadable or invalid; the message says where and why."""


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (a second `policy:` must not silently win)."""


def _mapping_without_duplicates(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates
)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return f"line {mark.line + 1}, column {mark.column + 1}: {exc.problem or exc.context}"
    return str(exc).splitlines()[0]


def _as_list(value: object) -> object:
    return [value] if isinstance(value, str) else value


class RuleModel(BaseModel):
    """One rule as written in the YAML file."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    domain: list[str]
    resources: list[str] | None = None
    methods: list[str] | None = None
    networks: list[str] | None = None
    subject: list[str] | None = None
    policy: Policy

    _listify = field_validator(
        "domain", "resources", "methods", "networks", "subject", mode="before"
    )(_as_list)

    @field_validator("domain")
    @classmethod
    def _check_domains(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one domain is required")
        cleaned = [d.strip().lower().rstrip(".") for d in value]
        for domain in cleaned:
            if not _DOMAIN.match(domain):
                raise ValueError(f"{domain!r} is not a domain or *.wildcard domain")
        return cleaned

    @field_validator("resources")
    @classmethod
    def _check_resources(cls, value: list[str] | None) -> list[str] | None:
        for pattern in value or ():
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a valid regex ({exc})") from None
        return value

    @field_validator("methods")
    @classmethod
    def _check_methods(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        upper = [m.strip().upper() for m in value]
        for method in upper:
            if method not in METHODS:
                raise ValueError(f"{method!r} is not an HTTP method")
        return upper

    @field_validator("networks")
    @classmethod
    def _check_networks(cls, value: list[str] | None) -> list[str] | None:
        for network in value or ():
            try:
                ip_network(network.strip(), strict=False)
            except ValueError:
                raise ValueError(f"{network!r} is not an IP network") from None
        return value

    @field_validator("subject")
    @classmethod
    def _check_subject(cls, value: list[str] | None) -> list[str] | None:
        for entry in value or ():
            kind, _, name = entry.partition(":")
            if kind not in ("user", "group") or not name.strip():
                raise ValueError(f"{entry!r} must be user:NAME or group:NAME")
        return value


class RulesFileModel(BaseModel):
    """The whole rules file as written."""

    model_config = ConfigDict(extra="forbid")

    default_policy: Policy = "allow"
    rules: list[RuleModel] = []
    clients: list[dict[str, Any]] = []  # OIDC clients: gateway.oidc.clients validates them

    @field_validator("rules", mode="before")
    @classmethod
    def _none_is_empty(cls, value: object) -> object:
        return [] if value is None else value


@dataclass(frozen=True, slots=True)
class Rule:
    """A compiled rule: everything the hot path needs, parsed once."""

    name: str
    exact_domains: frozenset[str]
    wildcard_suffixes: tuple[str, ...]  # ".example.com" for "*.example.com"
    resources: tuple[re.Pattern[str], ...]
    methods: frozenset[str]
    networks: tuple[IPv4Network | IPv6Network, ...]
    users: frozenset[str]
    groups: frozenset[str]
    policy: Policy

    @property
    def has_subject(self) -> bool:
        return bool(self.users or self.groups)

    def matches_request(
        self, host: str, path: str, method: str, client: IPv4Address | IPv6Address | None
    ) -> bool:
        if host not in self.exact_domains and not host.endswith(self.wildcard_suffixes):
            return False
        if self.methods and method not in self.methods:
            return False
        if self.resources and not any(p.search(path) for p in self.resources):
            return False
        if self.networks:
            if client is None:
                return False
            if isinstance(client, IPv6Address) and client.ipv4_mapped is not None:
                client = client.ipv4_mapped  # ::ffff:192.168.1.5 from a dual-stack socket
            return any(client in n for n in self.networks)
        return True

    def domains(self) -> tuple[str, ...]:
        return (*self.exact_domains, *("*" + s for s in self.wildcard_suffixes))


@dataclass(frozen=True, slots=True)
class RuleSet:
    """Compiled rules in file order, plus the policy when none matches, and warnings about
    patterns that probably match more than their author meant."""

    default_policy: Policy
    rules: tuple[Rule, ...]
    warnings: tuple[str, ...] = ()

    @classmethod
    def empty(cls, default_policy: Policy = "allow") -> RuleSet:
        return cls(default_policy, ())

    def domains(self) -> tuple[str, ...]:
        """Every domain pattern the rules name (trusted as return-URL hosts)."""
        return tuple(dict.fromkeys(d for rule in self.rules for d in rule.domains()))


def _compile(index: int, model: RuleModel) -> Rule:
    users = frozenset(
        s.split(":", 1)[1].strip().lower() for s in model.subject or () if s.startswith("user:")
    )
    groups = frozenset(
        s.split(":", 1)[1].strip() for s in model.subject or () if s.startswith("group:")
    )
    return Rule(
        name=model.name or f"rule {index}",
        exact_domains=frozenset(d for d in model.domain if not d.startswith("*.")),
        wildcard_suffixes=tuple(d[1:] for d in model.domain if d.startswith("*.")),
        resources=tuple(re.compile(p) for p in model.resources or ()),
        # HEAD is GET without a body, and apps answer it with their GET handler.
        methods=frozenset(model.methods or ())
        | ({"HEAD"} if "GET" in (model.methods or ()) else set()),
        networks=tuple(ip_network(n.strip(), strict=False) for n in model.networks or ()),
        users=users,
        groups=groups,
        policy=model.policy,
    )


def _describe(path: Path, data: dict[Any, Any], error: ValidationError) -> str:
    """One readable clause per problem: `rule 2 ("media"): networks: '10.0.0.300' is not ...`."""
    rules = data.get("rules")
    problems = []
    for item in error.errors():
        loc = list(item["loc"])
        where = ""
        if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
            index = loc[1]
            raw = rules[index] if isinstance(rules, list) and index < len(rules) else None
            name = raw.get("name") if isinstance(raw, dict) else None
            where = f"rule {index + 1}" + (f' ("{name}")' if name else "") + ": "
            loc = loc[2:]
        field = ".".join(str(part) for part in loc if not isinstance(part, int))
        if item["type"] == "extra_forbidden":
            message = "unknown key (allowed: " + ", ".join(_allowed_keys(where)) + ")"
        else:
            message = str(item["msg"]).removeprefix("Value error, ")
        problems.append(f"{where}{field + ': ' if field else ''}{message}")
    return f"{path}: " + "; ".join(problems)


def _allowed_keys(where: str) -> list[str]:
    model = RuleModel if where else RulesFileModel
    return list(model.model_fields)


def load_rules(path: Path) -> RuleSet:
    """Read and compile a rules file; raise RulesError with a readable message."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RulesError(f"{path}: cannot read the rules file ({exc.strerror})") from None
    try:
        data = yaml.load(text, Loader=_StrictLoader) or {}  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise RulesError(f"{path}: not valid YAML ({_yaml_problem(exc)})") from None
    if not isinstance(data, dict):
        raise RulesError(f"{path}: expected a mapping with default_policy and rules at the top")
    try:
        model = RulesFileModel.model_validate(data)
    except ValidationError as exc:
        raise RulesError(_describe(path, data, exc)) from None
    rules = tuple(_compile(i, rule) for i, rule in enumerate(model.rules, start=1))
    warnings = tuple(
        f"{path}: {warning}"
        for i, rule in enumerate(model.rules, start=1)
        for warning in _warnings(i, rule)
    )
    return RuleSet(model.default_policy, rules, warnings)


def _warnings(index: int, model: RuleModel) -> list[str]:
    """Resource patterns that are valid but likely wider than meant. Patterns match the
    canonical path (gateway.http.request_target), from its first character only if anchored."""
    where = f"rule {index}" + (f' ("{model.name}")' if model.name else "")
    found = []
    for pattern in model.resources or ():
        if not pattern.startswith(("^", "\\A")):
            found.append(
                f"{where}: resource {pattern!r} has no leading '^', so it matches anywhere in "
                f"the path (e.g. /anything{pattern.lstrip('^')})"
            )
        if model.policy == "deny" and pattern.endswith("$") and not pattern.endswith("/?$"):
            found.append(
                f"{where}: deny resource {pattern!r} ends in '$', so the same path with a "
                f"trailing '/' is not denied (many apps serve /report/ as /report); end it in "
                f"'/?$'"
            )
        if model.policy == "bypass" and not _ends_a_path(pattern):
            found.append(
                f"{where}: bypass resource {pattern!r} ends neither in '/' nor '$', so it also "
                f"matches longer names (e.g. '^/public' matches /publicity); write '^/public/' "
                f"or '^/public(/|$)'"
            )
    return found


def _ends_a_path(pattern: str) -> bool:
    """Whether a pattern ends its last path segment: `...$`, `.../`, `.../.*`."""
    return pattern.rstrip(".*+?()").endswith(("/", "$", "\\Z", "\\z"))


class RulesStore:
    """The current rules, re-read when the file changes (checked at most once a second)."""

    def __init__(self, path: Path | None, clock: Callable[[], float] = time.monotonic) -> None:
        self._path = path
        self._clock = clock
        self._next_check = 0.0
        self._signature: tuple[int, int] | None = None
        if path is None:
            self._current = RuleSet.empty()
            return
        self._signature = self._stat()  # before reading: a write in between is seen next time
        self._current = load_rules(path)
        self._next_check = clock() + CHECK_INTERVAL
        log.info("access rules loaded from %s (%d rules)", path, len(self._current.rules))
        self._log_warnings()

    @property
    def current(self) -> RuleSet:
        """The rules in force."""
        return self._current

    def _stat(self) -> tuple[int, int] | None:
        assert self._path is not None
        try:
            info = self._path.stat()
        except OSError:
            return None
        return (info.st_mtime_ns, info.st_size)

    def maybe_reload(self) -> None:
        """Reload if the file changed; on error log once and keep the rules in force."""
        if self._path is None:
            return
        now = self._clock()
        if now < self._next_check:
            return
        self._next_check = now + CHECK_INTERVAL
        signature = self._stat()
        if signature == self._signature:
            return
        self._signature = signature  # remembered even on failure: one log line per change
        try:
            self._current = load_rules(self._path)
        except RulesError as exc:
            log.error("access rules not reloaded, the previous rules stay in force: %s", exc)
            return
        log.info("access rules reloaded from %s (%d rules)", self._path, len(self._current.rules))
        self._log_warnings()

    def _log_warnings(self) -> None:
        for warning in self._current.warnings:
            log.warning("access rules: %s", warning)
