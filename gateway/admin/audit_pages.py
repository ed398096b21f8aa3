"""Console page for the audit log: filter by user, event and time, newest first with paging,
and the same selection downloaded as JSON lines."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from gateway.admin.console import REFUSALS, Admin, admin_only, console, status_for
from gateway.core.errors import InvalidInput
from gateway.web.helpers import services_of

SECTION = "/admin/audit"
PAGE_SIZE = 50
FIELDS = ("user", "event", "since", "until")


def _time(text: str, label: str) -> float:
    """A `datetime-local` value (or a date), read as UTC. InvalidInput otherwise."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(f"{label} must be a date and time such as 2026-01-31T18:00") from None
    return moment.replace(tzinfo=moment.tzinfo or UTC).timestamp()


def audit_filters(query: dict[str, str]) -> dict[str, Any]:
    """The console's filter fields as the service layer takes them. InvalidInput."""
    filters: dict[str, Any] = {}
    if query["user"].strip():
        filters["user"] = query["user"].strip()
    if query["event"].strip():
        filters["event"] = query["event"].strip()
    if query["since"].strip():
        filters["since"] = _time(query["since"], "From")
    if query["until"].strip():
        filters["until"] = _time(query["until"], "Until")
    return filters


def _query(request: Request) -> dict[str, str]:
    return {name: request.query_params.get(name, "")[:200] for name in FIELDS}


@admin_only
async def audit(request: Request, admin: Admin) -> Response:
    service = services_of(request).admin
    query = _query(request)
    before = request.query_params.get("before") or None
    try:
        found = await service.search_audit(limit=PAGE_SIZE, before=before, **audit_filters(query))
    except REFUSALS as exc:
        return console(
            request, "admin_audit.html", SECTION, status_for(exc), query=query, events=[],
            error=str(exc), names={}, older="", download="", first_page="",
        )  # fmt: skip
    names = {u.id: u.username for u in await service.list_users()}
    kept = {k: v for k, v in query.items() if v}
    older = f"{SECTION}?{urlencode({**kept, 'before': found.next})}" if found.next else ""
    return console(
        request,
        "admin_audit.html",
        SECTION,
        query=query,
        events=found.events,
        names=names,
        older=older,
        first_page=f"{SECTION}?{urlencode(kept)}" if before else "",
        download=f"{SECTION}/export.jsonl?{urlencode(kept)}",
    )


@admin_only
async def export(request: Request, admin: Admin) -> Response:
    """Every matching event, newest first, one JSON object a line (streamed a page at a time)."""
    query = _query(request)
    try:
        filters = audit_filters(query)
    except InvalidInput as exc:
        return Response(str(exc) + "\n", 400, media_type="text/plain")
    lines = services_of(request).admin.export_audit(**filters)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return StreamingResponse(
        lines,  # a plain iterator: Starlette pulls it in a worker thread
        media_type="application/x-ndjson",
        headers={"content-disposition": f'attachment; filename="passgate-audit-{stamp}.jsonl"'},
    )


routes = [
    Route(SECTION, audit, methods=["GET"]),
    Route(SECTION + "/export.jsonl", export, methods=["GET"]),
]
