"""Changes agents make to a conversation's card (stage, assignee), stored and announced."""

from __future__ import annotations

from typing import Any

from desk.contract import conversation_room, iso, tenant_room
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
) -> Conversation | None:
    """Apply a stage and/or assignee change; announce ``conversation:updated``; return the card.

    Returns None when the conversation is not the tenant's. The caller has checked that
    ``assignee_id`` is a user of the tenant. Raises what storage raises.
    """
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
    emitter.emit(
        "conversation:updated",
        {
            "conversationId": conversation.id,
            "updates": updates,
            "updatedAt": iso(conversation.updated_at),
        },
        to=[tenant_room(tenant_id), conversation_room(conversation.id)],
    )
    return conversation
