"""UnreadDesk in process, on real SQLite storage: counting, merging, loads racing messages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from _recorder import Recorder

from desk.ports import DeskOptions
from desk.unread import UnreadDesk
from storage import Conversation, Storage, open_storage

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("anyio_backend", ["asyncio"])]

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
async def store(tmp_path: Path, anyio_backend: str) -> AsyncIterator[Storage]:
    storage = await open_storage(f"sqlite:///{tmp_path / 'unread.db'}")
    await storage.migrate()
    try:
        yield storage
    finally:
        await storage.aclose()


async def customer(storage: Storage, account: tuple[str, str], n: int) -> Conversation:
    tenant_id, account_id = account
    result = await storage.record_inbound(
        tenant_id=tenant_id,
        account_id=account_id,
        phone_number="5511999990000",
        contact_name=None,
        whatsapp_message_id=f"wamid.{n}",
        type="TEXT",
        content=str(n),
        metadata={},
        timestamp=T0 + timedelta(seconds=n),
    )
    return result.conversation


def updates(recorder: Recorder, user_id: str) -> list[tuple[int, int]]:
    return [
        (p["unreadCount"], p["totalUnread"])
        for event, p, rooms in recorder.events
        if event == "unread:update" and rooms == (f"user:{user_id}",)
    ]


async def test_counts_reads_and_assignment(store: Storage) -> None:
    tenant = await store.create_tenant("Acme")
    account = await store.add_account(tenant.id, "pn-1")
    agent = await store.create_user(tenant.id, "a@acme.example", "pw", role="agent")
    other = await store.create_user(tenant.id, "o@acme.example", "pw", role="agent")
    recorder = Recorder()
    unread = UnreadDesk(store, recorder, DeskOptions(node="t", unread_interval=0))
    unread.register(tenant.id, agent.id, "agent")
    assert await unread.total(tenant.id, agent.id, "agent") == 0

    conv = await customer(store, (tenant.id, account.id), 1)
    unread.inbound(conv)
    unread.inbound(conv)  # the same committed row twice (a re-announce) counts once
    conv = await customer(store, (tenant.id, account.id), 2)
    unread.inbound(conv)
    unread.flush()
    assert updates(recorder, agent.id) == [(2, 2)]  # one write for the window
    assert await unread.unread_counts(tenant.id, agent.id, "agent") == {conv.id: 2}

    # A stale read answer (an older count and position) never moves the counter back.
    result = await store.read_conversation(tenant.id, agent.id, conv.id)
    assert result is not None
    assert await unread.read(tenant.id, agent.id, "agent", conv, 2, 2) == 0
    assert await unread.read(tenant.id, agent.id, "agent", conv, 1, 0) == 0
    assert updates(recorder, agent.id)[-2:] == [(0, 0), (0, 0)]

    # Assigned to someone else: the agent no longer counts it, a new message is not theirs.
    conv = await customer(store, (tenant.id, account.id), 3)
    unread.inbound(conv)
    assert await unread.total(tenant.id, agent.id, "agent") == 1
    moved = await store.update_conversation(tenant.id, conv.id, assignee_id=other.id)
    assert moved is not None
    unread.reassigned(moved)
    assert await unread.total(tenant.id, agent.id, "agent") == 0
    unread.inbound(await customer(store, (tenant.id, account.id), 4))
    assert await unread.total(tenant.id, agent.id, "agent") == 0


async def test_a_message_committed_during_a_load_counts_once(store: Storage) -> None:
    tenant = await store.create_tenant("Acme")
    account = await store.add_account(tenant.id, "pn-2")
    admin = await store.create_user(tenant.id, "ad@acme.example", "pw", role="admin")
    first = await customer(store, (tenant.id, account.id), 1)
    recorder = Recorder()
    unread = UnreadDesk(store, recorder, DeskOptions(node="t", unread_interval=0))
    unread.register(tenant.id, admin.id, "admin")
    unread.inbound(first)  # unloaded: its load (later) includes it

    original = store.unread_conversations_of
    second: list[Conversation] = []

    async def slow_load(*args: object, **kwargs: object) -> list[tuple[str, str, int, int]]:
        rows = await original(*args, **kwargs)  # type: ignore[arg-type]
        # A message committed after the load's query and announced before it finished.
        second.append(await customer(store, (tenant.id, account.id), 2))
        unread.inbound(second[0])
        return rows

    store.unread_conversations_of = slow_load  # type: ignore[method-assign]
    assert await unread.total(tenant.id, admin.id, "admin") == 2
    store.unread_conversations_of = original  # type: ignore[method-assign]
    # Announced again after the load (a replay): nothing counts twice.
    unread.inbound(second[0])
    unread.flush()
    assert updates(recorder, admin.id) == [(2, 2)]
