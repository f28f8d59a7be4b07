"""Records, errors and vocabularies shared by every storage implementation.

Records are frozen, slotted dataclasses so callers can pass them between tasks without
worrying about mutation. Every datetime on a record is timezone-aware UTC. Ids are uuid4 hex
strings, except inbox and dead-letter ids, which are integers that only grow.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, Literal

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from ._events import LoggedEvent

ROLES: Final = frozenset({"admin", "agent", "ops"})
DIRECTIONS: Final = frozenset({"inbound", "outbound"})
INBOX_STATES: Final = ("pending", "done", "failed", "unroutable")
# Status only moves up this ladder. FAILED outranks everything so a failure report is never
# hidden by a late DELIVERED. Inbound messages start DELIVERED (READ once an agent read them).
STATUS_RANK: Final[dict[str, int]] = {
    "PENDING": 0,
    "SENT": 1,
    "DELIVERED": 2,
    "READ": 3,
    "FAILED": 9,
}
MESSAGE_STATUSES: Final = frozenset(STATUS_RANK)
# The status every inbound message is stored with.
INBOUND_STATUS: Final = "DELIVERED"
# The status an echo (a message the business sent from the WhatsApp Business app) starts at.
ECHO_STATUS: Final = "SENT"


class StorageError(Exception):
    """Base class of every error the storage layer raises on purpose."""


class StorageUnavailable(StorageError):
    """A transient failure: the same call can succeed later, so back off and retry.

    The database cannot be reached, lost the connection, is closed, full, locked, busy,
    read-only or failed an I/O; or it aborted the transaction as a serialization or deadlock
    victim. The table of what each implementation maps here is in ``storage/_base.py``.
    """


class Conflict(StorageError):
    """A uniqueness rule was broken (duplicate email, phone_number_id, WhatsApp message id)."""


class VersionConflict(Conflict):
    """An update named a version of the conversation that is no longer the current one.

    ``current`` is the conversation as it is now (what the caller should look at again).
    """

    def __init__(self, current: Conversation) -> None:
        super().__init__(
            f"conversation {current.id} is at version {current.version}; reload and retry"
        )
        self.current = current


class NotFound(StorageError, LookupError):
    """A row the operation needs does not exist (or belongs to another tenant)."""


class Unset(enum.Enum):
    """Type of :data:`UNSET`, the "leave this field alone" marker for optional updates."""

    UNSET = enum.auto()

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = Unset.UNSET

Role = Literal["admin", "agent", "ops"]
Direction = Literal["inbound", "outbound"]


@dataclass(frozen=True, slots=True)
class Tenant:
    """One customer organisation; every other row belongs to exactly one tenant."""

    id: str
    name: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class User:
    """A person who logs in. ``email`` is stored lower-cased; the password hash never leaves."""

    id: str
    tenant_id: str
    email: str
    name: str | None
    role: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Account:
    """A WhatsApp Cloud API phone number connected to a tenant."""

    id: str
    tenant_id: str
    phone_number_id: str
    verify_token: str | None
    app_secret: str | None
    access_token: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Contact:
    """A WhatsApp user talking to a tenant; ``phone_number`` is the WhatsApp ``wa_id``."""

    id: str
    tenant_id: str
    phone_number: str
    name: str | None


@dataclass(frozen=True, slots=True)
class Conversation:
    """The single thread between a tenant and a contact (one Kanban card)."""

    id: str
    tenant_id: str
    contact_id: str
    account_id: str
    stage: str
    assignee_id: str | None
    last_message_at: datetime | None
    created_at: datetime
    updated_at: datetime
    contact: Contact
    last_inbound_at: datetime | None = None
    """The customer's newest message: WhatsApp's 24-hour window for free-form sends runs
    from it (None: the customer has not written)."""
    version: int = 0
    """Counts the changes of stage and assignee (``update_conversation``); 0 when new."""
    inbound_count: int = 0
    """How many messages the customer has sent in it (``record_inbound``): agents' unread
    counters are this minus how many they have read (``Storage.read_conversation``)."""


@dataclass(frozen=True, slots=True)
class Message:
    """One inbound or outbound WhatsApp message."""

    id: str
    tenant_id: str
    conversation_id: str
    contact_id: str
    whatsapp_message_id: str | None
    direction: str
    type: str
    content: str
    metadata: dict[str, Any]
    status: str
    error: dict[str, Any] | None
    timestamp: datetime
    created_at: datetime
    reactions: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Reactions by sender (wa_id): ``{"emoji", "timestamp" (ISO), "id"}`` each."""
    edited_at: datetime | None = None
    """When the sender last edited it (the history is in ``metadata["edits"]``)."""
    deleted_at: datetime | None = None
    """When the sender deleted it for everyone (content emptied, type kept)."""


@dataclass(frozen=True, slots=True)
class MessageChange:
    """An edit, deletion for everyone or reaction of one message, by its WhatsApp id.

    ``kind`` is "edit", "revoke" or "reaction"; ``whatsapp_message_id`` is the change's own
    id (a replay is recognised by it); ``content`` is the edited readable text, or the
    reaction's emoji ('' or None: the sender removed their reaction); ``body`` is the Cloud
    API object of the change, kept in the message's edit history.
    """

    tenant_id: str
    kind: str
    target_id: str
    whatsapp_message_id: str
    sender: str
    timestamp: datetime
    content: str | None = None
    body: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class InboxItem:
    """One raw webhook body, stored before WhatsApp gets its 200."""

    id: int
    body: bytes
    received_at: datetime
    state: str
    attempts: int
    error: str | None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A job that exhausted its retries, kept for an operator to inspect."""

    id: int
    kind: str
    payload: dict[str, Any]
    error: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class InboundRecord:
    """One inbound WhatsApp message to store: the arguments of :meth:`Storage.record_inbound`."""

    tenant_id: str
    account_id: str
    phone_number: str
    contact_name: str | None
    whatsapp_message_id: str
    type: str
    content: str | None
    metadata: dict[str, Any]
    timestamp: datetime
    error: dict[str, Any] | None = None
    """What WhatsApp reported about the message (its ``errors[]``), stored as its ``error``."""
    direction: str = "inbound"
    """"outbound" for an echo of what the business sent from the WhatsApp Business app:
    stored SENT, and it does not open the customer service window."""
    describe: Callable[[InboundResult], Sequence[LoggedEvent]] | None = field(
        default=None, compare=False, repr=False
    )
    """Called in the record's transaction with its result: the events to log with it
    (``storage/_events.py``). None: nothing is logged."""


@dataclass(frozen=True, slots=True)
class InboundResult:
    """What :meth:`Storage.record_inbound` did with one inbound WhatsApp message."""

    conversation: Conversation
    """The contact's conversation, after the touch (``last_message_at`` includes the message)."""
    conversation_created: bool
    message: Message
    """The stored message: the new one, or the one already stored under its WhatsApp id."""
    message_created: bool
    """False when the WhatsApp id was already stored (a replay): no message was written."""
