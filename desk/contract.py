"""The wire contract in code: room names, and storage records as camelCase payloads.

The README's ``## Wire contract`` block declares every event and REST body; this module is
the one place that builds them, and the integration suite checks what it builds against that
block. The admin CLI prints its records with the same builders (tenants and numbers, which
no event or REST body carries, in the same casing and timestamp form).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from desk.window import window_expires_at
from storage import Account, Contact, Conversation, Message, Tenant, User


def tenant_room(tenant_id: str) -> str:
    """Room of every agent of a tenant."""
    return f"tenant:{tenant_id}"


def user_room(user_id: str) -> str:
    """Room of one user's sockets (all their tabs)."""
    return f"user:{user_id}"


def conversation_room(conversation_id: str) -> str:
    """Room of the agents looking at one conversation."""
    return f"conversation:{conversation_id}"


def iso(value: datetime | None) -> str | None:
    """ISO-8601 UTC with a ``Z``, or None."""
    if value is None:
        return None
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def user_payload(user: User) -> dict[str, Any]:
    """``{id, tenantId, role, email, name}``: the ``user`` of the login answer and of ``/api/me``."""
    return {
        "id": user.id,
        "tenantId": user.tenant_id,
        "role": user.role,
        "email": user.email,
        "name": user.name,
    }


def tenant_payload(tenant: Tenant) -> dict[str, Any]:
    """``{id, name, createdAt}`` (what ``zapline tenant create`` prints)."""
    return {"id": tenant.id, "name": tenant.name, "createdAt": iso(tenant.created_at)}


def account_payload(account: Account) -> dict[str, Any]:
    """A WhatsApp number as ``zapline account add`` prints it: ``{id, tenantId, phoneNumberId,
    verifyToken, appSecret, accessToken, createdAt}``, the two secrets only as ``"***"`` when
    set (None when not), never their value."""
    return {
        "id": account.id,
        "tenantId": account.tenant_id,
        "phoneNumberId": account.phone_number_id,
        "verifyToken": account.verify_token,
        "appSecret": "***" if account.app_secret else None,
        "accessToken": "***" if account.access_token else None,
        "createdAt": iso(account.created_at),
    }


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
        "reactions": reactions_payload(message),
        "edited": message.edited_at is not None,
        "deleted": message.deleted_at is not None,
    }


def reactions_payload(message: Message) -> list[dict[str, Any]]:
    """``[{from, emoji, timestamp}]``: one reaction per sender, oldest first."""
    found = [
        {"from": sender, "emoji": str(r.get("emoji", "")), "timestamp": str(r.get("timestamp"))}
        for sender, r in message.reactions.items()
    ]
    return sorted(found, key=lambda r: (r["timestamp"], r["from"]))


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
        "windowExpiresAt": iso(window_expires_at(conversation)),
        "version": conversation.version,
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
