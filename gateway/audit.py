"""The audit log: who did what, when, from where, and whether it worked.

Every sign-in, sign-out, passkey change, token issued, consent and admin change is recorded here,
in the durable store. Only facts go in: never a secret, token, cookie or code.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from gateway.db import Database
from gateway.errors import StorageError
from gateway.geoip import GeoIP

log = logging.getLogger("passgate.audit")

ActorKind = Literal["user", "api_key", "cli", "system"]
DetailValue = str | int | float | bool | None


@dataclass(frozen=True, slots=True)
class Actor:
    """Who caused an event: a signed-in user, an API key, the command line or Passgate itself."""

    kind: ActorKind
    id: str = ""
    name: str = ""
    ip: str = ""
    user_agent: str = ""


CLI = Actor("cli", name="command line")
SYSTEM = Actor("system", name="passgate")


@dataclass(frozen=True, slots=True)
class AuditEvent:
    id: str
    at: float
    event: str
    success: bool
    actor: Actor
    user_id: str | None
    reason: str
    details: Mapping[str, DetailValue] = field(default_factory=dict)


class AuditLog:
    """Append-only record of security-relevant events."""

    def __init__(self, db: Database, geo: GeoIP | None = None) -> None:
        self._db = db
        self._geo = geo

    def record(
        self,
        event: str,
        *,
        actor: Actor = SYSTEM,
        user_id: str | None = None,
        success: bool = True,
        reason: str = "",
        details: Mapping[str, DetailValue] | None = None,
    ) -> AuditEvent:
        """Append one event. `user_id` is the account it concerns (the subject, which may differ
        from the actor); `reason` says why it failed. With a GeoIP file, `country` and `city`
        of the actor's IP are added to the details. Raises StorageError."""
        facts = dict(details or {})
        place = self._geo.lookup(actor.ip) if self._geo is not None else None
        if place is not None:
            facts.setdefault("country", place.country)
            facts.setdefault("city", place.city)
        entry = AuditEvent(
            id=str(uuid.uuid4()),
            at=time.time(),
            event=event,
            success=success,
            actor=actor,
            user_id=user_id,
            reason=reason,
            details=facts,
        )
        self._db.execute(
            "INSERT INTO audit_log (id, at, event, success, actor_kind, actor_id, actor_name, "
            "ip, user_agent, user_id, reason, details) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                entry.id,
                entry.at,
                event,
                int(success),
                actor.kind,
                actor.id,
                actor.name,
                actor.ip,
                actor.user_agent[:512],
                user_id,
                reason,
                json.dumps(entry.details, sort_keys=True),
            ),
        )
        return entry

    def record_or_log(
        self,
        event: str,
        *,
        actor: Actor = SYSTEM,
        user_id: str | None = None,
        success: bool = True,
        reason: str = "",
        details: Mapping[str, DetailValue] | None = None,
    ) -> AuditEvent | None:
        """`record` for events whose action is already decided (a sign-in, a refusal, a token).

        A denial stays a denial whatever happens here (the caller re-raises it), and a success
        goes ahead: failing it because the log could not be written would only add an outage.
        So a failed write is logged at ERROR with the event's facts, and None is returned.
        """
        try:
            return self.record(
                event, actor=actor, user_id=user_id, success=success, reason=reason, details=details
            )
        except StorageError as exc:
            log.error(
                "audit event %s (user %s, success=%s, reason=%r) not recorded: %s",
                event,
                user_id,
                success,
                reason,
                exc,
            )
            return None
