"""The storage contract for ``intake_many``: webhook bodies and their messages, one commit.

Part of the contract suite: the same tests on every implementation, on asyncio because
asyncpg is asyncio-only. A body with records is a ``done`` inbox row stored with them; a
body without is a ``pending`` row; a refused record undoes the whole batch.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from test_contract_events import _inbound_events
from test_contract_inbound_many import T0, make_account, record

from storage import InboundResult, NotFound, Storage

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("anyio_backend", ["asyncio"])]


async def test_bodies_with_records_are_done_and_stored_with_them(storage: Storage) -> None:
    tenant, account = await make_account(storage)
    first = record(tenant.id, account.id, "wamid.1", T0, phone="5511900001")
    second = record(tenant.id, account.id, "wamid.2", T0 + timedelta(seconds=1))
    same = record(tenant.id, account.id, "wamid.3", T0 + timedelta(seconds=2))
    items = [
        (b'{"a": 1}', [replace(first, describe=_inbound_events)]),
        (b'{"b": 2}', []),
        (b'{"c": 3}', [replace(second, describe=_inbound_events), same]),
    ]
    stored = await storage.intake_many(items)

    ids = [inbox_id for inbox_id, _ in stored]
    assert ids == sorted(ids) and len(set(ids)) == 3
    assert [len(results) for _, results in stored] == [1, 0, 2]
    created = [r for _, results in stored for r in results]
    assert all(isinstance(r, InboundResult) and r.message_created for r in created)
    # The second and third records share a contact: one conversation, in order.
    assert created[1].conversation.id == created[2].conversation.id
    assert created[2].conversation.last_message_at == T0 + timedelta(seconds=2)
    page, _ = await storage.list_messages(tenant.id, created[1].conversation.id)
    assert [m.whatsapp_message_id for m in page] == ["wamid.3", "wamid.2"]  # newest first
    # Only the body without records is left to process.
    pending = await storage.inbox_pending()
    assert [item.id for item in pending] == [ids[1]]
    assert (await storage.inbox_counts())["done"] == 2
    # The described events are logged in the same commit, numbered in record order.
    logged = await storage.events_after(tenant.id, 0)
    assert [e.seq for e in logged] == [1, 2, 3, 4]
    assert logged[0].payload == {"id": created[0].message.id}
    assert logged[2].payload == {"id": created[1].message.id}


async def test_bodies_alone_are_pending_rows(storage: Storage) -> None:
    stored = await storage.intake_many([(b"x", []), (b"\x00\xff", [])])
    assert [results for _, results in stored] == [[], []]
    pending = await storage.inbox_pending()
    assert [(item.id, item.body) for item in pending] == [
        (stored[0][0], b"x"),
        (stored[1][0], b"\x00\xff"),
    ]


async def test_a_refused_record_undoes_the_whole_batch(storage: Storage) -> None:
    tenant, account = await make_account(storage)
    good = record(tenant.id, account.id, "wamid.ok", T0, phone="5511900002")
    bad = record("no-such-tenant", account.id, "wamid.bad", T0)
    with pytest.raises(NotFound):
        await storage.intake_many([(b"good", [good]), (b"bad", [bad])])
    assert await storage.inbox_pending() == []
    assert await storage.count_messages() == 0
    # Nothing half-written: the same batch without the bad record goes through.
    stored = await storage.intake_many([(b"good", [good])])
    assert stored[0][1][0].message_created


async def test_a_replayed_record_is_stored_once(storage: Storage) -> None:
    tenant, account = await make_account(storage)
    once = record(tenant.id, account.id, "wamid.same", T0)
    first = await storage.intake_many([(b"1", [once])])
    again = await storage.intake_many([(b"2", [once])])
    assert first[0][1][0].message_created and not again[0][1][0].message_created
    assert again[0][1][0].message.id == first[0][1][0].message.id
    assert await storage.count_messages() == 1
