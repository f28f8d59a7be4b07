"""``GET /api/audit``: the tenant's audit log, for its admins only, newest first, by pages."""

from __future__ import annotations

from typing import Any

from quart import Blueprint, current_app, request

from api.context import runtime_of
from api.guard import claims, denied, error, require_auth
from desk.audit import ACTIONS
from desk.contract import iso
from storage import AuditEntry

blueprint = Blueprint("audit", __name__)


def entry_payload(entry: AuditEntry) -> dict[str, Any]:
    """One row of the audit log as the contract's ``AuditEntry``."""
    return {
        "id": str(entry.id),
        "tenantId": entry.tenant_id,
        "userId": entry.user_id,
        "action": entry.action,
        "target": entry.target,
        "details": entry.details,
        "requestId": entry.request_id,
        "at": iso(entry.at),
    }


@blueprint.get("/api/audit")
@require_auth
async def list_audit() -> Any:
    """``?cursor=&action=&userId=&limit=`` -> ``{entries, nextCursor}``; 403 unless admin.

    400 for an unknown action, a bad cursor or a limit outside 1..200.
    """
    who = claims()
    if who.role != "admin":
        return denied(403, "the audit log is for the tenant's admins")
    args = request.args
    action = args.get("action") or None
    if action is not None and action not in ACTIONS:
        return error(400, f"action must be one of {', '.join(sorted(ACTIONS))}", field="action")
    try:
        limit = int(args.get("limit", "50"))
    except ValueError:
        limit = 0
    if not 1 <= limit <= 200:
        return error(400, "limit must be an integer from 1 to 200", field="limit")
    try:
        entries, cursor = await runtime_of(current_app).storage.list_audit(
            who.tenant_id,
            action=action,
            user_id=args.get("userId") or None,
            cursor=args.get("cursor") or None,
            limit=limit,
        )
    except ValueError as exc:
        return error(400, str(exc), field="cursor")
    return {"entries": [entry_payload(e) for e in entries], "nextCursor": cursor}
