"""Announcements: the desk's changes described as logged events, for the rooms allowed to see
them (``desk.permissions.audience``: never to an agent who may not see the conversation).

Pure functions: each returns the :class:`~storage.LoggedEvent` s a change produces. The desk
hands them to storage as the ``describe`` of the change, so they are numbered and logged in
the change's transaction, then to ``desk.journal``, which emits them in seq order (deferred to
the end of the scheduler turn, so everything announced in one turn shares one write per
recipient).
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
from desk.window import window_expires_at
from storage import Conversation, LoggedEvent, Message

__all__ = [
    "card_events",
    "is_newest",
    "contact_events",
    "conversation_events",
    "message_events",
    "message_updated_events",
    "status_events",
]


def _event(conversation: Conversation, name: str, payload: dict[str, Any]) -> LoggedEvent:
    return LoggedEvent(conversation.tenant_id, name, audience(conversation), payload)


def conversation_events(conversation: Conversation) -> list[LoggedEvent]:
    """``conversation:new`` for those who may see it (a new one: the whole tenant)."""
    created = {"conversation": conversation_payload(conversation)}
    return [_event(conversation, "conversation:new", created)]


def message_events(
    conversation: Conversation,
    message: Message,
    on_written: Callable[[], None] | None = None,
) -> list[LoggedEvent]:
    """``message:new`` then ``conversation:updated`` for those who may see the conversation.

    ``conversation`` is the card after the message was stored. A message older than the
    card's newest (WhatsApp does not promise order) gets no ``conversation:updated``: the card
    never moves back in time, and the caller announces it with its newest message
    (``card_events``). ``on_written`` (kept in ``extra``) runs once every local recipient's
    socket has them.
    """
    new = {
        "conversationId": conversation.id,
        "message": message_payload(message, conversation.contact),
    }
    events = [_event(conversation, "message:new", new)]
    if is_newest(conversation, message):
        events.extend(card_events(conversation, message))
    if on_written is not None:
        events[-1].extra["on_written"] = on_written
    return events


def is_newest(conversation: Conversation, message: Message) -> bool:
    """True unless ``message`` is older than the card's newest message."""
    newest = conversation.last_message_at
    return newest is None or message.timestamp >= newest


def card_events(conversation: Conversation, latest: Message) -> list[LoggedEvent]:
    """``conversation:updated`` with the card's real state: ``latest`` is its newest message."""
    newest = conversation.last_message_at or latest.timestamp
    updated = {
        "conversationId": conversation.id,
        "lastMessage": last_message_summary(latest),
        "lastMessageAt": iso(max(latest.timestamp, newest)),
        "windowExpiresAt": iso(window_expires_at(conversation)),
    }
    return [_event(conversation, "conversation:updated", updated)]


def status_events(message: Message, conversation: Conversation) -> list[LoggedEvent]:
    """``message:status-update`` for those who may see ``conversation`` (its message's)."""
    update = {
        "conversationId": message.conversation_id,
        "messageId": message.id,
        "whatsappMessageId": message.whatsapp_message_id,
        "status": message.status,
        **({"error": message.error} if message.error else {}),
    }
    return [_event(conversation, "message:status-update", update)]


def message_updated_events(
    conversation: Conversation, message: Message, *, text_changed: bool
) -> list[LoggedEvent]:
    """``message:updated`` (an edit, a deletion, a reaction) for those who may see the
    conversation; when the message is the card's newest and ``text_changed``, also a
    ``conversation:updated`` whose ``lastMessage`` shows it (the card does not move)."""
    updated = {
        "conversationId": conversation.id,
        "message": message_payload(message, conversation.contact),
    }
    events = [_event(conversation, "message:updated", updated)]
    newest = conversation.last_message_at
    if text_changed and newest is not None and message.timestamp >= newest:
        card = {
            "conversationId": conversation.id,
            "lastMessage": last_message_summary(message),
            "lastMessageAt": iso(newest),
        }
        events.append(_event(conversation, "conversation:updated", card))
    return events


def contact_events(conversation: Conversation) -> list[LoggedEvent]:
    """``conversation:updated`` with the card's ``contact`` (the customer changed numbers)."""
    updated = {
        "conversationId": conversation.id,
        "contact": contact_payload(conversation.contact),
    }
    return [_event(conversation, "conversation:updated", updated)]
