"""``GET /api/presence``: the tenant's agents, each with their status and when last seen."""

from __future__ import annotations

from typing import Any

from quart import Blueprint, current_app

from api.context import runtime_of
from api.guard import claims, require_auth

blueprint = Blueprint("presence", __name__)


@blueprint.get("/api/presence")
@require_auth
async def presence() -> Any:
    """``{agents: [{userId, name, role, status, lastSeenAt}]}``, by email; never seen: offline."""
    runtime = runtime_of(current_app)
    tenant_id = claims().tenant_id
    live = runtime.live.roster(tenant_id)
    agents = []
    for user in await runtime.storage.list_users(tenant_id):
        seen = live.get(user.id, {"status": "offline", "lastSeenAt": None})
        agents.append(
            {
                "userId": user.id,
                "name": user.name,
                "role": user.role,
                "status": seen["status"],
                "lastSeenAt": seen["lastSeenAt"],
            }
        )
    return {"agents": agents}
