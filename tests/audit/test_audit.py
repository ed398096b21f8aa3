"""The audit log's storage contract, on both durable stores."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from gateway.audit.log import CLI, MAX_PAGE, Actor, AuditEvent
from gateway.core.errors import InvalidInput
from gateway.services import Services, build_services


def test_recorded_event_is_stored_with_actor_subject_and_details(services: Services) -> None:
    actor = Actor("user", id="u1", name="alice", ip="192.0.2.1", user_agent="Firefox")
    entry = services.audit.record(
        "sign_in",
        actor=actor,
        user_id="u1",
        success=False,
        reason="unknown passkey",
        details={"method": "passkey"},
    )
    row = services.db.fetchone(
        "SELECT event, success, actor_kind, actor_name, ip, user_id, reason, details "
        "FROM audit_log WHERE id = ?",
        (entry.id,),
    )
    assert row == (
        "sign_in",
        0,
        "user",
        "alice",
        "192.0.2.1",
        "u1",
        "unknown passkey",
        '{"method": "passkey"}',
    )


def test_cli_actor_is_named(services: Services) -> None:
    entry = services.audit.record("user_created", actor=CLI)
    assert entry.actor.kind == "cli" and entry.success


def _record(services: Services, event: str, at: float, **kwargs: Any) -> AuditEvent:
    entry = services.audit.record(event, **kwargs)
    services.db.execute("UPDATE audit_log SET at = ? WHERE id = ?", (at, entry.id))
    return entry


def _insert(services: Services, event: str, at: float) -> str:
    """A stored event written directly, so no automatic prune runs."""
    event_id = f"{event}-{at}"
    services.db.execute(
        "INSERT INTO audit_log (id, at, event, success, actor_kind) VALUES (?, ?, ?, 1, ?)",
        (event_id, at, event, "system"),
    )
    return event_id


def test_search_returns_newest_first_and_pages_with_a_cursor(services: Services) -> None:
    for n in range(5):
        _record(services, f"e{n}", 1000.0 + n)
    first = services.audit.search(limit=2)
    assert [e.event for e in first.events] == ["e4", "e3"]
    second = services.audit.search(limit=2, before=first.next)
    third = services.audit.search(limit=2, before=second.next)
    assert [e.event for e in second.events + third.events] == ["e2", "e1", "e0"]
    assert third.next is None


def test_cursor_separates_events_recorded_at_the_same_moment(services: Services) -> None:
    for n in range(3):
        _record(services, f"same{n}", 5000.0)
    seen = []
    page = services.audit.search(limit=1)
    while True:
        seen.extend(e.id for e in page.events)
        if page.next is None:
            break
        page = services.audit.search(limit=1, before=page.next)
    assert len(seen) == len(set(seen)) == 3


def test_search_filters_by_user_event_actor_time_and_outcome(services: Services) -> None:
    alice = Actor("user", id="u1", name="alice")
    _record(services, "sign_in", 100.0, actor=alice, user_id="u1")
    _record(services, "sign_in", 200.0, actor=alice, user_id="u1", success=False, reason="x")
    _record(services, "sign_in", 300.0, user_id="u2")
    _record(services, "user_created", 400.0, actor=CLI, user_id="u2")
    search = services.audit.search
    assert len(search(user_id="u1").events) == 2
    assert len(search(event="sign_in").events) == 3
    assert len(search(actor="alice").events) == 2 and len(search(actor="u1").events) == 2
    assert [e.at for e in search(since=200.0, until=400.0).events] == [300.0, 200.0]
    assert [e.reason for e in search(success=False).events] == ["x"]


def test_bad_limit_or_cursor_is_invalid_input(services: Services) -> None:
    with pytest.raises(InvalidInput):
        services.audit.search(limit=0)
    with pytest.raises(InvalidInput):
        services.audit.search(before="not-a-cursor")


def test_export_writes_one_json_line_per_event_across_pages(services: Services) -> None:
    for n in range(MAX_PAGE + 2):
        _insert(services, "bulk", float(n))
    lines = list(services.audit.export_jsonl(event="bulk"))
    assert len(lines) == MAX_PAGE + 2 and all(line.endswith("\n") for line in lines)
    first = json.loads(lines[0])
    assert first["event"] == "bulk" and first["at"] == float(MAX_PAGE + 1)
    assert first["time"].endswith("+00:00") and first["actor"]["kind"] == "system"


def test_prune_deletes_only_older_events(services: Services) -> None:
    _record(services, "old", 100.0)
    _record(services, "new", 300.0)
    assert services.audit.prune(older_than=200.0) == 1
    assert [e.event for e in services.audit.search().events] == ["new"]


def test_retention_is_applied_when_recording_after_an_hour(services: Services) -> None:
    _insert(services, "ancient", time.time() - 91 * 86400)
    services.audit.record("fresh")  # the first record in a process prunes
    assert [e.event for e in services.audit.search().events] == ["fresh"]
    _insert(services, "ancient again", time.time() - 91 * 86400)
    services.audit.record("fresher")  # within the hour: no second prune
    assert len(services.audit.search().events) == 3


def test_retention_days_come_from_the_setting(make_settings: Any) -> None:
    built = build_services(make_settings(audit_log_retention_days=7))
    try:
        _insert(built, "eight days old", time.time() - 8 * 86400)
        _insert(built, "six days old", time.time() - 6 * 86400)
        assert built.audit.prune_expired() == 1
    finally:
        asyncio.run(built.close())


def test_app_start_up_prunes_the_log(make_settings: Any) -> None:
    from starlette.testclient import TestClient

    from gateway.web.app import create_app

    built = build_services(make_settings())
    _insert(built, "ancient", time.time() - 365 * 86400)
    with TestClient(create_app(built)):
        assert built.audit.search().events == []
