"""OpenID Connect endpoints at Pocket-ID's paths, so existing app configs and guides work.

`/authorize` is a page (sign-in, consent, "not allowed"); the rest are JSON for apps. The
protocol itself is authlib's (gateway.oidc.server); this module turns HTTP into its requests.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
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
from gateway.oidc.claims import amr_for
from gateway.oidc.clients import OidcClient
from gateway.oidc.endpoints import endpoints
from gateway.oidc.logout import LogoutRefused, SignOut, check_sign_out
from gateway.oidc.server import SCOPES, OidcServer, PassgateRequest, Principal
from gateway.sessions.cookies import clear_session_cookie
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
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Headers": "Authorization, Content-Type",
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
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        "token_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        "introspection_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
        ],
        "revocation_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
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
    }
    return JSONResponse(document, headers={**CORS, "Cache-Control": "public, max-age=3600"})


async def jwks(request: Request) -> Response:
    keys = await run_in_threadpool(server_of(request).keys.jwks)
    return JSONResponse(keys, headers={**CORS, "Cache-Control": "public, max-age=300"})


def _error_page(request: Request, error: OAuth2Error) -> Response:
    description = error.description or error.error
    return message(request, "This app's sign-in request is invalid", description, 400, "/account")


def _oauth_error(request: Request, oauth: PassgateRequest, error: OAuth2Error) -> Response:
    """Redirect the error to the app only once client and redirect URI are known good."""
    if error.redirect_uri:
        response: Response = server_of(request).handle_error_response(oauth, error)
        return response
    return _error_page(request, error)


def _send_back(
    request: Request, oauth: PassgateRequest, grant: Any, error: OAuth2Error
) -> Response:
    """An error for the app at its (already validated) redirect URI, with its state."""
    error.redirect_uri = grant.redirect_uri
    error.state = oauth.payload.state
    response: Response = server_of(request).handle_error_response(oauth, error)
    return response


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


def _allowed(client: OidcClient, user: User) -> bool:
    return not client.allowed_groups or bool(set(client.allowed_groups) & set(user.groups))


async def authorize(request: Request) -> Response:
    services = services_of(request)
    server = server_of(request)
    oauth = await oauth_request(request)
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
        return _oauth_error(request, oauth, error)
    try:
        max_age = _checked_max_age(request.query_params)
    except OAuth2Error as error:
        return _send_back(request, oauth, grant, error)
    query = list(request.query_params.multi_items())
    prompts = set((request.query_params.get("prompt") or "").split())
    silent = "none" in prompts  # no page may be shown: every question becomes an error
    stale = (
        principal is not None
        and max_age is not None
        and time.time() - principal.auth_time > max_age
    )
    if principal is None or stale or "login" in prompts:
        if silent:
            return _send_back(request, oauth, grant, LoginRequiredError())
        if "login" in prompts or max_age is not None:
            query = _after_fresh_sign_in(query, max_age)
        return _to_login(request, query)
    client = grant.client.client
    if not _allowed(client, principal.user):
        log.info(
            "user %s is not in the groups allowed for %s", principal.user.username, client.client_id
        )
        if silent:
            return _send_back(request, oauth, grant, AccessDeniedError())
        return page(request, "not_allowed.html", 403, client=client, user=principal.user)
    wanted = set(scope_to_list(grant.request.payload.scope or "") or [])
    granted = await run_in_threadpool(
        services.oauth.consented_scope, principal.user.id, client.client_id
    )
    if "consent" in prompts or not wanted <= granted:
        if silent:
            return _send_back(request, oauth, grant, ConsentRequiredError())
        return page(
            request,
            "consent.html",
            client=client,
            scopes=[(s, SCOPE_TEXT.get(s, s)) for s in sorted(wanted, key=SCOPES.index)],
            query=query,
            user=principal.user,
        )
    response: Response = await run_in_threadpool(
        server.create_authorization_response, oauth, principal, grant
    )
    return response


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
    # The authorization parameters travel in the query string, exactly as the app sent them.
    oauth = await oauth_request(request)
    oauth.payload = type(oauth.payload)(query)
    server = server_of(request)
    try:
        grant = await run_in_threadpool(server.get_consent_grant, oauth, principal)
    except OAuth2Error as error:
        return _oauth_error(request, oauth, error)
    client = grant.client.client
    if not _allowed(client, user):
        return page(request, "not_allowed.html", 403, client=client, user=user)
    wanted = set(scope_to_list(grant.request.payload.scope or "") or [])
    allowed = form.get("decision") == "allow"
    await record_event(
        request,
        "consent_given",
        actor=actor_of(request, user.id, user.username),
        user_id=user.id,
        success=allowed,
        reason="" if allowed else "declined by the user",
        details={
            "client_id": client.client_id,
            "client_name": client.name,
            "scope": " ".join(sorted(wanted)),
        },
    )
    if not allowed:
        denied: Response = await run_in_threadpool(
            server.create_authorization_response, oauth, None, grant
        )
        return denied
    await run_in_threadpool(services.oauth.grant_consent, user.id, client.client_id, wanted)
    response: Response = await run_in_threadpool(
        server.create_authorization_response, oauth, principal, grant
    )
    return response


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


async def token(request: Request) -> Response:
    server = server_of(request)
    oauth = await oauth_request(request)
    response = _repeated_parameter(request, oauth)
    if response is None:
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


async def introspect(request: Request) -> Response:
    return await _endpoint(request, "introspection")


async def revoke(request: Request) -> Response:
    response = await _endpoint(request, "revocation")
    response.headers.update(CORS)
    return response


def _bearer_error(error: str | None, description: str, status: int = 401) -> Response:
    """RFC 6750 3: a challenge naming the error; a request without any token gets a bare one."""
    header = f'Bearer error="{error}", error_description="{description}"' if error else "Bearer"
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
    access_token = value.strip() if scheme.lower() == "bearer" else ""
    if request.method == "POST":
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
        return _bearer_error("invalid_token", "the access token is invalid, expired or revoked")
    if "openid" not in issued.scope.split():
        return _bearer_error("insufficient_scope", "the token was not issued for openid", 403)
    user = await run_in_threadpool(server_of(request).active_user, issued.user_id)
    if user is None:
        return _bearer_error("invalid_token", "the user is disabled or gone")
    claims = await run_in_threadpool(server_of(request).claims, user, issued.scope)
    return JSONResponse(claims, headers={**CORS, "Cache-Control": "no-store"})


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


def preflight(request: Request) -> Response:
    return Response(status_code=204, headers={**CORS, "Access-Control-Allow-Methods": "GET, POST"})


routes = [
    Route("/.well-known/openid-configuration", discovery, methods=["GET"]),
    Route("/.well-known/jwks.json", jwks, methods=["GET"]),
    Route("/authorize", authorize, methods=["GET"]),
    Route("/authorize", authorize_post, methods=["POST"]),
    Route("/api/oidc/token", token, methods=["POST"]),
    Route("/api/oidc/userinfo", userinfo, methods=["GET", "POST"]),
    Route("/api/oidc/introspect", introspect, methods=["POST"]),
    Route("/api/oidc/revoke", revoke, methods=["POST"]),
    Route("/api/oidc/end-session", end_session, methods=["GET", "POST"]),
    Route("/api/oidc/end-session/confirm", end_session_confirm, methods=["POST"]),
    *(
        Route(path, preflight, methods=["OPTIONS"])
        for path in ("/api/oidc/token", "/api/oidc/userinfo", "/api/oidc/revoke")
    ),
]
