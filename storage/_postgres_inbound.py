"""PostgreSQL's own inbound write path: one message in two statements (three in a rare race).

The shared steps (``_transactions.inbound``) take six statements, which SQLite runs in
process for microseconds each; over a network each one is a round trip, so PostgreSQL does
the same work with writable CTEs, which SQLite does not have. Same semantics, same contract
tests. Runs in one READ COMMITTED transaction (``PostgresStorage._run``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from . import _changes as changes
from . import _pending as pending
from . import _rows as r
from ._common import as_utc, new_id
from ._dialect import POSTGRES
from ._records import Contact, InboundRecord, InboundResult
from ._steps import Steps, one
from ._transactions import record_direction

# Statement 1: upsert the contact (which also locks its row until commit) and create its
# conversation unless one exists. A racing creator makes ON CONFLICT wait for its commit and
# then do nothing; statement 2 runs on a fresh snapshot and sees its row.
_CONTACT: Final = (
    "WITH k AS (INSERT INTO contacts (id, tenant_id, phone_number, name, created_at)"
    " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id, phone_number) DO UPDATE"
    " SET name = coalesce(nullif(excluded.name, ''), contacts.name)"
    " RETURNING id, phone_number, name),"
    " made AS (INSERT INTO conversations (id, tenant_id, contact_id, account_id, created_at,"
    " updated_at) SELECT $6, $2, k.id, $7, $5, $5 FROM k"
    " ON CONFLICT (tenant_id, contact_id) DO NOTHING RETURNING id)"
    " SELECT k.id, k.phone_number, k.name, EXISTS (SELECT 1 FROM made) FROM k"
)
# Statement 2: insert the message unless its WhatsApp id is stored, touch the conversation
# only if it was inserted, and answer the message and the conversation as they are now.
# CTEs share one snapshot, so a row written here is taken from RETURNING, and the plain
# reads only fill in what this statement did not write.
_MESSAGE: Final = (
    "WITH conv AS (SELECT id FROM conversations WHERE tenant_id = $1 AND contact_id = $2),"
    f" ins AS (INSERT INTO messages ({r.MESSAGE_INSERT_COLS}) VALUES ($3, $1, (SELECT id FROM conv),"
    " $2, $4, $12, $5, $6, $7, $8, $11, $9, $10)"
    " ON CONFLICT (tenant_id, whatsapp_message_id) DO NOTHING"
    f" RETURNING {r.MESSAGE_COLS}),"
    " touched AS (UPDATE conversations SET updated_at = $10,"
    " last_message_at = GREATEST(last_message_at, $9),"
    " last_inbound_at = CASE WHEN $12 = 'inbound'"
    " THEN GREATEST(last_inbound_at, $9) ELSE last_inbound_at END,"
    " inbound_count = inbound_count + CASE WHEN $12 = 'inbound' THEN 1 ELSE 0 END"
    f" WHERE id = (SELECT conversation_id FROM ins) RETURNING {r.CONVERSATION_COLS}),"
    f" m AS (SELECT {r.MESSAGE_COLS} FROM ins UNION ALL SELECT {r.MESSAGE_COLS} FROM messages"
    " WHERE tenant_id = $1 AND whatsapp_message_id = $4),"
    f" c AS (SELECT {r.CONVERSATION_COLS} FROM touched UNION ALL"
    f" SELECT {r.CONVERSATION_COLS} FROM conversations"
    " WHERE id = (SELECT id FROM conv) AND NOT EXISTS (SELECT 1 FROM touched))"
    f" SELECT {r.prefixed('m', r.MESSAGE_COLS)}, {r.prefixed('c', r.CONVERSATION_COLS)},"
    # Whether an edit, deletion or reaction of this new message arrived before it: the
    # rare case that costs more statements, answered here at no extra round trip.
    " EXISTS (SELECT 1 FROM ins) AND EXISTS (SELECT 1 FROM pending_changes p"
    " WHERE p.tenant_id = $1 AND p.target_id = $4)"
    " FROM m CROSS JOIN c"
)
# Fallback: statement 2 found the WhatsApp id taken by a transaction that committed after
# its snapshot; ON CONFLICT waited for that commit, so this read sees it.
_REPLAY: Final = (
    f"SELECT {r.prefixed('m', r.MESSAGE_COLS)}, {r.prefixed('c', r.CONVERSATION_COLS)}, false"
    " FROM messages m, conversations c WHERE m.tenant_id = $1"
    " AND m.whatsapp_message_id = $3 AND c.tenant_id = $1 AND c.contact_id = $2"
)


def inbound(record: InboundRecord, now: datetime) -> Steps[InboundResult]:
    """Steps of ``record_inbound`` for PostgreSQL; return the result.

    The foreign key error of an unknown tenant, or of another tenant's account when the
    conversation is created, is raised by the driver at statement 1.
    """
    tenant_id, wamid, message_id = record.tenant_id, record.whatsapp_message_id, new_id()
    contact = (new_id(), tenant_id, record.phone_number, record.contact_name or None, now)
    k = yield one(_CONTACT, *contact, new_id(), record.account_id)
    direction, status = record_direction(record)
    body = (record.type, record.content or "", record.metadata, status)
    row = yield one(
        _MESSAGE,
        *(tenant_id, k[0], message_id, wamid, *body, as_utc(record.timestamp), now, record.error),
        direction,
    )
    if row is None:
        row = yield one(_REPLAY, tenant_id, k[0], wamid)
    width = r.MESSAGE_WIDTH
    message_row = row[:width]
    if direction == "outbound" and message_row[0] == message_id:
        # An echo whose status came first (echoes only: an extra statement for them).
        message_row = (yield from pending.take(tenant_id, wamid)) or message_row
    if row[-1]:
        message_row, _ = yield from changes.take(message_row, POSTGRES)
    stored = r.message(message_row, POSTGRES)
    who = Contact(k[0], tenant_id, k[1], k[2])
    conversation = r.conversation_of(row[width:-1], who, POSTGRES)
    return InboundResult(conversation, bool(k[3]), stored, stored.id == message_id)
