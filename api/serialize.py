"""Storage records -> the wire contract's camelCase payloads (DESIGN.md), in one place."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from storage import Contact, Conversation, Message


def iso(value: datetime | None) -> str | None:
    """ISO-8601 UTC with a ``Z``, or None."""
    if value is None:
        return None
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def contact_payload(contact: Contact) -> dict[str, Any]:
    """``{id, phoneNumber, name}``."""
    return {"id": contact.id, "phoneNumber": contact.phone_number, "name": contact.name}


def wire_direction(direction: str) -> str:
    """Storage's ``inbound``/``outbound`` as the contract's ``INBOUND``/``OUTBOUND``."""
    return direction.upper()


def message_payload(message: Message, contact: Contact) -> dict[str, Any]:
    """The ``message`` object of ``message:new``."""
    return {
        "id": message.id,
        "conversationId": message.conversation_id,
        "whatsappMessageId": message.whatsapp_message_id,
        "direction": wire_direction(message.direction),
        "type": message.type,
        # Always a string: the text or caption, '' when there is none (what the message is
        # stays in ``type`` and ``metadata``).
        "content": message.content or "",
        "metadata": message.metadata,
        "status": message.status,
        "error": message.error,
        "timestamp": iso(message.timestamp),
        "contact": contact_payload(contact),
    }


def conversation_payload(conversation: Conversation) -> dict[str, Any]:
    """A conversation card of the Kanban."""
    return {
        "id": conversation.id,
        "tenantId": conversation.tenant_id,
        "contactId": conversation.contact_id,
        "accountId": conversation.account_id,
        "stage": conversation.stage,
        "assigneeId": conversation.assignee_id,
        "lastMessageAt": iso(conversation.last_message_at),
        "createdAt": iso(conversation.created_at),
        "updatedAt": iso(conversation.updated_at),
        "contact": contact_payload(conversation.contact),
    }


def last_message_summary(message: Message) -> dict[str, Any]:
    """The ``lastMessage`` of ``conversation:updated``: enough for a Kanban card."""
    return {
        "id": message.id,
        "direction": wire_direction(message.direction),
        "type": message.type,
        "content": message.content or "",
        "status": message.status,
        "timestamp": iso(message.timestamp),
    }
