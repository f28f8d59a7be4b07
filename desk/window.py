"""WhatsApp's customer service window: free-form sends only within 24 hours of the customer.

Outside the window Meta refuses a free-form message (error 131047) and accepts only a
template; the desk says so before anything is sent.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

from storage import Conversation

__all__ = ["CUSTOMER_SERVICE_WINDOW", "FREE_FORM_EXEMPT", "window_expires_at", "window_open"]

CUSTOMER_SERVICE_WINDOW: Final = timedelta(hours=24)
# What may be sent whatever the window: a template (what the window is for).
FREE_FORM_EXEMPT: Final = frozenset({"TEMPLATE"})


def window_expires_at(conversation: Conversation) -> datetime | None:
    """When free-form sends stop being accepted, or None if the customer never wrote."""
    if conversation.last_inbound_at is None:
        return None
    return conversation.last_inbound_at + CUSTOMER_SERVICE_WINDOW


def window_open(conversation: Conversation, now: datetime) -> bool:
    """True while a free-form message may be sent to the conversation's customer."""
    expires = window_expires_at(conversation)
    return expires is not None and now < expires
