"""Read positions: how far each agent has read each conversation, in SQL both databases run.

A conversation counts the customer's messages (``conversations.inbound_count``, raised by
``record_inbound`` in the message's own write); an agent's read position is the value of that
count they have read up to (``read_positions``). Unread = count - position, so counting costs
an inbound message one ``+ 1`` in a statement it runs anyway, and nothing per agent.

``ReadPositionsSQL`` is mixed into ``SQLStorage``: the methods of the ``Storage`` contract's
"unread counters" section, written with the same steps and ``_run`` as the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from . import _rows as r
from ._common import utcnow
from ._dialect import Dialect
from ._events import LoggedEvent, described
from ._records import Message, NotFound
from ._steps import Steps, one, rows

__all__ = ["ReadResult", "ReadPositionsSQL"]


@dataclass(frozen=True, slots=True)
class ReadResult:
    """What ``Storage.read_conversation`` did.

    ``inbound_count`` is the conversation's count of customer messages, ``position`` the
    reader's stored position afterwards (never lower than before), so ``unread`` is what is
    left. ``read`` holds the customer's messages this read turned from DELIVERED to READ (the
    first agent to read them), oldest first; ``receipts`` is the account's setting for
    marking them read on WhatsApp too, ``account_id`` that account.
    """

    conversation_id: str
    inbound_count: int
    position: int
    read: list[Message]
    receipts: bool
    account_id: str

    @property
    def unread(self) -> int:
        """Customer messages the reader has not read (never negative)."""
        return max(0, self.inbound_count - self.position)


_CONVERSATION = (
    "SELECT c.inbound_count, a.read_receipts, c.account_id FROM conversations c"
    " JOIN whatsapp_accounts a ON a.id = c.account_id WHERE c.tenant_id = ? AND c.id = ?"
)
# Forward only: a position lower than the stored one leaves it.
_UPSERT_POSITION = (
    "INSERT INTO read_positions (user_id, conversation_id, tenant_id, position, updated_at)"
    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id, conversation_id) DO UPDATE SET"
    " position = CASE WHEN excluded.position > read_positions.position"
    " THEN excluded.position ELSE read_positions.position END,"
    " updated_at = excluded.updated_at RETURNING position"
)
_UP_TO = "(timestamp < ? OR (timestamp = ? AND id <= ?))"


def read_steps(
    tenant_id: str, user_id: str, conversation_id: str, message_id: str | None, d: Dialect
) -> Steps[ReadResult | None]:
    """Steps of ``read_conversation`` (one transaction)."""
    conv = yield one(_CONVERSATION, tenant_id, conversation_id)
    if conv is None:
        return None
    count = int(conv[0])
    bound: tuple[Any, ...] = ()
    position = count
    if message_id is not None:
        target = yield one(
            "SELECT timestamp, id FROM messages WHERE tenant_id = ? AND conversation_id = ?"
            " AND id = ?",
            tenant_id,
            conversation_id,
            message_id,
        )
        if target is None:
            raise NotFound(f"no message {message_id!r} in conversation {conversation_id!r}")
        bound = (target[0], target[0], target[1])
        # Only a read up to a message counts rows, and only that conversation's (indexed).
        counted = yield one(
            "SELECT count(*) FROM messages WHERE conversation_id = ? AND direction = 'inbound'"
            f" AND {_UP_TO}",
            conversation_id,
            *bound,
        )
        position = min(count, int(counted[0]))
    stored = yield one(_UPSERT_POSITION, user_id, conversation_id, tenant_id, position, utcnow())
    changed = yield rows(
        "UPDATE messages SET status = 'READ' WHERE tenant_id = ? AND conversation_id = ?"
        " AND direction = 'inbound' AND status = 'DELIVERED'"
        + (f" AND {_UP_TO}" if bound else "")
        + f" RETURNING {r.MESSAGE_COLS}",
        tenant_id,
        conversation_id,
        *bound,
    )
    read = sorted((r.message(row, d) for row in changed), key=lambda m: (m.timestamp, m.id))
    return ReadResult(conversation_id, count, int(stored[0]), read, bool(conv[1]), str(conv[2]))


class ReadPositionsSQL:
    """The unread-counter methods of ``SQLStorage`` (see ``Storage`` for the contract)."""

    dialect: ClassVar[Dialect]
    _run: Any  # SQLStorage._run

    async def read_conversation(
        self,
        tenant_id: str,
        user_id: str,
        conversation_id: str,
        message_id: str | None = None,
        *,
        describe: Callable[[list[Message]], Sequence[LoggedEvent]] | None = None,
    ) -> ReadResult | None:
        steps = read_steps(tenant_id, user_id, conversation_id, message_id, self.dialect)
        if describe is not None:
            tell = describe

            def events(result: ReadResult | None) -> Sequence[LoggedEvent]:
                return tell(result.read) if result is not None and result.read else ()

            steps = described(steps, events, utcnow())
        result: ReadResult | None = await self._run(steps)
        return result

    async def unread_conversations(
        self, tenant_id: str, user_id: str, *, visible_to: str | None = None
    ) -> list[tuple[str, int, int]]:
        where = "" if visible_to is None else " AND (c.assignee_id IS NULL OR c.assignee_id = ?)"
        found: Sequence[r.Row] = await self._run(
            _single_rows(
                "SELECT c.id, c.inbound_count, coalesce(p.position, 0) FROM conversations c"
                " LEFT JOIN read_positions p ON p.conversation_id = c.id AND p.user_id = ?"
                f" WHERE c.tenant_id = ?{where} AND c.inbound_count > coalesce(p.position, 0)",
                user_id,
                tenant_id,
                *(() if visible_to is None else (visible_to,)),
            ),
            "read",
        )
        return [(str(row[0]), int(row[1]), int(row[2])) for row in found]

    async def unread_conversations_of(
        self, tenant_id: str, user_ids: Sequence[str], *, visible_only: bool
    ) -> list[tuple[str, str, int, int]]:
        # One parameter for the whole id list (the dialect's id set, over text ids here).
        in_set = self.dialect.in_id_set.replace("bigint[]", "text[]")
        mine = " AND (c.assignee_id IS NULL OR c.assignee_id = u.id)" if visible_only else ""
        found: Sequence[r.Row] = await self._run(
            _single_rows(
                "SELECT u.id, c.id, c.inbound_count, coalesce(p.position, 0) FROM users u"
                " JOIN conversations c ON c.tenant_id = u.tenant_id"
                " LEFT JOIN read_positions p ON p.conversation_id = c.id AND p.user_id = u.id"
                f" WHERE u.tenant_id = ? AND u.id {in_set}"
                f" AND c.inbound_count > coalesce(p.position, 0){mine}",
                tenant_id,
                [str(u) for u in user_ids],
            ),
            "read",
        )
        return [(str(row[0]), str(row[1]), int(row[2]), int(row[3])) for row in found]

    async def read_positions(
        self, tenant_id: str, conversation_id: str
    ) -> tuple[int, dict[str, int]] | None:
        found: Sequence[r.Row] = await self._run(
            _single_rows(
                "SELECT c.inbound_count, p.user_id, p.position FROM conversations c"
                " LEFT JOIN read_positions p ON p.conversation_id = c.id"
                " WHERE c.tenant_id = ? AND c.id = ?",
                tenant_id,
                conversation_id,
            ),
            "read",
        )
        if not found:
            return None
        positions = {str(row[1]): int(row[2]) for row in found if row[1] is not None}
        return int(found[0][0]), positions

    async def set_read_receipts(self, tenant_id: str, account_id: str, enabled: bool) -> bool:
        changed = await self._run(
            _single_one(
                "UPDATE whatsapp_accounts SET read_receipts = ? WHERE tenant_id = ? AND id = ?"
                " RETURNING id",
                bool(enabled),
                tenant_id,
                account_id,
            ),
            "autocommit",
        )
        return changed is not None


def _single_rows(sql: str, *args: Any) -> Steps[list[r.Row]]:
    found: list[r.Row] = yield rows(sql, *args)
    return found


def _single_one(sql: str, *args: Any) -> Steps[r.Row | None]:
    found: r.Row | None = yield one(sql, *args)
    return found
