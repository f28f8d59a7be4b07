"""The Kanban REST API; every query is scoped to the caller's tenant (another's id -> 404)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from quart import Blueprint, current_app, request

from api.context import runtime_of
from api.guard import claims, denied, error, require_auth
from desk.audit import send_action
from desk.contract import conversation_payload, iso, message_payload
from desk.conversations import check_stage, check_version
from desk.conversations import update_conversation as update_conversation_card
from desk.permissions import may_see, sees_everything
from desk.whatsapp import CloudApiError, build_message
from desk.window import FREE_FORM_EXEMPT, window_expires_at, window_open
from storage import UNSET, Conversation, VersionConflict

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


async def visible_conversation(conversation_id: str) -> Conversation | None:
    """The caller's tenant's conversation if the caller's role may see it, else None."""
    runtime = runtime_of(current_app)
    who = claims()
    conversation = await runtime.storage.get_conversation(who.tenant_id, conversation_id)
    if conversation is None or not may_see(
        who.role, who.user_id, conversation.assignee_id, runtime.settings.agent_sees
    ):
        return None
    return conversation


def not_found(conversation_id: str) -> Any:
    """The 404 of a conversation the caller may not see (or that is not there), audited."""
    return denied(404, "conversation not found", f"conversation:{conversation_id}")


@blueprint.get("/api/conversations")
@require_auth
async def list_conversations() -> Any:
    """``?stage=&assignee=&cursor=&limit=`` -> ``{conversations, nextCursor}``."""
    limit = _limit()
    if limit is None:
        return error(400, "limit must be an integer from 1 to 200")
    runtime = runtime_of(current_app)
    who = claims()
    agent_sees = runtime.settings.agent_sees
    try:
        items, cursor = await runtime.storage.list_conversations(
            who.tenant_id,
            stage=request.args.get("stage") or None,
            assignee_id=request.args.get("assignee") or None,
            visible_to=None if sees_everything(who.role, agent_sees) else who.user_id,
            cursor=request.args.get("cursor") or None,
            limit=limit,
        )
    except ValueError as exc:
        return error(400, str(exc))
    unread = await runtime.desk.reads.unread.unread_counts(who.tenant_id, who.user_id, who.role)
    return {
        "conversations": [
            {**conversation_payload(c), "unreadCount": unread.get(c.id, 0)} for c in items
        ],
        "nextCursor": cursor,
    }


@blueprint.get("/api/conversations/<conversation_id>")
@require_auth
async def get_conversation(conversation_id: str) -> Any:
    """One conversation card, or 404 (also when the caller's role may not see it)."""
    conversation = await visible_conversation(conversation_id)
    if conversation is None:
        return not_found(conversation_id)
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
    conversation = await visible_conversation(conversation_id)
    if conversation is None:
        return not_found(conversation_id)
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
    """``{stage?, assigneeId?, expectedVersion?}`` -> the updated card; emits
    ``conversation:updated``. A stale ``expectedVersion`` answers 409 ``{error,
    conversation}`` with the current card."""
    body = await request.get_json(force=True, silent=True)
    if not isinstance(body, dict) or not ({"stage", "assigneeId"} & body.keys()):
        return error(400, "expected JSON with stage and/or assigneeId")
    try:
        expected = check_version(body.get("expectedVersion"))
    except ValueError as exc:
        return error(400, str(exc), field="expectedVersion")
    try:
        stage = check_stage(body.get("stage"))
    except ValueError as exc:
        return error(400, str(exc), field="stage")
    assignee: Any = UNSET
    if "assigneeId" in body:
        assignee = body["assigneeId"]
        if assignee is not None and not isinstance(assignee, str):
            return error(400, "assigneeId must be a string or null")
    runtime = runtime_of(current_app)
    tenant_id = claims().tenant_id
    if await visible_conversation(conversation_id) is None:
        return not_found(conversation_id)
    if isinstance(assignee, str):
        user = await runtime.storage.get_user(assignee)
        if user is None or user.tenant_id != tenant_id:
            return error(400, "assigneeId is not a user of this tenant")
    try:
        conversation = await update_conversation_card(
            runtime.storage,
            runtime.desk.journal,
            tenant_id,
            conversation_id,
            stage=stage,
            assignee_id=assignee,
            updated_by=claims().user_id,
            evict=runtime.evict,
            expected_version=expected,
            audit=runtime.audit,
        )
    except VersionConflict as stale:
        who = claims()
        if not may_see(
            who.role, who.user_id, stale.current.assignee_id, runtime.settings.agent_sees
        ):
            return not_found(conversation_id)
        return error(
            409,
            f"version conflict: the conversation is at version {stale.current.version}",
            conversation=conversation_payload(stale.current),
        )
    if conversation is None:
        return error(404, "conversation not found")
    return {"conversation": conversation_payload(conversation)}


@blueprint.post("/api/conversations/<conversation_id>/read")
@require_auth
async def read_conversation(conversation_id: str) -> Any:
    """``{messageId?}`` -> ``{ok: true, unreadCount}``: the caller has read up to that message
    (everything when absent); their position never moves back. 404 for a conversation the
    caller may not see, 400 for a message that is not in it."""
    body = await request.get_json(force=True, silent=True)
    if body is None:
        body = {}
    if not isinstance(body, dict):
        return error(400, "expected JSON {messageId?}")
    who = claims()
    answer = await runtime_of(current_app).desk.reads.read(
        who.tenant_id, who.user_id, who.role, conversation_id, body.get("messageId")
    )
    if answer["ok"]:
        return answer
    status = 404 if answer["error"] == "conversation not found" else 400
    return error(status, answer["error"], **({"field": "messageId"} if status == 400 else {}))


class _BadSend(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _outbound(body: Any, to: str) -> tuple[str, str, dict[str, Any]]:
    """Return (type, content, metadata) of a send request; raise _BadSend naming the field.

    The message is built in the Cloud API's shape here, before anything is stored, so a send
    that could never go out is refused now with a 400 instead of failing later at Meta.
    """
    if not isinstance(body, dict):
        raise _BadSend("body", "expected a JSON object {content, type?, metadata?}")
    kind = body.get("type", "TEXT")
    if not isinstance(kind, str) or kind.upper() not in MESSAGE_TYPES:
        raise _BadSend("type", f"type must be one of {', '.join(MESSAGE_TYPES)}")
    kind = kind.upper()
    content = body.get("content")
    if content is None:
        content = ""
    if not isinstance(content, str):
        raise _BadSend("content", "content must be a string")
    if len(content) > MAX_TEXT:
        raise _BadSend("content", f"content is longer than {MAX_TEXT} characters")
    metadata = body.get("metadata")
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise _BadSend("metadata", "metadata must be an object")
    if kind == "TEXT" and not content.strip():
        raise _BadSend("content", "content must be a non-empty string for TEXT")
    if kind == "TEMPLATE":
        content = content or _template_label(metadata.get("template"))
    try:
        build_message(to, kind, content, metadata)
    except CloudApiError as exc:
        raise _BadSend("content" if kind == "TEXT" else "metadata", exc.message) from None
    return kind, content, metadata


def _template_label(template: Any) -> str:
    """What an agent reads for a template send; raise _BadSend when it cannot be one."""
    name = template.get("name") if isinstance(template, dict) else None
    language = template.get("language") if isinstance(template, dict) else None
    code = language.get("code") if isinstance(language, dict) else None
    if not isinstance(name, str) or not name or not isinstance(code, str) or not code:
        raise _BadSend(
            "metadata",
            "a TEMPLATE needs metadata.template {name, language: {code}, components?}"
            " in Cloud API shape",
        )
    return f"Template: {name}"


def _outside_window(kind: str, conversation: Conversation) -> str | None:
    """Why a send of ``kind`` cannot go out now (the 24-hour window), or None if it can."""
    if kind in FREE_FORM_EXEMPT or window_open(conversation, datetime.now(UTC)):
        return None
    expires = window_expires_at(conversation)
    when = (
        "the customer has not written yet"
        if expires is None
        else f"the customer's last message is more than 24 hours old (the window closed at"
        f" {iso(expires)})"
    )
    return (
        f"outside WhatsApp's 24-hour customer service window: {when}; only a TEMPLATE"
        " message can be sent until the customer writes again"
    )


@blueprint.post("/api/conversations/<conversation_id>/messages")
@require_auth
async def send_message(conversation_id: str) -> Any:
    """``{type?: "TEXT", content, metadata?}`` -> 202 with the PENDING message; a worker sends it.

    A body that cannot be sent answers 400 ``{error, field}``; a free-form message outside
    the 24-hour customer service window answers 409 (a TEMPLATE is accepted).
    """
    body = await request.get_json(force=True, silent=True)
    runtime = runtime_of(current_app)
    if runtime.draining:
        return error(503, "shutting down; retry later")
    conversation = await visible_conversation(conversation_id)
    if conversation is None:
        return not_found(conversation_id)
    try:
        kind, content, metadata = _outbound(body, conversation.contact.phone_number)
    except _BadSend as bad:
        return error(400, bad.message, field=bad.field)
    closed = _outside_window(kind, conversation)
    if closed is not None:
        # Meta would refuse it later (131047); saying so now keeps the agent in the loop.
        return error(409, closed, field="type")
    who = claims()
    message = await runtime.desk.send_reply(
        conversation, kind=kind, content=content, metadata=metadata, user_id=who.user_id
    )
    runtime.audit.record(
        who.tenant_id,
        who.user_id,
        send_action(kind),
        f"message:{message.id}",
        {"conversationId": conversation.id, "type": kind},
    )
    return {"message": message_payload(message, conversation.contact)}, 202
