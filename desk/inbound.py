"""An inbound message's way into storage and out to the desk, whichever path stores it.

A webhook's plain messages are stored in its inbox commit (``Desk.accept_webhook``); anything
else, and a message whose conversation has work queued, by an ``inbound`` job. Both build
the same record (``inbound_record``) and announce its outcome the same way
(``announce_inbound``); ``KeyCounts`` is how the first path knows not to overtake the second.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from desk.announce import contact_events, conversation_events, is_newest, message_events
from desk.journal import Journal, announce_card
from desk.unread import UnreadDesk
from desk.whatsapp import InboundMessage
from storage import Account, InboundRecord, InboundResult, LoggedEvent, Storage


def conversation_key(msg: InboundMessage) -> str:
    """The job key of ``msg``'s conversation: its jobs run one at a time, in order."""
    return f"c:{msg.phone_number_id}:{msg.wa_id}"


def inbound_record(
    account: Account,
    msg: InboundMessage,
    on_written: Callable[[], None] | None,
    *,
    phone: str | None = None,
    moved: bool = False,
) -> tuple[InboundRecord, list[LoggedEvent]]:
    """The record storing ``msg`` for ``account``'s tenant, and the list its ``describe``
    fills with the events to publish once it is committed (``announce_inbound``).

    ``phone``: the contact's number if not ``msg.wa_id`` (a number change moved it);
    ``moved``: the contact changed numbers, so the card's contact is announced too;
    ``on_written`` runs once the message's event was written to every socket.
    """
    told: list[LoggedEvent] = []

    def describe(result: InboundResult) -> list[LoggedEvent]:
        # Called in the commit (maybe twice: a refused batch is retried one by one). A
        # replayed message is stored already and announced once already: nothing.
        told.clear()
        if result.message_created:
            conversation = result.conversation
            if result.conversation_created:
                told.extend(conversation_events(conversation))
            told.extend(message_events(conversation, result.message, on_written))
            if moved:
                told.extend(contact_events(conversation))
        return told

    record = InboundRecord(
        tenant_id=account.tenant_id,
        account_id=account.id,
        phone_number=phone or msg.wa_id,
        contact_name=msg.contact_name,
        whatsapp_message_id=msg.whatsapp_message_id,
        type=msg.type,
        content=msg.content,
        metadata=msg.metadata,
        timestamp=msg.timestamp,
        error=msg.error,
        # What the business sent from the WhatsApp Business app is ours, already SENT.
        direction="outbound" if msg.echo else "inbound",
        describe=describe,
    )
    return record, told


async def announce_inbound(
    storage: Storage,
    journal: Journal,
    unread: UnreadDesk,
    told: list[LoggedEvent],
    result: InboundResult,
) -> None:
    """Publish what storing a record told, count it unread, move its card if it is older
    than the conversation's newest message."""
    journal.publish(told)
    if result.message_created and result.message.direction == "inbound":
        unread.inbound(result.conversation)  # counted once: replays are not new
    if result.message_created and not is_newest(result.conversation, result.message):
        await announce_card(storage, journal, result.conversation)


class KeyCounts:
    """Conversation keys held by webhooks between their inbox commit and their split."""

    __slots__ = ("_counts",)

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    def __contains__(self, key: str) -> bool:
        return key in self._counts

    def claim(self, keys: Iterable[str]) -> None:
        """Hold each of ``keys`` (once more)."""
        for key in keys:
            self._counts[key] = self._counts.get(key, 0) + 1

    def release(self, keys: Iterable[str]) -> None:
        """Let go of each of ``keys`` once."""
        for key in keys:
            left = self._counts[key] - 1
            if left:
                self._counts[key] = left
            else:
                del self._counts[key]
