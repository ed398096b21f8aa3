"""The "My apps" page: a signed-in user sees the apps they may open (clients with a launch URL
whose allowed groups include them), with logo, name and launch link, or an empty state."""

from __future__ import annotations

import pytest

from gateway.accounts.users import User
from gateway.services import Services
from tests.oidc.asgi_http import CALLBACK, http_for, sign_in

pytestmark = pytest.mark.anyio

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32  # the signature is what the upload checks


@pytest.fixture
def bob(services: Services) -> User:
    services.users.create_group("family")
    services.users.create_group("finance")
    return services.users.create_user("bob", "bob@example.com", groups=("family",))


def add_app(
    services: Services, name: str, launch_url: str = "", groups: tuple[str, ...] = ()
) -> str:
    client, _ = services.clients.create(
        name, [CALLBACK], launch_url=launch_url, allowed_groups=groups
    )
    return client.client_id


async def test_lists_the_apps_the_user_may_open_with_launch_links(
    services: Services, bob: User
) -> None:
    add_app(services, "Photos", "https://photos.example.com/", ("family",))
    add_app(services, "Ledger", "https://ledger.example.com/", ("finance",))
    add_app(services, "Wiki", "https://wiki.example.com/")
    add_app(services, "Backend only")  # no launch URL: nothing to open
    async with http_for(services) as http:
        await sign_in(services, http, bob)
        page = await http.get("/apps")
    assert page.status_code == 200
    assert 'href="https://photos.example.com/"' in page.text
    assert 'href="https://wiki.example.com/"' in page.text
    assert "Ledger" not in page.text and "ledger.example.com" not in page.text
    assert "Backend only" not in page.text


async def test_a_user_outside_the_allowed_group_does_not_see_the_app(
    services: Services, bob: User
) -> None:
    add_app(services, "Ledger", "https://ledger.example.com/", ("finance",))
    carol = services.users.create_user("carol", "carol@example.com", groups=("finance",))
    async with http_for(services) as http:
        await sign_in(services, http, bob)
        hidden = await http.get("/apps")
        await sign_in(services, http, carol)
        shown = await http.get("/apps")
    assert "Ledger" not in hidden.text and 'id="no-apps"' in hidden.text
    assert "Ledger" in shown.text


async def test_shows_the_uploaded_logo(services: Services, bob: User) -> None:
    client_id = add_app(services, "Photos", "https://photos.example.com/")
    client = services.clients.set_logo(client_id, PNG)
    async with http_for(services) as http:
        await sign_in(services, http, bob)
        page = await http.get("/apps")
    assert f"/api/oidc/clients/{client_id}/logo?v={client.logo_etag}" in page.text


async def test_empty_state_when_there_is_nothing_to_open(services: Services, bob: User) -> None:
    async with http_for(services) as http:
        await sign_in(services, http, bob)
        page = await http.get("/apps")
    assert page.status_code == 200 and 'id="no-apps"' in page.text


async def test_visitor_without_a_session_is_sent_to_sign_in_and_back(services: Services) -> None:
    async with http_for(services) as http:
        response = await http.get("/apps")
    assert response.status_code == 303
    assert response.headers["location"].startswith(
        "/login?rd=https%3A%2F%2Fauth.example.com%2Fapps"
    )


async def test_account_page_links_to_my_apps(services: Services, bob: User) -> None:
    async with http_for(services) as http:
        await sign_in(services, http, bob)
        page = await http.get("/account")
    assert 'href="/apps"' in page.text
