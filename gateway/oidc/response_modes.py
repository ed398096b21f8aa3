"""How /authorize hands its answer to the app (OAuth 2.0 Multiple Response Types and Form Post
Response Mode): `query` (the default for code), `fragment`, or `form_post`, an HTML page that
posts the parameters to the redirect URI. authlib builds every answer as a query redirect; this
module re-delivers it in the mode the request asked for."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from urllib.parse import parse_qsl, urlsplit

from authlib.common.urls import add_params_to_uri
from authlib.oauth2.rfc6749 import InvalidRequestError
from starlette.responses import HTMLResponse, RedirectResponse, Response

from gateway.core.templating import render

RESPONSE_MODES = ("query", "fragment", "form_post")
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def checked_response_mode(params: Mapping[str, str], redirect_uri: str) -> str:
    """The request's response mode ("query" when absent). Raises InvalidRequestError for an
    unknown mode, and for form_post to a redirect URI that is not http(s) (a form cannot post
    to an app's private scheme, and must never post to javascript:)."""
    mode = params.get("response_mode") or "query"
    if mode not in RESPONSE_MODES:
        raise InvalidRequestError("response_mode must be query, fragment or form_post")
    if mode == "form_post" and urlsplit(redirect_uri).scheme not in ("http", "https"):
        raise InvalidRequestError("response_mode form_post needs an http or https redirect URI")
    return mode


def lenient_response_mode(params: Mapping[str, str], redirect_uri: str) -> str:
    """The mode to send an error in: the requested one if valid, else query."""
    try:
        return checked_response_mode(params, redirect_uri)
    except InvalidRequestError:
        return "query"


def deliver(response: Response, mode: str, redirect_uri: str) -> Response:
    """`response` (a redirect to `redirect_uri` with the answer in its query, as authlib makes
    it) in `mode`; anything that is not such a redirect is returned as it is."""
    location = response.headers.get("location")
    if mode == "query" or location is None or response.status_code not in (302, 303):
        return response
    params = _answer(location, redirect_uri)
    if mode == "fragment":
        target = add_params_to_uri(redirect_uri, params, fragment=True)
        return RedirectResponse(target, 302, headers=NO_STORE)
    return form_post(redirect_uri, params)


def form_post(redirect_uri: str, params: list[tuple[str, str]]) -> Response:
    """A page that posts `params` to `redirect_uri` at once (a nonce'd script; a button when
    scripts are off), under a CSP that allows that script and that form target only."""
    nonce = secrets.token_urlsafe(18)
    parts = urlsplit(redirect_uri)
    csp = (
        f"default-src 'none'; script-src 'nonce-{nonce}'; "
        f"form-action {parts.scheme}://{parts.netloc}; base-uri 'none'; frame-ancestors 'none'"
    )
    body = render("form_post.html", action=redirect_uri, params=params, nonce=nonce)
    return HTMLResponse(
        body,
        headers={**NO_STORE, "Content-Security-Policy": csp, "Referrer-Policy": "no-referrer"},
    )


def _answer(location: str, redirect_uri: str) -> list[tuple[str, str]]:
    """The answer's parameters: the query of `location` after the redirect URI's own."""
    own = len(parse_qsl(urlsplit(redirect_uri).query, keep_blank_values=True))
    return parse_qsl(urlsplit(location).query, keep_blank_values=True)[own:]
