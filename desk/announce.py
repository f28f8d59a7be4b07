"""Announcements: the desk's changes as Socket.IO events, to the rooms allowed to see them
(``desk.permissions.audience``: never to an agent who may not see the conversation).

Every event goes out through ``emit_many`` deferred to the end of the scheduler turn, so that
everything announced in one turn (a group commit finishes many messages at once) shares one
write per recipient: the send call is most of a delivery's cost.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from desk.contract import (
    contact_payload,
    conversation_payload,
    iso,
    last_message_summary,
    message_payload,
)
from desk.permissions import audience
from desk.ports import Emitter
from desk.window import window_expires_at
from storage import Conversation, Message

__all__ = [
    "announce_contact",
    "announce_conversation",
    "announce_message",
    "announce_message_updated",
    "announce_status",
]


def announce_conversation(emitter: Emitter, conversation: Conversation) -> None:
    """Emit ``conversation:new`` to those who may see it (a new one: the whole tenant)."""
    created = {"conversation": conversation_payload(conversation)}
    emitter.emit_many([("conversation:new", (created,))], to=audience(conversation), defer=True)


def announce_message(
    emitter: Emitter,
    conversation: Conversation,
    message: Message,
    on_written: Callable[[], None] | None = None,
    *,
    latest: Message | None = None,
) -> None:
    """Emit ``message:new`` then ``conversation:updated`` to those who may see the conversation.

    Both go out in ONE write per recipient. ``latest`` is the conversation's newest message
    when it is not ``message`` (an older message arrived late): ``conversation:updated``
    always carries the card's real state. ``on_written`` runs once every local recipient's
    socket has them.
    """
    rooms = audience(conversation)
    new = {
        "conversationId": conversation.id,
        "message": message_payload(message, conversation.contact),
    }
    last = latest if latest is not None else message
    updated = {
        "conversationId": conversation.id,
        "lastMessage": last_message_summary(last),
        "lastMessageAt": iso(max(last.timestamp, conversation.last_message_at or last.timestamp)),
        "windowExpiresAt": iso(window_expires_at(conversation)),
    }
    emitter.emit_many(
        [("message:new", (new,)), ("conversation:updated", (updated,))],
        to=rooms,
        defer=True,
        on_written=on_written,
    )


def announce_status(emitter: Emitter, message: Message, conversation: Conversation) -> None:
    """Emit ``message:status-update`` to those who may see ``conversation`` (its message's)."""
    update = {
        "conversationId": message.conversation_id,
        "messageId": message.id,
        "whatsappMessageId": message.whatsapp_message_id,
        "status": message.status,
        **({"error": message.error} if message.error else {}),
    }
    emitter.emit_many(
        [("message:status-update", (update,))],
        to=audience(conversation),
        defer=True,
    )


def announce_message_updated(
    emitter: Emitter, conversation: Conversation, message: Message, *, text_changed: bool
) -> None:
    """Emit ``message:updated`` (an edit, a deletion, a reaction) to those who may see the
    conversation; when the message is the card's newest and ``text_changed``, also a
    ``conversation:updated`` whose ``lastMessage`` shows it (the card does not move)."""
    rooms = audience(conversation)
    updated = {
        "conversationId": conversation.id,
        "message": message_payload(message, conversation.contact),
    }
    events: list[tuple[str, tuple[Any, ...]]] = [("message:updated", (updated,))]
    newest = conversation.last_message_at
    if text_changed and newest is not None and message.timestamp >= newest:
        card = {
            "conversationId": conversation.id,
            "lastMessage": last_message_summary(message),
            "lastMessageAt": iso(newest),
        }
        events.append(("conversation:updated", (card,)))
    emitter.emit_many(events, to=rooms, defer=True)


def announce_contact(emitter: Emitter, conversation: Conversation) -> None:
    """Emit ``conversation:updated`` with the card's ``contact`` (the customer changed
    numbers) to those who may see the conversation."""
    updated = {
        "conversationId": conversation.id,
        "contact": contact_payload(conversation.contact),
    }
    emitter.emit_many(
        [("conversation:updated", (updated,))],
        to=audience(conversation),
        defer=True,
    )
