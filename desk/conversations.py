"""Changes agents make to a conversation's card (stage, assignee), stored and announced
(logged with the change, emitted by ``desk.journal``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from desk.contract import conversation_payload, iso, user_room
from desk.journal import Journal
from desk.permissions import audience, may_see, union
from storage import UNSET, Conversation, LoggedEvent, Storage, Unset

__all__ = ["assign", "update_conversation"]


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
) -> Conversation | None:
    """Apply a stage and/or assignee change; announce ``conversation:updated``; return the card.

    The event goes to whoever could see the card before AND after the change, so an agent a
    transfer takes it from learns that it left their board; a new assignee (other than the
    one who assigned) gets ``conversation:assigned {conversation, by}`` on their user room;
    then ``evict(card)`` takes the conversation's room from the sockets that may no longer
    see it. Returns None when the
    conversation is not the tenant's. The caller has checked that ``assignee_id`` is a user
    of the tenant. Raises what storage raises.
    """
    before = await storage.get_conversation(tenant_id, conversation_id)
    if before is None:
        return None
    told: list[LoggedEvent] = []

    def describe(conversation: Conversation) -> list[LoggedEvent]:
        told[:] = _card_events(before, conversation, stage, assignee_id, updated_by)
        return told

    conversation = await storage.update_conversation(
        tenant_id, conversation_id, stage=stage, assignee_id=assignee_id, describe=describe
    )
    if conversation is None:
        return None
    journal.publish(told)
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
) -> dict[str, Any]:
    """``conversation:assign`` from a socket: check, assign or transfer, announce; the ack.

    Returns ``{ok: true, conversation}`` or ``{ok: false, error}`` (a conversation the user
    may not see is "not found", like one of another tenant). ``assignee_id`` None unassigns.
    """
    if not isinstance(conversation_id, str) or not conversation_id:
        return {"ok": False, "error": "conversationId required"}
    if assignee_id is not None and (not isinstance(assignee_id, str) or not assignee_id):
        return {"ok": False, "error": "assigneeId must be a user id or null"}
    before = await storage.get_conversation(tenant_id, conversation_id)
    if before is None or not may_see(role, user_id, before.assignee_id, agent_sees):
        return {"ok": False, "error": "conversation not found"}
    if assignee_id is not None:
        user = await storage.get_user(assignee_id)
        if user is None or user.tenant_id != tenant_id:
            return {"ok": False, "error": "assigneeId is not a user of this tenant"}
    card = await update_conversation(
        storage,
        journal,
        tenant_id,
        conversation_id,
        assignee_id=assignee_id,
        updated_by=user_id,
        evict=evict,
    )
    if card is None:
        return {"ok": False, "error": "conversation not found"}
    return {"ok": True, "conversation": conversation_payload(card)}
