"""``POST /api/auth/login``: email + password -> JWT; ``GET /api/me``: who the token is."""

from __future__ import annotations

import logging
from typing import Any

from quart import Blueprint, current_app, request

from api.context import runtime_of
from api.guard import claims, error, require_auth
from desk.auth import issue_token
from desk.contract import user_payload

log = logging.getLogger("zapline.api")
blueprint = Blueprint("auth", __name__)

TOKEN_TTL = 12 * 3600


@blueprint.post("/api/auth/login")
async def login() -> Any:
    """Return ``{token, user}``; 400 on a malformed body, 401 on wrong credentials."""
    body = await request.get_json(force=True, silent=True)
    if (
        not isinstance(body, dict)
        or not isinstance(body.get("email"), str)
        or not isinstance(body.get("password"), str)
    ):
        return error(400, "expected JSON {email, password}")
    runtime = runtime_of(current_app)
    user = await runtime.storage.authenticate(body["email"], body["password"])
    if user is None:
        log.info("failed login for %s", body["email"])
        # Whose account it was, when there is one: that tenant's admins see the attempt.
        known = await runtime.storage.find_user_id_by_email(body["email"])
        user_id, tenant_id = known if known is not None else (None, None)
        reason = "wrong password" if known is not None else "unknown email"
        runtime.audit.record(
            tenant_id,
            user_id,
            "login_failed",
            None if user_id is None else f"user:{user_id}",
            {"email": body["email"][:254], "reason": reason},
        )
        return error(401, "invalid email or password")
    runtime.audit.record(user.tenant_id, user.id, "login_ok", f"user:{user.id}", {})
    token = issue_token(
        runtime.settings.jwt_secret,
        user_id=user.id,
        tenant_id=user.tenant_id,
        role=user.role,
        ttl=TOKEN_TTL,
    )
    return {
        "token": token,
        "user": user_payload(user),
    }


@blueprint.get("/api/me")
@require_auth
async def me() -> Any:
    """The caller: ``{user: {id, tenantId, role, email, name}, totalUnread}`` (404 when the
    token's user no longer exists)."""
    runtime = runtime_of(current_app)
    who = claims()
    user = await runtime.storage.get_user(who.user_id)
    if user is None or user.tenant_id != who.tenant_id:
        return error(404, "user not found")
    total = await runtime.desk.reads.unread.total(who.tenant_id, who.user_id, who.role)
    return {
        "user": user_payload(user),
        "totalUnread": total,
    }
