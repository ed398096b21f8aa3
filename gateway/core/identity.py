"""Who a request belongs to, as the forward-auth hot path sees it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Identity:
    """The signed-in user behind a session: all forward-auth needs to answer."""

    user_id: str
    username: str
    email: str
    display_name: str
    groups: tuple[str, ...]
