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
from storage import Storage, open_storage

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
