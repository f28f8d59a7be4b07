"""The storage contract for ``pending_outbound``, what crash recovery sends at the next start.

Part of the contract suite (``test_contract.py``): the same tests on every implementation,
on asyncio because asyncpg is asyncio-only.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from storage import Conversation, Message, Storage

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("anyio_backend", ["asyncio"])]

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


async def open_conversation(storage: Storage, name: str, phone: str) -> Conversation:
    """A tenant with a number and a conversation its customer opened (one DELIVERED message)."""
    tenant = await storage.create_tenant(name)
    account = await storage.add_account(tenant.id, f"pn-{tenant.id}")
    result = await storage.record_inbound(
        tenant_id=tenant.id,
        account_id=account.id,
        phone_number=phone,
        contact_name="Ana",
        whatsapp_message_id=f"wamid.in.{tenant.id}",
        type="TEXT",
        content="olá",
        metadata={},
        timestamp=T0,
    )
    assert result.message.status == "DELIVERED"
    return result.conversation


async def reply(
    storage: Storage,
    conversation: Conversation,
    text: str,
    at: datetime,
    *,
    direction: str = "outbound",
    status: str = "PENDING",
) -> Message:
    """Store a message the way the API stores an agent's reply (PENDING, no WhatsApp id)."""
    message, created = await storage.insert_message(
        tenant_id=conversation.tenant_id,
        conversation_id=conversation.id,
        contact_id=conversation.contact_id,
        direction=direction,
        type="TEXT",
        content=text,
        metadata={"n": [1, 2]},
        status=status,
        timestamp=at,
    )
    assert created
    return message


async def test_pending_outbound_is_empty_without_messages(storage: Storage) -> None:
    assert await storage.pending_outbound() == []
    await open_conversation(storage, "Acme", "5511999990000")
    # An inbound message (DELIVERED) is never something to send.
    assert await storage.pending_outbound() == []


async def test_pending_outbound_returns_only_unsent_outbound_of_every_tenant_oldest_first(
    storage: Storage,
) -> None:
    acme = await open_conversation(storage, "Acme", "5511999990000")
    globex = await open_conversation(storage, "Globex", "5511888880000")
    stored: list[Message] = []
    for i in range(6):
        conversation = acme if i % 2 == 0 else globex
        stored.append(await reply(storage, conversation, f"reply {i}", T0 + timedelta(minutes=i)))

    # Sent, failed, and sent then delivered: none of these is PENDING any more.
    sent = await storage.mark_message_sent(stored[1].id, "wamid.out.1")
    failed = await storage.mark_message_failed(stored[2].id, {"message": "refused", "code": 100})
    await storage.mark_message_sent(stored[4].id, "wamid.out.4")
    delivered = await storage.update_message_status(stored[4].tenant_id, "wamid.out.4", "DELIVERED")
    assert (sent.status, failed.status) == ("SENT", "FAILED")
    assert delivered is not None and delivered[0].status == "DELIVERED"
    # One more inbound message, after the replies.
    later = await storage.record_inbound(
        tenant_id=acme.tenant_id,
        account_id=acme.account_id,
        phone_number=acme.contact.phone_number,
        contact_name=None,
        whatsapp_message_id="wamid.in.later",
        type="TEXT",
        content="still there?",
        metadata={},
        timestamp=T0 + timedelta(hours=1),
    )
    assert later.message_created

    pending = await storage.pending_outbound()
    expected = [stored[0], stored[3], stored[5]]
    # Both tenants, oldest first, each exactly as stored.
    assert [m.content for m in pending] == ["reply 0", "reply 3", "reply 5"]
    assert pending == expected
    assert {m.tenant_id for m in pending} == {acme.tenant_id, globex.tenant_id}
    assert all((m.direction, m.status) == ("outbound", "PENDING") for m in pending)


async def test_pending_outbound_respects_limit_keeping_the_oldest(storage: Storage) -> None:
    acme = await open_conversation(storage, "Acme", "5511999990000")
    globex = await open_conversation(storage, "Globex", "5511888880000")
    stored = [
        await reply(storage, acme if i % 3 else globex, f"reply {i}", T0 + timedelta(seconds=i))
        for i in range(7)
    ]
    assert await storage.pending_outbound() == stored
    assert await storage.pending_outbound(limit=7) == stored
    assert await storage.pending_outbound(limit=3) == stored[:3]
    assert await storage.pending_outbound(limit=1) == stored[:1]
    # Sending the oldest moves the window on to the next ones.
    await storage.mark_message_sent(stored[0].id, "wamid.out.0")
    await storage.mark_message_failed(stored[1].id, {"message": "gone"})
    assert await storage.pending_outbound(limit=3) == stored[2:5]
    assert await storage.pending_outbound(limit=100) == stored[2:]


async def test_pending_outbound_ignores_inbound_messages_whatever_their_status(
    storage: Storage,
) -> None:
    acme = await open_conversation(storage, "Acme", "5511999990000")
    # Not how the desk stores inbound messages, but the contract says outbound only.
    await reply(storage, acme, "odd inbound", T0, direction="inbound", status="PENDING")
    outbound = await reply(storage, acme, "real reply", T0 + timedelta(seconds=1))
    assert await storage.pending_outbound() == [outbound]
