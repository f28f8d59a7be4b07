"""The storage contract for unread counters: inbound_count, read positions, READ on read.

Part of the contract suite (``test_contract.py``): the same tests on every implementation.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from test_contract_pending_outbound import T0, open_conversation, reply

from storage import Conversation, NotFound, Storage

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("anyio_backend", ["asyncio"])]


async def inbound(storage: Storage, conv: Conversation, wamid: str, minutes: int) -> str:
    account = await storage.get_account_by_id(conv.tenant_id, conv.account_id)
    assert account is not None
    result = await storage.record_inbound(
        tenant_id=conv.tenant_id,
        account_id=account.id,
        phone_number=conv.contact.phone_number,
        contact_name=None,
        whatsapp_message_id=wamid,
        type="TEXT",
        content=wamid,
        metadata={},
        timestamp=T0 + timedelta(minutes=minutes),
    )
    return result.message.id


async def test_inbound_messages_count_once_and_echoes_do_not(storage: Storage) -> None:
    conv = await open_conversation(storage, "Acme", "5511000000101")
    assert conv.inbound_count == 1
    await inbound(storage, conv, "wamid.u.2", 1)
    await inbound(storage, conv, "wamid.u.2", 1)  # a replay stores and counts nothing
    echo = await storage.record_inbound(
        tenant_id=conv.tenant_id,
        account_id=conv.account_id,
        phone_number=conv.contact.phone_number,
        contact_name=None,
        whatsapp_message_id="wamid.echo.1",
        type="TEXT",
        content="from the app",
        metadata={},
        timestamp=T0 + timedelta(minutes=2),
        direction="outbound",
    )
    assert echo.conversation.inbound_count == 2
    await reply(storage, conv, "agent", T0 + timedelta(minutes=3))
    stored = await storage.get_conversation(conv.tenant_id, conv.id)
    assert stored is not None and stored.inbound_count == 2


async def test_a_read_moves_forward_never_back_and_marks_read_once(storage: Storage) -> None:
    conv = await open_conversation(storage, "Acme", "5511000000102")
    second = await inbound(storage, conv, "wamid.u.b", 1)
    await inbound(storage, conv, "wamid.u.c", 2)
    users = [
        await storage.create_user(conv.tenant_id, f"{n}@acme.example", "pw") for n in ("a", "b")
    ]
    a, b = users[0].id, users[1].id

    unread = await storage.unread_conversations(conv.tenant_id, a)
    assert unread == [(conv.id, 3, 0)]
    upto = await storage.read_conversation(conv.tenant_id, a, conv.id, second)
    assert upto is not None
    assert (upto.inbound_count, upto.position, upto.unread, upto.receipts) == (3, 2, 1, True)
    assert [m.whatsapp_message_id for m in upto.read] == [f"wamid.in.{conv.tenant_id}", "wamid.u.b"]
    assert all(m.status == "READ" for m in upto.read)

    everything = await storage.read_conversation(conv.tenant_id, a, conv.id)
    assert everything is not None and (everything.position, everything.unread) == (3, 0)
    assert [m.whatsapp_message_id for m in everything.read] == ["wamid.u.c"]
    back = await storage.read_conversation(conv.tenant_id, a, conv.id, second)
    assert back is not None and (back.position, back.unread, back.read) == (3, 0, [])

    # Another agent's position is their own; the messages are READ already.
    other = await storage.read_conversation(conv.tenant_id, b, conv.id, second)
    assert other is not None and (other.position, other.unread, other.read) == (2, 1, [])
    assert await storage.unread_conversations(conv.tenant_id, a) == []
    assert await storage.unread_conversations(conv.tenant_id, b) == [(conv.id, 3, 2)]
    assert await storage.read_positions(conv.tenant_id, conv.id) == (3, {a: 3, b: 2})


async def test_reads_stay_in_their_tenant(storage: Storage) -> None:
    ours = await open_conversation(storage, "Ours", "5511000000103")
    theirs = await open_conversation(storage, "Theirs", "5511000000104")
    user = await storage.create_user(ours.tenant_id, "x@ours.example", "pw")
    assert await storage.read_conversation(ours.tenant_id, user.id, theirs.id) is None
    assert await storage.read_positions(ours.tenant_id, theirs.id) is None
    foreign = await inbound(storage, theirs, "wamid.t.2", 1)
    with pytest.raises(NotFound):
        await storage.read_conversation(ours.tenant_id, user.id, ours.id, foreign)


async def test_visible_to_and_the_receipts_setting(storage: Storage) -> None:
    conv = await open_conversation(storage, "Acme", "5511000000105")
    agent = await storage.create_user(conv.tenant_id, "ag@acme.example", "pw")
    other = await storage.create_user(conv.tenant_id, "ot@acme.example", "pw")
    await storage.update_conversation(conv.tenant_id, conv.id, assignee_id=other.id)
    assert await storage.unread_conversations(conv.tenant_id, agent.id, visible_to=agent.id) == []
    assert await storage.unread_conversations(conv.tenant_id, agent.id) == [(conv.id, 1, 0)]
    assert await storage.set_read_receipts(conv.tenant_id, conv.account_id, False)
    assert not await storage.set_read_receipts(conv.tenant_id, "nope", False)
    result = await storage.read_conversation(conv.tenant_id, agent.id, conv.id)
    assert result is not None and result.receipts is False and len(result.read) == 1


async def test_several_users_load_in_one_query(storage: Storage) -> None:
    conv = await open_conversation(storage, "Acme", "5511000000106")
    a = await storage.create_user(conv.tenant_id, "a1@acme.example", "pw")
    b = await storage.create_user(conv.tenant_id, "b1@acme.example", "pw")
    await storage.read_conversation(conv.tenant_id, a.id, conv.id)
    rows = await storage.unread_conversations_of(
        conv.tenant_id, [a.id, b.id, "not-a-user"], visible_only=True
    )
    assert rows == [(b.id, conv.id, 1, 0)]
    await storage.update_conversation(conv.tenant_id, conv.id, assignee_id=a.id)
    assert await storage.unread_conversations_of(conv.tenant_id, [b.id], visible_only=True) == []
    assert await storage.unread_conversations_of(conv.tenant_id, [b.id], visible_only=False) == [
        (b.id, conv.id, 1, 0)
    ]
