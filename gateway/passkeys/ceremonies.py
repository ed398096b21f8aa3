"""WebAuthn registration and authentication ceremonies, done by py_webauthn.

RP ID is COOKIE_DOMAIN (or APP_URL's host), origin is APP_URL; resident keys and user
verification are required. Each ceremony's challenge is stored server-side under a random id
that only the browser's cookie knows, expires in five minutes and is taken (deleted) on first use.
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import asdict, dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    base64url_to_bytes,
    bytes_to_base64url,
    parse_authentication_credential_json,
    parse_registration_credential_json,
)
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    CredentialDeviceType,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from gateway.accounts.users import UserService
from gateway.core import metrics
from gateway.core.errors import PassgateError
from gateway.core.settings import Settings
from gateway.passkeys.credentials import NewPasskey, Passkey, PasskeyService
from gateway.sessions.ephemeral import Ephemeral

log = logging.getLogger("passgate.passkeys")

CHALLENGE_TTL = 300.0
TIMEOUT_MS = 120_000

MESSAGES = {
    "expired": "This sign-in attempt expired or was already used. Please try again.",
    "unknown": "This passkey is not registered here. It may have been deleted; "
    "sign in with another passkey or a login code.",
    "origin": "This passkey answer was made for another site and cannot be used here.",
    "disabled": "This account is disabled. Ask your administrator.",
    "cloned": "This passkey reported an impossible use count and was refused; it may have "
    "been copied. Ask your administrator.",
    "invalid": "The passkey answer could not be verified. Please try again.",
    "not_verified": "Your device did not verify you (PIN, fingerprint or face). Please try again.",
    "duplicate": "This passkey is already registered.",
}


# The same failures as the audit log states them, for operators rather than users.
AUDIT_REASONS = {
    "expired": "expired or replayed ceremony",
    "unknown": "unknown passkey",
    "origin": "wrong origin or RP ID",
    "disabled": "disabled account",
    "cloned": "sign-count regression",
    "invalid": "invalid passkey answer",
    "not_verified": "user not verified",
    "duplicate": "passkey already registered",
}


class PasskeyRejected(PassgateError):
    """A ceremony failed; `reason` is a stable code, the message is for people. What is known
    about the attempt rides along for the audit log: the ceremony's flow, the user and the
    passkey's id (never its key or the answer)."""

    def __init__(
        self, reason: str, *, flow: str = "", user_id: str | None = None, credential_id: str = ""
    ) -> None:
        super().__init__(MESSAGES[reason])
        self.reason = reason
        self.flow = flow
        self.user_id = user_id
        self.credential_id = credential_id


@dataclass(frozen=True, slots=True)
class PendingRegistration:
    """Who a registration is for. `user_id` is None while the account does not exist yet
    (first-run setup, signup): it is created only when the passkey verifies."""

    flow: str  # "setup" | "signup" | "add"
    handle: str
    username: str
    email: str = ""
    display_name: str = ""
    user_id: str | None = None
    signup_token: str | None = None


def _reason(exc: WebAuthnException) -> str:
    text = str(exc).lower()
    if "origin" in text or "rp id" in text:
        return "origin"
    if "challenge" in text:
        return "expired"
    if "sign count" in text:
        return "cloned"
    if "user verification" in text or "user was not verified" in text:
        return "not_verified"
    return "invalid"


class Ceremonies:
    def __init__(
        self, settings: Settings, store: Ephemeral, passkeys: PasskeyService, users: UserService
    ) -> None:
        self._settings = settings
        self._store = store
        self._passkeys = passkeys
        self._users = users

    async def begin_registration(self, pending: PendingRegistration) -> tuple[str, str]:
        """Return (ceremony id for the browser's cookie, options JSON for the page)."""
        exclude: list[PublicKeyCredentialDescriptor] = []
        if pending.user_id is not None:
            existing = await run_in_threadpool(self._passkeys.list_for_user, pending.user_id)
            exclude = [
                PublicKeyCredentialDescriptor(id=base64url_to_bytes(p.credential_id))
                for p in existing
            ]
        options = generate_registration_options(
            rp_id=self._settings.rp_id,
            rp_name=self._settings.app_name,
            user_name=pending.username,
            user_id=base64url_to_bytes(pending.handle),
            user_display_name=pending.display_name or pending.username,
            timeout=TIMEOUT_MS,
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.REQUIRED,
                require_resident_key=True,
                user_verification=UserVerificationRequirement.REQUIRED,
            ),
            exclude_credentials=exclude,
        )
        ceremony = secrets.token_urlsafe(32)
        state = {"challenge": bytes_to_base64url(options.challenge), "pending": asdict(pending)}
        await self._store.put("reg:" + ceremony, json.dumps(state), CHALLENGE_TTL)
        return ceremony, options_to_json(options)

    async def finish_registration(
        self, ceremony: str | None, credential: dict[str, Any], name: str
    ) -> tuple[PendingRegistration, NewPasskey]:
        """Verify the browser's answer; return who it is for and the passkey to store."""
        raw = await self._store.take("reg:" + ceremony) if ceremony else None
        if raw is None:
            raise PasskeyRejected("expired")
        state = json.loads(raw)
        pending = PendingRegistration(**state["pending"])
        try:
            parsed = parse_registration_credential_json(json.dumps(credential))
            verified = verify_registration_response(
                credential=parsed,
                expected_challenge=base64url_to_bytes(state["challenge"]),
                expected_rp_id=self._settings.rp_id,
                expected_origin=self._settings.origin,
                require_user_verification=True,
            )
        except WebAuthnException as exc:
            log.warning("passkey registration refused for %s: %s", pending.username, exc)
            raise PasskeyRejected(
                _reason(exc), flow=pending.flow, user_id=pending.user_id
            ) from None
        transports = tuple(t.value for t in parsed.response.transports or ())
        passkey = NewPasskey(
            credential_id=bytes_to_base64url(verified.credential_id),
            user_id=pending.user_id or "",
            public_key=bytes_to_base64url(verified.credential_public_key),
            sign_count=verified.sign_count,
            transports=transports,
            aaguid=verified.aaguid,
            backup_eligible=verified.credential_device_type == CredentialDeviceType.MULTI_DEVICE,
            backed_up=verified.credential_backed_up,
            name=name,
        )
        return pending, passkey

    async def begin_authentication(self) -> tuple[str, str]:
        """Options for a usernameless sign-in (discoverable credentials, no allow list)."""
        options = generate_authentication_options(
            rp_id=self._settings.rp_id,
            timeout=TIMEOUT_MS,
            user_verification=UserVerificationRequirement.REQUIRED,
        )
        ceremony = secrets.token_urlsafe(32)
        state = {"challenge": bytes_to_base64url(options.challenge)}
        await self._store.put("auth:" + ceremony, json.dumps(state), CHALLENGE_TTL)
        return ceremony, options_to_json(options)

    async def cancel_authentication(self, ceremony: str | None) -> bool:
        """End a sign-in the browser gave up on; False if there was no such ceremony."""
        return ceremony is not None and await self._store.take("auth:" + ceremony) is not None

    async def finish_authentication(
        self, ceremony: str | None, credential: dict[str, Any]
    ) -> Passkey:
        """Verify a sign-in; return the passkey used (its `user_id` is who signed in).
        Raises PasskeyRejected with the reason."""
        try:
            return await self._verify_authentication(ceremony, credential)
        except PasskeyRejected:
            metrics.login("passkey", success=False)
            raise

    async def _verify_authentication(
        self, ceremony: str | None, credential: dict[str, Any]
    ) -> Passkey:
        raw = await self._store.take("auth:" + ceremony) if ceremony else None
        if raw is None:
            raise PasskeyRejected("expired")
        challenge = base64url_to_bytes(json.loads(raw)["challenge"])
        try:
            parsed = parse_authentication_credential_json(json.dumps(credential))
        except WebAuthnException:
            raise PasskeyRejected("invalid") from None
        credential_id = bytes_to_base64url(parsed.raw_id)
        passkey = await run_in_threadpool(self._passkeys.find, credential_id)
        if passkey is None:
            log.info("sign-in with an unknown passkey %s…", credential_id[:12])
            raise PasskeyRejected("unknown", credential_id=credential_id)
        handle = parsed.response.user_handle
        if handle is not None:
            owner = await run_in_threadpool(
                self._passkeys.user_for_handle, bytes_to_base64url(handle)
            )
            if owner != passkey.user_id:
                log.warning("passkey %s… answered with another user's handle", credential_id[:12])
                raise PasskeyRejected(
                    "invalid", user_id=passkey.user_id, credential_id=credential_id
                )
        try:
            verified = verify_authentication_response(
                credential=parsed,
                expected_challenge=challenge,
                expected_rp_id=self._settings.rp_id,
                expected_origin=self._settings.origin,
                credential_public_key=base64url_to_bytes(passkey.public_key),
                credential_current_sign_count=passkey.sign_count,
                require_user_verification=True,
            )
        except WebAuthnException as exc:
            reason = _reason(exc)
            level = logging.WARNING if reason in ("cloned", "origin") else logging.INFO
            log.log(
                level, "passkey sign-in refused (%s) for user %s: %s", reason, passkey.user_id, exc
            )
            raise PasskeyRejected(
                reason, user_id=passkey.user_id, credential_id=credential_id
            ) from None
        user = await run_in_threadpool(self._users.find_user, passkey.user_id)
        if user is None or user.disabled:
            raise PasskeyRejected("disabled", user_id=passkey.user_id, credential_id=credential_id)
        await run_in_threadpool(
            self._passkeys.record_use,
            credential_id,
            verified.new_sign_count,
            verified.credential_backed_up,
        )
        return passkey
