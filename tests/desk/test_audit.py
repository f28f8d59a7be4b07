"""The audit log's writer on a real SQLite storage: batching, a clean stop, an outage, pruning."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest

from desk import logcontext as logs
from desk.audit import ACTIONS, AuditLog, send_action
from storage import AuditRecord, Storage, open_storage

pytestmark = pytest.mark.anyio


@pytest.fixture
async def store(tmp_path: Path, anyio_backend: str) -> AsyncIterator[Storage]:
    storage = await open_storage(f"sqlite:///{tmp_path / 'audit.db'}")
    await storage.migrate()
    try:
        yield storage
    finally:
        await storage.aclose()


async def all_rows(storage: Storage, tenant_id: str) -> list[int]:
    page, cursor = await storage.list_audit(tenant_id, limit=200)
    out = [e.details["i"] for e in page]
    while cursor:
        page, cursor = await storage.list_audit(tenant_id, cursor=cursor, limit=200)
        out += [e.details["i"] for e in page]
    return out


async def test_rows_are_written_in_batches_off_the_caller(store: Storage) -> None:
    audit = AuditLog(store, flush_interval=60.0, batch_size=100)
    async with anyio.create_task_group() as tg:
        await tg.start(audit.run)
        for i in range(250):
            audit.record("t1", "u1", "reply_sent", f"message:{i}", {"i": i})
        # Nothing was written by record() itself: the caller never waits for storage.
        assert audit.buffered() == 250 and audit.written == 0
        # A full batch wakes the writer long before its 60 s tick; it writes all it holds.
        for _ in range(500):
            if audit.written == 250:
                break
            await anyio.sleep(0.01)
        assert audit.written == 250 and audit.buffered() == 0
        for i in range(250, 260):  # fewer than a batch: they wait for the tick
            audit.record("t1", "u1", "reply_sent", f"message:{i}", {"i": i})
        await anyio.sleep(0.2)
        assert audit.buffered() == 10
        tg.cancel_scope.cancel()
    await audit.aclose()  # the clean stop writes them
    assert audit.buffered() == 0
    assert sorted(await all_rows(store, "t1")) == list(range(260))


async def test_a_clean_stop_writes_what_the_ticks_had_not(store: Storage) -> None:
    audit = AuditLog(store, flush_interval=60.0)
    token = logs.request_id.set("rid-42")
    try:
        audit.record("t1", "u1", "login_ok", "user:u1", {"i": 1})
    finally:
        logs.request_id.reset(token)
    audit.record("t1", "u1", "login_ok", "user:u1", {"i": 2}, request_id="explicit")
    await audit.aclose()
    page, _ = await store.list_audit("t1")
    assert [(e.details["i"], e.request_id) for e in page] == [(2, "explicit"), (1, "rid-42")]


async def test_an_outage_keeps_the_buffer_bounded_and_says_what_it_dropped(
    tmp_path: Path, anyio_backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    storage = await open_storage(f"sqlite:///{tmp_path / 'gone.db'}")
    await storage.migrate()
    await storage.aclose()  # storage is away from here on
    audit = AuditLog(storage, flush_interval=0.05, max_buffered=10)
    with caplog.at_level(logging.WARNING, logger="zapline.audit"):
        async with anyio.create_task_group() as tg:
            await tg.start(audit.run)
            for i in range(12):
                audit.record("t1", "u1", "reply_sent", None, {"i": i})
            for i in range(3):
                audit.record("t1", "u1", "login_failed", None, {"i": 100 + i})
            await anyio.sleep(0.3)
            assert audit.buffered() == 10 and audit.failures >= 1
            tg.cancel_scope.cancel()
    assert audit.dropped == 5
    dropped = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert dropped and "reply_sent x5" in dropped[0].getMessage()
    assert "wait for storage" in caplog.text


async def test_a_target_is_bounded_whatever_a_client_named(store: Storage) -> None:
    # A socket's conversation:join of a 100 KB "id" (anything up to ZAPLINE_MAX_PAYLOAD) was
    # kept verbatim as the join_denied row's target.
    audit = AuditLog(store, flush_interval=60.0)
    audit.record("t1", "u1", "join_denied", "conversation:" + "x" * 100_000, {"i": 1})
    audit.record("t1", "u1", "join_denied", "conversation:abc", {"i": 2})
    await audit.aclose()
    page, _ = await store.list_audit("t1", limit=10)
    targets = {e.details["i"]: e.target for e in page}
    assert targets[2] == "conversation:abc"
    assert targets[1] is not None and len(targets[1]) <= 256
    assert targets[1].startswith("conversation:xxx") and targets[1].endswith("…")


async def test_actions_are_a_closed_set(store: Storage) -> None:
    audit = AuditLog(store)
    with pytest.raises(ValueError, match="unknown audit action"):
        audit.record("t1", "u1", "made_up", None)
    assert audit.buffered() == 0
    assert {send_action(k) for k in ("TEXT", "TEMPLATE", "IMAGE", "STICKER", "LOCATION")} == {
        "reply_sent",
        "template_sent",
        "media_sent",
    }
    assert {"login_ok", "read_receipt_sent", "rate_limit_disconnect"} <= ACTIONS


async def test_rows_past_the_retention_are_pruned(store: Storage) -> None:
    now = datetime.now(UTC)
    await store.append_audit(
        [
            AuditRecord("t1", "u1", "login_ok", None, now - timedelta(days=d), {"i": d})
            for d in (0, 5, 40)
        ]
    )
    assert await AuditLog(store, retention=0).prune() == 0  # 0 keeps everything
    assert await AuditLog(store, retention=30 * 86400).prune() == 1
    assert sorted(await all_rows(store, "t1")) == [0, 5]
