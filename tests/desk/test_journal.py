"""desk/journal.py: logged events reach the sockets in seq order per tenant, each once, with
their offsets; early ones wait, late duplicates are dropped, lasting gaps come from the log."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from _recorder import Recorder

from desk.journal import Journal
from storage import LoggedEvent, Storage, open_storage

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[tuple[Storage, str]]:
    storage = await open_storage(f"sqlite:///{tmp_path / 'journal.db'}")
    await storage.migrate()
    tenant = await storage.create_tenant("Acme")
    try:
        yield storage, tenant.id
    finally:
        await storage.aclose()


async def _logged(storage: Storage, tenant: str, *names: str) -> list[LoggedEvent]:
    events = [LoggedEvent(tenant, name, [f"tenant:{tenant}"], {"n": name}) for name in names]
    await storage.log_events(events)
    return events


async def test_events_go_out_in_seq_order_once_with_their_offsets(
    store: tuple[Storage, str],
) -> None:
    storage, tenant = store
    recorder = Recorder()
    journal = Journal(recorder, storage, gap_wait=60)
    await journal.load()
    a, b, c = await _logged(storage, tenant, "a", "b", "c")
    journal.publish([c])  # early: held
    journal.publish([b])
    assert recorder.events == []
    journal.publish([a])  # a, then the held b and c
    assert [name for name, _, _ in recorder.events] == ["a", "b", "c"]
    assert recorder.offsets == ["1", "2", "3"]
    journal.publish([b, c])  # already emitted: dropped
    assert len(recorder.events) == 3
    assert journal.last(tenant) == 3
    assert journal.statistics()["dropped"] == 2


async def test_a_lasting_gap_is_filled_from_the_log(store: tuple[Storage, str]) -> None:
    storage, tenant = store
    recorder = Recorder()
    journal = Journal(recorder, storage, gap_wait=0.05)
    async with anyio.create_task_group() as tg:
        await tg.start(journal.run)
        # Another task (or a process that died after its commit) never publishes "a".
        _, b = await _logged(storage, tenant, "a", "b")
        journal.publish([b])
        with anyio.fail_after(5):
            while len(recorder.events) < 2:
                await recorder.changed.wait()
        tg.cancel_scope.cancel()
    assert [name for name, _, _ in recorder.events] == ["a", "b"]
    assert recorder.offsets == ["1", "2"]
    assert journal.statistics()["filled"] == 1


async def test_a_restart_starts_after_what_was_logged(store: tuple[Storage, str]) -> None:
    storage, tenant = store
    await _logged(storage, tenant, "before", "the", "restart")
    recorder = Recorder()
    journal = Journal(recorder, storage)
    await journal.load()
    assert journal.last(tenant) == 3
    (after,) = await _logged(storage, tenant, "after")
    journal.publish([after])
    assert recorder.offsets == ["4"]


async def test_other_nodes_events_are_taken_from_the_log(store: tuple[Storage, str]) -> None:
    storage, tenant = store
    recorder = Recorder()
    journal = Journal(recorder, storage, poll_interval=0.02)
    async with anyio.create_task_group() as tg:
        await tg.start(journal.run)
        await _logged(storage, tenant, "x", "y")  # logged elsewhere, never published here
        with anyio.fail_after(5):
            while len(recorder.events) < 2:
                await recorder.changed.wait()
        tg.cancel_scope.cancel()
    assert recorder.offsets == ["1", "2"]
