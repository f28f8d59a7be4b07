"""The storage contract for ``record_inbound``, the inbound write path in one transaction.

Part of the contract suite (``test_contract.py``): the same tests on every implementation,
on asyncio because asyncpg is asyncio-only; ``test_sqlite.py`` runs SQLite on trio.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import anyio
import pytest

from storage import Account, InboundResult, NotFound, Storage, Tenant

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("anyio_backend", ["asyncio"])]

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


async def inbound(
    storage: Storage,
    tenant_id: str,
    account_id: str,
    wamid: str,
    at: datetime,
    *,
    phone: str = "5511999990000",
    name: str | None = "Ana",
    content: str | None = "olá",
) -> InboundResult:
    return await storage.record_inbound(
        tenant_id=tenant_id,
        account_id=account_id,
        phone_number=phone,
        contact_name=name,
        whatsapp_message_id=wamid,
        type="TEXT",
        content=content,
        metadata={"profile": {"name": name}, "n": [1, 2]},
        timestamp=at,
    )


async def make_account(storage: Storage) -> tuple[Tenant, Account]:
    tenant = await storage.create_tenant("Acme")
    return tenant, await storage.add_account(tenant.id, f"pn-{tenant.id}")


async def test_record_inbound_creates_contact_conversation_and_message(storage: Storage) -> None:
    tenant, account = await make_account(storage)
    result = await inbound(storage, tenant.id, account.id, "wamid.1", T0)
    assert result.conversation_created and result.message_created
    conv, message = result.conversation, result.message
    assert (conv.tenant_id, conv.account_id, conv.stage, conv.assignee_id) == (
        tenant.id,
        account.id,
        "new",
        None,
    )
    assert conv.last_message_at == T0
    assert (conv.contact.phone_number, conv.contact.name) == ("5511999990000", "Ana")
    assert (message.direction, message.status, message.type, message.error) == (
        "inbound",
        "DELIVERED",
        "TEXT",
        None,
    )
    assert (message.whatsapp_message_id, message.content, message.timestamp) == (
        "wamid.1",
        "olá",
        T0,
    )
    assert message.metadata == {"profile": {"name": "Ana"}, "n": [1, 2]}
    assert (message.conversation_id, message.contact_id) == (conv.id, conv.contact_id)
    # What it returns is what is stored, and the contact is the one upsert_contact knows.
    assert await storage.get_conversation(tenant.id, conv.id) == conv
    assert await storage.get_message(tenant.id, message.id) == message
    assert await storage.upsert_contact(tenant.id, "5511999990000", None) == conv.contact
    # A message without text (an image without caption) is stored with empty content.
    bare = await inbound(storage, tenant.id, account.id, "wamid.2", T0, content=None)
    assert bare.message.content == "" and bare.message_created


async def test_record_inbound_replay_changes_nothing(storage: Storage) -> None:
    tenant, account = await make_account(storage)
    first = await inbound(storage, tenant.id, account.id, "wamid.1", T0)
    again = await inbound(storage, tenant.id, account.id, "wamid.1", T0 + timedelta(hours=1))
    assert not again.message_created and not again.conversation_created
    assert again.message == first.message
    # Not touched: neither last_message_at nor updated_at moves on a replay.
    assert again.conversation == first.conversation
    assert await storage.get_conversation(tenant.id, first.conversation.id) == first.conversation
    assert await storage.count_messages(tenant.id) == 1


async def test_record_inbound_new_message_touches_the_same_conversation(storage: Storage) -> None:
    tenant, account = await make_account(storage)
    first = await inbound(storage, tenant.id, account.id, "wamid.1", T0)
    later = T0 + timedelta(minutes=5, microseconds=3)
    second = await inbound(storage, tenant.id, account.id, "wamid.2", later, name="")
    assert second.message_created and not second.conversation_created
    assert second.conversation.id == first.conversation.id
    assert second.conversation.last_message_at == later
    assert second.conversation.updated_at >= first.conversation.updated_at
    assert second.conversation.contact.name == "Ana"  # an empty name keeps the stored one
    assert second.message.id != first.message.id

    # A late arrival is stored with its own time but does not move the conversation back.
    late = await inbound(storage, tenant.id, account.id, "wamid.0", T0 - timedelta(days=1))
    assert late.message_created and late.message.timestamp == T0 - timedelta(days=1)
    assert late.conversation.last_message_at == later
    latest = later + timedelta(seconds=1)
    renamed = await inbound(storage, tenant.id, account.id, "wamid.3", latest, name="Ana Maria")
    assert renamed.conversation.contact.name == "Ana Maria"
    assert renamed.conversation.contact.id == first.conversation.contact_id
    assert await storage.get_conversation(tenant.id, first.conversation.id) == renamed.conversation
    page, _ = await storage.list_messages(tenant.id, first.conversation.id)
    assert [m.whatsapp_message_id for m in page] == ["wamid.3", "wamid.2", "wamid.1", "wamid.0"]


async def test_record_inbound_concurrent_first_messages_make_one_conversation(
    storage: Storage,
) -> None:
    tenant, account = await make_account(storage)
    results: list[InboundResult] = []

    async def one(i: int) -> None:
        at = T0 + timedelta(seconds=i)
        results.append(await inbound(storage, tenant.id, account.id, f"wamid.{i}", at))

    async with anyio.create_task_group() as tg:
        for i in range(20):
            tg.start_soon(one, i)
    assert sum(r.conversation_created for r in results) == 1
    assert len({r.conversation.id for r in results}) == 1
    assert all(r.message_created for r in results)
    assert len({r.message.id for r in results}) == 20
    assert await storage.count_messages(tenant.id) == 20
    stored = await storage.get_conversation(tenant.id, results[0].conversation.id)
    assert stored is not None and stored.last_message_at == T0 + timedelta(seconds=19)


async def test_record_inbound_concurrent_replays_store_one_message(storage: Storage) -> None:
    tenant, account = await make_account(storage)
    results: list[InboundResult] = []

    async def one(i: int) -> None:
        # Different senders on purpose: nothing but the WhatsApp id serialises these calls.
        phone = f"55{i}"
        results.append(await inbound(storage, tenant.id, account.id, "wamid.X", T0, phone=phone))

    async with anyio.create_task_group() as tg:
        for i in range(10):
            tg.start_soon(one, i)
    assert sum(r.message_created for r in results) == 1
    assert len({r.message.id for r in results}) == 1
    assert await storage.count_messages(tenant.id) == 1
    owner = next(r for r in results if r.message_created)
    for r in results:
        touched = r is owner
        assert (r.conversation.last_message_at == T0) == touched


async def test_record_inbound_is_tenant_isolated_and_all_or_nothing(storage: Storage) -> None:
    mine, my_account = await make_account(storage)
    theirs, their_account = await make_account(storage)
    a = await inbound(storage, mine.id, my_account.id, "wamid.1", T0)
    b = await inbound(storage, theirs.id, their_account.id, "wamid.1", T0)
    assert a.message_created and b.message_created and a.conversation_created
    assert b.conversation_created and b.conversation.id != a.conversation.id
    assert b.conversation.contact.id != a.conversation.contact.id
    assert await storage.get_conversation(theirs.id, a.conversation.id) is None
    assert await storage.get_message(theirs.id, a.message.id) is None
    assert await storage.count_messages(mine.id) == await storage.count_messages(theirs.id) == 1

    # Another tenant's account for a new contact is refused, and the refused call leaves
    # nothing behind: not even the contact it upserted first.
    with pytest.raises(NotFound):
        await inbound(storage, mine.id, their_account.id, "wamid.2", T0, phone="5500", name="Bo")
    assert (await storage.upsert_contact(mine.id, "5500", None)).name is None
    assert await storage.count_messages(mine.id) == 1
    with pytest.raises(NotFound):
        await inbound(storage, "no-such-tenant", my_account.id, "wamid.3", T0)
    with pytest.raises(ValueError):
        await inbound(storage, mine.id, my_account.id, "wamid.4", datetime(2024, 5, 1))


async def test_meta_round_trip(storage: Storage) -> None:
    assert await storage.get_meta("lifecycle") is None
    await storage.set_meta("lifecycle", "running")
    await storage.set_meta("lifecycle", "stopped")
    assert await storage.get_meta("lifecycle") == "stopped"


async def test_recent_messages_is_the_tail_of_every_tenant(storage: Storage) -> None:
    assert await storage.recent_messages(window_seconds=10) == []
    a = await storage.create_tenant("A")
    b = await storage.create_tenant("B")
    wamids = []
    for tenant in (a, b):
        account = await storage.add_account(tenant.id, f"pn-recent-{tenant.id}")
        for i in range(3):
            wamid = f"wamid.recent.{tenant.id}.{i}"
            wamids.append(wamid)
            await storage.record_inbound(
                tenant_id=tenant.id,
                account_id=account.id,
                phone_number="5511",
                contact_name=None,
                whatsapp_message_id=wamid,
                type="TEXT",
                content=f"m{i}",
                metadata={},
                timestamp=datetime.now(UTC),
            )
    recent = await storage.recent_messages(window_seconds=60)
    assert [m.whatsapp_message_id for m in recent] == wamids
    assert len(await storage.recent_messages(window_seconds=60, limit=2)) == 2
