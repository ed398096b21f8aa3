"""The audit log: who did what, when, from where, and whether it worked.

Every sign-in, sign-out, passkey change, token issued, consent and admin change is recorded here,
in the durable store. Only facts go in: never a secret, token, cookie or code.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TypedDict, Unpack

from gateway.audit.geoip import GeoIP
from gateway.core.errors import InvalidInput, StorageError
from gateway.storage.db import Database, Transaction

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

    def to_dict(self) -> dict[str, Any]:
        """The event as plain JSON data, with `time` in ISO 8601 UTC beside `at`."""
        data = dataclasses.asdict(self)
        data["details"] = dict(self.details)
        data["time"] = datetime.fromtimestamp(self.at, UTC).isoformat(timespec="seconds")
        return data


class AuditFilters(TypedDict, total=False):
    """What `search` and `export_jsonl` filter on; every given filter must match."""

    user_id: str  # the account an event concerns
    event: str
    actor: str  # an actor's id or name
    since: float  # Unix time, inclusive
    until: float  # Unix time, exclusive
    success: bool


@dataclass(frozen=True, slots=True)
class AuditPage:
    """One page of events, newest first; `next` is the cursor for the following page."""

    events: list[AuditEvent]
    next: str | None


MAX_PAGE = 1000
PRUNE_EVERY = 3600.0  # seconds between automatic retention runs in one process
_CONDITIONS = {  # AuditFilters key -> SQL condition; every ? takes the filter's value
    "user_id": "user_id = ?",
    "event": "event = ?",
    "actor": "(actor_id = ? OR actor_name = ?)",
    "since": "at >= ?",
    "until": "at < ?",
    "success": "success = ?",
}
_SELECT = (
    "SELECT id, at, event, success, actor_kind, actor_id, actor_name, ip, user_agent, user_id, "
    "reason, details FROM audit_log"
)


def _event(row: tuple[Any, ...]) -> AuditEvent:
    return AuditEvent(
        id=str(row[0]),
        at=float(row[1]),
        event=str(row[2]),
        success=bool(row[3]),
        actor=Actor(row[4], str(row[5]), str(row[6]), str(row[7]), str(row[8])),
        user_id=None if row[9] is None else str(row[9]),
        reason=str(row[10]),
        details=json.loads(row[11]),
    )


def _cursor(event: AuditEvent) -> str:
    return f"{event.at!r}_{event.id}"


def _parse_cursor(cursor: str) -> tuple[float, str]:
    at, _, event_id = cursor.partition("_")
    try:
        value = float(at)
    except ValueError:
        raise InvalidInput("before is not a cursor from a previous page") from None
    if not event_id or value != value:  # NaN never orders
        raise InvalidInput("before is not a cursor from a previous page")
    return value, event_id


class AuditLog:
    """Append-only record of security-relevant events, kept for `retention_days`."""

    def __init__(self, db: Database, geo: GeoIP | None = None, retention_days: int = 90) -> None:
        self._db = db
        self._geo = geo
        self.retention_days = retention_days
        self._next_prune = 0.0

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
        with self._db.transaction() as tx:
            self.insert(tx, entry)
        self._prune_if_due()
        return entry

    @staticmethod
    def insert(tx: Transaction, entry: AuditEvent) -> None:
        """Write one event inside the caller's transaction (an import and its history)."""
        tx.execute(
            "INSERT INTO audit_log (id, at, event, success, actor_kind, actor_id, actor_name, "
            "ip, user_agent, user_id, reason, details) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                entry.id,
                entry.at,
                entry.event,
                int(entry.success),
                entry.actor.kind,
                entry.actor.id,
                entry.actor.name,
                entry.actor.ip,
                entry.actor.user_agent[:512],
                entry.user_id,
                entry.reason,
                json.dumps(dict(entry.details), sort_keys=True),
            ),
        )

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

    def search(
        self, *, limit: int = 50, before: str | None = None, **filters: Unpack[AuditFilters]
    ) -> AuditPage:
        """Matching events newest first, at most `limit` (1-1000); `before` is the `next`
        cursor of the previous page. InvalidInput for a bad limit or cursor."""
        if isinstance(limit, bool) or not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}")
        where, params = self._where(filters)
        if before is not None:
            at, event_id = _parse_cursor(before)
            where.append("(at < ? OR (at = ? AND id < ?))")
            params.extend((at, at, event_id))
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = self._db.fetchall(
            f"{_SELECT}{clause} ORDER BY at DESC, id DESC LIMIT ?", (*params, limit + 1)
        )
        events = [_event(row) for row in rows[:limit]]
        return AuditPage(events, _cursor(events[-1]) if len(rows) > limit else None)

    def export_jsonl(self, **filters: Unpack[AuditFilters]) -> Iterator[str]:
        """Every matching event as one JSON line (newline included), newest first, read a page
        at a time so the export never holds the whole log in memory."""
        before: str | None = None
        while True:
            page = self.search(limit=MAX_PAGE, before=before, **filters)
            for event in page.events:
                yield json.dumps(event.to_dict(), sort_keys=True) + "\n"
            if page.next is None:
                return
            before = page.next

    def prune(self, older_than: float) -> int:
        """Delete events recorded before the Unix time `older_than`; return how many."""
        return self._db.execute("DELETE FROM audit_log WHERE at < ?", (older_than,))

    def prune_expired(self) -> int:
        """Apply AUDIT_LOG_RETENTION_DAYS now; return how many events were deleted."""
        self._next_prune = time.monotonic() + PRUNE_EVERY
        return self.prune(time.time() - self.retention_days * 86400)

    def _prune_if_due(self) -> None:
        if time.monotonic() >= self._next_prune:
            self.prune_expired()

    @staticmethod
    def _where(filters: AuditFilters) -> tuple[list[str], list[Any]]:
        where: list[str] = []
        params: list[Any] = []
        for name, condition in _CONDITIONS.items():
            value = filters.get(name)
            if value is not None:
                where.append(condition)
                params.extend(
                    [int(value) if isinstance(value, bool) else value] * condition.count("?")
                )
        return where, params
