"""PriorityJobQueue: each clause of the class contract, on asyncio and trio."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.jobs import (
    ExpectedError,
    Job,
    PermanentError,
    Priority,
    PriorityJobQueue,
    QueueClosed,
    QueueFull,
)

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def running(queue: PriorityJobQueue) -> AsyncIterator[anyio.abc.TaskGroup]:
    """Run ``queue`` in a task group for the block; cancel it afterwards."""
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            await tg.start(queue.run)
            yield tg
            tg.cancel_scope.cancel()


class Recorder:
    """A handler that records payloads and can be told to fail a number of times."""

    def __init__(self, failures: int = 0, exc: type[Exception] = ValueError) -> None:
        self.seen: list[Any] = []
        self.failures = failures
        self.exc = exc

    async def __call__(self, payload: Any) -> None:
        self.seen.append(payload)
        if self.failures:
            self.failures -= 1
            raise self.exc(f"planned failure for {payload!r}")


async def test_strict_priority_then_fifo() -> None:
    queue = PriorityJobQueue(workers=1)
    rec = Recorder()
    queue.register("k", rec)
    for n, prio in enumerate(
        [
            Priority.HOUSEKEEPING,
            Priority.STATUS,
            Priority.MESSAGE,
            Priority.STATUS,
            Priority.MESSAGE,
        ]
    ):
        queue.put_nowait("k", (prio.name, n), priority=prio)
    async with running(queue):
        assert await queue.drain(5)
    assert rec.seen == [
        ("MESSAGE", 2),
        ("MESSAGE", 4),
        ("STATUS", 1),
        ("STATUS", 3),
        ("HOUSEKEEPING", 0),
    ]


async def test_key_order_holds_across_priorities() -> None:
    queue = PriorityJobQueue(workers=3)
    rec = Recorder()
    queue.register("k", rec)
    queue.put_nowait("k", "a1", key="a", priority=Priority.HOUSEKEEPING)
    queue.put_nowait("k", "a2", key="a", priority=Priority.MESSAGE)
    queue.put_nowait("k", "b1", key="b", priority=Priority.STATUS)
    async with running(queue):
        assert await queue.drain(5)
    assert rec.seen.index("a1") < rec.seen.index("a2")


async def test_same_key_never_overlaps() -> None:
    queue = PriorityJobQueue(workers=4)
    active: set[str] = set()
    started: list[str] = []

    async def handler(payload: str) -> None:
        assert payload not in active, f"{payload} jobs overlapped"
        active.add(payload)
        started.append(payload)
        # Give every other worker the chance to start a job of the same key.
        await anyio.wait_all_tasks_blocked()
        active.discard(payload)

    queue.register("k", handler)
    for _ in range(3):
        queue.put_nowait("k", "a", key="a")
    async with running(queue):
        assert await queue.drain(5)
    assert started == ["a", "a", "a"]


async def _run_keyed(jobs: list[tuple[str | None, int]]) -> None:
    queue = PriorityJobQueue(workers=4, max_size=len(jobs) + 1)
    order: dict[str | None, list[int]] = {}
    busy: set[str] = set()

    async def handler(payload: tuple[str | None, int]) -> None:
        key, seq = payload
        if key is not None:
            assert key not in busy
            busy.add(key)
        await anyio.lowlevel.checkpoint()
        order.setdefault(key, []).append(seq)
        await anyio.lowlevel.checkpoint()
        busy.discard(key or "")

    queue.register("k", handler)
    expected: dict[str | None, list[int]] = {}
    for seq, (key, prio) in enumerate(jobs):
        queue.put_nowait("k", (key, seq), key=key, priority=Priority(prio))
        expected.setdefault(key, []).append(seq)
    async with running(queue):
        assert await queue.drain(5)
    expected.pop(None, None)
    nones = order.pop(None, [])
    assert order == expected
    assert len(nones) == sum(1 for key, _ in jobs if key is None)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b", "c", None]), st.integers(0, 2)),
        max_size=30,
    )
)
def test_per_key_order_equals_put_order(backend: str, jobs: list[tuple[str | None, int]]) -> None:
    anyio.run(_run_keyed, jobs, backend=backend)


async def test_different_keys_run_in_parallel() -> None:
    queue = PriorityJobQueue(workers=2)
    a_started, b_started = anyio.Event(), anyio.Event()

    async def handler(payload: str) -> None:
        # Each job finishes only once the other has started: that needs both at once.
        if payload == "a":
            a_started.set()
            await b_started.wait()
        else:
            b_started.set()
            await a_started.wait()

    queue.register("k", handler)
    queue.put_nowait("k", "a", key="a")
    queue.put_nowait("k", "b", key="b")
    async with running(queue):
        assert await queue.drain(5)
    assert queue.statistics().done == 2


async def test_retries_then_success() -> None:
    done: list[tuple[Job, float]] = []
    queue = PriorityJobQueue(
        base_delay=0.001, max_attempts=5, on_done=lambda j, s: done.append((j, s))
    )
    rec = Recorder(failures=2)
    queue.register("k", rec)
    queue.put_nowait("k", "x")
    async with running(queue):
        assert await queue.drain(5)
    assert rec.seen == ["x", "x", "x"]
    assert [job.attempts for job, _ in done] == [3]
    assert done[0][1] >= 0
    stats = queue.statistics()
    assert (stats.done, stats.retried, stats.dead) == (1, 2, 0)


async def test_retry_keeps_key_order() -> None:
    queue = PriorityJobQueue(workers=3, base_delay=0.01)
    first = Recorder(failures=2)
    queue.register("first", first)
    later: list[str] = []

    async def record(payload: str) -> None:
        later.append(payload)
        assert first.failures == 0, "a later job overtook a retrying one"

    queue.register("later", record)
    queue.put_nowait("first", "f", key="a")
    queue.put_nowait("later", "l", key="a")
    async with running(queue):
        assert await queue.drain(5)
    assert first.seen == ["f", "f", "f"] and later == ["l"]


async def test_retries_exhausted_go_to_dead_letters() -> None:
    dead: list[tuple[Job, BaseException]] = []

    async def on_dead(job: Job, exc: BaseException) -> None:
        dead.append((job, exc))

    queue = PriorityJobQueue(base_delay=0.001, max_attempts=5, on_dead_letter=on_dead)
    queue.register("k", Recorder(failures=99), max_attempts=3)
    queue.put_nowait("k", "x")
    async with running(queue):
        assert await queue.drain(5)
    [(job, exc)] = dead
    assert job.attempts == 3 and isinstance(exc, ValueError)
    stats = queue.statistics()
    assert (stats.done, stats.retried, stats.dead) == (0, 2, 1)


async def test_permanent_error_skips_retries() -> None:
    dead: list[tuple[Job, BaseException]] = []

    async def on_dead(job: Job, exc: BaseException) -> None:
        dead.append((job, exc))

    queue = PriorityJobQueue(base_delay=0.001, on_dead_letter=on_dead)
    rec = Recorder(failures=1, exc=PermanentError)
    queue.register("k", rec)
    queue.put_nowait("k", "x")
    async with running(queue):
        assert await queue.drain(5)
    assert rec.seen == ["x"]
    assert dead[0][0].attempts == 1 and isinstance(dead[0][1], PermanentError)
    assert queue.statistics().retried == 0


async def test_put_waits_while_full() -> None:
    queue = PriorityJobQueue(max_size=1, workers=1)
    release = anyio.Event()
    seen: list[str] = []

    async def handler(payload: str) -> None:
        seen.append(payload)
        if payload == "1":
            await release.wait()

    queue.register("k", handler)
    put_done = anyio.Event()

    async def third_put() -> None:
        await queue.put("k", "3")
        put_done.set()

    async with running(queue) as tg:
        await queue.put("k", "1")
        await anyio.wait_all_tasks_blocked()  # worker now holds "1"; the queue is empty
        await queue.put("k", "2")
        assert queue.qsize() == 1
        tg.start_soon(third_put)
        await anyio.wait_all_tasks_blocked()
        assert not put_done.is_set()
        release.set()  # worker takes "2", which frees the one slot
        await put_done.wait()
        assert await queue.drain(5)
    assert seen == ["1", "2", "3"]


async def test_put_nowait_full_and_closed() -> None:
    queue = PriorityJobQueue(max_size=2)
    queue.register("k", Recorder())
    queue.put_nowait("k", 1)
    queue.put_nowait("k", 2)
    with pytest.raises(QueueFull):
        queue.put_nowait("k", 3)
    with pytest.raises(ValueError, match="register"):
        queue.put_nowait("unknown", 3)
    assert not await queue.drain(0)  # closed, but nobody runs the two jobs
    with pytest.raises(QueueClosed):
        queue.put_nowait("k", 4)
    with pytest.raises(QueueClosed):
        await queue.put("k", 4)


async def test_blocked_put_raises_when_drain_starts() -> None:
    queue = PriorityJobQueue(max_size=1)
    queue.register("k", Recorder())
    queue.put_nowait("k", 1)
    outcome: list[BaseException] = []

    async def blocked_put() -> None:
        try:
            await queue.put("k", 2)
        except QueueClosed as exc:
            outcome.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(blocked_put)
        await anyio.wait_all_tasks_blocked()
        assert not outcome  # still waiting for room
        assert not await queue.drain(0)
    assert len(outcome) == 1 and queue.qsize() == 1


async def test_drain_finishes_work_and_run_returns() -> None:
    queue = PriorityJobQueue(workers=2, base_delay=0.001)
    rec = Recorder(failures=1)
    queue.register("k", rec)
    for n in range(20):
        queue.put_nowait("k", n, key=str(n % 3))
    returned = anyio.Event()

    async def run_then_mark(*, task_status: anyio.abc.TaskStatus[None]) -> None:
        await queue.run(task_status=task_status)
        returned.set()

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            await tg.start(run_then_mark)
            assert await queue.drain(5)
            await returned.wait()  # run() returns by itself: the task group can close
    assert sorted(rec.seen) == sorted([*range(20), 0])
    stats = queue.statistics()
    assert (stats.done, stats.running, stats.waiting_retry, queue.qsize()) == (20, 0, 0, 0)


async def test_drain_timeout_returns_false() -> None:
    queue = PriorityJobQueue()

    async def stuck(payload: object) -> None:
        await anyio.sleep_forever()

    queue.register("k", stuck)
    queue.put_nowait("k", None)
    async with running(queue):
        await anyio.wait_all_tasks_blocked()
        assert not await queue.drain(0.02)
        assert queue.statistics().running == 1


async def test_handler_and_hook_errors_never_kill_workers(caplog: pytest.LogCaptureFixture) -> None:
    async def bad_hook(job: Job, exc: BaseException) -> None:
        raise RuntimeError("dead-letter store is down")

    def bad_done(job: Job, seconds: float) -> None:
        raise RuntimeError("metrics are down")

    queue = PriorityJobQueue(workers=1, on_dead_letter=bad_hook, on_done=bad_done)
    queue.register("bad", Recorder(failures=99), max_attempts=1)
    good = Recorder()
    queue.register("good", good)
    for n in range(3):
        queue.put_nowait("bad", n)
        queue.put_nowait("good", n)
    with caplog.at_level(logging.WARNING, logger="zapline.jobs"):
        async with running(queue):
            assert await queue.drain(5)
    assert good.seen == [0, 1, 2]
    assert queue.statistics().dead == 3
    messages = [r.getMessage() for r in caplog.records if r.name == "zapline.jobs"]
    assert sum("on_dead_letter hook failed" in m for m in messages) == 3
    assert sum("on_done hook failed" in m for m in messages) == 3


async def test_cancelled_run_requeues_running_job() -> None:
    queue = PriorityJobQueue(workers=1)
    entered = anyio.Event()
    calls: list[int] = []

    async def handler(payload: int) -> None:
        calls.append(payload)
        if len(calls) == 1:
            entered.set()
            await anyio.sleep_forever()

    queue.register("k", handler)
    queue.put_nowait("k", 7, key="a")
    async with running(queue):
        await entered.wait()
    stats = queue.statistics()
    assert (stats.running, queue.qsize(), stats.depth["MESSAGE"]) == (0, 1, 1)
    async with running(queue):
        assert await queue.drain(5)
    assert calls == [7, 7]
    assert queue.statistics().done == 1


async def test_statistics_counts() -> None:
    queue = PriorityJobQueue(max_size=50, workers=1, base_delay=0.001)
    queue.register("ok", Recorder())
    queue.register("flaky", Recorder(failures=1))
    queue.register("doomed", Recorder(failures=99), max_attempts=2)
    queue.put_nowait("ok", 1, priority=Priority.STATUS)
    queue.put_nowait("ok", 2, priority=Priority.HOUSEKEEPING)
    queue.put_nowait("flaky", 3)
    queue.put_nowait("doomed", 4, key="x")
    queue.put_nowait("ok", 5, key="x")  # held behind the doomed job of key x
    before = queue.statistics()
    assert before.depth == {"MESSAGE": 3, "STATUS": 1, "HOUSEKEEPING": 1}
    assert (before.running, before.max_size, queue.qsize()) == (0, 50, 5)
    async with running(queue):
        assert await queue.drain(5)
    after = queue.statistics()
    assert after.depth == {"MESSAGE": 0, "STATUS": 0, "HOUSEKEEPING": 0}
    assert (after.done, after.retried, after.dead, after.running, after.waiting_retry) == (
        4,
        2,
        1,
        0,
        0,
    )


async def test_run_twice_is_refused() -> None:
    queue = PriorityJobQueue()
    async with running(queue):
        with pytest.raises(RuntimeError, match="already running"):
            await queue.run()


class Outage(Exception):
    """Stands for a storage outage (the desk's StorageUnavailable)."""


def outage_queue(dead: list[tuple[Job, BaseException]], **kwargs: Any) -> PriorityJobQueue:
    async def on_dead(job: Job, exc: BaseException) -> None:
        dead.append((job, exc))

    return PriorityJobQueue(
        base_delay=0.001,
        max_attempts=3,
        on_dead_letter=on_dead,
        is_transient=lambda exc: isinstance(exc, Outage),
        outage_max_delay=0.005,
        **kwargs,
    )


async def test_an_outage_spends_no_attempts(caplog: pytest.LogCaptureFixture) -> None:
    dead: list[tuple[Job, BaseException]] = []
    queue = outage_queue(dead)
    rec = Recorder(failures=20, exc=Outage)  # far more failures than max_attempts
    queue.register("k", rec)
    queue.put_nowait("k", "x", key="c")
    queue.put_nowait("k", "y", key="c")  # held behind x for the whole outage
    seen_waiting = 0
    async with running(queue):
        while rec.failures:
            seen_waiting = max(seen_waiting, queue.statistics().waiting_outage)
            await anyio.sleep(0.001)
        assert await queue.drain(5)
    assert dead == []
    assert rec.seen == ["x"] * 21 + ["y"]
    assert seen_waiting == 1
    stats = queue.statistics()
    assert (stats.done, stats.dead, stats.waiting_outage, stats.waiting_retry) == (2, 0, 0, 0)
    # One line for the job's outage, without a traceback, not one per retry.
    waits = [r for r in caplog.records if "waits for storage" in r.getMessage()]
    assert len(waits) == 1 and waits[0].exc_info is None


async def test_an_outage_longer_than_its_budget_counts_attempts_again() -> None:
    dead: list[tuple[Job, BaseException]] = []
    queue = outage_queue(dead, outage_timeout=0.05)
    queue.register("k", Recorder(failures=10_000, exc=Outage))
    queue.put_nowait("k", "x")
    async with running(queue):
        assert await queue.drain(5)
    [(job, exc)] = dead
    assert isinstance(exc, Outage) and job.attempts == 3


async def test_other_errors_still_spend_attempts_beside_an_outage_hook() -> None:
    dead: list[tuple[Job, BaseException]] = []
    queue = outage_queue(dead)
    rec = Recorder(failures=99)
    queue.register("k", rec)
    queue.put_nowait("k", "x")
    async with running(queue):
        assert await queue.drain(5)
    assert len(rec.seen) == 3 and len(dead) == 1


@pytest.mark.parametrize(("exc", "traced"), [(ExpectedError, False), (ValueError, True)])
async def test_expected_failures_are_logged_without_a_traceback(
    caplog: pytest.LogCaptureFixture, exc: type[Exception], traced: bool
) -> None:
    queue = PriorityJobQueue(workers=1, max_attempts=2, base_delay=0.001)
    queue.register("k", Recorder(failures=5, exc=exc))
    queue.put_nowait("k", "x")
    with caplog.at_level(logging.WARNING, logger="zapline.jobs"):
        async with running(queue):
            assert await queue.drain(5)
    lines = [r for r in caplog.records if r.name == "zapline.jobs"]
    assert [r.levelname for r in lines] == ["WARNING", "ERROR"]  # one retry, then dead
    assert all("planned failure for 'x'" in r.getMessage() for r in lines)
    assert all((r.exc_info is not None) is traced for r in lines)
