"""Column lists and the mappers from a selected row to a record, for both databases.

Rows are read by position (``sqlite3.Row`` and ``asyncpg.Record`` both allow it); stored
times and JSON are read through the :class:`~storage._dialect.Dialect`, the only thing that
differs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from ._dialect import Dialect
from ._records import Account, Contact, Conversation, DeadLetter, InboxItem, Message, Tenant, User

Row = Sequence[Any]

TENANT_COLS: Final = "id, name, created_at"
USER_COLS: Final = "id, tenant_id, email, name, role, created_at"
ACCOUNT_COLS: Final = (
    "id, tenant_id, phone_number_id, verify_token, app_secret, access_token, created_at"
)
CONTACT_COLS: Final = "id, tenant_id, phone_number, name"
# What a new message is written with; MESSAGE_COLS (what is read) adds what happens to it
# afterwards, which a new message does not have yet.
MESSAGE_INSERT_COLS: Final = (
    "id, tenant_id, conversation_id, contact_id, whatsapp_message_id, direction, type,"
    " content, metadata, status, error, timestamp, created_at"
)
MESSAGE_COLS: Final = f"{MESSAGE_INSERT_COLS}, reactions, edited_at, deleted_at"
MESSAGE_WIDTH: Final = 16
CONVERSATION_COLS: Final = (
    "id, tenant_id, contact_id, account_id, stage, assignee_id, last_message_at, created_at,"
    " updated_at, last_inbound_at, version, inbound_count"
)
INBOX_COLS: Final = "id, body, received_at, state, attempts, error"
DEAD_LETTER_COLS: Final = "id, kind, payload, error, created_at"
# A conversation with its contact's phone number and name (columns 11 and 12).
CONVERSATION_SELECT: Final = (
    "SELECT c.id, c.tenant_id, c.contact_id, c.account_id, c.stage, c.assignee_id,"
    " c.last_message_at, c.created_at, c.updated_at, c.last_inbound_at, c.version,"
    " k.phone_number, k.name, c.inbound_count"
    " FROM conversations c JOIN contacts k ON k.id = c.contact_id"
)


def prefixed(alias: str, cols: str) -> str:
    """Return the column list ``cols`` with each name qualified by ``alias``."""
    return ", ".join(f"{alias}.{col.strip()}" for col in cols.split(","))


def tenant(row: Row, d: Dialect) -> Tenant:
    """Return the Tenant of a row selected with TENANT_COLS."""
    return Tenant(row[0], row[1], d.time(row[2]))


def user(row: Row, d: Dialect) -> User:
    """Return the User of a row selected with USER_COLS (extra columns are ignored)."""
    return User(row[0], row[1], row[2], row[3], row[4], d.time(row[5]))


def account(row: Row, d: Dialect) -> Account:
    """Return the Account of a row selected with ACCOUNT_COLS."""
    return Account(row[0], row[1], row[2], row[3], row[4], row[5], d.time(row[6]))


def contact(row: Row) -> Contact:
    """Return the Contact of a row selected with CONTACT_COLS."""
    return Contact(row[0], row[1], row[2], row[3])


def conversation_of(row: Row, who: Contact, d: Dialect) -> Conversation:
    """Return the Conversation of a row selected with CONVERSATION_COLS, with its contact."""
    return Conversation(
        id=row[0],
        tenant_id=row[1],
        contact_id=row[2],
        account_id=row[3],
        stage=row[4],
        assignee_id=row[5],
        last_message_at=None if row[6] is None else d.time(row[6]),
        created_at=d.time(row[7]),
        updated_at=d.time(row[8]),
        contact=who,
        last_inbound_at=None if row[9] is None else d.time(row[9]),
        version=int(row[10]),
        inbound_count=int(row[11]),
    )


def conversation(row: Row, d: Dialect) -> Conversation:
    """Return the Conversation (with its contact) of a CONVERSATION_SELECT row."""
    # Its contact's columns come before inbound_count, which conversation_of reads at 11.
    return conversation_of((*row[:11], row[13]), Contact(row[2], row[1], row[11], row[12]), d)


def message(row: Row, d: Dialect) -> Message:
    """Return the Message of a row selected with MESSAGE_COLS."""
    return Message(
        id=row[0],
        tenant_id=row[1],
        conversation_id=row[2],
        contact_id=row[3],
        whatsapp_message_id=row[4],
        direction=row[5],
        type=row[6],
        content=row[7],
        metadata=d.json(row[8]),
        status=row[9],
        error=d.json_or_none(row[10]),
        timestamp=d.time(row[11]),
        created_at=d.time(row[12]),
        reactions=d.json_or_none(row[13]) or {},
        edited_at=None if row[14] is None else d.time(row[14]),
        deleted_at=None if row[15] is None else d.time(row[15]),
    )


def inbox_item(row: Row, d: Dialect) -> InboxItem:
    """Return the InboxItem of a row selected with INBOX_COLS."""
    return InboxItem(row[0], bytes(row[1]), d.time(row[2]), row[3], row[4], row[5])


def dead_letter(row: Row, d: Dialect) -> DeadLetter:
    """Return the DeadLetter of a row selected with DEAD_LETTER_COLS."""
    return DeadLetter(row[0], row[1], d.json(row[2]), row[3], d.time(row[4]))
