"""The storage contract for statuses that overtake their message (``record_status``).

Part of the contract suite (``test_contract.py``): the same tests on every implementation,
on asyncio because asyncpg is asyncio-only.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from test_contract_pending_outbound import T0, open_conversation, reply

from storage import Storage

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("anyio_backend", ["asyncio"])]


async def test_a_known_message_takes_the_status_at_once(storage: Storage) -> None:
    conv = await open_conversation(storage, "Acme", "5511000000001")
    message = await reply(storage, conv, "hi", T0)
    await storage.mark_message_sent(message.id, "wamid.out.1")
    result = await storage.record_status(conv.tenant_id, "wamid.out.1", "DELIVERED")
    assert result is not None
    stored, changed = result
    assert (stored.id, stored.status, changed) == (message.id, "DELIVERED", True)
    again = await storage.record_status(conv.tenant_id, "wamid.out.1", "SENT")
    assert again is not None and again[0].status == "DELIVERED" and again[1] is False


async def test_a_status_ahead_of_its_send_is_applied_when_the_id_is_recorded(
    storage: Storage,
) -> None:
    conv = await open_conversation(storage, "Acme", "5511000000002")
    message = await reply(storage, conv, "hi", T0)
    assert await storage.record_status(conv.tenant_id, "wamid.out.2", "DELIVERED") is None
    # Reports arrive out of order too: the highest one kept wins, and an error is kept.
    assert await storage.record_status(conv.tenant_id, "wamid.out.2", "READ") is None
    assert await storage.record_status(conv.tenant_id, "wamid.out.2", "SENT") is None
    sent = await storage.mark_message_sent(message.id, "wamid.out.2")
    assert (sent.id, sent.whatsapp_message_id, sent.status) == (message.id, "wamid.out.2", "READ")
    stored = await storage.get_message(conv.tenant_id, message.id)
    assert stored is not None and stored.status == "READ"
    # Applied once: nothing is left to apply or expire.
    assert await storage.apply_pending_statuses() == []
    assert await storage.expire_pending_statuses(datetime.now(UTC) + timedelta(days=1)) == []


async def test_a_failure_ahead_of_its_send_keeps_its_error(storage: Storage) -> None:
    conv = await open_conversation(storage, "Acme", "5511000000003")
    message = await reply(storage, conv, "hi", T0)
    error = {"errors": [{"code": 131047, "title": "Re-engagement message"}]}
    assert await storage.record_status(conv.tenant_id, "wamid.out.3", "FAILED", error=error) is None
    sent = await storage.mark_message_sent(message.id, "wamid.out.3")
    assert (sent.status, sent.error) == ("FAILED", error)


async def test_a_kept_status_belongs_to_its_tenant(storage: Storage) -> None:
    ours = await open_conversation(storage, "Ours", "5511000000004")
    theirs = await open_conversation(storage, "Theirs", "5511000000005")
    message = await reply(storage, theirs, "hi", T0)
    assert await storage.record_status(ours.tenant_id, "wamid.shared", "READ") is None
    sent = await storage.mark_message_sent(message.id, "wamid.shared")
    assert sent.status == "SENT"
    (expired,) = await storage.expire_pending_statuses(datetime.now(UTC) + timedelta(seconds=1))
    assert expired == (ours.tenant_id, "wamid.shared", "READ")


async def test_apply_pending_statuses_catches_a_message_known_by_now(storage: Storage) -> None:
    conv = await open_conversation(storage, "Acme", "5511000000006")
    assert await storage.record_status(conv.tenant_id, "wamid.out.7", "READ") is None
    assert await storage.apply_pending_statuses() == []  # its message is still unknown
    # The message arrives by another path than a send (an echo of the Business app).
    echo, created = await storage.insert_message(
        tenant_id=conv.tenant_id,
        conversation_id=conv.id,
        contact_id=conv.contact_id,
        direction="outbound",
        type="TEXT",
        content="sent from the phone",
        metadata={},
        status="SENT",
        timestamp=T0,
        whatsapp_message_id="wamid.out.7",
    )
    assert created and echo.status == "SENT"
    (applied,) = await storage.apply_pending_statuses()
    assert (applied.id, applied.status) == (echo.id, "READ")
    assert await storage.apply_pending_statuses() == []


async def test_kept_statuses_expire(storage: Storage) -> None:
    conv = await open_conversation(storage, "Acme", "5511000000008")
    assert await storage.record_status(conv.tenant_id, "wamid.gone", "DELIVERED") is None
    assert await storage.expire_pending_statuses(datetime.now(UTC) - timedelta(hours=1)) == []
    expired = await storage.expire_pending_statuses(datetime.now(UTC) + timedelta(seconds=1))
    assert expired == [(conv.tenant_id, "wamid.gone", "DELIVERED")]
    message = await reply(storage, conv, "hi", T0)
    assert (await storage.mark_message_sent(message.id, "wamid.gone")).status == "SENT"


async def test_record_status_refuses_a_status_off_the_ladder(storage: Storage) -> None:
    conv = await open_conversation(storage, "Acme", "5511000000009")
    with pytest.raises(ValueError):
        await storage.record_status(conv.tenant_id, "wamid.x", "SEEN")
