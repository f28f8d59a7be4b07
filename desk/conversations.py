"""Changes agents make to a conversation's card (stage, assignee), stored and announced."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from desk.contract import iso
from desk.permissions import audience, union
from desk.ports import Emitter
from storage import UNSET, Conversation, Storage, Unset

__all__ = ["update_conversation"]


async def update_conversation(
    storage: Storage,
    emitter: Emitter,
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
    transfer takes it from learns that it left their board; then ``evict(card)`` takes the
    conversation's room from the sockets that may no longer see it. Returns None when the
    conversation is not the tenant's. The caller has checked that ``assignee_id`` is a user
    of the tenant. Raises what storage raises.
    """
    before = await storage.get_conversation(tenant_id, conversation_id)
    if before is None:
        return None
    conversation = await storage.update_conversation(
        tenant_id, conversation_id, stage=stage, assignee_id=assignee_id
    )
    if conversation is None:
        return None
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
    emitter.emit("conversation:updated", event, to=union(audience(before), audience(conversation)))
    if evict is not None and before.assignee_id != conversation.assignee_id:
        evict(conversation)
    return conversation
