"""What happens to codes and tokens after the first exchange: a refresh brings a new ID token
(OIDC Core 12.2), a failed code redemption burns the code, and disabling a user revokes every
token apps hold for them (marked in the table, audited, inactive at introspection)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from authlib.common.security import generate_token

from gateway.accounts.users import User
from gateway.audit.log import CLI
from tests.oidc.in_process import OTHER_CALLBACK, Flow, Op, assert_token_error


def signed_in_flow(op: Op, user: User, **settings: Any) -> Flow:
    rp = op.client(refresh_tokens=True, **settings)
    op.sign_in(user)
    op.consent(user, rp)
    return op.flow(rp)


def refresh(op: Op, flow: Flow, token: str) -> dict[str, Any]:
    data = {"grant_type": "refresh_token", "refresh_token": token}
    response = op.token_request(flow.rp, data)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


# --- refresh: a new ID token ----------------------------------------------------------------


def test_a_refresh_returns_a_new_id_token_for_the_same_sign_in(op: Op, alice: User) -> None:
    flow = signed_in_flow(op, alice)
    first = op.tokens(flow)
    time.sleep(1.1)  # iat is in whole seconds
    renewed = refresh(op, flow, first["refresh_token"])
    before, after = op.id_token_claims(first["id_token"]), op.id_token_claims(renewed["id_token"])
    for claim in ("iss", "sub", "aud", "auth_time"):
        assert after[claim] == before[claim], claim
    assert after["iat"] > before["iat"]
    assert "nonce" in before and "nonce" not in after
    assert after["preferred_username"] == "alice"


def test_the_refreshed_id_token_hashes_the_new_access_token(op: Op, alice: User) -> None:
    flow = signed_in_flow(op, alice)
    renewed = refresh(op, flow, op.tokens(flow)["refresh_token"])
    claims = op.id_token_claims(renewed["id_token"])
    assert claims["at_hash"]
    assert op.userinfo(renewed["access_token"]).json()["sub"] == claims["sub"]


def test_a_user_taken_out_of_the_clients_groups_cannot_refresh(op: Op, alice: User) -> None:
    """allowed_groups holds for as long as the grant lasts, not only at sign-in: a refresh
    token does not outlive the user's membership."""
    flow = signed_in_flow(op, alice, allowed_groups=["family"])
    first = op.tokens(flow)
    op.services.users.update_user("alice", groups=())
    response = op.token_request(
        flow.rp, {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    )
    assert_token_error(response, "invalid_grant")
    assert "groups" in response.json()["error_description"]


# --- a failed redemption burns the code -----------------------------------------------------


def test_a_wrong_pkce_verifier_burns_the_code(op: Op, alice: User) -> None:
    flow = signed_in_flow(op, alice)
    code = op.code(flow)
    assert_token_error(op.exchange(flow, code, verifier=generate_token(48)), "invalid_grant")
    assert_token_error(op.exchange(flow, code), "invalid_grant")
    assert not op.services.db.fetchall("SELECT id FROM oauth_tokens")


def test_a_wrong_redirect_uri_burns_the_code(op: Op, alice: User) -> None:
    flow = signed_in_flow(op, alice, redirect_uris=["https://memos.example.com/cb", OTHER_CALLBACK])
    code = op.code(flow)
    assert_token_error(op.exchange(flow, code, redirect_uri=OTHER_CALLBACK), "invalid_grant")
    assert_token_error(op.exchange(flow, code), "invalid_grant")


def test_a_burnt_code_is_audited(op: Op, alice: User) -> None:
    flow = signed_in_flow(op, alice)
    op.exchange(flow, op.code(flow), verifier=generate_token(48))
    events = op.services.audit.search(event="authorization_code_burned").events
    assert len(events) == 1 and events[0].success is False
    assert events[0].details == {"client_id": flow.rp.client_id, "error": "invalid_grant"}
    assert events[0].user_id == alice.id


# --- disabling a user revokes their tokens --------------------------------------------------


def disable(op: Op, user: User) -> None:
    asyncio.run(op.services.admin.set_disabled(CLI, user.username, True))


def test_disabling_a_user_marks_their_tokens_revoked(op: Op, alice: User) -> None:
    flow = signed_in_flow(op, alice)
    tokens = op.tokens(flow)
    other = signed_in_flow(op, alice)
    op.tokens(other)
    disable(op, alice)
    rows = op.services.db.fetchall(
        "SELECT revoked_at FROM oauth_tokens WHERE user_id = ?", (alice.id,)
    )
    assert len(rows) == 2 and all(row[0] is not None for row in rows)
    assert op.introspect(flow.rp, tokens["access_token"]) == {"active": False}
    assert op.introspect(flow.rp, tokens["refresh_token"]) == {"active": False}


def test_revoking_a_disabled_users_tokens_is_audited_with_the_cause(op: Op, alice: User) -> None:
    flow = signed_in_flow(op, alice)
    op.tokens(flow)
    disable(op, alice)
    event = op.services.audit.search(event="token_revoked", user_id=alice.id).events[0]
    assert event.details["cause"] == "user disabled" and event.details["count"] == 1


def test_enabling_the_user_again_does_not_revive_their_tokens(op: Op, alice: User) -> None:
    flow = signed_in_flow(op, alice)
    tokens = op.tokens(flow)
    disable(op, alice)
    asyncio.run(op.services.admin.set_disabled(CLI, alice.username, False))
    assert op.introspect(flow.rp, tokens["access_token"]) == {"active": False}
    data = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    assert_token_error(op.token_request(flow.rp, data), "invalid_grant")
