"""The storage contract, run unchanged on every implementation (SQLite and PostgreSQL).

asyncpg is asyncio-only, so the suite runs on asyncio; ``test_sqlite.py`` covers trio.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import anyio
import pytest

from storage import (
    UNSET,
    Account,
    Conflict,
    Contact,
    Conversation,
    Message,
    NotFound,
    Storage,
    StorageUnavailable,
    Tenant,
)

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("anyio_backend", ["asyncio"])]

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
RANK = {"PENDING": 0, "SENT": 1, "DELIVERED": 2, "READ": 3, "FAILED": 9}


@dataclass
class Desk:
    tenant: Tenant
    account: Account
    contact: Contact
    conversation: Conversation


async def make_desk(storage: Storage, phone: str = "5511999990000") -> Desk:
    tenant = await storage.create_tenant("Acme")
    account = await storage.add_account(tenant.id, f"pn-{tenant.id}")
    contact = await storage.upsert_contact(tenant.id, phone, "Ana")
    conversation, _ = await storage.get_or_create_conversation(tenant.id, contact.id, account.id)
    return Desk(tenant, account, contact, conversation)


async def add_message(
    storage: Storage,
    desk: Desk,
    at: datetime,
    *,
    wamid: str | None = None,
    status: str = "PENDING",
    direction: str = "outbound",
) -> tuple[Message, bool]:
    return await storage.insert_message(
        tenant_id=desk.tenant.id,
        conversation_id=desk.conversation.id,
        contact_id=desk.contact.id,
        direction=direction,
        type="TEXT",
        content=f"hello at {at.isoformat()}",
        metadata={"n": 1, "tags": ["a"]},
        status=status,
        timestamp=at,
        whatsapp_message_id=wamid,
    )


async def test_migrate_is_idempotent_and_ping_works(storage: Storage) -> None:
    assert await storage.migrate() == []
    await storage.ping()


async def test_closed_storage_is_unavailable(storage: Storage) -> None:
    await storage.aclose()
    await storage.aclose()
    with pytest.raises(StorageUnavailable):
        await storage.ping()


async def test_tenants_users_and_authentication(storage: Storage) -> None:
    tenant = await storage.create_tenant("Acme")
    assert await storage.get_tenant(tenant.id) == tenant
    assert await storage.get_tenant("missing") is None
    assert tenant.created_at.tzinfo is not None

    user = await storage.create_user(tenant.id, " Ana@Example.COM ", "s3cret", role="admin")
    assert (user.email, user.role, user.name) == ("ana@example.com", "admin", None)
    assert await storage.get_user(user.id) == user
    assert await storage.authenticate("ANA@example.com", "s3cret") == user
    assert await storage.authenticate("ana@example.com", "wrong") is None
    assert await storage.authenticate("nobody@example.com", "s3cret") is None

    with pytest.raises(Conflict):
        await storage.create_user(tenant.id, "ana@EXAMPLE.com", "other")
    with pytest.raises(ValueError):
        await storage.create_user(tenant.id, "bob@example.com", "pw", role="root")
    with pytest.raises(NotFound):
        await storage.create_user("no-such-tenant", "carl@example.com", "pw")
    agent = await storage.create_user(tenant.id, "dee@example.com", "pw", name="Dee")
    assert (agent.role, agent.name) == ("agent", "Dee")
    other = await storage.create_tenant("Other")
    await storage.create_user(other.id, "eve@example.com", "pw")
    assert await storage.list_users(tenant.id) == [user, agent]
    assert await storage.list_users("no-such-tenant") == []


async def test_accounts(storage: Storage) -> None:
    tenant = await storage.create_tenant("Acme")
    account = await storage.add_account(
        tenant.id, "1234", verify_token="vt", app_secret="shh", access_token="tok"
    )
    assert await storage.get_account("1234") == account
    assert await storage.get_account("9999") is None
    assert await storage.find_account_by_verify_token("vt") == account
    assert await storage.find_account_by_verify_token("nope") is None
    with pytest.raises(Conflict):
        await storage.add_account(tenant.id, "1234")
    bare = await storage.add_account(tenant.id, "5678")
    assert (bare.verify_token, bare.app_secret, bare.access_token) == (None, None, None)
    assert await storage.get_account_by_id(tenant.id, account.id) == account
    other = await storage.create_tenant("Other")
    assert await storage.get_account_by_id(other.id, account.id) is None


async def test_inbox_append_pending_mark_counts(storage: Storage) -> None:
    assert await storage.inbox_append([]) == []
    bodies = [f'{{"n": {i}}}'.encode() for i in range(250)]
    ids = await storage.inbox_append(bodies)
    assert len(ids) == 250 and ids == sorted(ids) and len(set(ids)) == 250
    more = await storage.inbox_append([b"x", b"\x00\xff binary"])
    assert more[0] > ids[-1]

    pending = await storage.inbox_pending(limit=1000)
    assert [item.id for item in pending] == ids + more
    assert [item.body for item in pending] == bodies + [b"x", b"\x00\xff binary"]
    assert all(item.state == "pending" and item.attempts == 0 for item in pending)
    page = await storage.inbox_pending(after_id=ids[99], limit=10)
    assert [item.id for item in page] == ids[100:110]

    await storage.inbox_mark(ids[:200], "done")
    await storage.inbox_mark(ids[200:210], "failed", error="boom")
    await storage.inbox_mark(ids[200:205], "failed", error="boom again")
    await storage.inbox_mark([ids[210]], "unroutable")
    assert await storage.inbox_counts() == {
        "pending": 39 + 2,
        "done": 200,
        "failed": 10,
        "unroutable": 1,
    }
    await storage.inbox_mark(ids[200:210], "pending")
    retried = {item.id: item for item in await storage.inbox_pending(limit=1000)}
    assert retried[ids[200]].attempts == 2 and retried[ids[209]].attempts == 1
    assert ids[0] not in retried
    with pytest.raises(ValueError):
        await storage.inbox_mark(ids[:1], "lost")


async def test_inbox_prune_deletes_only_old_finished_rows(storage: Storage) -> None:
    ids = await storage.inbox_append([b"%d" % i for i in range(8)])
    await storage.inbox_mark(ids[:4], "done")
    await storage.inbox_mark([ids[4]], "unroutable")
    await storage.inbox_mark([ids[5]], "failed", error="dead-lettered")
    # ids[6:] stay pending
    now = datetime.now(UTC)
    assert await storage.inbox_prune(received_before=now - timedelta(hours=1)) == 0

    assert await storage.inbox_prune(received_before=now + timedelta(seconds=5), limit=3) == 3
    assert await storage.inbox_counts() == {"pending": 2, "done": 1, "failed": 1, "unroutable": 1}
    assert await storage.inbox_prune(received_before=now + timedelta(seconds=5)) == 2
    assert await storage.inbox_counts() == {"pending": 2, "done": 0, "failed": 1, "unroutable": 0}
    assert [item.id for item in await storage.inbox_pending()] == ids[6:]
    assert await storage.inbox_prune(received_before=now + timedelta(seconds=5)) == 0
    with pytest.raises(ValueError):
        await storage.inbox_prune(received_before=datetime(2024, 1, 1))
    with pytest.raises(ValueError):
        await storage.inbox_prune(received_before=now, limit=0)


async def test_upsert_contact_keeps_id_and_updates_name(storage: Storage) -> None:
    tenant = await storage.create_tenant("Acme")
    first = await storage.upsert_contact(tenant.id, "5511", None)
    assert (first.phone_number, first.name) == ("5511", None)
    named = await storage.upsert_contact(tenant.id, "5511", "Ana")
    assert (named.id, named.name) == (first.id, "Ana")
    assert (await storage.upsert_contact(tenant.id, "5511", None)).name == "Ana"
    assert (await storage.upsert_contact(tenant.id, "5511", "")).name == "Ana"
    assert (await storage.upsert_contact(tenant.id, "5511", "Ana Maria")).name == "Ana Maria"
    other = await storage.create_tenant("Other")
    assert (await storage.upsert_contact(other.id, "5511", "X")).id != first.id


async def test_conversation_is_created_once_under_concurrency(storage: Storage) -> None:
    tenant = await storage.create_tenant("Acme")
    account = await storage.add_account(tenant.id, "pn")
    contact = await storage.upsert_contact(tenant.id, "5511", "Ana")
    results: list[tuple[Conversation, bool]] = []

    async def one() -> None:
        results.append(await storage.get_or_create_conversation(tenant.id, contact.id, account.id))

    async with anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(one)
    assert sum(created for _, created in results) == 1
    assert len({conv.id for conv, _ in results}) == 1
    conv = results[0][0]
    assert (conv.stage, conv.assignee_id, conv.last_message_at) == ("new", None, None)
    assert conv.contact == contact
    assert await storage.get_conversation(tenant.id, conv.id) == conv


async def test_update_and_touch_conversation(storage: Storage) -> None:
    desk = await make_desk(storage)
    tid, cid = desk.tenant.id, desk.conversation.id
    agent = await storage.create_user(tid, "agent@example.com", "pw")
    moved = await storage.update_conversation(tid, cid, stage="open", assignee_id=agent.id)
    assert moved is not None and (moved.stage, moved.assignee_id) == ("open", agent.id)
    kept = await storage.update_conversation(tid, cid, stage="won", assignee_id=UNSET)
    assert kept is not None and (kept.stage, kept.assignee_id) == ("won", agent.id)
    assert kept.updated_at >= moved.updated_at
    cleared = await storage.update_conversation(tid, cid, assignee_id=None)
    assert cleared is not None and (cleared.stage, cleared.assignee_id) == ("won", None)
    assert await storage.update_conversation(tid, "missing", stage="x") is None
    with pytest.raises(NotFound):
        await storage.update_conversation(tid, cid, assignee_id="no-such-user")

    await storage.touch_conversation(cid, T0 + timedelta(minutes=5))
    await storage.touch_conversation(cid, T0)  # late arrival must not move it back
    touched = await storage.get_conversation(tid, cid)
    assert touched is not None and touched.last_message_at == T0 + timedelta(minutes=5)
    await storage.touch_conversation(cid, T0 + timedelta(minutes=6, microseconds=7))
    touched = await storage.get_conversation(tid, cid)
    assert touched is not None
    assert touched.last_message_at == T0 + timedelta(minutes=6, microseconds=7)


async def test_tenant_isolation(storage: Storage) -> None:
    mine = await make_desk(storage)
    theirs = await make_desk(storage)
    message, _ = await add_message(storage, mine, T0, wamid="wamid.1")
    assert await storage.get_conversation(theirs.tenant.id, mine.conversation.id) is None
    assert await storage.get_message(theirs.tenant.id, message.id) is None
    assert await storage.get_message(mine.tenant.id, message.id) == message
    assert (
        await storage.update_conversation(theirs.tenant.id, mine.conversation.id, stage="x") is None
    )
    assert await storage.update_message_status(theirs.tenant.id, "wamid.1", "READ") is None
    page, _ = await storage.list_messages(theirs.tenant.id, mine.conversation.id)
    assert page == []
    convs, _ = await storage.list_conversations(theirs.tenant.id)
    assert [c.id for c in convs] == [theirs.conversation.id]
    # Cross-tenant references are refused by the database itself.
    stranger = await storage.create_user(theirs.tenant.id, "s@example.com", "pw")
    with pytest.raises(NotFound):
        await storage.update_conversation(
            mine.tenant.id, mine.conversation.id, assignee_id=stranger.id
        )
    with pytest.raises(NotFound):
        await storage.get_or_create_conversation(mine.tenant.id, theirs.contact.id, mine.account.id)
    with pytest.raises(NotFound):
        await add_message(
            storage, Desk(theirs.tenant, theirs.account, theirs.contact, mine.conversation), T0
        )
    assert await storage.count_messages(mine.tenant.id) == 1
    assert await storage.count_messages(theirs.tenant.id) == 0
    assert await storage.count_messages() == 1


async def test_insert_message_is_idempotent(storage: Storage) -> None:
    desk = await make_desk(storage)
    first, created = await add_message(
        storage, desk, T0, wamid="wamid.A", status="DELIVERED", direction="inbound"
    )
    assert created and first.whatsapp_message_id == "wamid.A"
    assert (first.direction, first.status, first.error) == ("inbound", "DELIVERED", None)
    assert first.metadata == {"n": 1, "tags": ["a"]} and first.timestamp == T0
    again, created = await add_message(storage, desk, T0 + timedelta(seconds=1), wamid="wamid.A")
    assert not created and again == first
    # Messages without a WhatsApp id yet (outbound, not sent) are never deduplicated.
    a, a_created = await add_message(storage, desk, T0)
    b, b_created = await add_message(storage, desk, T0)
    assert a_created and b_created and a.id != b.id
    assert await storage.count_messages(desk.tenant.id) == 3
    with pytest.raises(ValueError):
        await add_message(storage, desk, T0, status="LOST")


async def test_status_is_monotonic_in_every_order(storage: Storage) -> None:
    desk = await make_desk(storage)
    n = 0
    for k in range(1, 5):
        for order in itertools.permutations(["SENT", "DELIVERED", "READ", "FAILED"], k):
            n += 1
            wamid = f"wamid.{n}"
            await add_message(storage, desk, T0, wamid=wamid)
            current = "PENDING"
            for status in order:
                result = await storage.update_message_status(
                    desk.tenant.id, wamid, status, error={"code": 1} if status == "FAILED" else None
                )
                assert result is not None
                message, changed = result
                assert changed == (RANK[status] > RANK[current]), (order, status)
                current = max(current, status, key=RANK.__getitem__)
                assert message.status == current
            assert current == max(order, key=RANK.__getitem__)
            final = await storage.update_message_status(desk.tenant.id, wamid, "SENT")
            assert final is not None and final[0].status == current and not final[1]
            assert (final[0].error is not None) == ("FAILED" in order)
    assert n == 64
    assert await storage.update_message_status(desk.tenant.id, "wamid.unknown", "READ") is None
    # Delivery reports are for what we sent: an inbound message never takes one.
    inbound, _ = await add_message(
        storage, desk, T0, wamid="wamid.in", status="DELIVERED", direction="inbound"
    )
    result = await storage.update_message_status(desk.tenant.id, "wamid.in", "READ")
    assert result is not None and result == (inbound, False)
    with pytest.raises(ValueError):
        await storage.update_message_status(desk.tenant.id, "wamid.1", "RECEIVED")


async def test_mark_message_sent_and_failed(storage: Storage) -> None:
    desk = await make_desk(storage)
    pending, _ = await add_message(storage, desk, T0)
    sent = await storage.mark_message_sent(pending.id, "wamid.S")
    assert (sent.status, sent.whatsapp_message_id) == ("SENT", "wamid.S")
    await storage.update_message_status(desk.tenant.id, "wamid.S", "READ")
    again = await storage.mark_message_sent(pending.id, "wamid.S")
    assert again.status == "READ"

    other, _ = await add_message(storage, desk, T0)
    with pytest.raises(Conflict):
        await storage.mark_message_sent(other.id, "wamid.S")
    failed = await storage.mark_message_failed(other.id, {"code": 131026, "title": "undeliverable"})
    assert (failed.status, failed.error) == ("FAILED", {"code": 131026, "title": "undeliverable"})
    assert (await storage.mark_message_sent(other.id, "wamid.T")).status == "FAILED"
    with pytest.raises(NotFound):
        await storage.mark_message_sent("missing", "wamid.X")
    with pytest.raises(NotFound):
        await storage.mark_message_failed("missing", {})


async def test_conversation_pages_cover_every_row_once_in_order(storage: Storage) -> None:
    tenant = await storage.create_tenant("Acme")
    account = await storage.add_account(tenant.id, "pn")
    times = [T0, None, T0 + timedelta(hours=1), T0, None, T0 - timedelta(days=1), T0, None]
    for i, at in enumerate(times):
        contact = await storage.upsert_contact(tenant.id, f"55{i}", None)
        conv, _ = await storage.get_or_create_conversation(tenant.id, contact.id, account.id)
        if at is not None:
            await storage.touch_conversation(conv.id, at)
        if i % 2:
            await storage.update_conversation(tenant.id, conv.id, stage="open")

    everything, cursor = await storage.list_conversations(tenant.id, limit=100)
    assert cursor is None and len(everything) == len(times)
    newest_first = sorted(
        everything,
        key=lambda c: (c.last_message_at is None, -(c.last_message_at or T0).timestamp(), c.id),
    )
    assert [c.id for c in everything] == [c.id for c in newest_first]

    for stage, expected in (
        (None, everything),
        ("open", [c for c in everything if c.stage == "open"]),
    ):
        seen: list[str] = []
        cursor = None
        while True:
            page, cursor = await storage.list_conversations(
                tenant.id, stage=stage, cursor=cursor, limit=3
            )
            assert len(page) <= 3
            seen += [c.id for c in page]
            if cursor is None:
                break
        assert seen == [c.id for c in expected]

    with pytest.raises(ValueError):
        await storage.list_conversations(tenant.id, cursor="garbage!")
    with pytest.raises(ValueError):
        await storage.list_conversations(tenant.id, limit=0)


async def test_message_pages_newest_first(storage: Storage) -> None:
    desk = await make_desk(storage)
    ids = []
    for i in range(11):
        msg, _ = await add_message(storage, desk, T0 + timedelta(seconds=i // 2))
        ids.append(msg.id)
    everything, cursor = await storage.list_messages(desk.tenant.id, desk.conversation.id, limit=50)
    assert cursor is None and sorted(m.id for m in everything) == sorted(ids)
    keys = [(m.timestamp, m.id) for m in everything]
    assert keys == sorted(keys, reverse=True)

    seen: list[str] = []
    before = None
    pages = 0
    while True:
        page, before = await storage.list_messages(
            desk.tenant.id, desk.conversation.id, before=before, limit=4
        )
        pages += 1
        seen += [m.id for m in page]
        if before is None:
            break
    assert seen == [m.id for m in everything] and pages == 3
    conv_cursor = (await storage.list_conversations(desk.tenant.id, limit=1))[1]
    assert conv_cursor is None  # a single conversation: no next page
    with pytest.raises(ValueError):
        await storage.list_messages(desk.tenant.id, desk.conversation.id, before="Zm9v")


async def test_dead_letters(storage: Storage) -> None:
    first = await storage.add_dead_letter("inbound", {"body": "x", "n": [1, 2]}, "boom")
    second = await storage.add_dead_letter("outbound", {}, "timeout")
    assert second > first
    letters = await storage.list_dead_letters()
    assert [d.id for d in letters] == [second, first]
    assert (letters[1].kind, letters[1].payload, letters[1].error) == (
        "inbound",
        {"body": "x", "n": [1, 2]},
        "boom",
    )
    assert [d.id for d in await storage.list_dead_letters(limit=1)] == [second]


async def test_check_writable_commits_and_leaves_nothing(storage: Storage) -> None:
    await storage.set_meta("clean_shutdown", "1")
    await storage.check_writable()
    await storage.check_writable()
    assert await storage.get_meta("zapline:write-probe") is None
    assert await storage.get_meta("clean_shutdown") == "1"
    await storage.aclose()
    with pytest.raises(StorageUnavailable):
        await storage.check_writable()


async def test_a_burst_in_one_second_keeps_its_order(storage: Storage) -> None:
    # WhatsApp's timestamps are whole seconds: three messages of one second come back in the
    # order they were stored (newest first), not shuffled by a random id.
    desk = await make_desk(storage)
    stored = [(await add_message(storage, desk, T0))[0].id for _ in range(3)]
    page, _ = await storage.list_messages(desk.tenant.id, desk.conversation.id, limit=10)
    assert [m.id for m in page] == stored[::-1]
