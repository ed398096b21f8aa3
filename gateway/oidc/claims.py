"""Which claims an app gets, by scope. `sub` is the user's stable id, never the username."""

from __future__ import annotations

from typing import Any

from gateway.accounts.users import User

# RFC 8176 authentication method references, by how the session signed in. Setup and signup
# register a passkey with user verification, so they count as a passkey sign-in.
_AMR = {
    "passkey": ("hwk", "user"),
    "setup": ("hwk", "user"),
    "signup": ("hwk", "user"),
    "login_code": ("otp",),
    "one_time_link": ("otp",),
}


def amr_for(method: str) -> tuple[str, ...]:
    """The `amr` values for a session's sign-in method; empty when it is not known."""
    return _AMR.get(method, ())


def claims_for(user: User, scope: str, custom: dict[str, str] | None = None) -> dict[str, Any]:
    """Claims for an ID token or the userinfo endpoint; `custom` claims come first so that no
    standard claim can be shadowed by one."""
    scopes = set(scope.split())
    claims: dict[str, Any] = dict(custom or {})
    claims["sub"] = user.id
    if "profile" in scopes:
        given, _, family = user.display_name.strip().partition(" ")
        profile = {
            "name": user.display_name,
            "display_name": user.display_name,
            "preferred_username": user.username,
            "given_name": given,
            "family_name": family.strip(),
        }
        # OIDC Core 5.3.2: a claim without a value is left out, not sent empty. There is no
        # `picture` because Passgate keeps no profile pictures.
        claims.update({name: value for name, value in profile.items() if value})
    if "email" in scopes and user.email:
        # Addresses are entered by the user or an admin and never verified by mail, so say so:
        # apps that link accounts by email must not trust an unverified address.
        claims.update(email=user.email, email_verified=False)
    if "groups" in scopes:
        claims["groups"] = list(user.groups)
    return claims
