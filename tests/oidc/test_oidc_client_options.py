"""Per-client options: skip consent (trusted first-party apps), require re-authentication, the
launch URL, and an uploaded logo; through the service, the admin API, the console, the CLI and
CONFIG_FILE. /authorize runs in-process with a session started through the session service, and
twice in Chromium with a virtual authenticator, where a real page or passkey ceremony matters."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from playwright.sync_api import Browser

from gateway.accounts.users import User
from gateway.audit.log import CLI
from gateway.core.errors import InvalidInput
from gateway.oidc.client_service import LOGO_MAX_BYTES
from gateway.oidc.clients import DeclaredClient, uploaded_logo_path
from gateway.services import Services
from gateway.web.app import create_app
from tests.admin.console_client import ORIGIN, csrf_token, sign_in_as
from tests.browser import DOMAIN, Gate
from tests.cli.command import run
from tests.conftest import PassgateProcess
from tests.oidc.asgi_http import CALLBACK, authorization, http_for, sign_in
from tests.oidc.relying_party import RP_CALLBACK, add_client

pytestmark = pytest.mark.anyio


def png(width: int = 1, height: int = 1, padding: int = 0) -> bytes:
    """A valid PNG (grey pixels), `padding` bytes longer through an ancillary text chunk."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    extra = chunk(b"tEXt", b"c\x00" + b"x" * padding) if padding else b""
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + extra
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


@pytest.fixture
def alice(services: Services) -> User:
    services.users.create_group("family")
    return services.users.create_user("alice", "alice@example.com", groups=("family",))


def make_client(services: Services, **settings: Any) -> str:
    client, _ = services.clients.create("Memos", [CALLBACK], **settings)
    return client.client_id


def login_target(response: httpx.Response) -> dict[str, list[str]]:
    """The query of the /authorize request a forced sign-in returns to."""
    assert response.status_code == 303, response.text
    location = urlsplit(response.headers["location"])
    assert location.path == "/login" and parse_qs(location.query)["force"] == ["1"]
    return parse_qs(urlsplit(parse_qs(location.query)["rd"][0]).query)


def code_of(response: httpx.Response) -> str:
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(CALLBACK + "?"), location
    return parse_qs(urlsplit(location).query)["code"][0]


# --- skip consent -----------------------------------------------------------------------------


async def test_skip_consent_client_gets_a_code_and_the_consent_is_recorded_and_audited(
    services: Services, alice: User
) -> None:
    client_id = make_client(services, skip_consent=True)
    async with http_for(services) as http:
        await sign_in(services, http, alice)
        code_of(await http.get("/authorize", params=authorization(client_id)))
    assert services.oauth.consented_scope(alice.id, client_id) == {"openid", "profile"}
    (event,) = services.audit.search(event="consent_given").events
    assert event.details["implicit"] is True and event.details["client_id"] == client_id


async def test_normal_client_still_asks_for_consent(services: Services, alice: User) -> None:
    client_id = make_client(services)
    async with http_for(services) as http:
        await sign_in(services, http, alice)
        response = await http.get("/authorize", params=authorization(client_id))
    assert response.status_code == 200 and 'value="allow"' in response.text


async def test_prompt_consent_shows_the_page_even_for_a_skip_consent_client(
    services: Services, alice: User
) -> None:
    client_id = make_client(services, skip_consent=True)
    async with http_for(services) as http:
        await sign_in(services, http, alice)
        response = await http.get("/authorize", params=authorization(client_id, prompt="consent"))
    assert response.status_code == 200 and 'value="allow"' in response.text


# --- require re-authentication ------------------------------------------------------------------


async def test_reauth_client_sends_even_a_fresh_session_to_a_new_sign_in(
    services: Services, alice: User
) -> None:
    client_id = make_client(services, require_reauth=True, skip_consent=True)
    async with http_for(services) as http:
        await sign_in(services, http, alice, age=5)
        back = login_target(await http.get("/authorize", params=authorization(client_id)))
    assert back["passgate_reauth"][0]


async def test_reauth_client_accepts_the_sign_in_it_forced_once(
    services: Services, alice: User
) -> None:
    client_id = make_client(services, require_reauth=True, skip_consent=True)
    async with http_for(services) as http:
        await sign_in(services, http, alice, age=5)
        back = login_target(await http.get("/authorize", params=authorization(client_id)))
        await sign_in(services, http, alice)  # the passkey sign-in the login page would do
        again = {name: values[0] for name, values in back.items()}
        code_of(await http.get("/authorize", params=again))
        # The marker is used up: the same request a second time needs yet another sign-in.
        login_target(await http.get("/authorize", params=again))


async def test_reauth_marker_is_not_satisfied_by_a_session_from_before_it(
    services: Services, alice: User
) -> None:
    client_id = make_client(services, require_reauth=True, skip_consent=True)
    async with http_for(services) as http:
        await sign_in(services, http, alice, age=5)
        back = login_target(await http.get("/authorize", params=authorization(client_id)))
        again = {name: values[0] for name, values in back.items()}
        login_target(await http.get("/authorize", params=again))  # no new sign-in happened


async def test_reauth_marker_made_in_another_browser_is_not_a_sign_in_for_this_one(
    services: Services, alice: User
) -> None:
    """The marker is tied to the browser it was made for: one that an attacker minted (any
    visitor can) and sends a victim who signed in since does not skip the victim's sign-in."""
    client_id = make_client(services, require_reauth=True, skip_consent=True)
    async with http_for(services) as attacker, http_for(services) as victim:
        minted = login_target(await attacker.get("/authorize", params=authorization(client_id)))
        await sign_in(services, victim, alice)  # the victim signs in after the marker was made
        lure = {name: values[0] for name, values in minted.items()}
        login_target(await victim.get("/authorize", params=lure))


async def test_reauth_client_needs_one_sign_in_from_a_visitor_without_a_session(
    services: Services, alice: User
) -> None:
    client_id = make_client(services, require_reauth=True, skip_consent=True)
    async with http_for(services) as http:
        back = login_target(await http.get("/authorize", params=authorization(client_id)))
        await sign_in(services, http, alice)
        code_of(await http.get("/authorize", params={k: v[0] for k, v in back.items()}))


async def test_reauth_is_not_asked_of_a_user_the_client_does_not_let_in(
    services: Services, alice: User
) -> None:
    services.users.create_group("finance")
    client_id = make_client(services, require_reauth=True, allowed_groups=["finance"])
    async with http_for(services) as http:
        await sign_in(services, http, alice)
        response = await http.get("/authorize", params=authorization(client_id))
    assert response.status_code == 403 and "location" not in response.headers


async def test_reauth_client_with_prompt_none_gets_login_required(
    services: Services, alice: User
) -> None:
    client_id = make_client(services, require_reauth=True, skip_consent=True)
    async with http_for(services) as http:
        await sign_in(services, http, alice)
        response = await http.get("/authorize", params=authorization(client_id, prompt="none"))
    assert response.status_code == 302
    assert parse_qs(urlsplit(response.headers["location"]).query)["error"] == ["login_required"]


# --- launch URL -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["https://memos.example.com/", "http://localhost:5230/", "http://127.0.0.1/app"]
)
def test_launch_url_may_be_https_or_http_on_loopback(services: Services, url: str) -> None:
    assert services.clients.get(make_client(services, launch_url=url)).launch_url == url


@pytest.mark.parametrize(
    "url",
    ["http://memos.example.com/", "javascript:alert(1)", "com.example.app:/open", "//x.example"],
)
def test_launch_url_refuses_anything_else(services: Services, url: str) -> None:
    with pytest.raises(InvalidInput, match="launch_url"):
        make_client(services, launch_url=url)


# --- logos ------------------------------------------------------------------------------------


async def upload(services: Services, http: httpx.AsyncClient, client_id: str, body: bytes,
                 content_type: str = "image/png") -> httpx.Response:  # fmt: skip
    _, key = await services.admin.create_api_key(CLI, "ops", "write")
    headers = {"Authorization": f"Bearer {key}", "Content-Type": content_type}
    return await http.put(f"/api/admin/clients/{client_id}/logo", content=body, headers=headers)


async def test_uploaded_logo_is_served_with_strict_headers_and_an_etag(
    services: Services,
) -> None:
    client_id = make_client(services)
    image = png(4, 4)
    async with http_for(services) as http:
        uploaded = await upload(services, http, client_id, image)
        assert uploaded.status_code == 200, uploaded.text
        served_at = uploaded.json()["uploaded_logo_url"]
        logo = await http.get(served_at)
        assert logo.status_code == 200 and logo.content == image
        assert logo.headers["content-type"] == "image/png"
        assert logo.headers["x-content-type-options"] == "nosniff"
        assert "sandbox" in logo.headers["content-security-policy"]
        assert "default-src 'none'" in logo.headers["content-security-policy"]
        assert "immutable" in logo.headers["cache-control"]
        etag = logo.headers["etag"]
        unchanged = await http.get(
            f"/api/oidc/clients/{client_id}/logo", headers={"If-None-Match": etag}
        )
        assert unchanged.status_code == 304 and unchanged.content == b""
        assert "must-revalidate" in unchanged.headers["cache-control"]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "problem"),
    [
        (png(padding=LOGO_MAX_BYTES), "image/png", 422, "larger than"),
        (png(padding=70 * 1024), "image/png", 413, ""),
        (b'<svg xmlns="http://www.w3.org/2000/svg"><script>x</script></svg>', "image/png", 422,
         "SVG"),
        (b"GIF89a" + b"\x00" * 20, "image/png", 422, "PNG or JPEG"),
        (png(), "image/svg+xml", 422, "Content-Type"),
    ],
)  # fmt: skip
async def test_logo_upload_refuses_oversize_and_other_kinds(
    services: Services, body: bytes, content_type: str, status: int, problem: str
) -> None:
    client_id = make_client(services)
    async with http_for(services) as http:
        refused = await upload(services, http, client_id, body, content_type)
        assert refused.status_code == status, refused.text
        assert problem in refused.text
        assert (await http.get(f"/api/oidc/clients/{client_id}/logo")).status_code == 404
    assert services.clients.get(client_id).logo_etag == ""


async def test_consent_page_shows_the_uploaded_logo(services: Services, alice: User) -> None:
    client_id = make_client(services)
    client = services.clients.set_logo(client_id, png())
    async with http_for(services) as http:
        await sign_in(services, http, alice)
        page = await http.get("/authorize", params=authorization(client_id))
    assert uploaded_logo_path(client).replace("&", "&amp;") in page.text


# --- the console ------------------------------------------------------------------------------


async def test_console_sets_the_options_and_uploads_a_logo(services: Services) -> None:
    client_id = make_client(services)
    transport = httpx.ASGITransport(app=create_app(services))
    async with httpx.AsyncClient(transport=transport, base_url=ORIGIN) as http:
        await sign_in_as(services, http, "root", ("admins",))
        token = await csrf_token(http)
        form = {
            "csrf_token": token,
            "name": "Memos",
            "redirect_uris": CALLBACK,
            "id_token_alg": "RS256",
            "access_token_lifetime": "3600",
            "refresh_token_lifetime": "2592000",
            "skip_consent": "on",
            "require_reauth": "on",
            "launch_url": "https://memos.example.com/",
        }
        origin = {"origin": ORIGIN}
        saved = await http.post(f"/admin/clients/{client_id}/edit", data=form, headers=origin)
        assert saved.status_code == 303, saved.text
        uploaded = await http.post(
            f"/admin/clients/{client_id}/logo",
            data={"csrf_token": token},
            files={"logo": ("logo.png", png(), "image/png")},
            headers=origin,
        )
        assert uploaded.status_code == 303, uploaded.text
        svg = await http.post(
            f"/admin/clients/{client_id}/logo",
            data={"csrf_token": token},
            files={"logo": ("logo.svg", b"<svg></svg>", "image/svg+xml")},
            headers=origin,
        )
        assert svg.status_code == 400 and "SVG" in svg.text
        shown = await http.get(f"/admin/clients/{client_id}")
    client = services.clients.get(client_id)
    assert client.skip_consent and client.require_reauth
    assert client.launch_url == "https://memos.example.com/" and client.logo_etag
    assert uploaded_logo_path(client).replace("&", "&amp;") in shown.text
    edited, logo = sorted(services.audit.search(event="client_updated").events, key=lambda e: e.at)
    # Only the fields that changed, though the form sent them all.
    assert edited.details["changed"] == "launch_url,require_reauth,skip_consent"
    assert logo.details["changed"] == "logo"


# --- the admin API, the CLI and CONFIG_FILE ------------------------------------------------------


async def test_admin_api_changes_the_options(services: Services) -> None:
    client_id = make_client(services)
    _, key = await services.admin.create_api_key(CLI, "ops", "write")
    bearer = {"Authorization": f"Bearer {key}"}
    async with http_for(services) as http:
        changed = await http.patch(
            f"/api/admin/clients/{client_id}",
            json={
                "skip_consent": True,
                "require_reauth": True,
                "launch_url": "https://m.example.com/",
            },
            headers=bearer,
        )
        assert changed.status_code == 200, changed.text
        body = changed.json()
        assert body["skip_consent"] and body["require_reauth"]
        assert body["launch_url"] == "https://m.example.com/" and body["active_secrets"] == 1
        bad = await http.patch(
            f"/api/admin/clients/{client_id}", json={"launch_url": "http://m.example.com/"},
            headers=bearer,
        )  # fmt: skip
        assert bad.status_code == 422 and "launch_url" in bad.text


def test_cli_sets_the_options_and_the_logo(tmp_path: Path) -> None:
    added = run(
        tmp_path, "clients", "add", "Memos", "--redirect-uri", CALLBACK, "--skip-consent",
        "--reauth", "--launch-url", "https://memos.example.com/",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    values = dict(line.split(": ", 1) for line in added.stdout.splitlines() if ": " in line)
    assert values["skip_consent"] == "yes" and values["require_reauth"] == "yes"
    assert values["launch_url"] == "https://memos.example.com/"
    client_id = values["client_id"]
    changed = run(tmp_path, "clients", "update", client_id, "--no-skip-consent")
    assert "skip_consent: no" in changed.stdout and "require_reauth: yes" in changed.stdout
    (tmp_path / "logo.png").write_bytes(png())
    logo = run(tmp_path, "clients", "logo", "set", client_id, str(tmp_path / "logo.png"))
    assert logo.returncode == 0 and "/logo?v=" in logo.stdout
    (tmp_path / "logo.svg").write_text("<svg></svg>")
    svg = run(tmp_path, "clients", "logo", "set", client_id, str(tmp_path / "logo.svg"))
    assert svg.returncode != 0 and "SVG" in svg.stderr


def test_config_file_declares_the_options(services: Services) -> None:
    entry = DeclaredClient.model_validate(
        {
            "client_id": "memos",
            "name": "Memos",
            "redirect_uris": [CALLBACK],
            "public": True,
            "skip_consent": True,
            "require_reauth": True,
            "launch_url": "https://memos.example.com/",
        }
    )
    services.clients.sync_declared([entry], {})
    memos = services.clients.get("memos")
    assert memos.skip_consent and memos.require_reauth
    assert memos.launch_url == "https://memos.example.com/"


def test_config_file_refuses_a_bad_launch_url(tmp_path: Path) -> None:
    config = tmp_path / "passgate.yml"
    config.write_text(
        "clients:\n  - client_id: memos\n    name: Memos\n    public: true\n"
        f"    redirect_uris: [{CALLBACK}]\n    launch_url: http://memos.example.com/\n"
    )
    listed = run(tmp_path, "clients", "list", CONFIG_FILE=str(config))
    assert listed.returncode != 0 and "launch_url" in listed.stderr


# --- in Chromium ------------------------------------------------------------------------------


def authorize_url(issuer: str, client_id: str) -> str:
    return f"{issuer}/authorize?" + urlencode(
        {**authorization(client_id), "redirect_uri": RP_CALLBACK}
    )


def test_skip_consent_goes_straight_to_the_app_and_a_normal_client_shows_consent(
    idp: tuple[PassgateProcess, Browser, int],
) -> None:
    passgate, browser, port = idp
    issuer = f"http://auth.{DOMAIN}:{port}"
    trusted, _ = add_client(passgate, "--skip-consent")
    normal, _ = add_client(passgate)
    alice = Gate(passgate, port, browser).person()
    alice.set_up_account("alice", "Alice Liddell")

    # (Playwright cannot fulfil a request reached by a redirect: the test watches it leave.)
    with alice.page.expect_request(lambda r: r.url.startswith(RP_CALLBACK)) as sent:
        alice.page.evaluate("url => { window.location.href = url }", authorize_url(issuer, trusted))
    assert "code=" in sent.value.url

    other_tab = alice.context.new_page()  # the first tab is still showing the failed callback
    other_tab.goto(authorize_url(issuer, normal))
    other_tab.locator("button[value=allow]").wait_for()
    assert "/authorize" in other_tab.url


def test_reauth_client_makes_a_signed_in_person_use_their_passkey_again(
    idp: tuple[PassgateProcess, Browser, int],
) -> None:
    passgate, browser, port = idp
    issuer = f"http://auth.{DOMAIN}:{port}"
    client_id, _ = add_client(passgate, "--reauth", "--skip-consent")
    alice = Gate(passgate, port, browser).person(autofill=False)
    alice.set_up_account("alice", "Alice Liddell")  # signed in, with a live session
    (before,) = alice.credentials()

    alice.page.goto(authorize_url(issuer, client_id))
    alice.page.wait_for_url("**/login?*")
    with alice.page.expect_request(lambda r: r.url.startswith(RP_CALLBACK)) as sent:
        alice.page.click("#passkey-button")
    (after,) = alice.credentials()
    assert after["signCount"] > before["signCount"]  # a new passkey assertion was made
    assert "code=" in sent.value.url
