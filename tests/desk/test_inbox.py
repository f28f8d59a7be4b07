from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from desk.inbox import InboxWriter, IntakeUnavailable
from storage import open_storage

pytestmark = pytest.mark.anyio


async def test_concurrent_posts_share_transactions(tmp_path: Path, anyio_backend: str) -> None:
    storage = await open_storage(f"sqlite:///{tmp_path / 'i.db'}")
    await storage.migrate()
    writer = InboxWriter(storage)
    ids: list[int] = []
    async with anyio.create_task_group() as tg:
        await tg.start(writer.run)

        async def post(i: int) -> None:
            ids.append(await writer.commit(f'{{"n":{i}}}'.encode()))

        async with anyio.create_task_group() as posts:
            for i in range(200):
                posts.start_soon(post, i)
        tg.cancel_scope.cancel()
    assert sorted(ids) == list(range(1, 201))
    pending = await storage.inbox_pending(limit=500)
    assert len(pending) == 200
    # Group commit: 200 concurrent posts need far fewer transactions than posts.
    assert writer.statistics()["committed"] == 200
    assert writer.statistics()["batches"] < 50
    await storage.aclose()


async def test_storage_failure_is_reported_to_every_waiter(
    tmp_path: Path, anyio_backend: str
) -> None:
    storage = await open_storage(f"sqlite:///{tmp_path / 'i.db'}")
    await storage.migrate()
    writer = InboxWriter(storage)
    failures: list[str] = []
    async with anyio.create_task_group() as tg:
        await tg.start(writer.run)
        await storage.aclose()  # the database goes away under the writer

        async def post() -> None:
            try:
                await writer.commit(b"{}")
            except IntakeUnavailable as exc:
                failures.append(str(exc))

        async with anyio.create_task_group() as posts:
            for _ in range(5):
                posts.start_soon(post)
        tg.cancel_scope.cancel()
    assert len(failures) == 5


async def test_commit_before_run_is_refused(tmp_path: Path, anyio_backend: str) -> None:
    storage = await open_storage(f"sqlite:///{tmp_path / 'i.db'}")
    with pytest.raises(IntakeUnavailable):
        await InboxWriter(storage).commit(b"{}")
    await storage.aclose()
