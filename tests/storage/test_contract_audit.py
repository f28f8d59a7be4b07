"""The storage contract for the audit log and for conversation versions.

Part of the contract suite (``test_contract.py``): the same tests on every implementation,
on asyncio because asyncpg is asyncio-only.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import anyio
import pytest
from test_contract_inbound import T0, inbound, make_account

from storage import AuditRecord, Storage, VersionConflict

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("anyio_backend", ["asyncio"])]


def row(tenant_id: str | None, action: str, n: int, *, user: str = "u1") -> AuditRecord:
    return AuditRecord(
        tenant_id=tenant_id,
        user_id=user,
        action=action,
        target=f"conversation:c{n}",
        at=T0 + timedelta(seconds=n),
        details={"n": n, "nested": {"ok": True}},
        request_id=f"req-{n}",
    )


async def test_audit_rows_are_listed_newest_first_by_pages(storage: Storage) -> None:
    tenant, _ = await make_account(storage)
    other, _ = await make_account(storage)
    await storage.append_audit([row(tenant.id, "login_ok", n) for n in range(7)])
    await storage.append_audit([row(other.id, "login_ok", 99), row(None, "login_failed", 98)])
    seen, cursor, pages = [], None, 0
    while True:
        page, cursor = await storage.list_audit(tenant.id, cursor=cursor, limit=3)
        pages += 1
        seen += page
        if cursor is None:
            break
    assert pages == 3
    assert [e.details["n"] for e in seen] == [6, 5, 4, 3, 2, 1, 0]
    first = seen[-1]
    assert (first.tenant_id, first.user_id, first.action) == (tenant.id, "u1", "login_ok")
    assert (first.target, first.request_id, first.at) == ("conversation:c0", "req-0", T0)
    assert first.details == {"n": 0, "nested": {"ok": True}}
    with pytest.raises(ValueError):
        await storage.list_audit(tenant.id, cursor="garbage")


async def test_audit_rows_filter_by_action_and_user(storage: Storage) -> None:
    tenant, _ = await make_account(storage)
    await storage.append_audit(
        [row(tenant.id, "login_ok", 1), row(tenant.id, "login_failed", 2, user="u2")]
        + [row(tenant.id, "reply_sent", 3, user="u2")]
    )
    by_action, _ = await storage.list_audit(tenant.id, action="login_failed")
    assert [e.details["n"] for e in by_action] == [2]
    by_user, _ = await storage.list_audit(tenant.id, user_id="u2")
    assert [e.details["n"] for e in by_user] == [3, 2]
    both, _ = await storage.list_audit(tenant.id, user_id="u2", action="reply_sent")
    assert [e.details["n"] for e in both] == [3]


async def test_a_large_batch_is_stored_whole_and_old_rows_are_pruned(storage: Storage) -> None:
    tenant, _ = await make_account(storage)
    now = datetime.now(UTC)
    old = [
        AuditRecord(tenant.id, "u1", "login_ok", None, now - timedelta(days=100), {"i": i})
        for i in range(450)
    ]
    fresh = [AuditRecord(tenant.id, "u1", "login_ok", None, now, {"i": i}) for i in range(5)]
    await storage.append_audit(old + fresh)
    assert await storage.prune_audit(before=now - timedelta(days=90), limit=200) == 200
    assert await storage.prune_audit(before=now - timedelta(days=90), limit=1000) == 250
    left, cursor = await storage.list_audit(tenant.id, limit=200)
    assert cursor is None and len(left) == 5


async def test_every_update_counts_the_version_up(storage: Storage) -> None:
    tenant, account = await make_account(storage)
    conv = (await inbound(storage, tenant.id, account.id, "wamid.v1", T0)).conversation
    assert conv.version == 0
    moved = await storage.update_conversation(tenant.id, conv.id, stage="open")
    assert moved is not None and moved.version == 1
    again = await storage.update_conversation(tenant.id, conv.id, stage="won", expected_version=1)
    assert again is not None and (again.version, again.stage) == (2, "won")
    # A new message moves the card but is no change of its fields: the version stays.
    touched = await inbound(storage, tenant.id, account.id, "wamid.v2", T0 + timedelta(1))
    assert touched.conversation.version == 2
    (listed,), _ = await storage.list_conversations(tenant.id)
    assert listed.version == 2


async def test_a_stale_expected_version_changes_nothing(storage: Storage) -> None:
    tenant, account = await make_account(storage)
    conv = (await inbound(storage, tenant.id, account.id, "wamid.v3", T0)).conversation
    await storage.update_conversation(tenant.id, conv.id, stage="open")
    with pytest.raises(VersionConflict) as stale:
        await storage.update_conversation(tenant.id, conv.id, stage="lost", expected_version=0)
    assert (stale.value.current.version, stale.value.current.stage) == (1, "open")
    after = await storage.get_conversation(tenant.id, conv.id)
    assert after is not None and (after.version, after.stage) == (1, "open")
    assert (
        await storage.update_conversation(tenant.id, "nope", stage="x", expected_version=0) is None
    )


async def test_of_racing_updates_with_one_version_exactly_one_wins(storage: Storage) -> None:
    tenant, account = await make_account(storage)
    conv = (await inbound(storage, tenant.id, account.id, "wamid.v4", T0)).conversation
    outcomes: list[str] = []

    async def move(stage: str) -> None:
        try:
            await storage.update_conversation(tenant.id, conv.id, stage=stage, expected_version=0)
            outcomes.append(stage)
        except VersionConflict:
            outcomes.append("conflict")

    async with anyio.create_task_group() as tg:
        for stage in ("a", "b", "c", "d"):
            tg.start_soon(move, stage)
    assert outcomes.count("conflict") == 3
    after = await storage.get_conversation(tenant.id, conv.id)
    assert after is not None and after.version == 1 and after.stage in outcomes
