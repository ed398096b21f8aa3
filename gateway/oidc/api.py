"""OpenID Connect endpoints at Pocket-ID's paths, so existing app configs and guides work.

`/authorize` is a page (sign-in, consent, "not allowed"); the rest are JSON for apps. The
protocol itself is authlib's (gateway.oidc.server); this module turns HTTP into its requests.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import AccessDeniedError, InvalidRequestError
from authlib.oauth2.rfc6749.util import scope_to_list
from authlib.oidc.core.errors import (
    ConsentRequiredError,
    LoginRequiredError,
    RequestNotSupportedError,
    RequestURINotSupportedError,
)
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from gateway.accounts.users import User
from gateway.audit.log import Actor, DetailValue
from gateway.core import metrics
from gateway.core.crypto import tokens_equal
from gateway.oidc.claims import amr_for
from gateway.oidc.client_auth import ASYMMETRIC_ALGS, HMAC_ALGS
from gateway.oidc.clients import OidcClient, logo_of, open_to
from gateway.oidc.dpop import (
    ALGORITHMS as DPOP_ALGORITHMS,
)
from gateway.oidc.dpop import (
    REPLAY_WINDOW,
    DpopProof,
    DpopRejected,
    replay_key,
    verify_proof,
)
from gateway.oidc.endpoints import endpoints
from gateway.oidc.logout import LogoutRefused, SignOut, check_sign_out
from gateway.oidc.pushed_requests import URN_PREFIX, InvalidRequestUri, PushedRequest
from gateway.oidc.response_modes import (
    RESPONSE_MODES,
    checked_response_mode,
    deliver,
    lenient_response_mode,
)
from gateway.oidc.server import (
    CONFIDENTIAL_AUTH,
    GRANT_NAMES,
    SCOPES,
    InvalidDpopProofError,
    OidcServer,
    PassgateRequest,
    Principal,
)
from gateway.oidc.tokens import IssuedToken
from gateway.sessions.cookies import clear_session_cookie
from gateway.sessions.rate_limit import Limit, RateLimited
from gateway.web.helpers import (
    actor_of,
    client_address,
    end_this_session,
    form_with_csrf,
    message,
    page,
    record_event,
    services_of,
    signed_in,
)

log = logging.getLogger("passgate.oidc")

SCOPE_TEXT = {
    "openid": "Know who you are (a stable, private user id)",
    "profile": "See your name and username",
    "email": "See your email address",
    "groups": "See which groups you belong to",
    "offline_access": "Stay signed in when you are away (refresh tokens)",
}
FRESH_SIGN_IN = 60  # seconds: how long a sign-in forced by prompt=login or max_age counts as fresh
SIGNING_ALGS = [*ASYMMETRIC_ALGS, *HMAC_ALGS]  # for private_key_jwt and client_secret_jwt
# Endpoints anyone can call without credentials (a public client's push or device request) and
# that store what they are sent: counted per address before any work, as sign-in attempts are.
PAR_PER_ADDRESS = Limit("oidc-par", 60, 60)
DEVICE_PER_ADDRESS = Limit("oidc-device-authorize", 20, 600)
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, DPoP",
    "Access-Control-Expose-Headers": "WWW-Authenticate",
}


def server_of(request: Request) -> OidcServer:
    server: OidcServer = services_of(request).oidc
    return server


async def oauth_request(request: Request) -> PassgateRequest:
    """An authlib request for this HTTP request, with the URI on APP_URL (the public address)."""
    settings = services_of(request).settings
    form: list[tuple[str, str]] = []
    if request.method == "POST":
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("application/x-www-form-urlencoded"):
            parsed = await request.form()
            form = [(k, v) for k, v in parsed.multi_items() if isinstance(v, str)]
    query = list(request.query_params.multi_items())
    query_string = f"?{request.url.query}" if request.url.query else ""
    uri = settings.app_url + request.url.path + query_string
    # Starlette's Headers look names up case-insensitively, as authlib expects.
    return PassgateRequest(
        request.method, uri, request.headers, query, form, client_address(request)
    )


def discovery(request: Request) -> Response:
    base = services_of(request).settings.app_url
    document = {
        **endpoints(base),
        "scopes_supported": list(SCOPES),
        "response_types_supported": ["code"],
        "response_modes_supported": list(RESPONSE_MODES),
        "grant_types_supported": list(GRANT_NAMES),  # every grant_type the server takes
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        "token_endpoint_auth_methods_supported": [*CONFIDENTIAL_AUTH, "none"],
        "introspection_endpoint_auth_methods_supported": CONFIDENTIAL_AUTH,
        "revocation_endpoint_auth_methods_supported": [*CONFIDENTIAL_AUTH, "none"],
        # signed client authentication and PAR (oidc-app-auth)
        "token_endpoint_auth_signing_alg_values_supported": SIGNING_ALGS,
        "introspection_endpoint_auth_signing_alg_values_supported": SIGNING_ALGS,
        "revocation_endpoint_auth_signing_alg_values_supported": SIGNING_ALGS,
        "require_pushed_authorization_requests": False,  # per client instead
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": [
            "sub",
            "name",
            "display_name",
            "given_name",
            "family_name",
            "preferred_username",
            "email",
            "email_verified",
            "groups",
            "auth_time",
            "amr",
            "nonce",
            "iss",
            "aud",
        ],
        "prompt_values_supported": ["none", "login", "consent"],
        "authorization_response_iss_parameter_supported": True,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,  # defaults to true when left out
        "claims_parameter_supported": False,
        "dpop_signing_alg_values_supported": list(DPOP_ALGORITHMS),
    }
    return JSONResponse(document, headers={**CORS, "Cache-Control": "public, max-age=3600"})


def authorization_server_metadata(request: Request) -> Response:
    """RFC 8414 metadata for plain OAuth clients: the very document discovery serves (same
    issuer, same endpoints), so the two cannot drift apart."""
    return discovery(request)


async def jwks(request: Request) -> Response:
    keys = await run_in_threadpool(server_of(request).keys.jwks)
    return JSONResponse(keys, headers={**CORS, "Cache-Control": "public, max-age=300"})


def _error_page(request: Request, error: OAuth2Error) -> Response:
    description = error.description or error.error
    return message(request, "This app's sign-in request is invalid", description, 400, "/account")


async def _oauth_error(
    request: Request, oauth: PassgateRequest, error: OAuth2Error, par: Pushed | None = None
) -> Response:
    """Redirect the error to the app only once client and redirect URI are known good."""
    if error.redirect_uri:
        server = server_of(request)
        return await _to_app(
            request, oauth, error.redirect_uri, par, server.handle_error_response, oauth, error
        )
    return _error_page(request, error)


async def _send_back(
    request: Request,
    oauth: PassgateRequest,
    grant: Any,
    error: OAuth2Error,
    par: Pushed | None = None,
) -> Response:
    """An error for the app at its (already validated) redirect URI, with its state."""
    error.redirect_uri = grant.redirect_uri
    error.state = oauth.payload.state
    server = server_of(request)
    return await _to_app(
        request, oauth, grant.redirect_uri, par, server.handle_error_response, oauth, error
    )


# pushed authorization requests and response modes (oidc-app-auth) ---------------------------


@dataclass(frozen=True, slots=True)
class Pushed:
    """The pushed request an /authorize call names by its request_uri."""

    request_uri: str
    request: PushedRequest


async def _pushed(request: Request, oauth: PassgateRequest) -> Pushed | None:
    """The pushed request named by the query's request_uri (RFC 9126 4), now the request's
    parameters (whatever else the query says is ignored, client_id must match); None when the
    request was not pushed. Raises InvalidRequestUri, or InvalidRequestError without client_id."""
    request_uri = request.query_params.get("request_uri") or ""
    if not request_uri.startswith(URN_PREFIX):
        return None
    client_id = request.query_params.get("client_id")
    if not client_id:
        raise InvalidRequestError("client_id is required beside request_uri")
    pushed = await server_of(request).pushed.read(request_uri, client_id)
    oauth.payload = type(oauth.payload)(pushed.params)
    return Pushed(request_uri, pushed)


async def _to_app(
    request: Request,
    oauth: PassgateRequest,
    redirect_uri: str,
    par: Pushed | None,
    answer: Callable[..., Any],
    *args: Any,
) -> Response:
    """The app's answer (`answer(*args)`, one of authlib's) in the request's response mode,
    after taking its pushed request, which answers once (a second use meets an error page)."""
    if par is not None:
        try:
            await server_of(request).pushed.take(par.request_uri, par.request.client_id)
        except InvalidRequestUri as error:
            metrics.pushed_request("invalid")
            return _error_page(request, error)
        metrics.pushed_request("used")
    response: Response = await run_in_threadpool(answer, *args)
    return deliver(response, lenient_response_mode(oauth.payload.data, redirect_uri), redirect_uri)


def _check_pushed(client: OidcClient, par: Pushed | None) -> None:
    """InvalidRequestError for a client that must push its requests and did not."""
    if client.require_par and par is None:
        raise InvalidRequestError(
            "this client must push its authorization request to the "
            "pushed_authorization_request_endpoint and send the request_uri"
        )


async def par(request: Request) -> Response:
    """POST /api/oidc/par (RFC 9126): authenticate the client, validate the whole
    authorization request, keep it; answer 201 with its request_uri."""
    limited = await _over_limit(request, PAR_PER_ADDRESS, "par")
    if limited is not None:
        return limited
    server = server_of(request)
    oauth = await oauth_request(request)
    response = _repeated_parameter(request, oauth)
    if response is not None:
        return response
    # The form only (RFC 9126 2.1: a POST body); repeated parameters were refused above.
    pairs = list(oauth.form.items())
    try:
        client_id, params = await run_in_threadpool(_validate_pushed, server, oauth, pairs)
    except OAuth2Error as error:
        metrics.pushed_request("refused")
        refused: Response = server.handle_error_response(oauth, error)
        refused.headers.update(CORS)
        return refused
    request_uri, lifetime = await server.pushed.push(client_id, params)
    metrics.pushed_request("accepted")
    body = {"request_uri": request_uri, "expires_in": lifetime}
    return JSONResponse(body, 201, headers={**CORS, "Cache-Control": "no-store"})


def _validate_pushed(
    server: OidcServer, oauth: PassgateRequest, form: list[tuple[str, str]]
) -> tuple[str, list[tuple[str, str]]]:
    """The authenticated client and the request's parameters (the posted form, credentials
    left out), after the checks /authorize makes before it shows a page (RFC 9126 2.1).
    Raises OAuth2Error; errors are answered in JSON, never redirected."""
    if "request_uri" in oauth.form:
        raise InvalidRequestError("request_uri cannot be pushed")
    client = server.authenticate_client(oauth, [*CONFIDENTIAL_AUTH, "none"], "par")
    sent_id = oauth.form.get("client_id")
    if sent_id and sent_id != client.client_id:
        raise InvalidRequestError("client_id is not the authenticated client")
    params = [
        (name, value)
        for name, value in form
        if name not in ("client_secret", "client_assertion", "client_assertion_type")
    ]
    if not sent_id:
        params.append(("client_id", client.client_id))
    validating = PassgateRequest("GET", oauth.uri, oauth.headers, params, [], oauth.client_ip)
    try:
        grant = server.get_authorization_grant(validating)
        grant.validate_no_multiple_request_parameter(validating)
        redirect_uri = grant.validate_authorization_request()
        _checked_max_age(validating.payload.data)
        checked_response_mode(validating.payload.data, redirect_uri)
    except OAuth2Error as error:
        error.redirect_uri = None  # RFC 9126 2.3: the error goes back in the response
        raise
    return client.client_id, params


def _checked_max_age(params: Mapping[str, str]) -> int | None:
    """The request's max_age, if any. Raises OAuth2Error for a malformed one, and for request
    objects, which Passgate does not support (OIDC Core 6)."""
    if "request" in params:
        raise RequestNotSupportedError("request objects are not supported")
    if "request_uri" in params:
        raise RequestURINotSupportedError("request_uri is not supported")
    value = params.get("max_age")
    if value is None:
        return None
    if not value.isascii() or not value.isdigit():
        raise InvalidRequestError("max_age must be a whole number of seconds")
    return int(value)


def _after_fresh_sign_in(
    query: list[tuple[str, str]], max_age: int | None
) -> list[tuple[str, str]]:
    """The request to come back with after a forced sign-in: `login` taken out of prompt and
    max_age at least FRESH_SIGN_IN, so that the new session satisfies it instead of forcing
    yet another sign-in (max_age=0 would otherwise loop)."""
    kept: list[tuple[str, str]] = []
    for name, value in query:
        if name == "prompt":
            rest = " ".join(p for p in value.split() if p != "login")
            if rest:
                kept.append((name, rest))
        elif name != "max_age":
            kept.append((name, value))
    return [*kept, ("max_age", str(max(max_age or 0, FRESH_SIGN_IN)))]


def _to_login(request: Request, query: list[tuple[str, str]]) -> Response:
    settings = services_of(request).settings
    back = f"{settings.app_url}/authorize?{urlencode(query)}"
    params = {"rd": back}
    hint = dict(query).get("login_hint")
    if hint:
        params["hint"] = hint[:64]  # pre-fills the username field the passkey autofill uses
    return RedirectResponse(f"/login?force=1&{urlencode(params)}", 303)


# oidc-client-options: clients that require a fresh sign-in on every authorization request ----
REAUTH_PARAM = "passgate_reauth"  # carries the marker of the sign-in forced for this request
REAUTH_WINDOW = 600  # seconds: how long that marker waits for the sign-in to finish
# The browser a marker was made for (any visitor can make one: the marker alone, sent to a
# victim who signed in since, must not count as their sign-in). One value for all its tabs.
REAUTH_COOKIE = "passgate_reauth_browser"


async def _reauthenticated(request: Request, principal: Principal) -> bool:
    """True if this request comes back from the sign-in Passgate forced for it: its marker is
    known (and used up now), was made for this browser, and the session began after it."""
    marker = request.query_params.get(REAUTH_PARAM) or ""
    if not marker:
        return False
    stored = await services_of(request).ephemeral.take(f"oidc-reauth:{marker}")
    if stored is None:
        return False
    started, _, browser = stored.partition(" ")
    ours = request.cookies.get(REAUTH_COOKIE) or ""
    return (
        bool(browser and ours)
        and tokens_equal(browser, ours)
        and (principal.auth_time >= float(started))
    )


async def _to_reauth(request: Request, query: list[tuple[str, str]]) -> Response:
    """Send the browser to a new passkey sign-in that only this request, in this browser, can
    count as fresh."""
    marker = secrets.token_urlsafe(24)
    browser = request.cookies.get(REAUTH_COOKIE) or ""
    if len(browser) != 32:
        browser = secrets.token_urlsafe(24)
    await services_of(request).ephemeral.put(
        f"oidc-reauth:{marker}", f"{time.time()!r} {browser}", REAUTH_WINDOW
    )
    kept = [(k, v) for k, v in query if k != REAUTH_PARAM]
    response = _to_login(request, [*kept, (REAUTH_PARAM, marker)])
    response.set_cookie(
        REAUTH_COOKIE,
        browser,
        max_age=REAUTH_WINDOW,
        path="/authorize",
        httponly=True,
        samesite="lax",
        secure=services_of(request).settings.secure_cookies,
    )
    return response


async def _answer_consent(
    request: Request,
    client: OidcClient,
    user: User,
    wanted: set[str],
    allowed: bool,
    implicit: bool = False,
) -> None:
    """Audit the user's answer to the consent question and, if they allowed it, record the
    consent. `implicit`: a skip-consent client, whose page was never shown."""
    details: dict[str, DetailValue] = {
        "client_id": client.client_id,
        "client_name": client.name,
        "scope": " ".join(sorted(wanted)),
    }
    if implicit:
        details["implicit"] = True  # the client is trusted (skip consent): no page was shown
    await record_event(
        request,
        "consent_given",
        actor=actor_of(request, user.id, user.username),
        user_id=user.id,
        success=allowed,
        reason="" if allowed else "declined by the user",
        details=details,
    )
    if allowed:
        await run_in_threadpool(
            services_of(request).oauth.grant_consent, user.id, client.client_id, wanted
        )


async def authorize(request: Request) -> Response:
    services = services_of(request)
    server = server_of(request)
    oauth = await oauth_request(request)
    try:
        pushed = await _pushed(request, oauth)
    except OAuth2Error as error:
        metrics.pushed_request("invalid")
        return _error_page(request, error)
    params = oauth.payload.data  # the pushed request's, when there is one
    found = await signed_in(request)
    principal = None
    if found is not None:
        user = await run_in_threadpool(services.users.find_user, found[1].user_id)
        if user is not None:
            principal = Principal(user, found[0].created_at, amr_for(found[0].method))
    try:
        # Validates client, redirect URI, response type, scope, PKCE and prompt; raises
        # login_required for prompt=none without a session.
        grant = await run_in_threadpool(server.get_consent_grant, oauth, principal)
    except OAuth2Error as error:
        return await _oauth_error(request, oauth, error, pushed)
    try:
        max_age = _checked_max_age(params)
        checked_response_mode(params, grant.redirect_uri)
        _check_pushed(grant.client.client, pushed)
    except OAuth2Error as error:
        return await _send_back(request, oauth, grant, error, pushed)
    query = list(request.query_params.multi_items())
    prompts = set((params.get("prompt") or "").split())
    silent = "none" in prompts  # no page may be shown: every question becomes an error
    stale = (
        principal is not None
        and max_age is not None
        and time.time() - principal.auth_time > max_age
    )
    client = grant.client.client
    if principal is None or stale or "login" in prompts:
        if silent:
            return await _send_back(request, oauth, grant, LoginRequiredError(), pushed)
        if ("login" in prompts or max_age is not None) and pushed is not None:
            # The pushed request is the one to change: the query only names it.
            fresh = _after_fresh_sign_in(pushed.request.params, max_age)
            renewed = dataclasses.replace(pushed.request, params=fresh)
            await server.pushed.replace(pushed.request_uri, renewed)
        elif "login" in prompts or max_age is not None:
            query = _after_fresh_sign_in(query, max_age)
        if client.require_reauth:  # one sign-in satisfies both
            return await _to_reauth(request, query)
        return _to_login(request, query)
    if not open_to(client, principal.user.groups):
        log.info(
            "user %s is not in the groups allowed for %s", principal.user.username, client.client_id
        )
        if silent:
            return await _send_back(request, oauth, grant, AccessDeniedError(), pushed)
        return page(request, "not_allowed.html", 403, client=client, user=principal.user)
    if client.require_reauth and not await _reauthenticated(request, principal):
        if silent:
            return await _send_back(request, oauth, grant, LoginRequiredError(), pushed)
        return await _to_reauth(request, query)
    wanted = set(scope_to_list(grant.request.payload.scope or "") or [])
    granted = await run_in_threadpool(
        services.oauth.consented_scope, principal.user.id, client.client_id
    )
    if client.skip_consent and "consent" not in prompts and not wanted <= granted:
        await _answer_consent(request, client, principal.user, wanted, True, implicit=True)
    elif "consent" in prompts or not wanted <= granted:
        if silent:
            return await _send_back(request, oauth, grant, ConsentRequiredError(), pushed)
        return page(
            request,
            "consent.html",
            client=client,
            logo=logo_of(client),
            scopes=[(s, SCOPE_TEXT.get(s, s)) for s in sorted(wanted, key=SCOPES.index)],
            query=query,
            user=principal.user,
        )
    return await _to_app(
        request,
        oauth,
        grant.redirect_uri,
        pushed,
        server.create_authorization_response,
        oauth,
        principal,
        grant,
    )


# The fields only the consent page's form carries: a POST to /authorize with either is the
# user's decision (and must pass the CSRF checks); without them it is an app's request.
CONSENT_FIELDS = ("decision", "csrf_token")
FORM_TYPE = "application/x-www-form-urlencoded"


async def authorize_post(request: Request) -> Response:
    """POST /authorize: the consent page's decision, or an authorization request that an app
    sent as a form (OpenID Connect Core 3.1.2.1: the endpoint takes GET and POST alike).

    The request is answered with a 303 to the same request as a GET. A form that an app's page
    posts is a cross-site POST, which carries no SameSite=Lax cookie: handled in place, every
    signed-in user would be asked to sign in again. After the redirect, a top-level GET, the
    session cookie comes along and the request meets exactly the GET form's checks. No CSRF
    token: the app's page is on another site by design, and the request changes nothing."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith(FORM_TYPE):
        return message(
            request,
            "This app's sign-in request is invalid",
            f"An authorization request sent by POST must be a form ({FORM_TYPE}).",
            400,
            "/account",
        )
    form = await request.form()
    if any(name in form for name in CONSENT_FIELDS):
        return await authorize_decision(request)
    pairs = [
        *request.query_params.multi_items(),
        *((name, value) for name, value in form.multi_items() if isinstance(value, str)),
    ]
    settings = services_of(request).settings
    return RedirectResponse(f"{settings.app_url}/authorize?{urlencode(pairs)}", 303)


async def authorize_decision(request: Request) -> Response:
    """POST /authorize from the consent page: allow or deny."""
    services = services_of(request)
    form = await form_with_csrf(request)
    found = await signed_in(request)
    query = list(request.query_params.multi_items())
    if found is None:
        return _to_login(request, query)
    user = await run_in_threadpool(services.users.find_user, found[1].user_id)
    if user is None:
        return _to_login(request, query)
    principal = Principal(user, found[0].created_at, amr_for(found[0].method))
    # The authorization parameters travel in the query string, exactly as the app sent them
    # (or pushed them: then the query names the pushed request).
    oauth = await oauth_request(request)
    oauth.payload = type(oauth.payload)(query)
    server = server_of(request)
    try:
        pushed = await _pushed(request, oauth)
    except OAuth2Error as error:
        return _error_page(request, error)
    try:
        grant = await run_in_threadpool(server.get_consent_grant, oauth, principal)
    except OAuth2Error as error:
        return await _oauth_error(request, oauth, error, pushed)
    try:
        # Checked when the consent page was made; again, as the query is the browser's.
        checked_response_mode(oauth.payload.data, grant.redirect_uri)
        _check_pushed(grant.client.client, pushed)
    except OAuth2Error as error:
        return await _send_back(request, oauth, grant, error, pushed)
    client = grant.client.client
    if not open_to(client, user.groups):
        return page(request, "not_allowed.html", 403, client=client, user=user)
    if client.require_reauth and time.time() - principal.auth_time > REAUTH_WINDOW:
        return await _to_reauth(request, query)  # the consent page sat open too long
    wanted = set(scope_to_list(grant.request.payload.scope or "") or [])
    allowed = form.get("decision") == "allow"
    await _answer_consent(request, client, user, wanted, allowed)
    return await _to_app(
        request,
        oauth,
        grant.redirect_uri,
        pushed,
        server.create_authorization_response,
        oauth,
        principal if allowed else None,
        grant,
    )


def _repeated_parameter(request: Request, oauth: PassgateRequest) -> Response | None:
    """invalid_request when a parameter was sent twice (which one would count is anyone's guess)."""
    repeated = oauth.payload.repeated()
    if not repeated:
        return None
    error = InvalidRequestError(f"{repeated[0]} was sent more than once")
    response: Response = server_of(request).handle_error_response(oauth, error)
    return response


async def _call(method: Callable[..., Any], *args: Any) -> Response:
    """One of authlib's (synchronous) server methods, in a worker thread."""
    response: Response = await run_in_threadpool(method, *args)
    return response


async def _dpop_proof(
    request: Request, path: str, access_token: str | None = None
) -> DpopProof | None:
    """The request's DPoP proof, checked against this request (and `access_token`'s hash at
    resource endpoints) and never seen before; None when it sends none. Raises DpopRejected."""
    values = request.headers.getlist("dpop")
    if not values:
        return None
    if len(values) > 1:
        raise DpopRejected("send one DPoP proof, not several")
    url = services_of(request).settings.app_url + path
    proof = verify_proof(values[0], request.method, url, access_token)
    if await services_of(request).ephemeral.hit(replay_key(proof), REPLAY_WINDOW) > 1:
        raise DpopRejected("the DPoP proof was already used (its jti was seen before)")
    return proof


async def _dpop_refused(request: Request, endpoint: str, reason: str, client_id: str) -> None:
    metrics.oidc_error(endpoint, "invalid_dpop_proof")
    audit = services_of(request).audit
    actor = Actor(
        "system",
        id=client_id,
        name="passgate",
        ip=client_address(request),
        user_agent=request.headers.get("user-agent", ""),
    )
    await run_in_threadpool(
        lambda: audit.record_or_log(
            "dpop_proof_refused",
            actor=actor,
            success=False,
            reason=reason,
            details={"endpoint": endpoint, "client_id": client_id},
        )
    )


async def token(request: Request) -> Response:
    server = server_of(request)
    oauth = await oauth_request(request)
    response = _repeated_parameter(request, oauth)
    if response is None:
        try:
            oauth.dpop = await _dpop_proof(request, "/api/oidc/token")
        except DpopRejected as exc:
            client_id = oauth.payload.data.get("client_id", "")
            await _dpop_refused(request, "token", str(exc), client_id)
            response = server.handle_error_response(oauth, InvalidDpopProofError(str(exc)))
        else:
            response = await _call(server.create_token_response, oauth)
    response.headers.update(CORS)
    return response


async def _endpoint(request: Request, name: str) -> Response:
    server = server_of(request)
    oauth = await oauth_request(request)
    response = _repeated_parameter(request, oauth)
    if response is None:
        response = await _call(server.create_endpoint_response, name, oauth)
    return response


async def _over_limit(request: Request, limit: Limit, endpoint: str) -> Response | None:
    """429 with an OAuth error body once this address has called the endpoint too often in
    the limit's window; None while it may go on."""
    try:
        await services_of(request).rate_limits.check(limit, client_address(request))
    except RateLimited as exc:
        metrics.oidc_error(endpoint, "temporarily_unavailable")
        body = {
            "error": "temporarily_unavailable",
            "error_description": f"too many requests from this address: try again in "
            f"{exc.retry_after} seconds",
        }
        headers = {**CORS, "Retry-After": str(exc.retry_after), "Cache-Control": "no-store"}
        return JSONResponse(body, 429, headers=headers)
    return None


async def device_authorize(request: Request) -> Response:
    """RFC 8628 3.1: a device (TV, command-line tool) asks for its codes."""
    limited = await _over_limit(request, DEVICE_PER_ADDRESS, "device_authorization")
    if limited is not None:
        return limited
    response = await _endpoint(request, "device_authorization")
    response.headers.update(CORS)
    return response


async def introspect(request: Request) -> Response:
    return await _endpoint(request, "introspection")


async def revoke(request: Request) -> Response:
    response = await _endpoint(request, "revocation")
    response.headers.update(CORS)
    return response


def _bearer_error(
    error: str | None, description: str, status: int = 401, scheme: str = "Bearer"
) -> Response:
    """RFC 6750 3 (and RFC 9449 7.1 with scheme DPoP): a challenge naming the error; a request
    without any token gets a bare one."""
    header = f'{scheme} error="{error}", error_description="{description}"' if error else scheme
    if scheme == "DPoP":
        header += f', algs="{" ".join(DPOP_ALGORITHMS)}"'
    if error:
        metrics.oidc_error("userinfo", error)
    body = {"error": error, "error_description": description} if error else {}
    return JSONResponse(
        body,
        status,
        headers={**CORS, "WWW-Authenticate": header, "Cache-Control": "no-store"},
    )


async def userinfo(request: Request) -> Response:
    services = services_of(request)
    authorization = request.headers.get("authorization", "")
    scheme, _, value = authorization.partition(" ")
    dpop = scheme.lower() == "dpop"
    access_token = value.strip() if scheme.lower() in ("bearer", "dpop") else ""
    if request.method == "POST" and not dpop:
        form = await request.form()
        candidate = form.get("access_token")
        if isinstance(candidate, str) and candidate:
            if access_token:
                # RFC 6750 2: one way of sending the token per request.
                return _bearer_error("invalid_request", "send the token one way, not two", 400)
            access_token = candidate
    if not access_token:
        return _bearer_error(None, "send the access token as a Bearer token")
    issued = await run_in_threadpool(services.oauth.by_access_token, access_token)
    if issued is None or not issued.access_usable():
        return _bearer_error(
            "invalid_token",
            "the access token is invalid, expired or revoked",
            scheme="DPoP" if dpop else "Bearer",
        )
    refused = await _sender_refused(request, issued, access_token, dpop)
    if refused is not None:
        return refused
    if issued.audience is not None:
        return _bearer_error("invalid_token", "the access token was issued for another resource")
    if issued.user_id is None:
        # machine and TV grants: a client_credentials token is about the client, not a user
        return _bearer_error(
            "invalid_token", "this is a client_credentials token: it has no user to describe"
        )
    if "openid" not in issued.scope.split():
        return _bearer_error("insufficient_scope", "the token was not issued for openid", 403)
    user = await run_in_threadpool(server_of(request).active_user, issued.user_id)
    if user is None:
        return _bearer_error("invalid_token", "the user is disabled or gone")
    claims = await run_in_threadpool(server_of(request).claims, user, issued.scope)
    return JSONResponse(claims, headers={**CORS, "Cache-Control": "no-store"})


async def _sender_refused(
    request: Request, issued: IssuedToken, access_token: str, dpop: bool
) -> Response | None:
    """RFC 9449 7: a DPoP-bound token needs the DPoP scheme and a proof by its key; a Bearer
    token cannot be sent as DPoP. The refusal, or None when the sender is who it must be."""
    if not dpop:
        if issued.dpop_jkt is None:
            return None
        reason = "the access token is DPoP-bound: send it as Authorization: DPoP with a proof"
        return _bearer_error("invalid_token", reason, scheme="DPoP")
    if issued.dpop_jkt is None:
        return _bearer_error("invalid_token", "the access token is not DPoP-bound", scheme="DPoP")
    try:
        proof = await _dpop_proof(request, "/api/oidc/userinfo", access_token)
        if proof is None:
            raise DpopRejected("send a DPoP proof with a DPoP-bound access token")
        if not tokens_equal(proof.jkt, issued.dpop_jkt):
            raise DpopRejected("the DPoP proof is signed by another key than the token's")
    except DpopRejected as exc:
        await _dpop_refused(request, "userinfo", str(exc), issued.client_id)
        return _bearer_error("invalid_dpop_proof", str(exc), scheme="DPoP")
    return None


async def end_session(request: Request) -> Response:
    """RP-initiated logout: check who asks and where to go, then ask the user to confirm."""
    services = services_of(request)
    params: dict[str, str] = dict(request.query_params)
    if request.method == "POST":
        form = await request.form()
        params.update({k: v for k, v in form.items() if isinstance(v, str)})
    try:
        sign_out = await run_in_threadpool(
            check_sign_out,
            services.clients,
            server_of(request).keys,
            services.settings.app_url,
            params,
        )
    except LogoutRefused as refused:
        log.info("sign-out request refused: %s", refused)
        return message(
            request, "This app's sign-out request is invalid", str(refused), 400, "/logout"
        )
    client = sign_out.client
    return page(
        request,
        "end_session.html",
        target=sign_out.target,
        state=sign_out.state,
        client_id=client.client_id if client else "",
        client_name=client.name if client else "",
        return_refused=sign_out.return_refused,
    )


async def end_session_confirm(request: Request) -> Response:
    services = services_of(request)
    form = await form_with_csrf(request)
    await end_this_session(request, "oidc_end_session", form.get("client_id") or "")
    # Checked when the page was made; checked again, since the form is the browser's to change.
    try:
        sign_out = await run_in_threadpool(
            check_sign_out,
            services.clients,
            server_of(request).keys,
            services.settings.app_url,
            {
                "client_id": form.get("client_id") or "",
                "post_logout_redirect_uri": form.get("target") or "",
                "state": form.get("state") or "",
            },
        )
    except LogoutRefused:
        sign_out = SignOut(None, "", "")
    response: Response
    if sign_out.target:
        target = sign_out.target
        if sign_out.state:
            target += ("&" if "?" in target else "?") + urlencode({"state": sign_out.state})
        response = RedirectResponse(target, 303)
    elif form.get("return_refused"):
        app = services.settings.app_name
        response = page(
            request,
            "message.html",
            title="You are signed out",
            message=(
                f"You are signed out of {app} and every app that uses it. The app that sent "
                "you here did not say which app it is (no ID token, no client_id), so "
                f"{app} cannot send you back to it: you can close this tab."
            ),
            link="/login",
            link_text="Sign in again",
        )
    else:
        response = RedirectResponse(services.settings.app_url + "/login", 303)
    clear_session_cookie(response, services.settings)
    return response


# oidc-client-options: uploaded client logos, at Pocket-ID's path -------------------------------
LOGO_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    # Opened on its own, the image can run nothing and load nothing.
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Cross-Origin-Resource-Policy": "cross-origin",  # public: apps may show their own logo
    "Content-Disposition": "inline; filename=logo",
}


async def client_logo(request: Request) -> Response:
    """GET /api/oidc/clients/{client_id}/logo: public (the consent page shows it before any
    consent), with the stored Content-Type only, an ETag, and If-None-Match answered with 304."""
    client_id = request.path_params["client_id"]
    logo = await run_in_threadpool(services_of(request).clients.logo, client_id)
    if logo is None:
        return JSONResponse({"error": "not_found", "error_description": "no logo"}, 404)
    etag = f'"{logo.etag}"'
    cache = {
        **LOGO_HEADERS,
        "ETag": etag,
        # A versioned URL (?v=etag, as Passgate's pages link it) never changes; others revalidate.
        "Cache-Control": "public, max-age=31536000, immutable"
        if request.query_params.get("v") == logo.etag
        else "public, max-age=300, must-revalidate",
    }
    wanted = [tag.strip() for tag in request.headers.get("if-none-match", "").split(",")]
    if etag in wanted or f"W/{etag}" in wanted:
        return Response(status_code=304, headers=cache)
    return Response(logo.image, media_type=logo.content_type, headers=cache)


def preflight(request: Request) -> Response:
    return Response(status_code=204, headers={**CORS, "Access-Control-Allow-Methods": "GET, POST"})


routes = [
    Route("/.well-known/openid-configuration", discovery, methods=["GET"]),
    Route(
        "/.well-known/oauth-authorization-server", authorization_server_metadata, methods=["GET"]
    ),
    Route("/.well-known/jwks.json", jwks, methods=["GET"]),
    Route("/authorize", authorize, methods=["GET"]),
    Route("/authorize", authorize_post, methods=["POST"]),
    Route("/api/oidc/token", token, methods=["POST"]),
    Route("/api/oidc/par", par, methods=["POST"]),
    Route("/api/oidc/userinfo", userinfo, methods=["GET", "POST"]),
    Route("/api/oidc/introspect", introspect, methods=["POST"]),
    Route("/api/oidc/device/authorize", device_authorize, methods=["POST"]),
    Route("/api/oidc/revoke", revoke, methods=["POST"]),
    Route("/api/oidc/end-session", end_session, methods=["GET", "POST"]),
    Route("/api/oidc/end-session/confirm", end_session_confirm, methods=["POST"]),
    Route("/api/oidc/clients/{client_id}/logo", client_logo, methods=["GET", "HEAD"]),
    *(
        Route(path, preflight, methods=["OPTIONS"])
        for path in ("/api/oidc/token", "/api/oidc/userinfo", "/api/oidc/revoke", "/api/oidc/par")
    ),
]
