"""Audit events a real browser causes that in-process tests cannot: the passkey prompt cancelled
in Chromium (the page reports it, Passgate records it). Real Passgate, Caddy, Redis, Chromium."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from tests.browser import Gate


def _audit(running: Gate, event: str) -> list[dict[str, Any]]:
    path = Path(running.passgate.env["DATA_DIR"]) / "passgate.db"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT success, reason, user_agent, details FROM audit_log WHERE event = ? "
            "ORDER BY at",
            (event,),
        ).fetchall()
    return [
        {"success": bool(r[0]), "reason": r[1], "user_agent": r[2], "details": json.loads(r[3])}
        for r in rows
    ]


def test_cancelled_passkey_prompt_in_the_browser_is_recorded(gate: Gate) -> None:
    alice = gate.person(autofill=False)
    alice.set_up_account("alice", "Alice")
    alice.sign_out()
    # An authenticator with no passkey for this site: Chromium rejects the prompt with
    # NotAllowedError, exactly as when a person cancels it.
    alice.cdp.send("WebAuthn.clearCredentials", {"authenticatorId": alice.authenticator})
    alice.page.click("#passkey-button")
    alice.page.locator("#passkey-error").wait_for(state="visible")
    deadline = time.monotonic() + 10
    while not _audit(gate, "sign_in")[-1]["reason"] and time.monotonic() < deadline:
        time.sleep(0.1)
    cancelled = _audit(gate, "sign_in")[-1]
    assert cancelled["success"] is False and cancelled["reason"] == "cancelled"
    assert cancelled["details"] == {"method": "passkey"}
    assert "Chrome" in cancelled["user_agent"]
