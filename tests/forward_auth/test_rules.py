"""Loading, validating, compiling and hot-reloading the access rules file."""

from __future__ import annotations

import logging
import os
import re
from ipaddress import ip_network
from pathlib import Path

import pytest

from gateway.forward_auth.rules import RulesError, RuleSet, RulesStore, load_rules

ROOT = Path(__file__).resolve().parent.parent.parent


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def rules_file(tmp_path: Path, text: str) -> Path:
    return write(tmp_path / "rules.yaml", text)


def change(path: Path, text: str) -> None:
    """Rewrite the file and make sure its mtime moves, however coarse the filesystem clock."""
    before = path.stat().st_mtime_ns
    write(path, text)
    os.utime(path, ns=(before + 5_000_000_000, before + 5_000_000_000))


def load_error(tmp_path: Path, text: str) -> str:
    with pytest.raises(RulesError) as info:
        load_rules(rules_file(tmp_path, text))
    return str(info.value)


# --- loading and compiling ---------------------------------------------------------------------


def test_example_file_loads() -> None:
    rules = load_rules(ROOT / "config" / "rules.example.yaml")
    assert rules.default_policy == "deny"
    assert [r.name for r in rules.rules][:2] == ["passgate", "webhooks"]


def test_default_policy_is_allow_when_left_out(tmp_path: Path) -> None:
    rules = load_rules(rules_file(tmp_path, "rules: []\n"))
    assert rules.default_policy == "allow"


def test_empty_file_is_allow_with_no_rules(tmp_path: Path) -> None:
    rules = load_rules(rules_file(tmp_path, ""))
    assert rules == RuleSet("allow", ())


def test_rules_key_may_be_null(tmp_path: Path) -> None:
    rules = load_rules(rules_file(tmp_path, "default_policy: deny\nrules:\n"))
    assert rules == RuleSet("deny", ())


def test_unnamed_rules_are_numbered_from_one(tmp_path: Path) -> None:
    text = "rules:\n  - {domain: a.example.com, policy: allow}\n"
    text += "  - {name: b, domain: b.example.com, policy: deny}\n"
    text += "  - {domain: c.example.com, policy: bypass}\n"
    rules = load_rules(rules_file(tmp_path, text))
    assert [r.name for r in rules.rules] == ["rule 1", "b", "rule 3"]


def test_single_strings_are_accepted_where_lists_are(tmp_path: Path) -> None:
    text = """
rules:
  - domain: a.example.com
    resources: "^/x"
    methods: get
    networks: 10.0.0.0/8
    subject: user:Alice
    policy: allow
"""
    rule = load_rules(rules_file(tmp_path, text)).rules[0]
    assert rule.exact_domains == frozenset({"a.example.com"})
    assert [p.pattern for p in rule.resources] == ["^/x"]
    assert rule.methods == frozenset({"GET", "HEAD"})  # HEAD is GET without a body
    assert rule.networks == (ip_network("10.0.0.0/8"),)
    assert rule.users == frozenset({"alice"})


def test_rules_are_compiled_once(tmp_path: Path) -> None:
    text = """
rules:
  - domain: ["App.Example.COM.", "*.Example.com"]
    resources: ["^/api/"]
    networks: ["10.0.0.5", "fd00::/8"]
    subject: ["user:Bob", "group:Admins"]
    policy: allow
"""
    rule = load_rules(rules_file(tmp_path, text)).rules[0]
    assert rule.exact_domains == frozenset({"app.example.com"})
    assert rule.wildcard_suffixes == (".example.com",)
    assert all(isinstance(p, re.Pattern) for p in rule.resources)
    assert rule.networks == (ip_network("10.0.0.5/32"), ip_network("fd00::/8"))
    assert rule.users == frozenset({"bob"})
    assert rule.groups == frozenset({"Admins"})  # group names stay case-sensitive


def test_networks_accept_host_bits_set(tmp_path: Path) -> None:
    text = "rules:\n  - {domain: a.example.com, networks: '192.168.1.7/24', policy: allow}\n"
    rule = load_rules(rules_file(tmp_path, text)).rules[0]
    assert rule.networks == (ip_network("192.168.1.0/24"),)


def test_domains_lists_every_pattern_once(tmp_path: Path) -> None:
    text = """
rules:
  - {domain: ["a.example.com", "*.apps.example.com"], policy: allow}
  - {domain: a.example.com, policy: deny}
"""
    rules = load_rules(rules_file(tmp_path, text))
    assert sorted(rules.domains()) == ["*.apps.example.com", "a.example.com"]


def test_empty_ruleset_names_no_domains() -> None:
    assert RuleSet.empty().domains() == ()
    assert RuleSet.empty("deny").default_policy == "deny"


# --- errors -----------------------------------------------------------------------------------


def test_missing_file_is_a_rules_error(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="cannot read the rules file"):
        load_rules(tmp_path / "nope.yaml")


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    message = load_error(tmp_path, "rules:\n  - domain: [a.example.com\n    policy: allow\n")
    assert "not valid YAML" in message
    assert "line " in message
    assert "\n" not in message


def test_duplicate_key_is_an_error(tmp_path: Path) -> None:
    text = "rules:\n  - domain: a.example.com\n    policy: allow\n    policy: deny\n"
    assert "duplicate key 'policy'" in load_error(tmp_path, text)


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    assert "expected a mapping" in load_error(tmp_path, "- domain: a.example.com\n")


def test_invalid_cidr_names_rule_and_field(tmp_path: Path) -> None:
    text = """
rules:
  - {domain: a.example.com, policy: allow}
  - name: media
    domain: media.example.com
    networks: ["10.0.0.0/8", "10.0.0.300"]
    policy: allow
"""
    message = load_error(tmp_path, text)
    assert message.endswith(
        """rules.yaml: rule 2 ("media"): networks: '10.0.0.300' is not an IP network"""
    )


def test_invalid_regex_names_rule_and_field(tmp_path: Path) -> None:
    text = "rules:\n  - {domain: a.example.com, resources: ['^/(unclosed'], policy: allow}\n"
    message = load_error(tmp_path, text)
    assert "rule 1: resources: '^/(unclosed' is not a valid regex" in message


def test_unknown_method_names_rule_and_field(tmp_path: Path) -> None:
    text = "rules:\n  - {domain: a.example.com, methods: [GET, FETCH], policy: allow}\n"
    assert "rule 1: methods: 'FETCH' is not an HTTP method" in load_error(tmp_path, text)


def test_subject_without_user_or_group_prefix_is_an_error(tmp_path: Path) -> None:
    text = "rules:\n  - {domain: a.example.com, subject: [admins], policy: allow}\n"
    assert "rule 1: subject: 'admins' must be user:NAME or group:NAME" in load_error(tmp_path, text)


def test_subject_with_empty_name_is_an_error(tmp_path: Path) -> None:
    text = "rules:\n  - {domain: a.example.com, subject: 'group:', policy: allow}\n"
    assert "rule 1: subject:" in load_error(tmp_path, text)


def test_invalid_domain_is_an_error(tmp_path: Path) -> None:
    text = "rules:\n  - {domain: 'https://a.example.com', policy: allow}\n"
    assert "rule 1: domain: 'https://a.example.com' is not a domain" in load_error(tmp_path, text)


def test_bare_star_domain_is_an_error(tmp_path: Path) -> None:
    text = "rules:\n  - {domain: '*', policy: allow}\n"
    assert "rule 1: domain:" in load_error(tmp_path, text)


def test_domain_is_required(tmp_path: Path) -> None:
    text = "rules:\n  - {name: x, policy: allow}\n"
    assert 'rule 1 ("x"): domain: Field required' in load_error(tmp_path, text)


def test_empty_domain_list_is_an_error(tmp_path: Path) -> None:
    text = "rules:\n  - {domain: [], policy: allow}\n"
    assert "rule 1: domain: at least one domain is required" in load_error(tmp_path, text)


def test_policy_is_required(tmp_path: Path) -> None:
    text = "rules:\n  - {domain: a.example.com}\n"
    assert "rule 1: policy: Field required" in load_error(tmp_path, text)


def test_unknown_policy_is_an_error(tmp_path: Path) -> None:
    text = "rules:\n  - {domain: a.example.com, policy: one_factor}\n"
    assert "rule 1: policy: Input should be 'bypass', 'allow' or 'deny'" in load_error(
        tmp_path, text
    )


def test_misspelt_rule_key_is_an_error(tmp_path: Path) -> None:
    text = "rules:\n  - {domain: a.example.com, policy: allow, network: 10.0.0.0/8}\n"
    message = load_error(tmp_path, text)
    assert "rule 1: network: unknown key (allowed: name, domain, resources" in message


def test_misspelt_top_level_key_is_an_error(tmp_path: Path) -> None:
    message = load_error(tmp_path, "default: deny\n")
    assert "rules.yaml: default: unknown key (allowed: default_policy, rules, clients)" in message


def test_several_problems_are_reported_on_one_line(tmp_path: Path) -> None:
    text = """
rules:
  - {domain: a.example.com, methods: [FETCH], policy: allow}
  - {domain: b.example.com, networks: [nowhere], policy: allow}
"""
    message = load_error(tmp_path, text)
    assert "rule 1: methods:" in message
    assert "rule 2: networks:" in message
    assert "\n" not in message


# --- RulesStore -------------------------------------------------------------------------------

ALLOW_A = "rules:\n  - {domain: a.example.com, policy: allow}\n"
DENY_A = "rules:\n  - {domain: a.example.com, policy: deny}\n"


def test_store_without_a_file_allows_signed_in_users() -> None:
    store = RulesStore(None)
    assert store.current == RuleSet.empty("allow")
    store.maybe_reload()
    assert store.current == RuleSet.empty("allow")


def test_store_refuses_to_start_with_a_broken_file(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="rule 1: policy"):
        RulesStore(rules_file(tmp_path, "rules:\n  - {domain: a.example.com}\n"))


def test_store_refuses_to_start_without_the_file(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="cannot read"):
        RulesStore(tmp_path / "missing.yaml")


def test_reload_picks_up_changed_file(tmp_path: Path) -> None:
    clock = FakeClock()
    path = rules_file(tmp_path, ALLOW_A)
    store = RulesStore(path, clock=clock)
    change(path, DENY_A)
    clock.now += 1.1
    store.maybe_reload()
    assert store.current.rules[0].policy == "deny"


def test_reload_checks_the_file_at_most_once_a_second(tmp_path: Path) -> None:
    clock = FakeClock()
    path = rules_file(tmp_path, ALLOW_A)
    store = RulesStore(path, clock=clock)
    change(path, DENY_A)
    clock.now += 0.5
    store.maybe_reload()
    policies = [store.current.rules[0].policy]
    clock.now += 0.6
    store.maybe_reload()
    policies.append(store.current.rules[0].policy)
    assert policies == ["allow", "deny"]


def test_unchanged_file_is_not_reparsed(tmp_path: Path) -> None:
    clock = FakeClock()
    store = RulesStore(rules_file(tmp_path, ALLOW_A), clock=clock)
    before = store.current
    clock.now += 5
    store.maybe_reload()
    assert store.current is before


def test_reload_keeps_old_rules_on_syntax_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    path = rules_file(tmp_path, ALLOW_A)
    store = RulesStore(path, clock=clock)
    before = store.current
    change(path, "rules: [\n")
    clock.now += 2
    with caplog.at_level(logging.INFO, logger="passgate.rules"):
        store.maybe_reload()
    assert store.current is before
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "not valid YAML" in errors[0].getMessage()
    assert "previous rules stay in force" in errors[0].getMessage()


def test_reload_keeps_old_rules_on_validation_error(tmp_path: Path) -> None:
    clock = FakeClock()
    path = rules_file(tmp_path, ALLOW_A)
    store = RulesStore(path, clock=clock)
    change(path, "rules:\n  - {domain: a.example.com, policy: maybe}\n")
    clock.now += 2
    store.maybe_reload()
    assert store.current.rules[0].policy == "allow"


def test_reload_keeps_old_rules_when_file_disappears(tmp_path: Path) -> None:
    clock = FakeClock()
    path = rules_file(tmp_path, ALLOW_A)
    store = RulesStore(path, clock=clock)
    path.unlink()
    clock.now += 2
    store.maybe_reload()
    assert store.current.rules[0].policy == "allow"


def test_broken_file_is_logged_once_not_every_second(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    path = rules_file(tmp_path, ALLOW_A)
    store = RulesStore(path, clock=clock)
    change(path, "rules: [\n")
    with caplog.at_level(logging.ERROR, logger="passgate.rules"):
        for _ in range(5):
            clock.now += 2
            store.maybe_reload()
    assert len(caplog.records) == 1


def test_fixed_file_is_loaded_after_a_broken_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    path = rules_file(tmp_path, ALLOW_A)
    store = RulesStore(path, clock=clock)
    change(path, "rules: [\n")
    clock.now += 2
    store.maybe_reload()
    change(path, DENY_A)
    clock.now += 2
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="passgate.rules"):
        store.maybe_reload()
    assert store.current.rules[0].policy == "deny"
    assert [r.levelno for r in caplog.records] == [logging.INFO]
    assert "reloaded" in caplog.records[0].getMessage()


# warnings: valid patterns that probably match more than meant ---------------------------------

WIDE = """
rules:
  - name: public
    domain: app.example.com
    resources: ["^/public"]
    policy: bypass
  - name: admin
    domain: app.example.com
    resources: ["/admin"]
    policy: deny
  - domain: app.example.com
    resources: ["^/public/", "^/health$", "^/api/webhook(/.*)?$", "^/static/.*", "^/ok(/|$)"]
    policy: bypass
"""


def test_bypass_pattern_without_trailing_slash_or_dollar_warns(tmp_path: Path) -> None:
    warnings = load_rules(rules_file(tmp_path, WIDE)).warnings
    public = [w for w in warnings if '("public")' in w]
    assert len(public) == 1 and "/publicity" in public[0]


def test_unanchored_pattern_warns(tmp_path: Path) -> None:
    warnings = load_rules(rules_file(tmp_path, WIDE)).warnings
    admin = [w for w in warnings if '("admin")' in w]
    assert len(admin) == 1 and "no leading '^'" in admin[0]


def test_anchored_patterns_that_end_a_path_do_not_warn(tmp_path: Path) -> None:
    warnings = load_rules(rules_file(tmp_path, WIDE)).warnings
    assert not [w for w in warnings if "rule 3" in w]
    assert len(warnings) == 2


def test_warnings_are_logged_when_rules_load(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="passgate.rules"):
        RulesStore(rules_file(tmp_path, WIDE))
    assert sum("access rules:" in r.getMessage() for r in caplog.records) == 2


def test_deny_pattern_anchored_with_dollar_warns_about_the_trailing_slash(tmp_path: Path) -> None:
    text = (
        "rules:\n  - domain: app.example.com\n    resources: ['^/report$', '^/ok/?$']\n"
        "    policy: deny\n"
    )
    warnings = load_rules(rules_file(tmp_path, text)).warnings
    assert len(warnings) == 1 and "'^/report$'" in warnings[0] and "'/?$'" in warnings[0]
