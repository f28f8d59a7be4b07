"""The desk in-process, with its real collaborators: SQLite, the job queue, the Cloud API
client against the local fake. Only the emitter is a recorder (the desk's output port), so
what it announces is asserted directly, without a server or a socket.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest
from _recorder import Recorder

from desk import Desk, DeskOptions
from desk.whatsapp import CloudApiClient, text_message_webhook
from engine.jobs import PriorityJobQueue
from storage import NotFound, Storage, open_storage

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    """The Cloud API client (httpx) and the desk run on asyncio in production."""
    return "asyncio"


@asynccontextmanager
async def running_desk(tmp_path: Path) -> AsyncIterator[tuple[Desk, Storage, Recorder]]:
    storage = await open_storage(f"sqlite:///{tmp_path / 'desk.db'}")
    await storage.migrate()
    recorder = Recorder()

    async def dead_letter(job: Any, exc: BaseException) -> None:
        await desk.on_dead_letter(job, exc)

    queue = PriorityJobQueue(workers=4, base_delay=0.01, on_dead_letter=dead_letter)
    desk = Desk(
        storage=storage,
        emitter=recorder,
        queue=queue,
        cloud=CloudApiClient("http://127.0.0.1:9"),
        options=DeskOptions(node="test", recovery_grace=0, inbox_sweep_interval=3600),
    )
    desk.register()
    try:
        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                await tg.start(queue.run)
                await tg.start(desk.run)
                yield desk, storage, recorder
                tg.cancel_scope.cancel()
    finally:
        await desk.aclose()
        await storage.aclose()


async def wait_for(recorder: Recorder, event: str, count: int = 1) -> list[Any]:
    while len(recorder.named(event)) < count:
        await recorder.changed.wait()
    return recorder.named(event)


async def test_a_webhook_becomes_a_stored_message_and_three_announcements(
    tmp_path: Path,
) -> None:
    async with running_desk(tmp_path) as (desk, storage, recorder):
        tenant = await storage.create_tenant("Acme")
        await storage.add_account(tenant.id, "pn-1")
        body = text_message_webhook(phone_number_id="pn-1", wa_id="5511", body="olá")
        inbox_id = await desk.accept_webhook(orjson.dumps(body), body)
        (new,) = await wait_for(recorder, "message:new")
        assert await storage.count_messages(tenant.id) == 1
        names = [name for name, _, _ in recorder.events]
        assert names == ["conversation:new", "message:new", "conversation:updated"]
        conversation_id = new["conversationId"]
        rooms = {name: to for name, _, to in recorder.events}
        assert rooms["conversation:new"] == (
            f"tenant:{tenant.id}",
            f"conversation:{conversation_id}",
        )
        assert rooms["message:new"] == (f"tenant:{tenant.id}", f"conversation:{conversation_id}")
        assert (new["message"]["direction"], new["message"]["status"]) == ("INBOUND", "DELIVERED")

        # The same webhook again: stored once, announced once.
        await desk.accept_webhook(orjson.dumps(body), body)
        await anyio.sleep(0.3)
        assert len(recorder.named("message:new")) == 1
        assert await storage.count_messages(tenant.id) == 1
        await desk.aclose()  # flushes the done-marks
        assert inbox_id not in [row.id for row in await storage.inbox_pending()]


async def test_a_reply_is_pending_announced_and_failed_with_the_reason(tmp_path: Path) -> None:
    # The Cloud API client points at a closed port: the send is retried, then fails.
    async with running_desk(tmp_path) as (desk, storage, recorder):
        tenant = await storage.create_tenant("Acme")
        account = await storage.add_account(tenant.id, "pn-2")
        contact = await storage.upsert_contact(tenant.id, "5522", "Bia")
        conversation, _ = await storage.get_or_create_conversation(
            tenant.id, contact.id, account.id
        )
        reply = await desk.send_reply(
            conversation, kind="TEXT", content="oi", metadata={}, user_id="u1"
        )
        assert (reply.status, reply.direction, reply.metadata["sentBy"]) == (
            "PENDING",
            "outbound",
            "u1",
        )
        (new,) = await wait_for(recorder, "message:new")
        assert new["message"]["direction"] == "OUTBOUND"
        (failed,) = await wait_for(recorder, "message:status-update")
        assert failed["status"] == "FAILED" and failed["messageId"] == reply.id
        stored = await storage.get_message(tenant.id, reply.id)
        assert stored is not None and stored.status == "FAILED"


async def test_plain_messages_are_stored_in_the_inbox_commit_without_a_job(
    tmp_path: Path,
) -> None:
    async with running_desk(tmp_path) as (desk, storage, recorder):
        tenant = await storage.create_tenant("Acme")
        await storage.add_account(tenant.id, "pn-1")
        body = text_message_webhook(phone_number_id="pn-1", wa_id="5511", body="olá")
        inbox_id = await desk.accept_webhook(orjson.dumps(body), body)
        # When the 200 would leave, the message is stored and its row is finished already.
        assert await storage.count_messages(tenant.id) == 1
        assert (await storage.inbox_counts())["done"] == 1
        assert inbox_id not in [row.id for row in await storage.inbox_pending()]
        assert desk.queue.statistics().done == 0
        names = [name for name, _, _ in recorder.events]
        assert names == ["conversation:new", "message:new", "conversation:updated"]


async def test_a_message_waits_behind_its_conversations_queued_job(tmp_path: Path) -> None:
    async with running_desk(tmp_path) as (desk, storage, recorder):
        tenant = await storage.create_tenant("Acme")
        await storage.add_account(tenant.id, "pn-1")
        release = anyio.Event()
        order: list[str] = []

        async def earlier(payload: Any) -> None:  # stands for an older job of the same chat
            await release.wait()
            order.append("earlier job")

        desk.queue.register("earlier", earlier)
        await desk.queue.put("earlier", None, key="c:pn-1:5511")
        body = text_message_webhook(phone_number_id="pn-1", wa_id="5511", body="next")
        inbox_id = await desk.accept_webhook(orjson.dumps(body), body)
        # Acknowledged (durable) but not stored ahead of the conversation's earlier job.
        assert [row.id for row in await storage.inbox_pending()] == [inbox_id]
        assert await storage.count_messages(tenant.id) == 0
        release.set()
        await wait_for(recorder, "message:new")
        order.append("message")
        assert order == ["earlier job", "message"]
        assert await storage.count_messages(tenant.id) == 1
        # Another chat is not held up by it.
        other = text_message_webhook(phone_number_id="pn-1", wa_id="5522", body="hi")
        await desk.accept_webhook(orjson.dumps(other), other)
        assert await storage.count_messages(tenant.id) == 2


async def test_a_refused_batch_is_acknowledged_and_processed_by_jobs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_desk(tmp_path) as (desk, storage, recorder):
        tenant = await storage.create_tenant("Acme")
        await storage.add_account(tenant.id, "pn-1")
        refused: list[int] = []
        intake_many = storage.intake_many

        async def refuse_records(items: Any) -> Any:
            if any(records for _, records in items):
                refused.append(len(items))
                raise NotFound("refused for the test")
            return await intake_many(items)

        monkeypatch.setattr(storage, "intake_many", refuse_records)
        body = text_message_webhook(phone_number_id="pn-1", wa_id="5511", body="olá")
        inbox_id = await desk.accept_webhook(orjson.dumps(body), body)
        assert refused == [1]
        await wait_for(recorder, "message:new")
        assert await storage.count_messages(tenant.id) == 1
        assert desk.queue.statistics().done == 1  # the "inbound" job stored it
        await desk.aclose()
        assert inbox_id not in [row.id for row in await storage.inbox_pending()]
