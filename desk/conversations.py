"""Changes agents make to a conversation's card (stage, assignee), stored and announced
(logged with the change, emitted by ``desk.journal``)."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from typing import Any, Final

from desk.audit import AuditSink
from desk.contract import conversation_payload, iso, user_room
from desk.journal import Journal
from desk.permissions import audience, may_see, union
from storage import UNSET, Conversation, LoggedEvent, Storage, Unset, VersionConflict

__all__ = [
    "MAX_STAGE",
    "MAX_VERSION",
    "assign",
    "check_stage",
    "check_version",
    "update_conversation",
]

MAX_STAGE: Final = 64
MAX_VERSION: Final = 2**31 - 1


def check_version(value: Any) -> int | None:
    """``expectedVersion`` of a request as an int (None when absent); ValueError otherwise.

    The one check of both transports (PATCH and ``conversation:assign``), so they take and
    refuse the same values with the same words. Booleans are refused although Python counts
    them as ints, and so is anything past ``MAX_VERSION``: the two JSON decoders part ways
    there (the API's keeps a 2**64 as an int, the socket's orjson makes it a float), and no
    card gets that far (PostgreSQL stores the version as a 32-bit ``integer``).
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_VERSION:
        raise ValueError(f"expectedVersion must be an integer from 0 to {MAX_VERSION}")
    return value


def check_stage(value: Any) -> str | None:
    """``stage`` of a request (None when absent); ValueError saying what is wrong otherwise.

    A stage is a Kanban column's name: 1 to ``MAX_STAGE`` characters, not only whitespace,
    and no control characters (C0, DEL, C1: a NUL, a tab, an escape) or lone surrogates.
    Storage would silently turn a NUL or a lone surrogate into U+FFFD (``storage._text``),
    so the card would land in a column nobody asked for; refusing it says so instead.
    """
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_STAGE:
        raise ValueError(f"stage must be a non-empty string of at most {MAX_STAGE} characters")
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in value):
        raise ValueError("stage must not contain control characters or lone surrogates")
    return value


def _audit_change(
    audit: AuditSink | None, before: Conversation, after: Conversation, by: str | None
) -> None:
    if audit is None:
        return
    target = f"conversation:{after.id}"
    if before.stage != after.stage:
        details = {"from": before.stage, "to": after.stage, "version": after.version}
        audit.record(after.tenant_id, by, "conversation_stage_changed", target, details)
    if before.assignee_id != after.assignee_id:
        details = {"from": before.assignee_id, "to": after.assignee_id, "version": after.version}
        audit.record(after.tenant_id, by, "conversation_assigned", target, details)


async def update_conversation(
    storage: Storage,
    journal: Journal,
    tenant_id: str,
    conversation_id: str,
    *,
    stage: str | None = None,
    assignee_id: str | None | Unset = UNSET,
    updated_by: str | None = None,
    evict: Callable[[Conversation], None] | None = None,
    expected_version: int | None = None,
    audit: AuditSink | None = None,
) -> Conversation | None:
    """Apply a stage and/or assignee change; announce ``conversation:updated``; return the card.

    The event goes to whoever could see the card before AND after the change, so an agent a
    transfer takes it from learns that it left their board; a new assignee (other than the
    one who assigned) gets ``conversation:assigned {conversation, by}`` on their user room;
    then ``evict(card)`` takes the conversation's room from the sockets that may no longer
    see it. Returns None when the
    conversation is not the tenant's. The caller has checked that ``assignee_id`` is a user
    of the tenant and ``stage`` with ``check_stage``. Raises what storage raises.

    With ``expected_version``, a card whose version moved on since is left alone: raises
    VersionConflict with the current card (nothing announced). With ``audit``, a stage
    change and an assignee change are each recorded (by ``updated_by``).
    """
    before = await storage.get_conversation(tenant_id, conversation_id)
    if before is None:
        return None
    if expected_version is not None and before.version != expected_version:
        raise VersionConflict(before)
    told: list[LoggedEvent] = []

    def describe(conversation: Conversation) -> list[LoggedEvent]:
        told[:] = _card_events(before, conversation, stage, assignee_id, updated_by)
        return told

    conversation = await storage.update_conversation(
        tenant_id,
        conversation_id,
        stage=stage,
        assignee_id=assignee_id,
        expected_version=expected_version,
        describe=describe,
    )
    if conversation is None:
        return None
    journal.publish(told)
    _audit_change(audit, before, conversation, updated_by)
    reassigned = before.assignee_id != conversation.assignee_id
    if evict is not None and reassigned:
        evict(conversation)
    return conversation


def _card_events(
    before: Conversation,
    conversation: Conversation,
    stage: str | None,
    assignee_id: str | None | Unset,
    updated_by: str | None,
) -> list[LoggedEvent]:
    updates: dict[str, Any] = {}
    if stage is not None:
        updates["stage"] = conversation.stage
    if assignee_id is not UNSET:
        updates["assigneeId"] = conversation.assignee_id
    event: dict[str, Any] = {
        "conversationId": conversation.id,
        "updates": updates,
        "updatedAt": iso(conversation.updated_at),
        "version": conversation.version,
    }
    if updated_by is not None:
        event["updatedBy"] = updated_by
    tenant = conversation.tenant_id
    rooms = union(audience(before), audience(conversation))
    events = [LoggedEvent(tenant, "conversation:updated", rooms, event)]
    reassigned = before.assignee_id != conversation.assignee_id
    if reassigned and conversation.assignee_id not in (None, updated_by):
        assigned = {"conversation": conversation_payload(conversation), "by": updated_by}
        room = user_room(conversation.assignee_id)
        events.append(LoggedEvent(tenant, "conversation:assigned", [room], assigned))
    return events


async def assign(
    storage: Storage,
    journal: Journal,
    *,
    tenant_id: str,
    user_id: str,
    role: str,
    agent_sees: str,
    conversation_id: Any,
    assignee_id: Any,
    evict: Callable[[Conversation], None] | None = None,
    expected_version: Any = None,
    audit: AuditSink | None = None,
) -> dict[str, Any]:
    """``conversation:assign`` from a socket: check, assign or transfer, announce; the ack.

    Returns ``{ok: true, conversation}`` or ``{ok: false, error}`` (a conversation the user
    may not see is "not found", like one of another tenant, and is audited as a denied
    request). ``assignee_id`` None unassigns. With ``expected_version`` (the
    ``expectedVersion`` of the request), a card moved since answers ``{ok: false, error,
    conversation}`` with the current card.
    """
    if not isinstance(conversation_id, str) or not conversation_id:
        return {"ok": False, "error": "conversationId required"}
    if assignee_id is not None and (not isinstance(assignee_id, str) or not assignee_id):
        return {"ok": False, "error": "assigneeId must be a user id or null"}
    try:
        expected = check_version(expected_version)
    except ValueError as exc:
        return {"ok": False, "error": str(exc)}
    before = await storage.get_conversation(tenant_id, conversation_id)
    if before is None or not may_see(role, user_id, before.assignee_id, agent_sees):
        if audit is not None:
            details = {"event": "conversation:assign", "reason": "conversation not found"}
            audit.record(
                tenant_id, user_id, "request_denied", f"conversation:{conversation_id}", details
            )
        return {"ok": False, "error": "conversation not found"}
    if assignee_id is not None:
        user = await storage.get_user(assignee_id)
        if user is None or user.tenant_id != tenant_id:
            return {"ok": False, "error": "assigneeId is not a user of this tenant"}
    try:
        card = await update_conversation(
            storage,
            journal,
            tenant_id,
            conversation_id,
            assignee_id=assignee_id,
            updated_by=user_id,
            evict=evict,
            expected_version=expected,
            audit=audit,
        )
    except VersionConflict as stale:
        if not may_see(role, user_id, stale.current.assignee_id, agent_sees):
            return {"ok": False, "error": "conversation not found"}
        return {
            "ok": False,
            "error": f"version conflict: the conversation is at version {stale.current.version}",
            "conversation": conversation_payload(stale.current),
        }
    if card is None:
        return {"ok": False, "error": "conversation not found"}
    return {"ok": True, "conversation": conversation_payload(card)}
