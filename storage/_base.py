"""The storage contract: one async interface, implemented by SQLite and PostgreSQL.

Every method is a coroutine and safe to call from many tasks at once. Every method that
takes a ``tenant_id`` only ever sees that tenant's rows: asking for another tenant's row
answers None (or an empty page), never the row. Datetimes in and out are aware UTC; a naive
datetime argument raises ValueError. Unless a method says otherwise it may also raise
:class:`StorageUnavailable` when the database cannot be reached, and ValueError for an
argument outside the documented vocabulary (role, status, state, limit, cursor).

The shared contract tests in ``tests/storage/test_contract.py`` are the executable form of
this page; an implementation is done when they pass on it.

Errors: every error raised on purpose is a :class:`StorageError`. Its subclass
:class:`StorageUnavailable` means *not now*: the same call can succeed later, so a caller
should back off and retry rather than give up (a job keeps its message instead of
dead-lettering it). Both implementations raise it for the same kinds of failure:

- closed storage (after ``aclose``): both.
- cannot open / connect: SQLITE_CANTOPEN; PostgreSQL OSError, TimeoutError, class 08,
  57P03 cannot_connect_now, 53300 too_many_connections.
- connection lost: PostgreSQL class 08 (08003, 08006...), 57P01 admin_shutdown,
  57P02 crash_shutdown, the driver's "connection/pool is closed".
- disk full, out of memory: SQLITE_FULL, SQLITE_NOMEM; PostgreSQL class 53 (53100, 53200).
- I/O error: SQLITE_IOERR, SQLITE_PROTOCOL; PostgreSQL class 58 (58030 io_error).
- locked, busy, conflict victim: SQLITE_BUSY (past busy_timeout), SQLITE_LOCKED;
  PostgreSQL 40001 serialization_failure, 40P01 deadlock_detected, 55P03 lock_not_available.
- read-only: SQLITE_READONLY (read-only file system or file); PostgreSQL 25006 (a standby).
- operator intervention: PostgreSQL class 57 (also 57014 query_canceled, statement_timeout).

Everything else is permanent and stays a plain StorageError (or Conflict, NotFound):
constraint violations, bad data, SQL errors, a missing schema (call :meth:`Storage.migrate`).

Durability: a write that has returned survives a crash of the process. Only
:meth:`Storage.inbox_append` also promises to survive an OS crash or power loss; other writes
may lose their newest transactions then (SQLite commits them without an fsync), but never
out of order: what survives is a prefix of the commits, so a derived write is lost only
together with the ``inbox_mark`` that follows it, and the inbox replay redoes it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any

import anyio

from . import _events as ev
from ._audit import AuditEntry, AuditRecord
from ._reads import ReadResult
from ._records import (
    UNSET,
    Account,
    Contact,
    Conversation,
    DeadLetter,
    InboundRecord,
    InboundResult,
    InboxItem,
    Message,
    MessageChange,
    StorageError,
    StorageUnavailable,
    Tenant,
    Unset,
    User,
)


class Storage(ABC):
    """Abstract storage; obtain one with :func:`storage.open_storage`."""

    async def __aenter__(self) -> Storage:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- lifecycle -------------------------------------------------------------------------

    @abstractmethod
    async def migrate(self) -> list[int]:
        """Apply every migration not yet applied, each in its own transaction.

        Returns the versions applied now, ascending ([] when the schema is current). Safe to
        run from two processes at once: the second waits and then applies nothing.
        """

    @abstractmethod
    async def aclose(self) -> None:
        """Close the connection(s). Idempotent; later calls raise StorageUnavailable."""

    @abstractmethod
    async def ping(self) -> None:
        """Return None if a trivial query succeeds; raise StorageUnavailable otherwise."""

    @abstractmethod
    async def check_writable(self) -> None:
        """Return None once a real write has committed; raise StorageUnavailable otherwise.

        Commits (durably, as the inbox does) a transaction that writes and deletes an 8 KiB
        row in ``meta``: more than a page, so it needs free space the way a new message
        does. A full disk, a read-only file system, a lock held past the busy
        timeout or a lost connection make it raise; a successful ``ping`` proves none of
        that. Leaves no row behind. Raises StorageError if the schema is missing.
        """

    # -- tenants, users, accounts ----------------------------------------------------------

    @abstractmethod
    async def create_tenant(self, name: str) -> Tenant:
        """Create and return a tenant."""

    @abstractmethod
    async def get_tenant(self, tenant_id: str) -> Tenant | None:
        """Return the tenant, or None."""

    @abstractmethod
    async def create_user(
        self,
        tenant_id: str,
        email: str,
        password: str,
        *,
        role: str = "agent",
        name: str | None = None,
    ) -> User:
        """Create a user with a scrypt-hashed password and return it.

        The email is stored trimmed and lower-cased. Raises Conflict if the email is taken
        (in any tenant), NotFound if the tenant does not exist, ValueError for an empty
        password, a bad email or a role other than admin/agent/ops.
        """

    @abstractmethod
    async def authenticate(self, email: str, password: str) -> User | None:
        """Return the user whose email and password match, else None.

        Takes about as long for an unknown email as for a wrong password.
        """

    @abstractmethod
    async def get_user(self, user_id: str) -> User | None:
        """Return the user, or None."""

    @abstractmethod
    async def list_users(self, tenant_id: str) -> list[User]:
        """Return the tenant's users, by email (an unknown tenant has none)."""

    @abstractmethod
    async def add_account(
        self,
        tenant_id: str,
        phone_number_id: str,
        *,
        verify_token: str | None = None,
        app_secret: str | None = None,
        access_token: str | None = None,
    ) -> Account:
        """Connect a WhatsApp phone number to a tenant and return the account.

        Raises Conflict if ``phone_number_id`` is already connected, NotFound if the tenant
        does not exist.
        """

    @abstractmethod
    async def get_account(self, phone_number_id: str) -> Account | None:
        """Return the account of a WhatsApp ``phone_number_id``, or None."""

    @abstractmethod
    async def get_account_by_id(self, tenant_id: str, account_id: str) -> Account | None:
        """Return the account ``account_id`` of ``tenant_id``, or None."""

    @abstractmethod
    async def find_account_by_verify_token(self, token: str) -> Account | None:
        """Return the oldest account whose webhook verify token is ``token``, or None."""

    # -- durable inbox ---------------------------------------------------------------------

    @abstractmethod
    async def inbox_append(self, bodies: Sequence[bytes]) -> list[int]:
        """Store raw webhook bodies as pending items in ONE transaction; return their ids.

        Ids are in the order of ``bodies`` and ascending. When this returns, the rows are on
        disk (SQLite commits it with synchronous=FULL, which also flushes every earlier
        commit): this is the "durable before 200" promise,
        and batching many posts into one call is what makes it cheap (group commit).
        Raises TypeError if a body is not bytes.
        """

    @abstractmethod
    async def intake_many(
        self, items: Sequence[tuple[bytes, Sequence[InboundRecord]]]
    ) -> list[tuple[int, list[InboundResult]]]:
        """Store webhook bodies and the messages already parsed from them in ONE commit.

        Each item is a raw body and the inbound records it holds (may be empty). A body with
        records is stored as a ``done`` inbox row together with them (exactly the semantics
        of ``record_inbound`` each, their ``describe`` events logged in the same commit, in
        item order); a body without records as a ``pending`` row, as ``inbox_append`` does.
        Returns, per item in order, its inbox id (ascending) and its records' results. The
        commit is as durable as ``inbox_append``'s: this is one write and one fsync where the
        inbox row and the processing were two. All or nothing: any error (a record refused:
        ``NotFound``...) undoes the whole batch, and the caller falls back to
        ``inbox_append`` and processing its rows one by one.
        """

    @abstractmethod
    async def inbox_pending(self, *, after_id: int = 0, limit: int = 500) -> list[InboxItem]:
        """Return up to ``limit`` pending items with ``id > after_id``, by ascending id."""

    @abstractmethod
    async def inbox_mark(self, ids: Sequence[int], state: str, *, error: str | None = None) -> None:
        """Set ``state`` and ``error`` on the given items in one statement.

        Marking "failed" also adds one to ``attempts``. Unknown ids are ignored. Raises
        ValueError for a state other than pending/done/failed/unroutable.
        """

    @abstractmethod
    async def inbox_counts(self) -> dict[str, int]:
        """Return the number of inbox rows per state; every state is present (maybe 0)."""

    @abstractmethod
    async def inbox_prune(self, *, received_before: datetime, limit: int = 1000) -> int:
        """Delete up to ``limit`` finished rows (done or unroutable) received before
        ``received_before``, oldest first; return how many were deleted.

        Pending and failed rows are never deleted: the first are still owed processing, the
        second are the trace of a dead letter. Raises ValueError for a naive datetime or a
        limit that is not a positive int, and the storage errors.
        """

    # -- contacts and conversations --------------------------------------------------------

    @abstractmethod
    async def upsert_contact(self, tenant_id: str, phone_number: str, name: str | None) -> Contact:
        """Return the tenant's contact for ``phone_number``, creating it if needed.

        A non-empty ``name`` replaces the stored one; None or "" keeps it.
        Raises NotFound if the tenant does not exist.
        """

    @abstractmethod
    async def change_contact_number(
        self, tenant_id: str, phone_number: str, new_phone_number: str
    ) -> Contact | None:
        """Give the tenant's contact of ``phone_number`` the number ``new_phone_number`` (the
        customer changed numbers), so its conversation continues under the new one.

        Returns the contact as changed, or None when the tenant has no contact with
        ``phone_number`` or already has one with ``new_phone_number`` (nothing is merged).
        Raises Conflict if such a contact is created concurrently.
        """

    @abstractmethod
    async def get_or_create_conversation(
        self, tenant_id: str, contact_id: str, account_id: str
    ) -> tuple[Conversation, bool]:
        """Return the one conversation of (tenant, contact) and whether this call created it.

        Concurrent calls for the same contact create exactly one. A new conversation has
        stage "new", no assignee and no last_message_at. Raises NotFound if the contact or
        account is not the tenant's.
        """

    @abstractmethod
    async def get_conversation(self, tenant_id: str, conversation_id: str) -> Conversation | None:
        """Return the conversation, or None if it does not exist or is another tenant's."""

    @abstractmethod
    async def list_conversations(
        self,
        tenant_id: str,
        *,
        stage: str | None = None,
        assignee_id: str | None = None,
        visible_to: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> tuple[list[Conversation], str | None]:
        """Return one page of conversations and the cursor of the next page (None at the end).

        Ordered by last_message_at, newest first, conversations without messages last, then
        by id. ``stage`` / ``assignee_id`` filter when given; ``visible_to`` keeps only the
        conversations assigned to that user or to nobody (what an agent may see). Pass the returned cursor back
        with the same filters to get the next page. Raises ValueError for a bad cursor.
        """

    @abstractmethod
    async def update_conversation(
        self,
        tenant_id: str,
        conversation_id: str,
        *,
        stage: str | None = None,
        assignee_id: str | None | Unset = UNSET,
        describe: ev.ConversationDescribe | None = None,
        expected_version: int | None = None,
    ) -> Conversation | None:
        """Change the stage and/or assignee; return the updated conversation.

        ``stage=None`` leaves the stage; ``assignee_id=UNSET`` leaves the assignee and
        ``assignee_id=None`` clears it. Returns None if the conversation is not the tenant's.
        Raises NotFound if the assignee is not a user of the tenant.

        Every update counts ``version`` one up. With ``expected_version``, the update happens
        only if the stored version is that one, in the same statement (of two racing updates
        that saw the same version, exactly one wins); otherwise it raises VersionConflict
        carrying the current conversation.
        """

    @abstractmethod
    async def touch_conversation(self, conversation_id: str, at: datetime) -> None:
        """Record activity: last_message_at becomes max(stored, ``at``); updated_at now.

        Out-of-order calls never move last_message_at back. An unknown id is ignored.
        """

    # -- messages --------------------------------------------------------------------------

    @abstractmethod
    async def insert_message(
        self,
        *,
        tenant_id: str,
        conversation_id: str,
        contact_id: str,
        direction: str,
        type: str,
        content: str,
        metadata: dict[str, Any],
        status: str,
        timestamp: datetime,
        whatsapp_message_id: str | None = None,
        describe: ev.MessageDescribe | None = None,
    ) -> tuple[Message, bool]:
        """Store a message and return it with True; idempotent on the WhatsApp id.

        If the tenant already has a message with this ``whatsapp_message_id`` nothing is
        written and the existing message is returned with False. The caller gives the status:
        inbound messages are "DELIVERED", outbound ones start "PENDING". Raises NotFound if the
        conversation or contact is not the tenant's.
        """

    @abstractmethod
    async def record_inbound(
        self,
        *,
        tenant_id: str,
        account_id: str,
        phone_number: str,
        contact_name: str | None,
        whatsapp_message_id: str,
        type: str,
        content: str | None,
        metadata: dict[str, Any],
        timestamp: datetime,
        error: dict[str, Any] | None = None,
        direction: str = "inbound",
        describe: ev.InboundDescribe | None = None,
    ) -> InboundResult:
        """Store one inbound WhatsApp message in ONE transaction; return what was done.

        The same as, in order: ``upsert_contact(tenant_id, phone_number, contact_name)``,
        ``get_or_create_conversation(tenant_id, contact.id, account_id)``, ``insert_message``
        (direction "inbound", status "DELIVERED"; ``content`` None is stored as ""; ``error``,
        what WhatsApp reported about the message, as its error; ``direction`` "outbound"
        stores an echo of what the business sent from the WhatsApp Business app, status
        "SENT", applying a status kept for its id) and, only
        when the message is new, ``touch_conversation(conversation.id, timestamp)`` (which
        here also moves ``last_inbound_at``, the customer's newest message, never back, and
        adds one to ``inbound_count``, for an inbound message) and
        the changes kept for it (``apply_message_change``) — but all
        or nothing, in one commit. Idempotent on (tenant, ``whatsapp_message_id``): a replay
        returns the stored message with ``message_created`` False and leaves the
        conversation untouched. Concurrent calls for one new contact create one
        conversation. Raises NotFound if the tenant does not exist or, when the conversation
        is created, the account is not the tenant's.
        """

    async def record_inbound_many(
        self, records: Sequence[InboundRecord]
    ) -> list[InboundResult | StorageError]:
        """Store several inbound messages; return, in order, each one's result or its error.

        Each record is all or nothing on its own, with exactly the semantics of
        ``record_inbound``; a record refused with a ``StorageError`` (NotFound, Conflict...)
        gets that error in its place and does not undo the others. The records must be for
        different conversations, or their order is not kept. An implementation may commit
        them together (SQLite does: one transaction; if the database refuses a record, it
        falls back to one transaction each), which is what makes a burst cheap; this default
        runs them concurrently. Raises ``StorageUnavailable`` when storage cannot be reached
        (records may have been written before that: a retry is idempotent), and any other
        exception a record raised (a bad argument: a bug of the caller).
        """
        results: list[InboundResult | Exception | None] = [None] * len(records)

        async def one(index: int, record: InboundRecord) -> None:
            try:
                results[index] = await self.record_inbound(
                    tenant_id=record.tenant_id,
                    account_id=record.account_id,
                    phone_number=record.phone_number,
                    contact_name=record.contact_name,
                    whatsapp_message_id=record.whatsapp_message_id,
                    type=record.type,
                    content=record.content,
                    metadata=record.metadata,
                    timestamp=record.timestamp,
                    error=record.error,
                    direction=record.direction,
                    describe=record.describe,
                )
            except Exception as exc:  # kept, so one record cannot cancel the others
                results[index] = exc

        async with anyio.create_task_group() as tg:
            for index, record in enumerate(records):
                tg.start_soon(one, index, record)
        done: list[InboundResult | StorageError] = []
        for result in results:
            if isinstance(result, StorageUnavailable) or (
                isinstance(result, Exception) and not isinstance(result, StorageError)
            ):
                raise result
            assert result is not None  # every task stored its outcome
            done.append(result)
        return done

    @abstractmethod
    async def get_message(self, tenant_id: str, message_id: str) -> Message | None:
        """Return the message, or None if it does not exist or is another tenant's."""

    @abstractmethod
    async def list_messages(
        self,
        tenant_id: str,
        conversation_id: str,
        *,
        before: str | None = None,
        limit: int = 50,
    ) -> tuple[list[Message], str | None]:
        """Return one page of a conversation's messages, newest first, and a cursor.

        The cursor (None when there is nothing older) passed as ``before`` returns the next
        older page. Ties on timestamp are broken by id. Raises ValueError for a bad cursor.
        """

    @abstractmethod
    async def update_message_status(
        self,
        tenant_id: str,
        whatsapp_message_id: str,
        status: str,
        *,
        error: dict[str, Any] | None = None,
    ) -> tuple[Message, bool] | None:
        """Apply a delivery status report; return (message, changed), or None if unknown.

        Monotonic, decided inside one SQL statement so racing reports cannot regress it:
        PENDING < SENT < DELIVERED < READ < FAILED (terminal). A status at or below the
        stored one changes nothing and returns (message, False). Only outbound messages
        take delivery reports: an inbound one is returned unchanged. ``error`` is stored when
        given. Raises ValueError for a status not on that ladder.
        """

    @abstractmethod
    async def record_status(
        self,
        tenant_id: str,
        whatsapp_message_id: str,
        status: str,
        *,
        error: dict[str, Any] | None = None,
        describe: ev.MessageDescribe | None = None,
    ) -> tuple[Message, bool] | None:
        """Apply a status report as ``update_message_status`` does, or keep it for later.

        Returns (message, changed) when the tenant has a message with this WhatsApp id.
        Otherwise the status is kept pending (with ``error``; of several kept for one id the
        highest on the ladder wins, and the newest non-None error) and None is returned:
        ``mark_message_sent`` applies it when a message gets this id, and
        ``apply_pending_statuses`` when one has it by then; ``expire_pending_statuses``
        forgets it. Each statement is atomic (a message that gets this id meanwhile is
        caught by ``apply_pending_statuses``). Raises ValueError for a status not on the
        ladder.
        """

    @abstractmethod
    async def apply_pending_statuses(
        self, *, limit: int = 500, describe: ev.MessageDescribe | None = None
    ) -> list[Message]:
        """Apply up to ``limit`` kept statuses whose message is known now; return the messages
        whose status changed. Each kept status is applied once (monotonic) and forgotten."""

    @abstractmethod
    async def expire_pending_statuses(self, before: datetime) -> list[tuple[str, str, str]]:
        """Forget the statuses kept since before ``before``; return them as (tenant_id,
        whatsapp_message_id, status)."""

    @abstractmethod
    async def apply_message_change(
        self, change: MessageChange, *, describe: ev.MessageDescribe | None = None
    ) -> tuple[Message, bool] | None:
        """Apply an edit, deletion for everyone or reaction to the tenant's message whose
        WhatsApp id is ``change.target_id``; return (message, changed).

        A reaction replaces the sender's earlier one unless it is older, and an empty emoji
        removes it (``Message.reactions``). An edit replaces the content unless a newer edit
        did, sets ``edited_at`` and is kept in ``metadata["edits"]``. A deletion empties the
        content, keeps the type, reduces the metadata to who/when/type plus ``revoke``, sets
        ``deleted_at`` and is final. The same change (its own id) twice changes nothing.
        When no message has the target id yet, the change is kept (once) and None returned:
        ``record_inbound`` applies it when it stores the target, ``apply_pending_changes``
        when the target came another way. One transaction. Raises ValueError for a kind
        other than edit/revoke/reaction.
        """

    @abstractmethod
    async def apply_pending_changes(
        self, *, limit: int = 500, describe: ev.MessageDescribe | None = None
    ) -> list[Message]:
        """Apply the kept changes whose target is stored by now (up to ``limit`` targets);
        return the messages they changed."""

    @abstractmethod
    async def expire_pending_changes(self, before: datetime) -> list[tuple[str, str, str, str]]:
        """Forget the changes kept since before ``before``; return them as (tenant_id, own
        whatsapp_message_id, kind, target id)."""

    @abstractmethod
    async def mark_message_sent(
        self,
        message_id: str,
        whatsapp_message_id: str,
        *,
        describe: ev.MessageDescribe | None = None,
    ) -> Message:
        """Record the WhatsApp id of a sent message; status becomes SENT unless further.

        A status kept for this id (``record_status``) is applied in the same transaction,
        so the message may come back DELIVERED, READ or FAILED. Returns the message. Raises
        NotFound for an unknown message and Conflict if the tenant already has another
        message with this WhatsApp id.
        """

    @abstractmethod
    async def mark_message_failed(
        self,
        message_id: str,
        error: dict[str, Any],
        *,
        describe: ev.MessageDescribe | None = None,
    ) -> Message:
        """Set status FAILED with ``error`` (unless already FAILED); return the message.

        Raises NotFound for an unknown message.
        """

    @abstractmethod
    async def count_messages(self, tenant_id: str | None = None) -> int:
        """Return the number of messages of one tenant, or of all tenants for None."""

    # -- dead letters ----------------------------------------------------------------------

    # -- recovery bookkeeping --------------------------------------------------------------

    @abstractmethod
    async def get_meta(self, key: str) -> str | None:
        """Return the process-level value stored under ``key``, or None."""

    @abstractmethod
    async def set_meta(self, key: str, value: str) -> None:
        """Store ``value`` under ``key`` (insert or replace), durably enough for a restart."""

    @abstractmethod
    async def recent_messages(self, *, window_seconds: float, limit: int = 5000) -> list[Message]:
        """Messages of every tenant stored within ``window_seconds`` of the newest one.

        Oldest first, at most ``limit``. Crash recovery re-announces them: what was announced
        just before a crash may never have reached a client.
        """

    @abstractmethod
    async def pending_outbound(self, *, limit: int = 1000) -> list[Message]:
        """Outbound messages of every tenant still PENDING (never sent nor failed), oldest first.

        At most ``limit``. A process that died between storing an agent's reply and sending it
        leaves these behind; the next start sends them.
        """

    @abstractmethod
    async def add_dead_letter(self, kind: str, payload: dict[str, Any], error: str) -> int:
        """Store a job that gave up; return its id."""

    @abstractmethod
    async def list_dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """Return up to ``limit`` dead letters, newest first."""

    # -- the event log ----------------------------------------------------------------------
    # Every mutating method above that takes ``describe`` calls it inside its transaction
    # after the change (only when something changed, unless it says otherwise) and logs the
    # events it returns with consecutive per-tenant seqs, setting their ``seq`` and
    # ``created_at``: the events are committed if and only if the change is, and a tenant's
    # commits become visible in seq order (storage/_events.py).

    @abstractmethod
    async def log_events(self, events: Sequence[ev.LoggedEvent]) -> None:
        """Log ``events`` on their own (no change goes with them), numbered as ``describe``
        numbers them; sets their ``seq`` and ``created_at``."""

    @abstractmethod
    async def events_after(
        self, tenant_id: str, after: int, *, limit: int = 500
    ) -> list[ev.LoggedEvent]:
        """The tenant's logged events with a seq above ``after``, oldest first, at most
        ``limit``. Raises ValueError for a bad limit."""

    @abstractmethod
    async def event_high_seqs(self, tenant_id: str | None = None) -> dict[str, int]:
        """The last seq handed out, per tenant (only ``tenant_id``'s when given; a tenant
        that never logged anything is absent)."""

    @abstractmethod
    async def event_oldest_seq(self, tenant_id: str) -> int | None:
        """The tenant's oldest retained seq, or None when its log is empty."""

    @abstractmethod
    async def prune_events(self, *, created_before: datetime, limit: int = 1000) -> int:
        """Delete up to ``limit`` of the oldest events logged before ``created_before``;
        return how many. The per-tenant counters are kept (seqs never repeat)."""

    @abstractmethod
    async def save_recovery_sessions(
        self, sessions: Sequence[tuple[str, str, str, Sequence[str]]]
    ) -> None:
        """Upsert (pid, tenant_id, user_id, rooms) recovery sessions, in one transaction."""

    @abstractmethod
    async def get_recovery_session(self, pid: str) -> tuple[str, str, list[str]] | None:
        """(tenant_id, user_id, rooms) saved for ``pid``, or None."""

    @abstractmethod
    async def prune_recovery_sessions(self, *, updated_before: datetime) -> int:
        """Delete the sessions last saved before ``updated_before``; return how many."""

    # -- audit log -------------------------------------------------------------------------

    @abstractmethod
    async def append_audit(self, records: Sequence[AuditRecord]) -> None:
        """Store ``records`` (all or none, in one transaction), in order."""

    @abstractmethod
    async def list_audit(
        self,
        tenant_id: str,
        *,
        action: str | None = None,
        user_id: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> tuple[list[AuditEntry], str | None]:
        """The tenant's audit rows, newest (last written) first, and the next page's cursor.

        ``action`` / ``user_id`` keep only those rows; ``cursor`` is a previous page's
        ``nextCursor`` (None: the first page). Raises ValueError for a bad cursor or limit.
        """

    @abstractmethod
    async def prune_audit(self, *, before: datetime, limit: int = 1000) -> int:
        """Delete up to ``limit`` audit rows written before ``before``; return how many."""

    @abstractmethod
    async def find_user_id_by_email(self, email: str) -> tuple[str, str] | None:
        """``(user id, tenant id)`` of the user with ``email`` (any case), or None.

        For the audit log of a failed login: whose account someone tried.
        """

    # -- unread counters -------------------------------------------------------------------

    @abstractmethod
    async def read_conversation(
        self,
        tenant_id: str,
        user_id: str,
        conversation_id: str,
        message_id: str | None = None,
        *,
        describe: Callable[[list[Message]], Sequence[ev.LoggedEvent]] | None = None,
    ) -> ReadResult | None:
        """Move ``user_id``'s read position in the conversation forward, never back; return
        what was done (``ReadResult``), or None if the conversation is not the tenant's.
        ``describe(read)`` gives the events of the messages it turned READ, logged in the
        same transaction.

        ``message_id`` None reads everything stored now; else the customer's messages up to
        that message (by timestamp, then id). In the same transaction the customer's messages
        covered that are still DELIVERED become READ (``ReadResult.read``: a second reader
        finds none). Raises NotFound for a message that is not in the conversation, and
        StorageError if the user is not the tenant's. The caller checks permissions.
        """

    @abstractmethod
    async def unread_conversations(
        self, tenant_id: str, user_id: str, *, visible_to: str | None = None
    ) -> list[tuple[str, int, int]]:
        """The tenant's conversations where ``user_id`` has unread customer messages, as
        (conversation id, inbound_count, position); ``visible_to`` keeps only those
        assigned to that user or to nobody. One query (the unread counters' initial load)."""

    @abstractmethod
    async def unread_conversations_of(
        self, tenant_id: str, user_ids: Sequence[str], *, visible_only: bool
    ) -> list[tuple[str, str, int, int]]:
        """``unread_conversations`` for several users of the tenant in ONE query, as (user
        id, conversation id, inbound_count, position); ``visible_only`` applies each user's
        ``visible_to``. An id that is not a user of the tenant has no rows."""

    @abstractmethod
    async def read_positions(
        self, tenant_id: str, conversation_id: str
    ) -> tuple[int, dict[str, int]] | None:
        """The conversation's inbound_count and every reader's position (user id -> position;
        a user without one has read nothing), or None if it is not the tenant's."""

    @abstractmethod
    async def set_read_receipts(self, tenant_id: str, account_id: str, enabled: bool) -> bool:
        """Turn marking customer messages read on WhatsApp on or off for one account (on for
        a new one); return False if the tenant has no such account."""
