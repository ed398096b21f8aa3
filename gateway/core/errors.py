"""Passgate's error types. HTTP mapping lives in one place: `gateway.web.app`'s exception
handlers."""

from __future__ import annotations


class PassgateError(Exception):
    """Base of every error Passgate raises on purpose."""


class SettingsInvalid(PassgateError):
    """A setting has a value Passgate cannot run with; the message names the setting."""


class StorageError(PassgateError):
    """The durable store failed or holds data we cannot read."""


class SessionStoreUnavailable(PassgateError):
    """The session store (Redis or the database) cannot be reached: forward-auth fails closed."""


class NotFound(PassgateError):
    """A named user, group or other record does not exist."""


class Conflict(PassgateError):
    """A record with that name already exists."""


class InvalidInput(PassgateError):
    """A value given to the service layer is not acceptable; the message says why and `field`,
    when known, names the input (so an API can point at it)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class LoginCodeRejected(PassgateError):
    """A one-time access code is unknown, used or expired. The message deliberately does not
    say which; `reason` does, for the audit log only, with `user_id` when the code had one."""

    def __init__(self, message: str, reason: str = "", user_id: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason or message
        self.user_id = user_id


class DecryptionFailed(PassgateError):
    """A secret at rest could not be decrypted: wrong ENCRYPTION_KEY or tampered data."""


class ArchiveUnreadable(PassgateError):
    """A backup archive is not one, is damaged, or was changed after it was made."""


class WrongPassphrase(ArchiveUnreadable):
    """The passphrase does not open this backup archive."""


class ImportRefused(PassgateError):
    """A backup cannot go into this database as it stands; the message says why and what to do."""


class Unauthenticated(PassgateError):
    """No usable credentials: no API key or admin session, or a wrong, expired or revoked key.
    `challenge` is the WWW-Authenticate value to answer with."""

    def __init__(self, message: str, challenge: str = 'Bearer realm="passgate"') -> None:
        super().__init__(message)
        self.challenge = challenge


class Forbidden(PassgateError):
    """Known caller, not allowed: not an admin, or a read-only key asked to change something."""

    def __init__(self, message: str, code: str = "forbidden") -> None:
        super().__init__(message)
        self.code = code


class RequestInvalid(InvalidInput):
    """A request body or query failed validation; `fields` maps each bad field to why."""

    def __init__(self, message: str, fields: dict[str, str], unparseable: bool = False) -> None:
        super().__init__(message)
        self.fields = fields
        self.unparseable = unparseable  # not JSON at all: 400 rather than 422


class BodyTooLarge(PassgateError):
    """A request body is longer than Passgate reads (`limit` bytes): said by Content-Length or
    found while reading, before the rest is read."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is over the limit of {limit // 1024} KiB")
        self.limit = limit
