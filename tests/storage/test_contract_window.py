"""The storage contract for ``Conversation.last_inbound_at``, where WhatsApp's 24-hour
customer service window starts.

Part of the contract suite (``test_contract.py``): the same tests on every implementation,
on asyncio because asyncpg is asyncio-only.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from test_contract_inbound import T0, inbound, make_account

from storage import InboundRecord, InboundResult, Storage

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("anyio_backend", ["asyncio"])]


async def test_the_customers_newest_message_opens_the_window(storage: Storage) -> None:
    tenant, account = await make_account(storage)
    first = await inbound(storage, tenant.id, account.id, "wamid.1", T0)
    assert first.conversation.last_inbound_at == T0
    later = await inbound(storage, tenant.id, account.id, "wamid.2", T0 + timedelta(hours=2))
    assert later.conversation.last_inbound_at == T0 + timedelta(hours=2)
    # A message that arrives late never moves it back; a replay leaves it.
    late = await inbound(storage, tenant.id, account.id, "wamid.0", T0 - timedelta(hours=1))
    assert late.conversation.last_inbound_at == T0 + timedelta(hours=2)
    await inbound(storage, tenant.id, account.id, "wamid.1", T0)
    conv = await storage.get_conversation(tenant.id, first.conversation.id)
    assert conv is not None and conv.last_inbound_at == T0 + timedelta(hours=2)


async def test_our_own_messages_do_not_open_the_window(storage: Storage) -> None:
    tenant, account = await make_account(storage)
    conv = (await inbound(storage, tenant.id, account.id, "wamid.1", T0)).conversation
    reply, _ = await storage.insert_message(
        tenant_id=tenant.id,
        conversation_id=conv.id,
        contact_id=conv.contact_id,
        direction="outbound",
        type="TEXT",
        content="hi",
        metadata={},
        status="PENDING",
        timestamp=T0 + timedelta(hours=30),
    )
    await storage.touch_conversation(conv.id, reply.timestamp)
    after = await storage.get_conversation(tenant.id, conv.id)
    assert after is not None
    assert after.last_message_at == T0 + timedelta(hours=30)
    assert after.last_inbound_at == T0
    (listed,), _ = await storage.list_conversations(tenant.id)
    assert listed.last_inbound_at == T0


async def test_a_conversation_the_customer_never_wrote_in_has_no_window(storage: Storage) -> None:
    tenant, account = await make_account(storage)
    contact = await storage.upsert_contact(tenant.id, "5511000000077", "Bea")
    conv, created = await storage.get_or_create_conversation(tenant.id, contact.id, account.id)
    assert created and conv.last_inbound_at is None


async def test_an_echo_is_stored_sent_takes_a_kept_status_and_opens_no_window(
    storage: Storage,
) -> None:
    tenant, account = await make_account(storage)
    assert await storage.record_status(tenant.id, "wamid.echo", "DELIVERED") is None
    many = await storage.record_inbound_many(
        [
            InboundRecord(
                tenant_id=tenant.id,
                account_id=account.id,
                phone_number="5511999990000",
                contact_name=None,
                whatsapp_message_id="wamid.echo",
                type="TEXT",
                content="sent from the phone",
                metadata={},
                timestamp=T0,
                direction="outbound",
            )
        ]
    )
    (result,) = many
    assert isinstance(result, InboundResult)
    assert (result.message.direction, result.message.status) == ("outbound", "DELIVERED")
    assert result.conversation.last_message_at == T0
    assert result.conversation.last_inbound_at is None
    alone = await storage.record_inbound(
        tenant_id=tenant.id,
        account_id=account.id,
        phone_number="5511999990000",
        contact_name=None,
        whatsapp_message_id="wamid.echo.2",
        type="TEXT",
        content="again",
        metadata={},
        timestamp=T0 + timedelta(minutes=1),
        direction="outbound",
    )
    assert (alone.message.status, alone.conversation.last_inbound_at) == ("SENT", None)
    with pytest.raises(ValueError):
        await storage.record_inbound(
            tenant_id=tenant.id,
            account_id=account.id,
            phone_number="5511999990000",
            contact_name=None,
            whatsapp_message_id="wamid.x",
            type="TEXT",
            content="",
            metadata={},
            timestamp=T0,
            direction="sideways",
        )


async def test_a_contact_moves_to_a_new_number_unless_it_is_taken(storage: Storage) -> None:
    tenant, account = await make_account(storage)
    first = await inbound(storage, tenant.id, account.id, "wamid.1", T0, phone="5511000000001")
    moved = await storage.change_contact_number(tenant.id, "5511000000001", "5511000000002")
    assert moved is not None
    assert (moved.id, moved.phone_number) == (first.conversation.contact_id, "5511000000002")
    later = await inbound(storage, tenant.id, account.id, "wamid.2", T0, phone="5511000000002")
    assert later.conversation.id == first.conversation.id and not later.conversation_created
    # Nothing left under the old number; a taken number is not merged into.
    assert await storage.change_contact_number(tenant.id, "5511000000001", "5511000000003") is None
    await inbound(storage, tenant.id, account.id, "wamid.3", T0, phone="5511000000004")
    assert await storage.change_contact_number(tenant.id, "5511000000002", "5511000000004") is None
    other, _ = await make_account(storage)
    assert await storage.change_contact_number(other.id, "5511000000002", "5511000000009") is None
