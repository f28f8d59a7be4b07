"""The SQLite connection's own thread (``storage._sqlite_thread``): order, errors, cancels."""

from __future__ import annotations

import threading
import time

import anyio
import pytest

from storage._sqlite_thread import SQLiteThread

pytestmark = pytest.mark.anyio


async def test_calls_run_one_at_a_time_in_order_on_one_thread(anyio_backend: str) -> None:
    worker = SQLiteThread("test-sqlite")
    seen: list[tuple[int, str]] = []
    running = [0]

    def call(i: int) -> int:
        running[0] += 1
        assert running[0] == 1, "two calls at once"
        time.sleep(0.001)
        seen.append((i, threading.current_thread().name))
        running[0] -= 1
        return i * 2

    results: dict[int, int] = {}

    async def submit(i: int) -> None:
        results[i] = await worker.run(lambda: call(i))

    async with anyio.create_task_group() as tg:
        for i in range(20):
            tg.start_soon(submit, i)
            await anyio.lowlevel.checkpoint()  # submitted in this order
    worker.stop()
    assert results == {i: i * 2 for i in range(20)}
    assert [i for i, _ in seen] == list(range(20))
    assert threading.current_thread().name not in {name for _, name in seen}
    if anyio_backend == "asyncio":
        assert {name for _, name in seen} == {"test-sqlite"}


async def test_an_exception_reaches_its_caller_and_the_thread_goes_on(anyio_backend: str) -> None:
    worker = SQLiteThread("test-sqlite")

    def fail() -> None:
        raise LookupError("no such row")

    with pytest.raises(LookupError, match="no such row"):
        await worker.run(fail)
    assert await worker.run(lambda: "still serving") == "still serving"
    worker.stop()


async def test_a_cancelled_caller_leaves_its_call_to_finish(anyio_backend: str) -> None:
    worker = SQLiteThread("test-sqlite")
    started, release = threading.Event(), threading.Event()
    done: list[str] = []

    def slow() -> str:
        started.set()
        release.wait(5)
        done.append("slow")
        return "slow"

    # Released from outside the event loop: anyio's threads (trio) hold the cancel until
    # the call returns, the asyncio path cancels the wait at once.
    threading.Timer(0.2, release.set).start()
    with anyio.move_on_after(0.05) as scope:
        await worker.run(slow)
    # The next call runs after the cancelled one finished: never both at once, none lost.
    assert await worker.run(lambda: list(done)) == ["slow"]
    assert scope.cancelled_caught or done == ["slow"]
    worker.stop()
