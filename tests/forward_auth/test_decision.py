"""The forward-auth decision: which rule applies to a request, and what it means for the user."""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import ip_address
from pathlib import Path

import pytest

from gateway.core.identity import Identity
from gateway.forward_auth.decision import Decision, Outcome, decide
from gateway.forward_auth.rules import RuleSet, load_rules
from gateway.http.request_facts import RequestFacts

ROOT = Path(__file__).resolve().parent.parent.parent
MakeRules = Callable[[str], RuleSet]

ALICE = Identity("u1", "alice", "alice@example.com", "Alice", ("admins", "family"))
BOB = Identity("u2", "bob", "bob@example.com", "Bob", ("family",))
EVE = Identity("u3", "eve", "eve@example.com", "Eve", ())


def request(
    host: str = "app.example.com",
    path: str = "/",
    query: str = "",
    method: str = "GET",
    client: str | None = "203.0.113.9",
) -> RequestFacts:
    url = f"https://{host}{path}" + (f"?{query}" if query else "")
    return RequestFacts(
        method=method,
        scheme="https",
        host=host,
        path=path,
        query=query,
        url=url,
        client_ip=ip_address(client) if client is not None else None,
    )


@pytest.fixture
def make_rules(tmp_path: Path) -> MakeRules:
    def make(text: str) -> RuleSet:
        path = tmp_path / "rules.yaml"
        path.write_text(text, encoding="utf-8")
        return load_rules(path)

    return make


# --- order and defaults -----------------------------------------------------------------------


def test_first_matching_rule_wins(make_rules: MakeRules) -> None:
    rules = make_rules(
        """
rules:
  - {name: first, domain: app.example.com, policy: deny}
  - {name: second, domain: app.example.com, policy: bypass}
"""
    )
    assert decide(request(), ALICE, rules) == Decision(Outcome.FORBIDDEN, "first")


def test_no_rules_and_default_allow_asks_anonymous_user_to_log_in() -> None:
    assert decide(request(), None, RuleSet.empty()) == Decision(Outcome.LOGIN, "default")


def test_no_rules_and_default_allow_lets_signed_in_user_in() -> None:
    assert decide(request(), ALICE, RuleSet.empty()) == Decision(Outcome.ALLOW, "default")


def test_default_deny_forbids_signed_in_user() -> None:
    assert decide(request(), ALICE, RuleSet.empty("deny")).outcome is Outcome.FORBIDDEN


def test_default_deny_forbids_anonymous_user_without_asking_to_log_in() -> None:
    assert decide(request(), None, RuleSet.empty("deny")).outcome is Outcome.FORBIDDEN


def test_default_bypass_needs_no_login() -> None:
    assert decide(request(), None, RuleSet.empty("bypass")) == Decision(Outcome.BYPASS, "default")


def test_unmatched_request_falls_to_default(make_rules: MakeRules) -> None:
    rules = make_rules("default_policy: deny\nrules:\n  - {domain: a.example.com, policy: allow}\n")
    assert decide(request(host="b.example.com"), ALICE, rules) == Decision(
        Outcome.FORBIDDEN, "default"
    )


# --- policies ---------------------------------------------------------------------------------


def test_bypass_rule_needs_no_login(make_rules: MakeRules) -> None:
    rules = make_rules("rules:\n  - {name: open, domain: app.example.com, policy: bypass}\n")
    assert decide(request(), None, rules) == Decision(Outcome.BYPASS, "open")


def test_allow_rule_asks_anonymous_user_to_log_in(make_rules: MakeRules) -> None:
    rules = make_rules("rules:\n  - {domain: app.example.com, policy: allow}\n")
    assert decide(request(), None, rules) == Decision(Outcome.LOGIN, "rule 1")


def test_allow_rule_lets_signed_in_user_in(make_rules: MakeRules) -> None:
    rules = make_rules("rules:\n  - {domain: app.example.com, policy: allow}\n")
    assert decide(request(), EVE, rules) == Decision(Outcome.ALLOW, "rule 1")


def test_deny_rule_forbids_everyone(make_rules: MakeRules) -> None:
    rules = make_rules(
        "default_policy: bypass\nrules:\n  - {domain: app.example.com, policy: deny}\n"
    )
    assert decide(request(), None, rules).outcome is Outcome.FORBIDDEN
    assert decide(request(), ALICE, rules).outcome is Outcome.FORBIDDEN


# --- domains ----------------------------------------------------------------------------------

WILDCARD = "default_policy: deny\nrules:\n  - {domain: '*.example.com', policy: bypass}\n"


def test_wildcard_domain_matches_subdomain(make_rules: MakeRules) -> None:
    assert decide(request(host="app.example.com"), None, make_rules(WILDCARD)).outcome is (
        Outcome.BYPASS
    )


def test_wildcard_domain_matches_nested_subdomain(make_rules: MakeRules) -> None:
    assert decide(request(host="a.b.example.com"), None, make_rules(WILDCARD)).outcome is (
        Outcome.BYPASS
    )


def test_wildcard_domain_does_not_match_bare_domain(make_rules: MakeRules) -> None:
    assert decide(request(host="example.com"), None, make_rules(WILDCARD)).outcome is (
        Outcome.FORBIDDEN
    )


def test_wildcard_domain_does_not_match_lookalike_suffix(make_rules: MakeRules) -> None:
    assert decide(request(host="evilexample.com"), None, make_rules(WILDCARD)).outcome is (
        Outcome.FORBIDDEN
    )


def test_exact_domain_does_not_match_subdomain(make_rules: MakeRules) -> None:
    rules = make_rules("default_policy: deny\nrules:\n  - {domain: example.com, policy: bypass}\n")
    assert decide(request(host="app.example.com"), None, rules).outcome is Outcome.FORBIDDEN


def test_domain_match_is_case_insensitive(make_rules: MakeRules) -> None:
    rules = make_rules(
        "default_policy: deny\nrules:\n  - {domain: [Grafana.Example.COM], policy: bypass}\n"
    )
    assert decide(request(host="grafana.example.com"), None, rules).outcome is Outcome.BYPASS
    assert decide(request(host="GRAFANA.example.com"), None, rules).outcome is Outcome.BYPASS


def test_any_listed_domain_matches(make_rules: MakeRules) -> None:
    rules = make_rules(
        "default_policy: deny\nrules:\n"
        "  - {domain: [a.example.com, '*.b.example.com'], policy: bypass}\n"
    )
    assert decide(request(host="a.example.com"), None, rules).outcome is Outcome.BYPASS
    assert decide(request(host="x.b.example.com"), None, rules).outcome is Outcome.BYPASS


# --- resources and methods --------------------------------------------------------------------

WEBHOOK = """
default_policy: deny
rules:
  - domain: hooks.example.com
    resources: ["^/api/webhook(/.*)?$"]
    policy: bypass
"""


def test_resource_regex_matches_path(make_rules: MakeRules) -> None:
    facts = request(host="hooks.example.com", path="/api/webhook/gitea")
    assert decide(facts, None, make_rules(WEBHOOK)).outcome is Outcome.BYPASS


def test_resource_regex_ignores_query(make_rules: MakeRules) -> None:
    facts = request(host="hooks.example.com", path="/api/webhook", query="x=/admin")
    assert decide(facts, None, make_rules(WEBHOOK)).outcome is Outcome.BYPASS


def test_query_cannot_satisfy_resource_regex(make_rules: MakeRules) -> None:
    facts = request(host="hooks.example.com", path="/admin", query="p=/api/webhook")
    assert decide(facts, None, make_rules(WEBHOOK)).outcome is Outcome.FORBIDDEN


def test_unanchored_resource_regex_is_searched_anywhere_in_path(make_rules: MakeRules) -> None:
    rules = make_rules(
        "default_policy: deny\nrules:\n"
        "  - {domain: app.example.com, resources: ['/public/'], policy: bypass}\n"
    )
    assert decide(request(path="/v1/public/x"), None, rules).outcome is Outcome.BYPASS


def test_method_rule_matches_listed_method_only(make_rules: MakeRules) -> None:
    rules = make_rules(
        "default_policy: deny\nrules:\n"
        "  - {domain: app.example.com, methods: [get, HEAD], policy: bypass}\n"
    )
    assert decide(request(method="HEAD"), None, rules).outcome is Outcome.BYPASS
    assert decide(request(method="POST"), None, rules).outcome is Outcome.FORBIDDEN


# --- networks ---------------------------------------------------------------------------------

LAN = """
default_policy: deny
rules:
  - name: lan
    domain: status.example.com
    networks: ["192.168.0.0/16", "10.0.0.5", "fd00::/8"]
    policy: bypass
"""


def test_network_rule_matches_client_in_cidr(make_rules: MakeRules) -> None:
    facts = request(host="status.example.com", client="192.168.4.2")
    assert decide(facts, None, make_rules(LAN)) == Decision(Outcome.BYPASS, "lan")


def test_network_rule_matches_single_address(make_rules: MakeRules) -> None:
    facts = request(host="status.example.com", client="10.0.0.5")
    assert decide(facts, None, make_rules(LAN)).outcome is Outcome.BYPASS


def test_network_rule_skips_client_outside(make_rules: MakeRules) -> None:
    facts = request(host="status.example.com", client="10.0.0.6")
    assert decide(facts, None, make_rules(LAN)).outcome is Outcome.FORBIDDEN


def test_network_rule_matches_ipv6_client(make_rules: MakeRules) -> None:
    facts = request(host="status.example.com", client="fd12:3456::1")
    assert decide(facts, None, make_rules(LAN)).outcome is Outcome.BYPASS


def test_network_rule_skips_ipv6_client_outside(make_rules: MakeRules) -> None:
    facts = request(host="status.example.com", client="2001:db8::1")
    assert decide(facts, None, make_rules(LAN)).outcome is Outcome.FORBIDDEN


def test_ipv4_mapped_ipv6_client_matches_ipv4_network(make_rules: MakeRules) -> None:
    facts = request(host="status.example.com", client="::ffff:192.168.1.20")
    assert decide(facts, None, make_rules(LAN)).outcome is Outcome.BYPASS


def test_unknown_client_address_never_matches_network_rule(make_rules: MakeRules) -> None:
    facts = request(host="status.example.com", client=None)
    assert decide(facts, None, make_rules(LAN)).outcome is Outcome.FORBIDDEN


# --- subjects ---------------------------------------------------------------------------------

GRAFANA = """
default_policy: deny
rules:
  - name: grafana-admins
    domain: grafana.example.com
    subject: ["group:admins", "user:Bob"]
    policy: allow
  - name: grafana-others
    domain: grafana.example.com
    policy: deny
"""


def test_subject_rule_asks_anonymous_user_to_log_in(make_rules: MakeRules) -> None:
    facts = request(host="grafana.example.com")
    assert decide(facts, None, make_rules(GRAFANA)) == Decision(Outcome.LOGIN, "grafana-admins")


def test_group_member_matches_subject_rule(make_rules: MakeRules) -> None:
    facts = request(host="grafana.example.com")
    assert decide(facts, ALICE, make_rules(GRAFANA)) == Decision(Outcome.ALLOW, "grafana-admins")


def test_listed_user_matches_subject_rule_case_insensitively(make_rules: MakeRules) -> None:
    facts = request(host="grafana.example.com")
    assert decide(facts, BOB, make_rules(GRAFANA)) == Decision(Outcome.ALLOW, "grafana-admins")


def test_user_outside_group_falls_through_to_next_rule(make_rules: MakeRules) -> None:
    facts = request(host="grafana.example.com")
    assert decide(facts, EVE, make_rules(GRAFANA)) == Decision(Outcome.FORBIDDEN, "grafana-others")


def test_group_match_is_case_sensitive(make_rules: MakeRules) -> None:
    shouting = Identity("u4", "mallory", "m@example.com", "M", ("ADMINS",))
    facts = request(host="grafana.example.com")
    assert decide(facts, shouting, make_rules(GRAFANA)).rule == "grafana-others"


def test_subject_deny_rule_asks_anonymous_user_to_log_in(make_rules: MakeRules) -> None:
    rules = make_rules(
        "default_policy: bypass\nrules:\n"
        "  - {domain: app.example.com, subject: 'user:eve', policy: deny}\n"
    )
    assert decide(request(), None, rules).outcome is Outcome.LOGIN
    assert decide(request(), EVE, rules).outcome is Outcome.FORBIDDEN
    assert decide(request(), ALICE, rules) == Decision(Outcome.BYPASS, "default")


def test_subject_bypass_rule_asks_anonymous_user_to_log_in(make_rules: MakeRules) -> None:
    rules = make_rules(
        "default_policy: deny\nrules:\n"
        "  - {domain: app.example.com, subject: 'group:family', policy: bypass}\n"
    )
    assert decide(request(), None, rules).outcome is Outcome.LOGIN
    assert decide(request(), BOB, rules).outcome is Outcome.BYPASS


def test_subject_rule_is_skipped_when_request_does_not_match(make_rules: MakeRules) -> None:
    rules = make_rules(GRAFANA)
    assert decide(request(host="other.example.com"), None, rules) == Decision(
        Outcome.FORBIDDEN, "default"
    )


# --- the shipped example ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("facts", "identity", "expected"),
    [
        (request(host="auth.example.com", path="/login"), None, (Outcome.BYPASS, "passgate")),
        (
            request(host="hooks.example.com", path="/api/webhook", method="POST"),
            None,
            (Outcome.BYPASS, "webhooks"),
        ),
        (
            request(host="hooks.example.com", path="/admin"),
            ALICE,
            (Outcome.ALLOW, "everything-else"),
        ),
        (
            request(host="status.example.com", client="192.168.1.40"),
            None,
            (Outcome.BYPASS, "status-lan"),
        ),
        (request(host="status.example.com"), None, (Outcome.LOGIN, "status")),
        (request(host="grafana.example.com"), ALICE, (Outcome.ALLOW, "grafana-admins")),
        (request(host="grafana.example.com"), BOB, (Outcome.FORBIDDEN, "grafana-others")),
        (request(host="jellyfin.media.example.com"), BOB, (Outcome.ALLOW, "media")),
        (request(host="media.example.com"), EVE, (Outcome.FORBIDDEN, "media-others")),
        (request(host="example.com"), ALICE, (Outcome.FORBIDDEN, "default")),
        (request(host="elsewhere.org"), None, (Outcome.FORBIDDEN, "default")),
    ],
)
def test_example_rules_behave_as_documented(
    facts: RequestFacts, identity: Identity | None, expected: tuple[Outcome, str]
) -> None:
    rules = load_rules(ROOT / "config" / "rules.example.yaml")
    assert decide(facts, identity, rules) == Decision(*expected)
