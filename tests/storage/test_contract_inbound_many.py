"""The storage contract for ``record_inbound_many``: several inbound messages in one call.

Part of the contract suite (``test_contract.py``): the same tests on every implementation,
on asyncio because asyncpg is asyncio-only. Each record has ``record_inbound``'s semantics
on its own; a refused record gets its error in its place and does not undo the others.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from storage import (
    Account,
    InboundRecord,
    InboundResult,
    NotFound,
    Storage,
    StorageError,
    Tenant,
)

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("anyio_backend", ["asyncio"])]

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def record(
    tenant_id: str,
    account_id: str,
    wamid: str,
    at: datetime,
    *,
    phone: str = "5511999990000",
    name: str | None = "Ana",
    content: str | None = "olá",
) -> InboundRecord:
    return InboundRecord(
        tenant_id=tenant_id,
        account_id=account_id,
        phone_number=phone,
        contact_name=name,
        whatsapp_message_id=wamid,
        type="TEXT",
        content=content,
        metadata={"profile": {"name": name}, "wamid": wamid},
        timestamp=at,
    )


async def make_account(storage: Storage) -> tuple[Tenant, Account]:
    tenant = await storage.create_tenant("Acme")
    return tenant, await storage.add_account(tenant.id, f"pn-{tenant.id}")


async def record_all(storage: Storage, records: list[InboundRecord]) -> list[InboundResult]:
    """``record_inbound_many`` for a batch where every record must be accepted."""
    results = await storage.record_inbound_many(records)
    assert len(results) == len(records)
    accepted = [result for result in results if isinstance(result, InboundResult)]
    assert accepted == results, f"refused: {results}"
    return accepted


async def test_record_inbound_many_stores_each_record_in_order(storage: Storage) -> None:
    tenant, account = await make_account(storage)
    phones = [f"55119000{i}" for i in range(4)]
    batch = [
        record(
            tenant.id,
            account.id,
            f"wamid.{i}",
            T0 + timedelta(seconds=i),
            phone=phone,
            name=f"C{i}",
            content=f"m{i}",
        )
        for i, phone in enumerate(phones)
    ]
    results = await record_all(storage, batch)
    for i, (sent, result) in enumerate(zip(batch, results, strict=True)):
        assert result.message_created and result.conversation_created
        message, conv = result.message, result.conversation
        # Each slot is the answer for ITS record, not another one of the batch.
        assert (message.whatsapp_message_id, message.content) == (f"wamid.{i}", f"m{i}")
        assert (message.direction, message.status, message.type) == ("inbound", "DELIVERED", "TEXT")
        assert message.metadata == sent.metadata and message.timestamp == sent.timestamp
        assert (conv.contact.phone_number, conv.contact.name) == (phones[i], f"C{i}")
        assert (conv.tenant_id, conv.account_id) == (tenant.id, account.id)
        assert (message.conversation_id, message.contact_id) == (conv.id, conv.contact_id)
        assert conv.last_message_at == sent.timestamp
        # What it returns is what is stored.
        assert await storage.get_conversation(tenant.id, conv.id) == conv
        assert await storage.get_message(tenant.id, message.id) == message
    assert len({result.conversation.id for result in results}) == len(phones)
    assert await storage.count_messages(tenant.id) == len(phones)

    # A later batch on the same conversations touches them and makes no new ones.
    later = T0 + timedelta(minutes=5)
    again = await record_all(
        storage,
        [
            record(
                tenant.id,
                account.id,
                f"wamid.next.{i}",
                later + timedelta(seconds=i),
                phone=phone,
                name=None,
            )
            for i, phone in enumerate(phones)
        ],
    )
    for i, (first, second) in enumerate(zip(results, again, strict=True)):
        assert second.message_created and not second.conversation_created
        assert second.conversation.id == first.conversation.id
        assert second.conversation.last_message_at == later + timedelta(seconds=i)
        assert second.conversation.contact.name == f"C{i}"  # no name keeps the stored one
        stored = await storage.get_conversation(tenant.id, first.conversation.id)
        assert stored == second.conversation
    assert await storage.count_messages(tenant.id) == 2 * len(phones)


async def test_record_inbound_many_replay_in_a_later_batch_changes_nothing(
    storage: Storage,
) -> None:
    tenant, account = await make_account(storage)
    first = await record_all(
        storage,
        [
            record(tenant.id, account.id, "wamid.a", T0, phone="5501"),
            record(tenant.id, account.id, "wamid.b", T0, phone="5502"),
        ],
    )
    replayed_at = T0 + timedelta(hours=1)
    second = await record_all(
        storage,
        [
            record(tenant.id, account.id, "wamid.a", replayed_at, phone="5501"),
            record(tenant.id, account.id, "wamid.c", replayed_at, phone="5503"),
        ],
    )
    replay, new = second
    assert not replay.message_created and not replay.conversation_created
    assert replay.message == first[0].message
    # Not touched: neither last_message_at nor updated_at moves on a replay.
    assert replay.conversation == first[0].conversation
    assert await storage.get_conversation(tenant.id, replay.conversation.id) == replay.conversation
    assert new.message_created and new.conversation_created
    assert new.message.whatsapp_message_id == "wamid.c"
    assert await storage.count_messages(tenant.id) == 3
    page, _ = await storage.list_messages(tenant.id, first[0].conversation.id)
    assert [m.whatsapp_message_id for m in page] == ["wamid.a"]


async def test_record_inbound_many_refused_record_does_not_undo_the_others(
    storage: Storage,
) -> None:
    mine, my_account = await make_account(storage)
    _, their_account = await make_account(storage)
    batch = [
        record(mine.id, my_account.id, "wamid.1", T0, phone="5501"),
        record("no-such-tenant", my_account.id, "wamid.2", T0, phone="5502"),
        record(mine.id, my_account.id, "wamid.3", T0, phone="5503"),
        # Another tenant's account for a new contact: refused when creating the conversation.
        record(mine.id, their_account.id, "wamid.4", T0, phone="5504", name="Bo"),
        record(mine.id, my_account.id, "wamid.5", T0, phone="5505"),
    ]
    results = await storage.record_inbound_many(batch)
    assert len(results) == len(batch)
    for refused in (results[1], results[3]):
        # Handed back in its slot, not raised.
        assert isinstance(refused, NotFound) and isinstance(refused, StorageError)
    stored = [results[0], results[2], results[4]]
    for wamid, result in zip(["wamid.1", "wamid.3", "wamid.5"], stored, strict=True):
        assert isinstance(result, InboundResult)
        assert result.message_created and result.message.whatsapp_message_id == wamid
        assert await storage.get_message(mine.id, result.message.id) == result.message
        assert await storage.get_conversation(mine.id, result.conversation.id) == (
            result.conversation
        )
    assert await storage.count_messages(mine.id) == 3
    assert await storage.count_messages() == 3
    # The refused record left nothing behind: not even the contact it would have named.
    assert (await storage.upsert_contact(mine.id, "5504", None)).name is None


async def test_record_inbound_many_of_nothing_is_nothing(storage: Storage) -> None:
    assert await storage.record_inbound_many([]) == []
    assert await storage.count_messages() == 0


async def test_an_inbound_error_is_stored_on_its_message(storage: Storage) -> None:
    tenant, account = await make_account(storage)
    error = {"code": 131000, "title": "Something went wrong", "details": "try again"}
    plain = record(tenant.id, account.id, "wamid.ok", T0, phone="551100")
    failing = replace(record(tenant.id, account.id, "wamid.err", T0, phone="551101"), error=error)
    ok, bad = await record_all(storage, [plain, failing])
    assert ok.message.error is None
    assert bad.message.error == error
    stored = await storage.get_message(tenant.id, bad.message.id)
    assert stored is not None and stored.error == error
    # One record alone takes the single-record path.
    alone = await storage.record_inbound(
        tenant_id=tenant.id,
        account_id=account.id,
        phone_number="551102",
        contact_name=None,
        whatsapp_message_id="wamid.alone",
        type="UNSUPPORTED",
        content="",
        metadata={},
        timestamp=T0,
        error=error,
    )
    assert alone.message.error == error
