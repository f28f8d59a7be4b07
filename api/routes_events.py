"""``GET /api/events``: the caller's tenant's event log over REST, for what polls instead of
holding a socket (the same events, seqs and rooms a recovering socket is replayed)."""

from __future__ import annotations

from typing import Any

from quart import Blueprint, current_app, request

from api.context import runtime_of
from api.guard import claims, error, require_auth
from desk.contract import iso, tenant_room, user_room
from desk.permissions import sees_everything, supervisors_room

blueprint = Blueprint("events", __name__)

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def _whole(name: str, default: int, low: int, high: int) -> int | None:
    raw = request.args.get(name)
    if raw is None:
        return default
    # ASCII only: str.isdigit() also takes "²" (which int() refuses) and fullwidth digits.
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        return None
    value = int(raw)
    return value if low <= value <= high else None


@blueprint.get("/api/events")
@require_auth
async def events() -> Any:
    """``{events: [{seq, event, data, createdAt}], next, hasMore}``: the tenant's logged events
    after seq ``after`` (default 0), oldest first, at most ``limit`` (1..1000, default 100),
    only those for rooms the caller is in (by role). ``next`` is the ``after`` of the next
    page (the last seq read; the same ``after`` when nothing was new). 400 on a bad
    ``after`` or ``limit``."""
    after = _whole("after", 0, 0, 10**18)
    if after is None:
        return error(400, "after must be a whole number (a seq)")
    limit = _whole("limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    if limit is None:
        return error(400, f"limit must be a whole number from 1 to {MAX_LIMIT}")
    runtime = runtime_of(current_app)
    who = claims()
    rooms = {tenant_room(who.tenant_id), user_room(who.user_id)}
    if sees_everything(who.role, runtime.settings.agent_sees):
        rooms.add(supervisors_room(who.tenant_id))
    # One more than asked: whether there is a next page.
    found = await runtime.storage.events_after(who.tenant_id, after, limit=limit + 1)
    page, more = found[:limit], len(found) > limit
    shown = [
        {
            "seq": e.seq,
            "event": e.name,
            "data": e.payload,
            "createdAt": iso(e.created_at),
        }
        for e in page
        if rooms.intersection(e.rooms)
    ]
    return {"events": shown, "next": page[-1].seq if page else after, "hasMore": more}
