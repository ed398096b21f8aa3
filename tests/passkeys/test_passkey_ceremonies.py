"""WebAuthn ceremonies against real services (SQLite, challenges in the database), driven by a
software authenticator that makes correctly signed answers, and precisely wrong ones."""

from __future__ import annotations

import asyncio
import copy
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any

import cbor2
import pytest

from gateway.core.errors import Conflict
from gateway.core.settings import Settings
from gateway.passkeys import ceremonies as passkey_ceremonies
from gateway.passkeys.ceremonies import PasskeyRejected, PendingRegistration
from gateway.passkeys.enrolment import SetupClosed
from gateway.passkeys.signups import SignupRejected
from gateway.services import Services, build_services
from tests.soft_authenticator import DEFAULT_AAGUID, SoftAuthenticator, b64url

pytestmark = pytest.mark.anyio

ORIGIN = "https://auth.example.com"


@pytest.fixture
async def live(make_settings: Callable[..., Settings]) -> AsyncIterator[Services]:
    built = build_services(
        make_settings(app_url=ORIGIN, cookie_domain="example.com", db_provider="sqlite")
    )
    assert built.settings.rp_id == "example.com" and built.settings.origin == ORIGIN
    yield built
    await built.close()


def _pending(flow: str, username: str, token: str | None = None) -> PendingRegistration:
    return PendingRegistration(
        flow, secrets.token_urlsafe(32), username, f"{username}@example.com", signup_token=token
    )


async def _enrol(
    live: Services, auth: SoftAuthenticator, pending: PendingRegistration, **create: Any
) -> str:
    ceremony, options = await live.ceremonies.begin_registration(pending)
    credential = auth.create(options, ORIGIN, **create)
    verified_pending, passkey = await live.ceremonies.finish_registration(
        ceremony, credential, "Laptop"
    )
    return live.enrolment.complete(verified_pending, passkey)


async def _sign_in(live: Services, auth: SoftAuthenticator, **get: Any) -> str:
    ceremony, options = await live.ceremonies.begin_authentication()
    passkey = await live.ceremonies.finish_authentication(
        ceremony, auth.get(options, ORIGIN, **get)
    )
    return passkey.user_id


async def _refused_sign_in(live: Services, auth: SoftAuthenticator, **get: Any) -> str:
    with pytest.raises(PasskeyRejected) as caught:
        await _sign_in(live, auth, **get)
    return caught.value.reason


@pytest.fixture
async def alice(live: Services) -> tuple[str, SoftAuthenticator]:
    """The first user (setup flow) with one passkey on her own authenticator."""
    auth = SoftAuthenticator()
    return await _enrol(live, auth, _pending("setup", "alice")), auth


# --- the happy path -----------------------------------------------------------------------


async def test_setup_registration_creates_an_admin_with_the_passkey(live: Services) -> None:
    auth = SoftAuthenticator()
    user_id = await _enrol(live, auth, _pending("setup", "alice"))

    user = live.users.get_user(user_id)
    assert user.username == "alice" and user.groups == (live.settings.admin_group,)
    assert live.settings.admin_group == "admins"
    (passkey,) = live.passkeys.list_for_user(user_id)
    assert passkey.credential_id == auth.credential().id
    assert passkey.transports == ("internal",)
    assert passkey.aaguid == str(DEFAULT_AAGUID)
    assert passkey.sign_count == 0 and passkey.last_used_at is None
    assert passkey.backup_eligible and passkey.backed_up and passkey.name == "Laptop"


async def test_sign_in_returns_the_user_and_records_the_use(
    live: Services, alice: tuple[str, SoftAuthenticator]
) -> None:
    user_id, auth = alice
    assert await _sign_in(live, auth, sign_count=7) == user_id

    passkey = live.passkeys.get(auth.credential().id)
    assert passkey.sign_count == 7
    assert passkey.last_used_at is not None


async def test_authenticator_without_a_counter_signs_in_repeatedly(
    live: Services, alice: tuple[str, SoftAuthenticator]
) -> None:
    user_id, auth = alice
    assert await _sign_in(live, auth, sign_count=0) == user_id
    assert await _sign_in(live, auth, sign_count=0) == user_id


# --- expired and replayed ceremonies ---------------------------------------------------------


async def test_replayed_assertion_on_the_same_ceremony_is_expired(
    live: Services, alice: tuple[str, SoftAuthenticator]
) -> None:
    _, auth = alice
    ceremony, options = await live.ceremonies.begin_authentication()
    assertion = auth.get(options, ORIGIN)
    await live.ceremonies.finish_authentication(ceremony, assertion)
    with pytest.raises(PasskeyRejected) as caught:
        await live.ceremonies.finish_authentication(ceremony, assertion)
    assert caught.value.reason == "expired"


async def test_replayed_assertion_on_another_ceremony_is_expired(
    live: Services, alice: tuple[str, SoftAuthenticator]
) -> None:
    _, auth = alice
    ceremony, options = await live.ceremonies.begin_authentication()
    assertion = auth.get(options, ORIGIN)
    await live.ceremonies.finish_authentication(ceremony, assertion)
    second, _ = await live.ceremonies.begin_authentication()
    with pytest.raises(PasskeyRejected) as caught:
        await live.ceremonies.finish_authentication(second, assertion)
    assert caught.value.reason == "expired"


async def test_replayed_registration_is_expired(live: Services) -> None:
    auth = SoftAuthenticator()
    ceremony, options = await live.ceremonies.begin_registration(_pending("setup", "alice"))
    credential = auth.create(options, ORIGIN)
    await live.ceremonies.finish_registration(ceremony, credential, "Laptop")
    with pytest.raises(PasskeyRejected) as caught:
        await live.ceremonies.finish_registration(ceremony, credential, "Laptop")
    assert caught.value.reason == "expired"


@pytest.mark.parametrize("ceremony", [None, "", "no-such-ceremony"])
async def test_unknown_or_missing_sign_in_ceremony_is_expired(
    live: Services, alice: tuple[str, SoftAuthenticator], ceremony: str | None
) -> None:
    _, auth = alice
    _, options = await live.ceremonies.begin_authentication()
    with pytest.raises(PasskeyRejected) as caught:
        await live.ceremonies.finish_authentication(ceremony, auth.get(options, ORIGIN))
    assert caught.value.reason == "expired"


@pytest.mark.parametrize("ceremony", [None, "", "no-such-ceremony"])
async def test_unknown_or_missing_registration_ceremony_is_expired(
    live: Services, ceremony: str | None
) -> None:
    _, options = await live.ceremonies.begin_registration(_pending("setup", "alice"))
    credential = SoftAuthenticator().create(options, ORIGIN)
    with pytest.raises(PasskeyRejected) as caught:
        await live.ceremonies.finish_registration(ceremony, credential, "Laptop")
    assert caught.value.reason == "expired"
    assert live.users.count_users() == 0


async def test_sign_in_ceremony_id_is_not_a_registration_ceremony_id(
    live: Services, alice: tuple[str, SoftAuthenticator]
) -> None:
    _, auth = alice
    ceremony, _ = await live.ceremonies.begin_registration(_pending("signup", "bob"))
    _, options = await live.ceremonies.begin_authentication()
    with pytest.raises(PasskeyRejected) as caught:
        await live.ceremonies.finish_authentication(ceremony, auth.get(options, ORIGIN))
    assert caught.value.reason == "expired"


async def test_sign_in_after_the_challenge_expired_is_expired(
    live: Services, alice: tuple[str, SoftAuthenticator], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, auth = alice
    monkeypatch.setattr(passkey_ceremonies, "CHALLENGE_TTL", 0.05)
    ceremony, options = await live.ceremonies.begin_authentication()
    await asyncio.sleep(0.15)
    with pytest.raises(PasskeyRejected) as caught:
        await live.ceremonies.finish_authentication(ceremony, auth.get(options, ORIGIN))
    assert caught.value.reason == "expired"


async def test_registration_after_the_challenge_expired_is_expired(
    live: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(passkey_ceremonies, "CHALLENGE_TTL", 0.05)
    ceremony, options = await live.ceremonies.begin_registration(_pending("setup", "alice"))
    await asyncio.sleep(0.15)
    credential = SoftAuthenticator().create(options, ORIGIN)
    with pytest.raises(PasskeyRejected) as caught:
        await live.ceremonies.finish_registration(ceremony, credential, "Laptop")
    assert caught.value.reason == "expired"


async def test_assertion_for_another_challenge_is_expired(
    live: Services, alice: tuple[str, SoftAuthenticator]
) -> None:
    _, auth = alice
    assert await _refused_sign_in(live, auth, challenge=b64url(b"x" * 32)) == "expired"


async def test_registration_for_another_challenge_is_expired(live: Services) -> None:
    with pytest.raises(PasskeyRejected) as caught:
        await _enrol(
            live, SoftAuthenticator(), _pending("setup", "alice"), challenge=b64url(b"x" * 32)
        )
    assert caught.value.reason == "expired"


# --- answers made for another site -----------------------------------------------------------


async def test_sign_in_from_another_origin_is_refused_as_origin(
    live: Services, alice: tuple[str, SoftAuthenticator]
) -> None:
    _, auth = alice
    ceremony, options = await live.ceremonies.begin_authentication()
    with pytest.raises(PasskeyRejected) as caught:
        await live.ceremonies.finish_authentication(
            ceremony, auth.get(options, "https://evil.example.net")
        )
    assert caught.value.reason == "origin"


async def test_sign_in_with_another_rp_id_hash_is_refused_as_origin(
    live: Services, alice: tuple[str, SoftAuthenticator]
) -> None:
    _, auth = alice
    assert await _refused_sign_in(live, auth, rp_id="evil.example.net") == "origin"


async def test_registration_from_another_origin_is_refused_as_origin(live: Services) -> None:
    ceremony, options = await live.ceremonies.begin_registration(_pending("setup", "alice"))
    credential = SoftAuthenticator().create(options, "https://evil.example.net")
    with pytest.raises(PasskeyRejected) as caught:
        await live.ceremonies.finish_registration(ceremony, credential, "Laptop")
    assert caught.value.reason == "origin"


async def test_registration_with_another_rp_id_hash_is_refused_as_origin(live: Services) -> None:
    with pytest.raises(PasskeyRejected) as caught:
        await _enrol(live, SoftAuthenticator(), _pending("setup", "alice"), rp_id="evil.example")
    assert caught.value.reason == "origin"


# --- unknown credentials ----------------------------------------------------------------------


async def test_never_registered_credential_is_unknown(
    live: Services, alice: tuple[str, SoftAuthenticator]
) -> None:
    stranger = SoftAuthenticator()
    _, reg_options = await live.ceremonies.begin_registration(_pending("signup", "mallory"))
    stranger.create(reg_options, ORIGIN)  # made, but never finished
    assert await _refused_sign_in(live, stranger) == "unknown"


async def test_deleted_credential_is_unknown(
    live: Services, alice: tuple[str, SoftAuthenticator]
) -> None:
    user_id, auth = alice
    live.passkeys.delete(user_id, auth.credential().id)
    assert await _refused_sign_in(live, auth) == "unknown"


# --- cloned authenticators --------------------------------------------------------------------


async def test_sign_count_going_backwards_is_refused_as_cloned_with_a_warning(
    live: Services, alice: tuple[str, SoftAuthenticator], caplog: pytest.LogCaptureFixture
) -> None:
    _, auth = alice
    await _sign_in(live, auth, sign_count=5)
    with caplog.at_level(logging.INFO, logger="passgate.passkeys"):
        assert await _refused_sign_in(live, auth, sign_count=3) == "cloned"
    warnings = [
        r for r in caplog.records if r.name == "passgate.passkeys" and r.levelno == logging.WARNING
    ]
    assert len(warnings) == 1 and "cloned" in warnings[0].getMessage()
    assert live.passkeys.get(auth.credential().id).sign_count == 5


async def test_sign_count_repeated_is_refused_as_cloned(
    live: Services, alice: tuple[str, SoftAuthenticator]
) -> None:
    _, auth = alice
    await _sign_in(live, auth, sign_count=5)
    assert await _refused_sign_in(live, auth, sign_count=5) == "cloned"


# --- user verification ------------------------------------------------------------------------


async def test_registration_without_user_verification_is_not_verified(live: Services) -> None:
    with pytest.raises(PasskeyRejected) as caught:
        await _enrol(live, SoftAuthenticator(), _pending("setup", "alice"), user_verified=False)
    assert caught.value.reason == "not_verified"
    assert live.users.count_users() == 0


async def test_sign_in_without_user_verification_is_not_verified(
    live: Services, alice: tuple[str, SoftAuthenticator]
) -> None:
    _, auth = alice
    assert await _refused_sign_in(live, auth, user_verified=False) == "not_verified"
    assert live.passkeys.get(auth.credential().id).last_used_at is None


# --- accounts ---------------------------------------------------------------------------------


async def test_disabled_user_is_refused_as_disabled(
    live: Services, alice: tuple[str, SoftAuthenticator]
) -> None:
    _, auth = alice
    live.users.set_disabled("alice", True)
    assert await _refused_sign_in(live, auth) == "disabled"
    assert live.passkeys.get(auth.credential().id).last_used_at is None


async def test_user_handle_of_another_user_is_invalid(
    live: Services, alice: tuple[str, SoftAuthenticator]
) -> None:
    _, auth = alice
    bob_auth = SoftAuthenticator()
    await _enrol(live, bob_auth, _pending("signup", "bob"))
    bob_handle = bob_auth.credential().user_handle
    assert await _refused_sign_in(live, auth, user_handle=bob_handle) == "invalid"


async def test_user_handle_of_nobody_is_invalid(
    live: Services, alice: tuple[str, SoftAuthenticator]
) -> None:
    _, auth = alice
    assert await _refused_sign_in(live, auth, user_handle=secrets.token_bytes(32)) == "invalid"


# --- malformed answers ------------------------------------------------------------------------


def _drop(path: str) -> Callable[[dict[str, Any]], None]:
    def edit(credential: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = credential
        for key in parents:
            target = target[key]
        del target[last]

    return edit


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(credential: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = credential
        for key in parents:
            target = target[key]
        target[last] = value

    return edit


def _replace_all(credential: dict[str, Any]) -> None:
    credential.clear()
    credential["garbage"] = True


GARBAGE_ASSERTIONS = {
    "empty": _replace_all,
    "no id": _drop("id"),
    "no rawId": _drop("rawId"),
    "no response": _drop("response"),
    "response is a string": _set("response", "nope"),
    "no signature": _drop("response.signature"),
    "no authenticatorData": _drop("response.authenticatorData"),
    "no clientDataJSON": _drop("response.clientDataJSON"),
    "not base64 authenticatorData": _set("response.authenticatorData", "!!!***"),
    "short authenticatorData": _set("response.authenticatorData", b64url(b"short")),
    "clientDataJSON not JSON": _set("response.clientDataJSON", b64url(b"{not json")),
    "clientDataJSON without challenge": _set(
        "response.clientDataJSON", b64url(b'{"type":"webauthn.get"}')
    ),
    "forged signature": _set("response.signature", b64url(secrets.token_bytes(70))),
    "wrong type": _set("type", "password"),
    "id differs from rawId": _set("id", b64url(b"another id")),
    "id not a string": _set("id", 5),
    "userHandle not base64": _set("response.userHandle", "!!!***"),
    "clientDataJSON not UTF-8": _set("response.clientDataJSON", b64url(b"\xff\xfe")),
}


@pytest.mark.parametrize("edit", GARBAGE_ASSERTIONS.values(), ids=GARBAGE_ASSERTIONS.keys())
async def test_malformed_assertion_is_invalid(
    live: Services,
    alice: tuple[str, SoftAuthenticator],
    edit: Callable[[dict[str, Any]], None],
) -> None:
    _, auth = alice
    ceremony, options = await live.ceremonies.begin_authentication()
    assertion = copy.deepcopy(auth.get(options, ORIGIN))
    edit(assertion)
    with pytest.raises(PasskeyRejected) as caught:
        await live.ceremonies.finish_authentication(ceremony, assertion)
    assert caught.value.reason == "invalid"


GARBAGE_REGISTRATIONS = {
    "empty": _replace_all,
    "no id": _drop("id"),
    "no response": _drop("response"),
    "no attestationObject": _drop("response.attestationObject"),
    "no clientDataJSON": _drop("response.clientDataJSON"),
    "not base64 attestationObject": _set("response.attestationObject", "!!!***"),
    "attestationObject not CBOR": _set("response.attestationObject", b64url(b"\xff\x00garbage")),
    "clientDataJSON not JSON": _set("response.clientDataJSON", b64url(b"{not json")),
    "wrong type": _set("type", "password"),
    "id differs from rawId": _set("id", b64url(b"another id")),
    "id not a string": _set("id", 5),
    "attestationObject without authData": _set(
        "response.attestationObject", b64url(cbor2.dumps({"fmt": "none", "attStmt": {}}))
    ),
    "attestationObject with short authData": _set(
        "response.attestationObject",
        b64url(cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": b"x" * 40})),
    ),
    "clientDataJSON not UTF-8": _set("response.clientDataJSON", b64url(b"\xff\xfe")),
}


@pytest.mark.parametrize("edit", GARBAGE_REGISTRATIONS.values(), ids=GARBAGE_REGISTRATIONS.keys())
async def test_malformed_registration_is_invalid(
    live: Services, edit: Callable[[dict[str, Any]], None]
) -> None:
    ceremony, options = await live.ceremonies.begin_registration(_pending("setup", "alice"))
    credential = copy.deepcopy(SoftAuthenticator().create(options, ORIGIN))
    edit(credential)
    with pytest.raises(PasskeyRejected) as caught:
        await live.ceremonies.finish_registration(ceremony, credential, "Laptop")
    assert caught.value.reason == "invalid"
    assert live.users.count_users() == 0


# --- enrolment --------------------------------------------------------------------------------


async def test_registering_an_already_registered_credential_conflicts_and_writes_nothing(
    live: Services, alice: tuple[str, SoftAuthenticator]
) -> None:
    _, auth = alice
    token = live.signups.create(usage_limit=1).token
    users_before = live.users.count_users()
    with pytest.raises(Conflict):
        await _enrol(live, auth, _pending("signup", "bob", token), reuse=auth.credential().id)
    assert live.users.count_users() == users_before
    live.signups.check(token)  # the token was not used up by the failed signup


async def test_adding_an_already_registered_credential_to_another_user_conflicts(
    live: Services, alice: tuple[str, SoftAuthenticator]
) -> None:
    alice_id, auth = alice
    bob_id = live.users.create_user("bob").id
    pending = PendingRegistration("add", live.passkeys.user_handle(bob_id), "bob", user_id=bob_id)
    with pytest.raises(Conflict):
        await _enrol(live, auth, pending, reuse=auth.credential().id)
    assert live.passkeys.count_for_user(bob_id) == 0
    assert live.passkeys.get(auth.credential().id).user_id == alice_id


async def test_setup_after_a_user_exists_is_closed(
    live: Services, alice: tuple[str, SoftAuthenticator]
) -> None:
    with pytest.raises(SetupClosed):
        await _enrol(live, SoftAuthenticator(), _pending("setup", "mallory"))
    assert [u.username for u in live.users.list_users()] == ["alice"]


async def test_signup_token_is_single_use(
    live: Services, alice: tuple[str, SoftAuthenticator]
) -> None:
    token = live.signups.create(usage_limit=1).token
    bob_id = await _enrol(live, SoftAuthenticator(), _pending("signup", "bob", token))
    assert live.users.get_user(bob_id).groups == ()

    with pytest.raises(SignupRejected):
        await _enrol(live, SoftAuthenticator(), _pending("signup", "carol", token))
    assert sorted(u.username for u in live.users.list_users()) == ["alice", "bob"]
