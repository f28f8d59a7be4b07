"""The Kanban REST API; every query is scoped to the caller's tenant (another's id -> 404)."""

from __future__ import annotations

import logging
from typing import Any

from quart import Blueprint, current_app, request

from api.context import runtime_of
from api.guard import claims, error, require_auth
from api.serialize import conversation_payload, iso, message_payload
from storage import UNSET
from zapline.realtime import conversation_room, tenant_room

log = logging.getLogger("zapline.api")
blueprint = Blueprint("conversations", __name__)

MESSAGE_TYPES = (
    "TEXT",
    "IMAGE",
    "VIDEO",
    "AUDIO",
    "DOCUMENT",
    "LOCATION",
    "STICKER",
    "REACTION",
    "CONTACTS",
    "INTERACTIVE",
    "TEMPLATE",
)
MAX_TEXT = 4096


def _limit(default: int = 50) -> int | None:
    raw = request.args.get("limit")
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        return None
    return value if 1 <= value <= 200 else None


@blueprint.get("/api/conversations")
@require_auth
async def list_conversations() -> Any:
    """``?stage=&assignee=&cursor=&limit=`` -> ``{conversations, nextCursor}``."""
    limit = _limit()
    if limit is None:
        return error(400, "limit must be an integer from 1 to 200")
    storage = runtime_of(current_app).storage
    try:
        items, cursor = await storage.list_conversations(
            claims().tenant_id,
            stage=request.args.get("stage") or None,
            assignee_id=request.args.get("assignee") or None,
            cursor=request.args.get("cursor") or None,
            limit=limit,
        )
    except ValueError as exc:
        return error(400, str(exc))
    return {"conversations": [conversation_payload(c) for c in items], "nextCursor": cursor}


@blueprint.get("/api/conversations/<conversation_id>")
@require_auth
async def get_conversation(conversation_id: str) -> Any:
    """One conversation card, or 404."""
    conversation = await runtime_of(current_app).storage.get_conversation(
        claims().tenant_id, conversation_id
    )
    if conversation is None:
        return error(404, "conversation not found")
    return {"conversation": conversation_payload(conversation)}


@blueprint.get("/api/conversations/<conversation_id>/messages")
@require_auth
async def list_messages(conversation_id: str) -> Any:
    """``?before=&limit=`` -> ``{messages (newest first), nextCursor}``."""
    limit = _limit()
    if limit is None:
        return error(400, "limit must be an integer from 1 to 200")
    storage = runtime_of(current_app).storage
    tenant_id = claims().tenant_id
    conversation = await storage.get_conversation(tenant_id, conversation_id)
    if conversation is None:
        return error(404, "conversation not found")
    try:
        items, cursor = await storage.list_messages(
            tenant_id, conversation_id, before=request.args.get("before") or None, limit=limit
        )
    except ValueError as exc:
        return error(400, str(exc))
    return {
        "messages": [message_payload(m, conversation.contact) for m in items],
        "nextCursor": cursor,
    }


@blueprint.patch("/api/conversations/<conversation_id>")
@require_auth
async def update_conversation(conversation_id: str) -> Any:
    """``{stage?, assigneeId?}`` -> the updated card; emits ``conversation:updated``."""
    body = await request.get_json(force=True, silent=True)
    if not isinstance(body, dict) or not ({"stage", "assigneeId"} & body.keys()):
        return error(400, "expected JSON with stage and/or assigneeId")
    stage = body.get("stage")
    if stage is not None and (not isinstance(stage, str) or not stage.strip() or len(stage) > 64):
        return error(400, "stage must be a non-empty string of at most 64 characters")
    assignee: Any = UNSET
    if "assigneeId" in body:
        assignee = body["assigneeId"]
        if assignee is not None and not isinstance(assignee, str):
            return error(400, "assigneeId must be a string or null")
    runtime = runtime_of(current_app)
    tenant_id = claims().tenant_id
    if isinstance(assignee, str):
        user = await runtime.storage.get_user(assignee)
        if user is None or user.tenant_id != tenant_id:
            return error(400, "assigneeId is not a user of this tenant")
    conversation = await runtime.storage.update_conversation(
        tenant_id, conversation_id, stage=stage, assignee_id=assignee
    )
    if conversation is None:
        return error(404, "conversation not found")
    updates: dict[str, Any] = {}
    if stage is not None:
        updates["stage"] = conversation.stage
    if assignee is not UNSET:
        updates["assigneeId"] = conversation.assignee_id
    runtime.fanout.emit(
        "conversation:updated",
        {
            "conversationId": conversation.id,
            "updates": updates,
            "updatedAt": iso(conversation.updated_at),
        },
        to=[tenant_room(tenant_id), conversation_room(conversation.id)],
    )
    return {"conversation": conversation_payload(conversation)}


@blueprint.post("/api/conversations/<conversation_id>/messages")
@require_auth
async def send_message(conversation_id: str) -> Any:
    """``{type?: "TEXT", content, metadata?}`` -> 202 with the PENDING message; a worker sends it."""
    body = await request.get_json(force=True, silent=True)
    if not isinstance(body, dict):
        return error(400, "expected JSON {content, type?, metadata?}")
    kind = str(body.get("type") or "TEXT").upper()
    content = body.get("content")
    metadata = body.get("metadata") or {}
    if kind not in MESSAGE_TYPES:
        return error(400, f"type must be one of {', '.join(MESSAGE_TYPES)}")
    if kind == "TEXT" and (not isinstance(content, str) or not content.strip()):
        return error(400, "content must be a non-empty string for TEXT")
    if isinstance(content, str) and len(content) > MAX_TEXT:
        return error(400, f"content is longer than {MAX_TEXT} characters")
    if not isinstance(metadata, dict):
        return error(400, "metadata must be an object")
    runtime = runtime_of(current_app)
    if runtime.draining:
        return error(503, "shutting down; retry later")
    tenant_id = claims().tenant_id
    conversation = await runtime.storage.get_conversation(tenant_id, conversation_id)
    if conversation is None:
        return error(404, "conversation not found")
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    message, _ = await runtime.storage.insert_message(
        tenant_id=tenant_id,
        conversation_id=conversation.id,
        contact_id=conversation.contact_id,
        direction="outbound",
        type=kind,
        content=content,
        metadata={**metadata, "sentBy": claims().user_id},
        status="PENDING",
        timestamp=now,
    )
    await runtime.storage.touch_conversation(conversation.id, now)
    await runtime.services["desk"].queue_send(conversation, message)
    return {"message": message_payload(message, conversation.contact)}, 202
