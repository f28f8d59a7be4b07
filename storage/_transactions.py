"""The multi-statement writes, as steps both implementations drive (see ``_steps.py``).

Uniqueness races are settled by the database (``ON CONFLICT``), never by a read-then-write
decided in Python. SQLite runs every write inside one transaction that holds the write lock
from its start (BEGIN IMMEDIATE), so nothing slips in between two statements. PostgreSQL runs
them READ COMMITTED: an ``ON CONFLICT`` waits for a racing creator's commit, and the next
statement, on a fresh snapshot, sees that creator's row. That is why the steps whose
statements are each atomic on their own (an insert or update, then a read of its outcome)
can run there in autocommit ("autocommit" mode); the inbound path and the write probe run
in one transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Final

from . import _changes as changes
from . import _pending as pending
from . import _rows as r
from ._common import as_utc, new_id
from ._dialect import Dialect
from ._records import ECHO_STATUS, INBOUND_STATUS, InboundRecord, InboundResult
from ._steps import Steps, one, rows, run

# Parameters: id, tenant_id, phone_number, name (None keeps the stored one), created_at.
UPSERT_CONTACT: Final = (
    "INSERT INTO contacts (id, tenant_id, phone_number, name, created_at)"
    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (tenant_id, phone_number) DO UPDATE"
    " SET name = coalesce(nullif(excluded.name, ''), contacts.name)"
    f" RETURNING {r.CONTACT_COLS}"
)
# Parameters: updated_at, then the activity time twice, then the conversation id. The CASE
# (not GREATEST, which SQLite lacks) never moves last_message_at back.
TOUCH_CONVERSATION: Final = (
    "UPDATE conversations SET updated_at = ?, last_message_at = CASE"
    " WHEN last_message_at IS NULL OR last_message_at < ? THEN ?"
    " ELSE last_message_at END WHERE id = ?"
)
# Parameters: updated_at, then the customer's message time four times, then the id: the
# same as TOUCH_CONVERSATION, and the customer service window starts again; the customer's
# message count (the agents' unread counters) goes up in the same statement.
TOUCH_CONVERSATION_INBOUND: Final = (
    "UPDATE conversations SET updated_at = ?, inbound_count = inbound_count + 1,"
    " last_message_at = CASE"
    " WHEN last_message_at IS NULL OR last_message_at < ? THEN ?"
    " ELSE last_message_at END, last_inbound_at = CASE"
    " WHEN last_inbound_at IS NULL OR last_inbound_at < ? THEN ?"
    " ELSE last_inbound_at END WHERE id = ?"
)
# Parameters: key, value.
SET_META: Final = (
    "INSERT INTO meta (key, value) VALUES (?, ?)"
    " ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)
_INSERT_MESSAGE: Final = (
    f"INSERT INTO messages ({r.MESSAGE_INSERT_COLS}) VALUES ({', '.join('?' * 13)})"
    " ON CONFLICT (tenant_id, whatsapp_message_id) DO NOTHING"
    f" RETURNING {r.MESSAGE_COLS}"
)
_SELECT_CONVERSATION_BY_ID: Final = f"{r.CONVERSATION_SELECT} WHERE c.id = ?"
_SELECT_CONVERSATION_ID: Final = (
    "SELECT id FROM conversations WHERE tenant_id = ? AND contact_id = ?"
)
_SELECT_CONTACT: Final = (
    f"SELECT {r.CONTACT_COLS} FROM contacts WHERE tenant_id = ? AND phone_number = ?"
)


def conversation_for(
    tenant_id: str, contact_id: str, account_id: str, now: datetime
) -> Steps[tuple[str, bool]]:
    """Steps returning the contact's conversation id, creating it, and whether they did.

    The conversation usually exists: it is looked up first (one read, no write). A racing
    creator (PostgreSQL) makes the INSERT's ON CONFLICT wait for its commit and do nothing;
    the second read, on a fresh snapshot, sees its row.
    """
    found = yield one(_SELECT_CONVERSATION_ID, tenant_id, contact_id)
    if found is not None:
        return str(found[0]), False
    created = yield one(
        "INSERT INTO conversations (id, tenant_id, contact_id, account_id, created_at,"
        " updated_at) VALUES (?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (tenant_id, contact_id) DO NOTHING RETURNING id",
        *(new_id(), tenant_id, contact_id, account_id, now, now),
    )
    if created is not None:
        return str(created[0]), True
    found = yield one(_SELECT_CONVERSATION_ID, tenant_id, contact_id)
    return str(found[0]), False


def contact_for(tenant_id: str, phone_number: str, name: str | None, now: datetime) -> Steps[r.Row]:
    """Steps returning the CONTACT_COLS row of the tenant's contact with ``phone_number``,
    creating it, or giving it ``name`` when that is new (an empty one keeps the stored).

    A known contact whose name is unchanged (every message but the first, usually) is one
    read and no write.
    """
    found = yield one(_SELECT_CONTACT, tenant_id, phone_number)
    if found is not None and (not name or name == found[3]):
        return found
    row: r.Row = yield one(UPSERT_CONTACT, *(new_id(), tenant_id, phone_number, name or None, now))
    return row


def get_or_create_conversation(
    tenant_id: str, contact_id: str, account_id: str, now: datetime
) -> Steps[tuple[r.Row, bool]]:
    """Steps returning the contact's CONVERSATION_SELECT row and whether they created it."""
    conversation_id, created = yield from conversation_for(tenant_id, contact_id, account_id, now)
    return (yield one(_SELECT_CONVERSATION_BY_ID, conversation_id)), created


def write_message(values: Sequence[Any]) -> Steps[tuple[r.Row, bool]]:
    """Steps inserting a message (``values`` in MESSAGE_COLS order) unless its WhatsApp id
    is stored; return the new row and True, or the stored row of that id and False."""
    inserted = yield one(_INSERT_MESSAGE, *values)
    if inserted is not None:
        return inserted, True
    stored = yield one(
        f"SELECT {r.MESSAGE_COLS} FROM messages WHERE tenant_id = ? AND whatsapp_message_id = ?",
        *(values[1], values[4]),
    )
    return stored, False


def inbound(record: InboundRecord, now: datetime, d: Dialect) -> Steps[InboundResult]:
    """Steps of ``record_inbound``: contact, conversation, message, touch; return the result.

    A foreign key error (unknown tenant; another tenant's account when the conversation is
    created) is raised by the driver at the statement that breaks it.
    """
    tenant_id, when = record.tenant_id, as_utc(record.timestamp)
    who = yield from contact_for(tenant_id, record.phone_number, record.contact_name, now)
    conversation_id, created = yield from conversation_for(
        tenant_id, who[0], record.account_id, now
    )
    keys = (new_id(), tenant_id, conversation_id, who[0], record.whatsapp_message_id)
    direction, status = record_direction(record)
    body = (direction, record.type, record.content or "", record.metadata, status)
    row, inserted = yield from write_message((*keys, *body, record.error, when, now))
    if inserted:
        if direction == "inbound":
            yield run(TOUCH_CONVERSATION_INBOUND, now, when, when, when, when, conversation_id)
        else:
            yield run(TOUCH_CONVERSATION, now, when, when, conversation_id)
            # Its status may have come first (echoes only: an extra statement for them).
            row = (yield from pending.take(tenant_id, record.whatsapp_message_id)) or row
        # An edit, deletion or reaction may have arrived first: in process, so no round trip.
        row, _ = yield from changes.take(row, d)
    conversation = yield one(_SELECT_CONVERSATION_BY_ID, conversation_id)
    return InboundResult(r.conversation(conversation, d), created, r.message(row, d), inserted)


def record_direction(record: InboundRecord) -> tuple[str, str]:
    """(direction, status) a record is stored with; raise ValueError for a bad direction."""
    if record.direction == "inbound":
        return "inbound", INBOUND_STATUS
    if record.direction == "outbound":
        return "outbound", ECHO_STATUS
    raise ValueError(f"direction must be inbound or outbound, got {record.direction!r}")


def update_conversation(
    changes: dict[str, Any], tenant_id: str, conversation_id: str
) -> Steps[r.Row | None]:
    """Steps setting ``changes`` (column -> value) on the tenant's conversation; return its
    CONVERSATION_SELECT row afterwards, or None if the tenant has no such conversation.
    Every update counts the conversation's version one up."""
    sets = ", ".join(f"{column} = ?" for column in changes)
    yield run(
        f"UPDATE conversations SET {sets}, version = version + 1 WHERE tenant_id = ? AND id = ?",
        *(*changes.values(), tenant_id, conversation_id),
    )
    row: r.Row | None = yield one(
        f"{r.CONVERSATION_SELECT} WHERE c.tenant_id = ? AND c.id = ?",
        *(tenant_id, conversation_id),
    )
    return row


def update_conversation_if(
    changes: dict[str, Any], tenant_id: str, conversation_id: str, expected_version: int
) -> Steps[tuple[r.Row | None, bool]]:
    """Like :func:`update_conversation`, only while the version is ``expected_version``.

    Returns (row afterwards, True) when it updated, (current row, False) when the version
    had moved on, (None, False) when the tenant has no such conversation. The version test
    sits in the UPDATE's WHERE, so two racing updates that saw the same version cannot both
    win (they serialise on the row).
    """
    sets = ", ".join(f"{column} = ?" for column in changes)
    updated = yield one(
        f"UPDATE conversations SET {sets}, version = version + 1"
        " WHERE tenant_id = ? AND id = ? AND version = ? RETURNING id",
        *(*changes.values(), tenant_id, conversation_id, expected_version),
    )
    row: r.Row | None = yield one(
        f"{r.CONVERSATION_SELECT} WHERE c.tenant_id = ? AND c.id = ?",
        *(tenant_id, conversation_id),
    )
    return row, updated is not None


def set_status(
    update: str, args: Sequence[Any], where: str, key: Sequence[Any]
) -> Steps[tuple[r.Row, bool] | None]:
    """Steps running ``UPDATE messages SET {update}``; return (row, True) if it changed one.

    Otherwise (row, False) for the row ``where`` selects with ``key``, or None. The rank
    test sits in the UPDATE's WHERE, so the decision and the write are one statement
    (racing reports serialise on the row) and none can move a status back.
    """
    changed = yield one(f"UPDATE messages SET {update} RETURNING {r.MESSAGE_COLS}", *args)
    if changed is not None:
        return changed, True
    found = yield one(f"SELECT {r.MESSAGE_COLS} FROM messages WHERE {where}", *key)
    return None if found is None else (found, False)


def append_inbox(bodies: Sequence[bytes], now: datetime) -> Steps[list[int]]:
    """Steps inserting ``bodies`` as pending inbox rows; return their ids in order."""
    ids = []
    for body in bodies:
        ids.append((yield from inbox_row(body, now, "pending")))
    return ids


def inbox_row(body: bytes, now: datetime, state: str) -> Steps[int]:
    """Steps inserting one inbox row in ``state``; return its id."""
    row = yield one(
        "INSERT INTO inbox (body, received_at, state) VALUES (?, ?, ?) RETURNING id",
        *(body, now, state),
    )
    return int(row[0])


def write_probe(key: str, value: str) -> Steps[None]:
    """Steps writing ``value`` under the meta ``key`` and deleting it again."""
    yield run(SET_META, key, value)
    yield run("DELETE FROM meta WHERE key = ?", key)


def recent_messages(window_seconds: float, limit: int, d: Dialect) -> Steps[list[r.Row]]:
    """Steps returning the MESSAGE_COLS rows stored within ``window_seconds`` of the newest."""
    newest = yield one("SELECT max(created_at) FROM messages")
    if newest is None or newest[0] is None:
        return []
    since = d.time(newest[0]) - timedelta(seconds=window_seconds)
    found: list[r.Row] = yield rows(
        f"SELECT {r.MESSAGE_COLS} FROM messages WHERE created_at >= ?"
        " ORDER BY created_at, id LIMIT ?",
        *(since, limit),
    )
    return found
