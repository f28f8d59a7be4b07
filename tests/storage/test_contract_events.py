"""The storage contract for the durable event log (``describe``, ``events_after``, pruning).

Part of the contract suite: the same tests on every implementation, on asyncio because
asyncpg is asyncio-only.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from test_contract_pending_outbound import T0, open_conversation, reply

from storage import (
    Conversation,
    InboundRecord,
    InboundResult,
    LoggedEvent,
    Message,
    NotFound,
    Storage,
    StorageError,
)

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("anyio_backend", ["asyncio"])]


def _inbound_events(result: InboundResult) -> list[LoggedEvent]:
    tenant, conv = result.conversation.tenant_id, result.conversation.id
    return [
        LoggedEvent(tenant, "message:new", [f"tenant:{tenant}"], {"id": result.message.id}),
        LoggedEvent(tenant, "conversation:updated", [f"conversation:{conv}"], {"id": conv}),
    ]


def _status_events(message: Message, conversation: Conversation) -> list[LoggedEvent]:
    return [
        LoggedEvent(
            message.tenant_id,
            "message:status-update",
            [f"conversation:{conversation.id}"],
            {"messageId": message.id, "status": message.status},
        )
    ]


def _record(conv: Conversation, wamid: str) -> InboundRecord:
    return InboundRecord(
        tenant_id=conv.tenant_id,
        account_id=conv.account_id,
        phone_number=conv.contact.phone_number,
        contact_name=None,
        whatsapp_message_id=wamid,
        type="TEXT",
        content=wamid,
        metadata={},
        timestamp=T0,
        describe=_inbound_events,
    )


async def test_inbound_batches_log_consecutive_seqs_per_tenant(storage: Storage) -> None:
    a = await open_conversation(storage, "A", "5511000000101")
    b = await open_conversation(storage, "B", "5511000000102")
    results = await storage.record_inbound_many(
        [_record(a, "w1"), _record(b, "w2"), _record(a, "w3")]
    )
    assert all(isinstance(x, InboundResult) for x in results)
    logged = await storage.events_after(a.tenant_id, 0)
    assert [e.seq for e in logged] == [1, 2, 3, 4]
    assert [e.name for e in logged] == ["message:new", "conversation:updated"] * 2
    assert logged[0].rooms == [f"tenant:{a.tenant_id}"]
    first = results[0]
    assert isinstance(first, InboundResult)
    assert logged[0].payload == {"id": first.message.id}
    assert logged[0].created_at is not None and logged[0].created_at.tzinfo is not None
    assert [e.seq for e in await storage.events_after(b.tenant_id, 0)] == [1, 2]
    assert await storage.events_after(a.tenant_id, 2) == logged[2:]
    assert await storage.events_after(a.tenant_id, 0, limit=1) == logged[:1]
    highs = await storage.event_high_seqs()
    assert highs[a.tenant_id] == 4 and highs[b.tenant_id] == 2
    assert await storage.event_high_seqs(b.tenant_id) == {b.tenant_id: 2}
    assert await storage.event_oldest_seq(a.tenant_id) == 1
    # A replay stores nothing new, and the describer says so: nothing logged.
    again = await storage.record_inbound_many(
        [
            replace(
                _record(a, "w1"),
                describe=lambda r: _inbound_events(r) if r.message_created else [],
            )
        ]
    )
    assert isinstance(again[0], InboundResult) and not again[0].message_created
    assert (await storage.event_high_seqs(a.tenant_id))[a.tenant_id] == 4


async def test_the_describer_sets_seq_and_time_on_its_events(storage: Storage) -> None:
    conv = await open_conversation(storage, "Acme", "5511000000103")
    seen: list[LoggedEvent] = []

    def describe(result: InboundResult) -> list[LoggedEvent]:
        seen.extend(_inbound_events(result))
        return seen

    await storage.record_inbound(
        tenant_id=conv.tenant_id,
        account_id=conv.account_id,
        phone_number=conv.contact.phone_number,
        contact_name=None,
        whatsapp_message_id="w-seen",
        type="TEXT",
        content="x",
        metadata={},
        timestamp=T0,
        describe=describe,
    )
    assert [e.seq for e in seen] == [1, 2]
    assert all(e.created_at is not None for e in seen)


async def test_a_failing_change_logs_nothing(storage: Storage) -> None:
    conv = await open_conversation(storage, "Acme", "5511000000104")

    def broken(result: InboundResult) -> list[LoggedEvent]:
        raise RuntimeError("describer failed")

    with pytest.raises(RuntimeError):
        await storage.record_inbound(
            tenant_id=conv.tenant_id,
            account_id=conv.account_id,
            phone_number=conv.contact.phone_number,
            contact_name=None,
            whatsapp_message_id="w-rolled-back",
            type="TEXT",
            content="x",
            metadata={},
            timestamp=T0,
            describe=broken,
        )
    # The message went with its events: one transaction.
    assert await storage.count_messages(conv.tenant_id) == 1
    # A change the database refuses (unknown tenant) logs nothing either.
    bad = replace(_record(conv, "w-bad"), tenant_id="no-such-tenant")
    results = await storage.record_inbound_many([_record(conv, "w-ok"), bad])
    assert isinstance(results[0], InboundResult) and isinstance(results[1], StorageError)
    logged = await storage.events_after(conv.tenant_id, 0)
    assert [e.payload for e in logged if e.name == "message:new"] == [{"id": results[0].message.id}]
    assert [e.seq for e in logged] == [1, 2]
    with pytest.raises(NotFound):
        await storage.mark_message_failed("no-such-message", {}, describe=_status_events)
    assert len(await storage.events_after(conv.tenant_id, 0)) == 2


async def test_status_changes_are_logged_only_when_they_change(storage: Storage) -> None:
    conv = await open_conversation(storage, "Acme", "5511000000105")
    message = await reply(storage, conv, "hi", T0)
    await storage.mark_message_sent(message.id, "wamid.ev.1", describe=_status_events)
    result = await storage.record_status(
        conv.tenant_id, "wamid.ev.1", "DELIVERED", describe=_status_events
    )
    assert result is not None and result[1]
    same = await storage.record_status(
        conv.tenant_id, "wamid.ev.1", "SENT", describe=_status_events
    )
    assert same is not None and not same[1]
    kept = await storage.record_status(
        conv.tenant_id, "wamid.ev.unknown", "READ", describe=_status_events
    )
    assert kept is None
    logged = await storage.events_after(conv.tenant_id, 0)
    assert [(e.seq, e.payload["status"]) for e in logged] == [(1, "SENT"), (2, "DELIVERED")]
    assert logged[0].rooms == [f"conversation:{conv.id}"]


async def test_replies_and_card_changes_are_logged(storage: Storage) -> None:
    conv = await open_conversation(storage, "Acme", "5511000000106")
    user = await storage.create_user(conv.tenant_id, "a@example.com", "pw-123456")
    message, created = await storage.insert_message(
        tenant_id=conv.tenant_id,
        conversation_id=conv.id,
        contact_id=conv.contact_id,
        direction="outbound",
        type="TEXT",
        content="reply",
        metadata={},
        status="PENDING",
        timestamp=T0,
        describe=_status_events,
    )
    assert created

    def card(conversation: Conversation) -> list[LoggedEvent]:
        return [
            LoggedEvent(
                conversation.tenant_id,
                "conversation:updated",
                [f"user:{conversation.assignee_id}"],
                {"assigneeId": conversation.assignee_id},
            )
        ]

    assert await storage.update_conversation(
        conv.tenant_id, conv.id, assignee_id=user.id, describe=card
    )
    assert await storage.update_conversation("other", conv.id, stage="x", describe=card) is None
    logged = await storage.events_after(conv.tenant_id, 0)
    assert [e.name for e in logged] == ["message:status-update", "conversation:updated"]
    assert logged[0].payload["messageId"] == message.id
    assert logged[1].payload == {"assigneeId": user.id}


async def test_pruning_keeps_the_counters(storage: Storage) -> None:
    conv = await open_conversation(storage, "Acme", "5511000000107")
    await storage.record_inbound_many([_record(conv, f"p{i}") for i in range(3)])
    assert await storage.prune_events(created_before=datetime.now(UTC) - timedelta(hours=1)) == 0
    later = datetime.now(UTC) + timedelta(seconds=1)
    assert await storage.prune_events(created_before=later, limit=4) == 4
    assert await storage.event_oldest_seq(conv.tenant_id) == 5
    assert await storage.prune_events(created_before=later) == 2
    assert await storage.event_oldest_seq(conv.tenant_id) is None
    await storage.record_inbound_many([_record(conv, "after-prune")])
    assert [e.seq for e in await storage.events_after(conv.tenant_id, 0)] == [7, 8]


async def test_recovery_sessions_round_trip_and_prune(storage: Storage) -> None:
    conv = await open_conversation(storage, "Acme", "5511000000108")
    assert await storage.get_recovery_session("pid-1") is None
    await storage.save_recovery_sessions([("pid-1", conv.tenant_id, "u1", ["conversation:1"])])
    await storage.save_recovery_sessions(
        [("pid-1", conv.tenant_id, "u1", ["conversation:1", "conversation:2"])]
    )
    assert await storage.get_recovery_session("pid-1") == (
        conv.tenant_id,
        "u1",
        ["conversation:1", "conversation:2"],
    )
    gone = await storage.prune_recovery_sessions(
        updated_before=datetime.now(UTC) + timedelta(seconds=1)
    )
    assert gone == 1 and await storage.get_recovery_session("pid-1") is None
