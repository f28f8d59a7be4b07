"""Every storage method, written once in SQL both databases run: ``SQLStorage``.

An implementation subclasses it with its :class:`~storage._dialect.Dialect` and one way to
run steps (:meth:`SQLStorage._run`), plus what only it can do (opening, migrating, closing,
and any method it does better its own way). The SQL uses ``?`` placeholders and passes
datetimes and JSON values as Python objects; the dialect and the driver do the rest.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar, Final, Literal, TypeVar

import anyio.to_thread

from . import _changes as changes
from . import _common as c
from . import _events as ev
from . import _pending as pending
from . import _rows as r
from . import _transactions as tx
from ._audit import AuditStorage
from ._base import Storage
from ._dialect import Dialect
from ._reads import ReadPositionsSQL
from ._records import (
    INBOX_STATES,
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
    NotFound,
    StorageError,
    StorageUnavailable,
    Tenant,
    Unset,
    User,
    VersionConflict,
)
from ._steps import Steps, one, rows, run, single

T = TypeVar("T")
Mode = Literal["read", "transaction", "autocommit"]
_RANK: Final = c.STATUS_RANK_SQL


class SQLStorage(ReadPositionsSQL, AuditStorage, Storage):
    """The shared implementation; subclasses supply ``dialect`` and :meth:`_run`."""

    dialect: ClassVar[Dialect]

    @abstractmethod
    async def _run(
        self, steps: Steps[T], mode: Mode = "transaction", *, durable: bool = False
    ) -> T:
        """Drive ``steps`` on a connection and return their outcome.

        ``mode``: "read" runs without a write transaction; "transaction" runs every step in
        ONE transaction; "autocommit" writes whose statements are each atomic on their own
        and need nothing around them (PostgreSQL runs them so, saving BEGIN and COMMIT;
        SQLite still takes its write lock, see ``_transactions.py``). ``durable`` commits as
        ``inbox_append`` must (see the SQLite module). Raises the storage errors.
        """

    async def _one(self, sql: str, *args: Any) -> r.Row | None:
        return await self._run(single(one(sql, *args)), "read")

    async def _all(self, sql: str, *args: Any) -> list[r.Row]:
        return list(await self._run(single(rows(sql, *args)), "read"))

    async def _write_one(self, sql: str, *args: Any) -> r.Row | None:
        return await self._run(single(one(sql, *args)), "autocommit")

    async def _written(self, sql: str, *args: Any) -> r.Row:
        row = await self._write_one(sql, *args)
        assert row is not None  # INSERT ... RETURNING and upserts always return their row
        return row

    # -- lifecycle -------------------------------------------------------------------------

    async def ping(self) -> None:
        await self._one("SELECT 1")

    async def check_writable(self) -> None:
        await self._run(tx.write_probe(c.WRITE_PROBE_KEY, c.write_probe_value()), durable=True)

    # -- tenants, users, accounts ----------------------------------------------------------

    async def create_tenant(self, name: str) -> Tenant:
        row = await self._written(
            f"INSERT INTO tenants ({r.TENANT_COLS}) VALUES (?, ?, ?) RETURNING {r.TENANT_COLS}",
            *(c.new_id(), name, c.utcnow()),
        )
        return r.tenant(row, self.dialect)

    async def get_tenant(self, tenant_id: str) -> Tenant | None:
        row = await self._one(f"SELECT {r.TENANT_COLS} FROM tenants WHERE id = ?", tenant_id)
        return None if row is None else r.tenant(row, self.dialect)

    async def create_user(
        self,
        tenant_id: str,
        email: str,
        password: str,
        *,
        role: str = "agent",
        name: str | None = None,
    ) -> User:
        values = (c.new_id(), tenant_id, c.normalize_email(email), name, c.check_role(role))
        hashed = await anyio.to_thread.run_sync(c.hash_password, password)
        row = await self._written(
            f"INSERT INTO users ({r.USER_COLS}, password_hash) VALUES (?, ?, ?, ?, ?, ?, ?)"
            f" RETURNING {r.USER_COLS}",
            *(*values, c.utcnow(), hashed),
        )
        return r.user(row, self.dialect)

    async def authenticate(self, email: str, password: str) -> User | None:
        row = await self._one(
            f"SELECT {r.USER_COLS}, password_hash FROM users WHERE email = ?",
            email.strip().lower(),
        )
        ok = await c.check_password(password, None if row is None else row[6])
        return r.user(row, self.dialect) if ok and row is not None else None

    async def get_user(self, user_id: str) -> User | None:
        row = await self._one(f"SELECT {r.USER_COLS} FROM users WHERE id = ?", user_id)
        return None if row is None else r.user(row, self.dialect)

    async def list_users(self, tenant_id: str) -> list[User]:
        rows = await self._all(
            f"SELECT {r.USER_COLS} FROM users WHERE tenant_id = ? ORDER BY email", tenant_id
        )
        return [r.user(row, self.dialect) for row in rows]

    async def add_account(
        self,
        tenant_id: str,
        phone_number_id: str,
        *,
        verify_token: str | None = None,
        app_secret: str | None = None,
        access_token: str | None = None,
    ) -> Account:
        secrets = (verify_token, app_secret, access_token)
        row = await self._written(
            f"INSERT INTO whatsapp_accounts ({r.ACCOUNT_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
            f" RETURNING {r.ACCOUNT_COLS}",
            *(c.new_id(), tenant_id, phone_number_id, *secrets, c.utcnow()),
        )
        return r.account(row, self.dialect)

    async def get_account(self, phone_number_id: str) -> Account | None:
        return await self._account("phone_number_id = ?", phone_number_id)

    async def get_account_by_id(self, tenant_id: str, account_id: str) -> Account | None:
        return await self._account("tenant_id = ? AND id = ?", tenant_id, account_id)

    async def find_account_by_verify_token(self, token: str) -> Account | None:
        return await self._account("verify_token = ? ORDER BY created_at, id LIMIT 1", token)

    async def _account(self, where: str, *args: Any) -> Account | None:
        sql = f"SELECT {r.ACCOUNT_COLS} FROM whatsapp_accounts WHERE {where}"
        row = await self._one(sql, *args)
        return None if row is None else r.account(row, self.dialect)

    # -- durable inbox ---------------------------------------------------------------------

    async def inbox_append(self, bodies: Sequence[bytes]) -> list[int]:
        batch = c.check_bodies(bodies)
        if not batch:
            return []
        return await self._run(tx.append_inbox(batch, c.utcnow()), durable=True)

    async def intake_many(
        self, items: Sequence[tuple[bytes, Sequence[InboundRecord]]]
    ) -> list[tuple[int, list[InboundResult]]]:
        if not any(records for _, records in items):
            return [(i, []) for i in await self.inbox_append([body for body, _ in items])]
        bodies = c.check_bodies([body for body, _ in items])
        steps = self._intake(bodies, [records for _, records in items], c.utcnow())
        return await self._run(steps, durable=True)

    def _intake(
        self, bodies: Sequence[bytes], records: Sequence[Sequence[InboundRecord]], now: datetime
    ) -> Steps[list[tuple[int, list[InboundResult]]]]:
        ids = []
        for body, held in zip(bodies, records, strict=True):
            ids.append((yield from tx.inbox_row(body, now, "done" if held else "pending")))
        # Every body's records in order, as one batch: one event numbering, one log INSERT.
        results = iter((yield from self._inbound_batch([r for held in records for r in held], now)))
        return [(i, [next(results) for _ in held]) for i, held in zip(ids, records, strict=True)]

    async def inbox_pending(self, *, after_id: int = 0, limit: int = 500) -> list[InboxItem]:
        found = await self._all(
            f"SELECT {r.INBOX_COLS} FROM inbox WHERE state = 'pending' AND id > ?"
            " ORDER BY id LIMIT ?",
            *(after_id, c.check_limit(limit)),
        )
        return [r.inbox_item(row, self.dialect) for row in found]

    async def inbox_mark(self, ids: Sequence[int], state: str, *, error: str | None = None) -> None:
        c.check_inbox_state(state)
        # The ids are one parameter (the dialect's id set): one statement for any count.
        await self._write_one(
            "UPDATE inbox SET state = ?, error = ?,"
            " attempts = attempts + (CASE WHEN CAST(? AS TEXT) = 'failed' THEN 1 ELSE 0 END)"
            f" WHERE id {self.dialect.in_id_set}",
            *(state, error, state, [int(i) for i in ids]),
        )

    async def inbox_counts(self) -> dict[str, int]:
        found = await self._all("SELECT state, count(*) FROM inbox GROUP BY state")
        counts = dict.fromkeys(INBOX_STATES, 0)
        counts.update({row[0]: int(row[1]) for row in found})
        return counts

    async def inbox_prune(self, *, received_before: datetime, limit: int = 1000) -> int:
        # The partial index inbox_finished (migration 5) makes this a range scan of the
        # oldest finished rows, however many newer ones the retention keeps.
        deleted = await self._run(
            single(
                rows(
                    "DELETE FROM inbox WHERE id IN (SELECT id FROM inbox"
                    " WHERE state IN ('done', 'unroutable') AND received_at < ?"
                    " ORDER BY received_at LIMIT ?) RETURNING id",
                    *(c.as_utc(received_before), c.check_limit(limit)),
                )
            ),
            "autocommit",
        )
        return len(deleted)

    # -- contacts and conversations --------------------------------------------------------

    async def upsert_contact(self, tenant_id: str, phone_number: str, name: str | None) -> Contact:
        values = (c.new_id(), tenant_id, phone_number, name or None, c.utcnow())
        return r.contact(await self._written(tx.UPSERT_CONTACT, *values))

    async def change_contact_number(
        self, tenant_id: str, phone_number: str, new_phone_number: str
    ) -> Contact | None:
        row = await self._write_one(
            "UPDATE contacts SET phone_number = ? WHERE tenant_id = ? AND phone_number = ?"
            " AND NOT EXISTS (SELECT 1 FROM contacts k WHERE k.tenant_id = ?"
            f" AND k.phone_number = ?) RETURNING {r.CONTACT_COLS}",
            *(new_phone_number, tenant_id, phone_number, tenant_id, new_phone_number),
        )
        return None if row is None else r.contact(row)

    async def get_or_create_conversation(
        self, tenant_id: str, contact_id: str, account_id: str
    ) -> tuple[Conversation, bool]:
        steps = tx.get_or_create_conversation(tenant_id, contact_id, account_id, c.utcnow())
        row, created = await self._run(steps, "autocommit")
        return r.conversation(row, self.dialect), created

    async def get_conversation(self, tenant_id: str, conversation_id: str) -> Conversation | None:
        row = await self._one(
            f"{r.CONVERSATION_SELECT} WHERE c.tenant_id = ? AND c.id = ?",
            *(tenant_id, conversation_id),
        )
        return None if row is None else r.conversation(row, self.dialect)

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
        args: list[Any] = []
        where = c.conversation_filters(
            tenant_id, stage, assignee_id, cursor, c.binder(args), visible_to=visible_to
        )
        found = await self._all(
            f"{r.CONVERSATION_SELECT} WHERE {where}"
            " ORDER BY c.last_message_at DESC NULLS LAST, c.id LIMIT ?",
            *(*args, c.check_limit(limit) + 1),
        )
        return c.next_page(
            [r.conversation(row, self.dialect) for row in found],
            limit,
            "conversations",
            lambda conv: (conv.last_message_at, conv.id),
        )

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
        changes: dict[str, Any] = {"updated_at": c.utcnow()}
        if stage is not None:
            changes["stage"] = stage
        if assignee_id is not UNSET:
            changes["assignee_id"] = assignee_id
        if expected_version is not None:
            return await self._update_conversation_if(
                changes, tenant_id, conversation_id, expected_version, describe
            )
        steps = tx.update_conversation(changes, tenant_id, conversation_id)
        if describe is None:
            row = await self._run(steps, "autocommit")
        else:
            d, told = self.dialect, describe

            def card(row: r.Row | None) -> ev.Events:
                return [] if row is None else told(r.conversation(row, d))

            row = await self._run(ev.described(steps, card, changes["updated_at"]))
        return None if row is None else r.conversation(row, self.dialect)

    async def _update_conversation_if(
        self,
        changes: dict[str, Any],
        tenant_id: str,
        conversation_id: str,
        expected: int,
        describe: ev.ConversationDescribe | None = None,
    ) -> Conversation | None:
        steps = tx.update_conversation_if(changes, tenant_id, conversation_id, expected)
        d = self.dialect

        def card(outcome: tuple[r.Row | None, bool]) -> ev.Events:
            row, updated = outcome
            if describe is None or row is None or not updated:
                return []
            return describe(r.conversation(row, d))

        row, updated = await self._run(ev.described(steps, card, changes["updated_at"]))
        if row is None:
            return None
        conversation = r.conversation(row, self.dialect)
        if not updated:
            raise VersionConflict(conversation)
        return conversation

    async def touch_conversation(self, conversation_id: str, at: datetime) -> None:
        when = c.as_utc(at)
        await self._write_one(tx.TOUCH_CONVERSATION, c.utcnow(), when, when, conversation_id)

    # -- messages --------------------------------------------------------------------------

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
        c.check_message(direction, status)
        keys = (c.new_id(), tenant_id, conversation_id, contact_id, whatsapp_message_id)
        body = (direction, type, content, metadata, status, None)
        values = (*keys, *body, c.as_utc(timestamp), c.utcnow())
        steps = ev.message_described(tx.write_message(values), describe, values[-1], self.dialect)
        outcome = await self._run(steps, "autocommit" if describe is None else "transaction")
        assert outcome is not None  # write_message always finds its row
        return r.message(outcome[0], self.dialect), outcome[1]

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
        record = InboundRecord(
            tenant_id,
            account_id,
            phone_number,
            contact_name,
            whatsapp_message_id,
            type,
            content,
            metadata,
            timestamp,
            error,
            direction,
            describe,
        )
        now = c.utcnow()
        return await self._run(ev.described(self._inbound(record, now), describe, now))

    def _inbound(self, record: InboundRecord, now: datetime) -> Steps[InboundResult]:
        """The steps of one inbound record (an implementation may have its own)."""
        return tx.inbound(record, now, self.dialect)

    def _inbound_batch(
        self, records: Sequence[InboundRecord], now: datetime
    ) -> Steps[list[InboundResult]]:
        results = []
        for record in records:
            results.append((yield from self._inbound(record, now)))
        # The batch's events in one numbering and one INSERT per chunk.
        events: list[ev.LoggedEvent] = []
        for record, result in zip(records, results, strict=True):
            if record.describe is not None:
                events.extend(record.describe(result))
        yield from ev.log(events, now)
        return results

    async def record_inbound_many(
        self, records: Sequence[InboundRecord]
    ) -> list[InboundResult | StorageError]:
        # One transaction (one commit) for the whole batch. A record the database refuses
        # (rare: an unknown tenant or account) rolls the batch back; the records are then
        # written one transaction each, so only that one fails.
        now = c.utcnow()
        if len(records) > 1:
            try:
                return list(await self._run(self._inbound_batch(records, now)))
            except StorageUnavailable:
                raise
            except StorageError:
                pass
        results: list[InboundResult | StorageError] = []
        for record in records:
            try:
                steps = ev.described(self._inbound(record, now), record.describe, now)
                results.append(await self._run(steps))
            except StorageUnavailable:
                raise
            except StorageError as exc:
                results.append(exc)
        return results

    async def get_message(self, tenant_id: str, message_id: str) -> Message | None:
        row = await self._one(
            f"SELECT {r.MESSAGE_COLS} FROM messages WHERE tenant_id = ? AND id = ?",
            *(tenant_id, message_id),
        )
        return None if row is None else r.message(row, self.dialect)

    async def list_messages(
        self,
        tenant_id: str,
        conversation_id: str,
        *,
        before: str | None = None,
        limit: int = 50,
    ) -> tuple[list[Message], str | None]:
        args: list[Any] = []
        where = c.message_filters(tenant_id, conversation_id, before, c.binder(args))
        found = await self._all(
            f"SELECT {r.MESSAGE_COLS} FROM messages m WHERE {where}"
            " ORDER BY m.timestamp DESC, m.id DESC LIMIT ?",
            *(*args, c.check_limit(limit) + 1),
        )
        return c.next_page(
            [r.message(row, self.dialect) for row in found],
            limit,
            "messages",
            lambda m: (m.timestamp, m.id),
        )

    async def update_message_status(
        self,
        tenant_id: str,
        whatsapp_message_id: str,
        status: str,
        *,
        error: dict[str, Any] | None = None,
    ) -> tuple[Message, bool] | None:
        steps = self._status_steps(tenant_id, whatsapp_message_id, status, error)
        return self._message_and_flag(await self._run(steps, "autocommit"))

    async def record_status(
        self,
        tenant_id: str,
        whatsapp_message_id: str,
        status: str,
        *,
        error: dict[str, Any] | None = None,
        describe: ev.MessageDescribe | None = None,
    ) -> tuple[Message, bool] | None:
        now = c.utcnow()
        applied = self._status_steps(tenant_id, whatsapp_message_id, status, error)
        steps = pending.or_keep(applied, tenant_id, whatsapp_message_id, status, error, now)
        # Autocommit (no BEGIN/COMMIT round trips on PostgreSQL for every status): each
        # statement is atomic, and a message that gets its id between the lookup and the
        # keep is caught by apply_pending_statuses, as the READ COMMITTED race is. With
        # events to log, one transaction: the event and its change commit together.
        if describe is None:
            return self._message_and_flag(await self._run(steps, "autocommit"))
        logged = ev.message_described(steps, describe, now, self.dialect)
        return self._message_and_flag(await self._run(logged))

    def _status_steps(
        self, tenant_id: str, whatsapp_message_id: str, status: str, error: dict[str, Any] | None
    ) -> Steps[tuple[r.Row, bool] | None]:
        rank = c.check_status_update(status)
        key = (tenant_id, whatsapp_message_id)
        return tx.set_status(
            f"status = ?, error = coalesce(?, error) WHERE tenant_id = ?"
            f" AND whatsapp_message_id = ? AND direction = 'outbound' AND {_RANK} < ?",
            (status, error, *key, rank),
            "tenant_id = ? AND whatsapp_message_id = ?",
            key,
        )

    async def mark_message_sent(
        self,
        message_id: str,
        whatsapp_message_id: str,
        *,
        describe: ev.MessageDescribe | None = None,
    ) -> Message:
        # The status webhook may have overtaken this: apply what was kept for the id, in the
        # same transaction (``_pending.py``).
        applied = tx.set_status(
            f"whatsapp_message_id = ?, status = CASE WHEN {_RANK} < 1 THEN 'SENT'"
            " ELSE status END WHERE id = ?",
            (whatsapp_message_id, message_id),
            "id = ?",
            (message_id,),
        )
        steps = ev.message_described(
            pending.then_take(applied), describe, c.utcnow(), self.dialect, always=True
        )
        result = self._message_and_flag(await self._run(steps))
        if result is None:
            raise NotFound(f"no message {message_id!r}")
        return result[0]

    async def apply_pending_statuses(
        self, *, limit: int = 500, describe: ev.MessageDescribe | None = None
    ) -> list[Message]:
        steps = pending.apply_pending(c.check_limit(limit))
        found = await self._run(ev.rows_described(steps, describe, c.utcnow(), self.dialect))
        return [r.message(row, self.dialect) for row in found]

    async def expire_pending_statuses(self, before: datetime) -> list[tuple[str, str, str]]:
        found = await self._run(pending.expire_pending(c.as_utc(before)), "autocommit")
        return [(str(row[0]), str(row[1]), str(row[2])) for row in found]

    async def apply_message_change(
        self, change: MessageChange, *, describe: ev.MessageDescribe | None = None
    ) -> tuple[Message, bool] | None:
        now = c.utcnow()
        steps = changes.apply(change, now, self.dialect)
        logged = ev.message_described(steps, describe, now, self.dialect)
        return self._message_and_flag(await self._run(logged))

    async def apply_pending_changes(
        self, *, limit: int = 500, describe: ev.MessageDescribe | None = None
    ) -> list[Message]:
        steps = changes.apply_pending(c.check_limit(limit), self.dialect)
        found = await self._run(ev.rows_described(steps, describe, c.utcnow(), self.dialect))
        return [r.message(row, self.dialect) for row in found]

    async def expire_pending_changes(self, before: datetime) -> list[tuple[str, str, str, str]]:
        found = await self._run(changes.expire_pending(c.as_utc(before)), "autocommit")
        return [(str(a), str(b), str(k), str(t)) for a, b, k, t in found]

    def _message_and_flag(self, result: tuple[r.Row, bool] | None) -> tuple[Message, bool] | None:
        return None if result is None else (r.message(result[0], self.dialect), result[1])

    async def mark_message_failed(
        self,
        message_id: str,
        error: dict[str, Any],
        *,
        describe: ev.MessageDescribe | None = None,
    ) -> Message:
        update = f"status = 'FAILED', error = ? WHERE id = ? AND {_RANK} < 9"
        if describe is None:
            result = await self._set_status(update, (error, message_id), "id = ?", (message_id,))
        else:
            steps = tx.set_status(update, (error, message_id), "id = ?", (message_id,))
            logged = ev.message_described(steps, describe, c.utcnow(), self.dialect, always=True)
            result = self._message_and_flag(await self._run(logged))
        if result is None:
            raise NotFound(f"no message {message_id!r}")
        return result[0]

    async def _set_status(
        self, update: str, args: tuple[Any, ...], where: str, key: tuple[Any, ...]
    ) -> tuple[Message, bool] | None:
        result = await self._run(tx.set_status(update, args, where, key), "autocommit")
        return None if result is None else (r.message(result[0], self.dialect), result[1])

    async def count_messages(self, tenant_id: str | None = None) -> int:
        where, args = ("", ()) if tenant_id is None else (" WHERE tenant_id = ?", (tenant_id,))
        row = await self._one(f"SELECT count(*) FROM messages{where}", *args)
        return 0 if row is None else int(row[0])

    # -- recovery bookkeeping --------------------------------------------------------------

    async def get_meta(self, key: str) -> str | None:
        row = await self._one("SELECT value FROM meta WHERE key = ?", key)
        return None if row is None else str(row[0])

    async def set_meta(self, key: str, value: str) -> None:
        await self._write_one(tx.SET_META, key, value)

    async def recent_messages(self, *, window_seconds: float, limit: int = 5000) -> list[Message]:
        steps = tx.recent_messages(window_seconds, limit, self.dialect)
        return [r.message(row, self.dialect) for row in await self._run(steps, "read")]

    async def pending_outbound(self, *, limit: int = 1000) -> list[Message]:
        found = await self._all(
            f"SELECT {r.MESSAGE_COLS} FROM messages"
            " WHERE status = 'PENDING' AND direction = 'outbound'"
            " ORDER BY created_at, id LIMIT ?",
            limit,
        )
        return [r.message(row, self.dialect) for row in found]

    # -- dead letters ----------------------------------------------------------------------

    async def add_dead_letter(self, kind: str, payload: dict[str, Any], error: str) -> int:
        row = await self._written(
            "INSERT INTO dead_letters (kind, payload, error, created_at)"
            " VALUES (?, ?, ?, ?) RETURNING id",
            *(kind, payload, error, c.utcnow()),
        )
        return int(row[0])

    async def list_dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        found = await self._all(
            f"SELECT {r.DEAD_LETTER_COLS} FROM dead_letters ORDER BY id DESC LIMIT ?",
            c.check_limit(limit),
        )
        return [r.dead_letter(row, self.dialect) for row in found]

    # -- the event log (storage/_events.py) ------------------------------------------------

    async def log_events(self, events: Sequence[ev.LoggedEvent]) -> None:
        if events:
            await self._run(ev.log(events, c.utcnow()))

    async def events_after(
        self, tenant_id: str, after: int, *, limit: int = 500
    ) -> list[ev.LoggedEvent]:
        found = await self._run(ev.after(tenant_id, int(after), c.check_limit(limit)), "read")
        return [ev.event(row, self.dialect) for row in found]

    async def event_high_seqs(self, tenant_id: str | None = None) -> dict[str, int]:
        where, args = ("", ()) if tenant_id is None else (" WHERE tenant_id = ?", (tenant_id,))
        found = await self._all(f"SELECT tenant_id, seq FROM event_seq{where}", *args)
        return {str(row[0]): int(row[1]) for row in found}

    async def event_oldest_seq(self, tenant_id: str) -> int | None:
        row = await self._one("SELECT min(seq) FROM events WHERE tenant_id = ?", tenant_id)
        return None if row is None or row[0] is None else int(row[0])

    async def prune_events(self, *, created_before: datetime, limit: int = 1000) -> int:
        deleted = await self._run(
            single(
                rows(
                    "DELETE FROM events WHERE (tenant_id, seq) IN (SELECT tenant_id, seq"
                    " FROM events WHERE created_at < ? ORDER BY seq LIMIT ?)"
                    " RETURNING seq",
                    *(c.as_utc(created_before), c.check_limit(limit)),
                )
            ),
            "autocommit",
        )
        return len(deleted)

    async def save_recovery_sessions(
        self, sessions: Sequence[tuple[str, str, str, Sequence[str]]]
    ) -> None:
        if not sessions:
            return
        now = c.utcnow()

        def steps() -> Steps[None]:
            for pid, tenant_id, user_id, joined in sessions:
                yield run(
                    "INSERT INTO recovery_sessions (pid, tenant_id, user_id, rooms, updated_at)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (pid) DO UPDATE"
                    " SET rooms = excluded.rooms, updated_at = excluded.updated_at",
                    *(pid, tenant_id, user_id, list(joined), now),
                )

        await self._run(steps())

    async def get_recovery_session(self, pid: str) -> tuple[str, str, list[str]] | None:
        row = await self._one(
            "SELECT tenant_id, user_id, rooms FROM recovery_sessions WHERE pid = ?", pid
        )
        if row is None:
            return None
        return str(row[0]), str(row[1]), list(self.dialect.json(row[2]))

    async def prune_recovery_sessions(self, *, updated_before: datetime) -> int:
        deleted = await self._run(
            single(
                rows(
                    "DELETE FROM recovery_sessions WHERE updated_at < ? RETURNING pid",
                    c.as_utc(updated_before),
                )
            ),
            "autocommit",
        )
        return len(deleted)
