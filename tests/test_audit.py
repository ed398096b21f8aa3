"""The audit log's storage contract, on both durable stores."""

from __future__ import annotations

from gateway.audit import CLI, Actor
from gateway.services import Services


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
