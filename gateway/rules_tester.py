"""The console's "who can reach this?" tester: the forward-auth decision for a URL and a user.

It asks exactly the function forward-auth asks (`gateway.decision.decide`), so what it says is
what Caddy would be told.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address
from urllib.parse import urlsplit

from gateway.decision import Decision, Outcome, decide
from gateway.errors import InvalidInput
from gateway.identity import Identity
from gateway.request_facts import RequestFacts
from gateway.rules import METHODS, RuleSet

VERDICTS = {
    Outcome.ALLOW: "Allowed: the request reaches the service with the user's identity.",
    Outcome.BYPASS: "Open: the request reaches the service without anyone signing in.",
    Outcome.LOGIN: "Sign-in required: the browser is sent to the login page first.",
    Outcome.FORBIDDEN: "Denied: the answer is 403.",
}


@dataclass(frozen=True, slots=True)
class Verdict:
    facts: RequestFacts
    decision: Decision

    @property
    def explanation(self) -> str:
        return VERDICTS[self.decision.outcome]


def request_facts(url: str, method: str = "GET", client_ip: str = "") -> RequestFacts:
    """The facts forward-auth would see for a browser asking for `url`. Raises InvalidInput."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput("enter a full URL such as https://app.example.com/path")
    verb = method.strip().upper() or "GET"
    if verb not in METHODS:
        raise InvalidInput(f"{method!r} is not an HTTP method")
    address: IPv4Address | IPv6Address | None = None
    if client_ip.strip():
        try:
            address = ip_address(client_ip.strip())
        except ValueError:
            raise InvalidInput(f"{client_ip!r} is not an IP address") from None
    return RequestFacts(
        method=verb,
        scheme=parts.scheme,
        host=parts.hostname.lower(),
        path=parts.path or "/",
        query=parts.query,
        url=url.strip(),
        client_ip=address,
    )


def who_can_reach(facts: RequestFacts, identity: Identity | None, rules: RuleSet) -> Verdict:
    """The decision for `identity` (None: someone not signed in) asking for `facts`."""
    return Verdict(facts, decide(facts, identity, rules))
