"""RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0): which app asks the user to sign
out, and where the browser may go afterwards.

The app names itself with an ID token Passgate issued (`id_token_hint`), with its `client_id`,
with both (which must agree) or with neither. Passgate returns the browser to
`post_logout_redirect_uri` only when the app is known and registered that exact address; an app
that names itself in no way still gets its user signed out, on Passgate's own signed-out page.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from gateway.oidc.client_service import ClientService
from gateway.oidc.clients import OidcClient
from gateway.oidc.signing_keys import SigningKeys


class LogoutRefused(Exception):
    """The sign-out request cannot be trusted as sent; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class SignOut:
    """A sign-out request, checked: the app (None when it did not name itself), the registered
    address to return to ("" for none) and the app's state for it."""

    client: OidcClient | None
    target: str
    state: str
    # The app asked to come back but did not say which app it is: no redirect (the spec's MUST
    # NOT), and the signed-out page says so.
    return_refused: bool = False


def hinted_client_id(keys: SigningKeys, issuer: str, id_token_hint: str) -> str:
    """The client an ID token Passgate signed was issued to (expired tokens count, as the spec
    asks). Raises LogoutRefused for a token Passgate did not sign or cannot read."""
    try:
        token = jwt.decode(id_token_hint, KeySet(list(keys.published())))
    except (JoseError, ValueError):
        raise LogoutRefused(
            "The app sent an ID token (id_token_hint) that Passgate did not sign, or that is "
            "damaged or signed with a key Passgate no longer publishes, so it cannot tell which "
            "app this is."
        ) from None
    aud = token.claims.get("aud")
    audience = aud[0] if isinstance(aud, list) and aud else aud
    if token.claims.get("iss") != issuer or not isinstance(audience, str):
        raise LogoutRefused(
            "The app sent an ID token (id_token_hint) that was not issued by this Passgate."
        )
    return audience


def check_sign_out(
    clients: ClientService, keys: SigningKeys, issuer: str, params: Mapping[str, str]
) -> SignOut:
    """The sign-out request `params` (id_token_hint, client_id, post_logout_redirect_uri,
    state), checked. Raises LogoutRefused when a hint or client id names no app of ours, when
    they disagree, or when a known app asks to return to an address it has not registered."""
    client_id = params.get("client_id") or ""
    hint = params.get("id_token_hint") or ""
    if hint:
        hinted = hinted_client_id(keys, issuer, hint)
        if client_id and client_id != hinted:
            raise LogoutRefused(
                "The client_id does not match the app the ID token (id_token_hint) was issued to."
            )
        client_id = hinted
    client = clients.find(client_id) if client_id else None
    if client_id and client is None:
        named = "The app the ID token (id_token_hint) was issued to" if hint else "The client_id"
        raise LogoutRefused(f"{named} is not registered in this Passgate (any more).")
    requested = params.get("post_logout_redirect_uri") or ""
    if not requested:
        return SignOut(client, "", "")
    if client is None:
        return SignOut(None, "", "", return_refused=True)
    if not clients.post_logout_uri_allowed(client, requested):
        raise LogoutRefused(
            f"{client.name} asked to return to an address that is not one of its registered "
            "sign-out addresses (post_logout_redirect_uri must match one exactly). An "
            "administrator can add it to the app's post-logout redirect URIs."
        )
    return SignOut(client, requested, params.get("state") or "")
