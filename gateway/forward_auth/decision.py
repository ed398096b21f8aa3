"""The forward-auth decision: a pure function of (request facts, identity, rules)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from gateway.core.identity import Identity
from gateway.forward_auth.rules import Policy, Rule, RuleSet
from gateway.http.request_facts import RequestFacts


class Outcome(enum.Enum):
    ALLOW = "allow"  # signed in and permitted: 200 with identity headers
    BYPASS = "bypass"  # no sign-in needed: 200 without identity
    LOGIN = "login"  # we must know who this is first: redirect or 401
    FORBIDDEN = "forbidden"  # known (or irrelevant) and not permitted: 403


# What each outcome means for the person asking, in the console and `passgate rules check`.
VERDICTS = {
    Outcome.ALLOW: "Allowed: the request reaches the service with the user's identity.",
    Outcome.BYPASS: "Open: the request reaches the service without anyone signing in.",
    Outcome.LOGIN: "Sign-in required: the browser is sent to the login page first.",
    Outcome.FORBIDDEN: "Denied: the answer is 403.",
}


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Outcome
    rule: str  # the rule's name, or "default"


def _subject_matches(rule: Rule, identity: Identity) -> bool:
    if identity.username.lower() in rule.users:
        return True
    return any(group in rule.groups for group in identity.groups)


def _apply(policy: Policy, identity: Identity | None, rule: str) -> Decision:
    if policy == "bypass":
        return Decision(Outcome.BYPASS, rule)
    if policy == "deny":
        return Decision(Outcome.FORBIDDEN, rule)
    return Decision(Outcome.ALLOW if identity is not None else Outcome.LOGIN, rule)


def decide(facts: RequestFacts, identity: Identity | None, rules: RuleSet) -> Decision:
    """First matching rule wins; without one, the default policy. A rule with a subject cannot
    be judged for an anonymous visitor, so it asks them to sign in (fail closed). A request that
    servers may read in more than one way (`;params`, `\\`, a method-override header) gets the
    strictest answer of all its readings."""
    host = facts.host.lower()  # already lower-case from gateway.http.forwarded; cheap insurance
    if not facts.readings and not facts.other_methods:
        return _decide_one(facts, host, facts.path, facts.method, identity, rules)
    return max(  # the first of the strictest, the canonical reading first
        (
            _decide_one(facts, host, path, method, identity, rules)
            for method in (facts.method, *facts.other_methods)
            for path in (facts.path, *facts.readings)
        ),
        key=lambda decision: _STRICTNESS[decision.outcome],
    )


_STRICTNESS = {Outcome.BYPASS: 0, Outcome.ALLOW: 1, Outcome.LOGIN: 2, Outcome.FORBIDDEN: 3}


def _decide_one(
    facts: RequestFacts,
    host: str,
    path: str,
    method: str,
    identity: Identity | None,
    rules: RuleSet,
) -> Decision:
    for rule in rules.rules:
        if not rule.matches_request(host, path, method, facts.client_ip):
            continue
        if rule.has_subject:
            if identity is None:
                return Decision(Outcome.LOGIN, rule.name)
            if not _subject_matches(rule, identity):
                continue
        return _apply(rule.policy, identity, rule.name)
    return _apply(rules.default_policy, identity, "default")
