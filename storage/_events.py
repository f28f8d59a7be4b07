"""The durable event log: events numbered per tenant, written with the change they describe.

A mutating method that takes a ``describe`` callable calls it inside its own transaction,
after the change, with what the change produced; the :class:`LoggedEvent` s it returns get
consecutive per-tenant sequence numbers (``event_seq``, one row per tenant) and are inserted
into ``events`` before the commit. So an event is logged if and only if its change is
committed, and (the ``event_seq`` row lock on PostgreSQL, the single writer on SQLite) a
tenant's commits become visible in seq order. No ``describe``: nothing is logged.

Everything here is steps (``_steps.py``): no I/O, driven by the implementation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, TypeVar

from . import _rows as r
from ._dialect import Dialect
from ._records import Conversation, InboundResult, Message
from ._steps import Steps, one, rows, run

T = TypeVar("T")

# Rows per INSERT: 6 parameters each, well under SQLite's 32766.
_INSERT_CHUNK: Final = 500
_NEXT_SEQ: Final = (
    "INSERT INTO event_seq (tenant_id, seq) VALUES (?, ?) ON CONFLICT (tenant_id)"
    " DO UPDATE SET seq = event_seq.seq + excluded.seq RETURNING seq"
)
_EVENT_COLS: Final = "tenant_id, seq, name, rooms, payload, created_at"
_CONVERSATION_BY_ID: Final = f"{r.CONVERSATION_SELECT} WHERE c.id = ?"


@dataclass(slots=True)
class LoggedEvent:
    """One event of the log: ``name`` with its one JSON ``payload``, for ``rooms``.

    The describer fills ``tenant_id``, ``name``, ``rooms`` and ``payload``; storage sets
    ``seq`` and ``created_at`` when it logs it (0 and None until then).
    """

    tenant_id: str
    name: str
    rooms: list[str]
    payload: dict[str, Any]
    seq: int = 0
    created_at: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    """Not stored: what the caller wants to keep with the event (e.g. an ``on_written``)."""


Events = Sequence[LoggedEvent]
MessageDescribe = Callable[[Message, Conversation], Events]
"""Describes a message a change changed, with its conversation as it is now."""
InboundDescribe = Callable[[InboundResult], Events]
"""Describes what one inbound record did."""
ConversationDescribe = Callable[[Conversation], Events]
"""Describes a conversation after a change to it."""


def log(events: Iterable[LoggedEvent], now: datetime) -> Steps[None]:
    """Steps numbering ``events`` (per tenant, in order) and inserting them; sets their
    ``seq`` and ``created_at``."""
    by_tenant: dict[str, list[LoggedEvent]] = {}
    for event in events:
        by_tenant.setdefault(event.tenant_id, []).append(event)
    if not by_tenant:
        return
    # Tenants in one order everywhere: two transactions never wait on each other's rows.
    for tenant_id in sorted(by_tenant):
        group = by_tenant[tenant_id]
        high = yield one(_NEXT_SEQ, tenant_id, len(group))
        first = int(high[0]) - len(group) + 1
        for offset, event in enumerate(group):
            event.seq = first + offset
            event.created_at = now
    flat = [event for tenant_id in sorted(by_tenant) for event in by_tenant[tenant_id]]
    for start in range(0, len(flat), _INSERT_CHUNK):
        chunk = flat[start : start + _INSERT_CHUNK]
        args: list[Any] = []
        for e in chunk:
            args.extend((e.tenant_id, e.seq, e.name, list(e.rooms), e.payload, now))
        marks = ", ".join(["(?, ?, ?, ?, ?, ?)"] * len(chunk))
        yield run(f"INSERT INTO events ({_EVENT_COLS}) VALUES {marks}", *args)


def described(steps: Steps[T], describe: Callable[[T], Events] | None, now: datetime) -> Steps[T]:
    """Steps running ``steps`` then logging ``describe(result)`` (nothing without one)."""
    result = yield from steps
    if describe is not None:
        yield from log(describe(result), now)
    return result


def describe_rows(
    found: Sequence[r.Row], describe: MessageDescribe | None, now: datetime, d: Dialect
) -> Steps[None]:
    """Steps logging ``describe(message, conversation)`` for each message row in ``found``."""
    if describe is None:
        return
    events: list[LoggedEvent] = []
    conversations: dict[str, Conversation] = {}
    for row in found:
        message = r.message(row, d)
        conversation = conversations.get(message.conversation_id)
        if conversation is None:
            conv_row = yield one(_CONVERSATION_BY_ID, message.conversation_id)
            if conv_row is None:
                continue
            conversation = conversations[message.conversation_id] = r.conversation(conv_row, d)
        events.extend(describe(message, conversation))
    yield from log(events, now)


def message_described(
    steps: Steps[tuple[r.Row, bool] | None],
    describe: MessageDescribe | None,
    now: datetime,
    d: Dialect,
    *,
    always: bool = False,
) -> Steps[tuple[r.Row, bool] | None]:
    """Steps running ``steps`` (a message change returning (row, changed) or None), then
    logging ``describe`` of the message when it changed (``always``: whenever found)."""
    result = yield from steps
    if result is not None and (result[1] or always):
        yield from describe_rows([result[0]], describe, now, d)
    return result


def rows_described(
    steps: Steps[list[r.Row]], describe: MessageDescribe | None, now: datetime, d: Dialect
) -> Steps[list[r.Row]]:
    """Steps running ``steps`` (returning changed message rows), then logging ``describe``
    of each."""
    found = yield from steps
    yield from describe_rows(found, describe, now, d)
    return found


def after(tenant_id: str, seq: int, limit: int) -> Steps[list[r.Row]]:
    """Steps returning the tenant's event rows with a seq above ``seq``, oldest first."""
    found: list[r.Row] = yield rows(
        f"SELECT {_EVENT_COLS} FROM events WHERE tenant_id = ? AND seq > ? ORDER BY seq LIMIT ?",
        *(tenant_id, seq, limit),
    )
    return found


def event(row: r.Row, d: Dialect) -> LoggedEvent:
    """The :class:`LoggedEvent` of an ``events`` row."""
    return LoggedEvent(
        tenant_id=str(row[0]),
        seq=int(row[1]),
        name=str(row[2]),
        rooms=list(d.json(row[3])),
        payload=d.json(row[4]),
        created_at=d.time(row[5]),
    )
