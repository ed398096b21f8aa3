"""The audit log: who did what, when, from where, and whether it worked.

Every sign-in, sign-out, passkey change, token issued, consent and admin change is recorded here,
in the durable store. Only facts go in: never a secret, token, cookie or code.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from gateway.db import Database

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

    def __init__(self, db: Database) -> None:
        self._db = db

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
        from the actor); `reason` says why it failed. Raises StorageError."""
        entry = AuditEvent(
            id=str(uuid.uuid4()),
            at=time.time(),
            event=event,
            success=success,
            actor=actor,
            user_id=user_id,
            reason=reason,
            details=dict(details or {}),
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
