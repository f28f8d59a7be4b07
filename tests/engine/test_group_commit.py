"""GroupCommit: each clause of the class contract, on asyncio and trio.

``write_many`` here is a small fake of the test (the injected dependency); it awaits a gate
and a short sleep so that batches form behind a write in flight.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

import anyio
import anyio.abc
import pytest

from engine.group_commit import GroupCommit, GroupCommitFailed, GroupCommitStatistics

pytestmark = pytest.mark.anyio

Outcome = str | Exception


def written(item: int) -> str:
    """The result the fake writer gives ``item``: distinct per item, so mix-ups show."""
    return f"row-{item}"


class Writer:
    """A ``write_many`` that records every batch; the first call can be held in flight.

    ``answer`` gives each item's entry (a result or an exception refusing it); ``explode``
    makes the whole call raise; ``miscount`` adds (or drops) entries of the returned list.
    """

    def __init__(
        self,
        *,
        hold_first: bool = False,
        answer: Callable[[int], Outcome] = written,
    ) -> None:
        self.calls: list[list[int]] = []
        self.answer = answer
        self.in_flight = anyio.Event()
        self.release = anyio.Event()
        if not hold_first:
            self.release.set()
        self.explode = False
        self.miscount = 0
        self.raised: list[Exception] = []
        self.answers: dict[int, Outcome] = {}

    async def __call__(self, items: list[int]) -> Sequence[Outcome]:
        self.calls.append(list(items))
        self.in_flight.set()
        await self.release.wait()
        await anyio.sleep(0.01)
        if self.explode:
            exc = OSError(f"disk full writing {len(items)}")
            self.raised.append(exc)
            raise exc
        results = [self.answer(item) for item in items]
        self.answers.update(zip(items, results, strict=True))
        if self.miscount > 0:
            results.extend(written(-1) for _ in range(self.miscount))
        elif self.miscount < 0:
            del results[self.miscount :]
        return results


@asynccontextmanager
async def running(gc: GroupCommit[int, str]) -> AsyncIterator[anyio.abc.TaskGroup]:
    """Run ``gc`` in a task group for the block; cancel it afterwards."""
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            await tg.start(gc.run)
            yield tg
            tg.cancel_scope.cancel()


async def collect(gc: GroupCommit[int, str], item: int, outcomes: dict[int, Outcome]) -> None:
    """Submit ``item``; store its result, or the exception its caller got."""
    try:
        result = await gc.submit(item)
    except (GroupCommitFailed, ValueError) as exc:
        outcomes[item] = exc
    else:
        # A refusal must be raised, never handed back as if it were the result.
        assert isinstance(result, str), f"submit({item}) returned {result!r}"
        outcomes[item] = result


async def submit_all(gc: GroupCommit[int, str], items: Sequence[int]) -> dict[int, Outcome]:
    """Submit every item concurrently; return each one's outcome."""
    outcomes: dict[int, Outcome] = {}
    async with anyio.create_task_group() as tg:
        for item in items:
            tg.start_soon(collect, gc, item, outcomes)
    return outcomes


async def burst(
    gc: GroupCommit[int, str], writer: Writer, first: int, rest: Sequence[int]
) -> dict[int, Outcome]:
    """Submit ``first`` and hold its write in flight; submit ``rest`` behind it; release.

    The writer must be built with ``hold_first``. Checks that ``rest`` waited meanwhile.
    """
    outcomes: dict[int, Outcome] = {}
    async with anyio.create_task_group() as tg:
        tg.start_soon(collect, gc, first, outcomes)
        await writer.in_flight.wait()
        for item in rest:
            tg.start_soon(collect, gc, item, outcomes)
        await anyio.wait_all_tasks_blocked()
        assert writer.calls == [[first]]
        assert gc.statistics().waiting == len(rest)
        writer.release.set()
    return outcomes


async def test_concurrent_submits_share_batches_and_get_their_own_results() -> None:
    writer = Writer()
    gc: GroupCommit[int, str] = GroupCommit(writer, name="test")
    async with running(gc):
        outcomes = await submit_all(gc, range(100))
    assert outcomes == {item: written(item) for item in range(100)}
    assert len(writer.calls) <= 10, f"100 submits took {len(writer.calls)} writes"
    assert sorted(item for call in writer.calls for item in call) == list(range(100))


async def test_items_arriving_during_a_write_form_the_next_batch() -> None:
    writer = Writer(hold_first=True)
    gc: GroupCommit[int, str] = GroupCommit(writer, name="test")
    async with running(gc):
        outcomes = await burst(gc, writer, 0, range(1, 21))
    assert len(writer.calls) == 2
    assert writer.calls[0] == [0]
    assert sorted(writer.calls[1]) == list(range(1, 21))
    assert outcomes == {item: written(item) for item in range(21)}


async def test_an_item_alone_is_written_at_once() -> None:
    writer = Writer(hold_first=True)
    gc: GroupCommit[int, str] = GroupCommit(writer, name="test")
    async with running(gc):
        outcomes: dict[int, Outcome] = {}
        async with anyio.create_task_group() as tg:
            tg.start_soon(collect, gc, 7, outcomes)
            # Everything else is idle: the write must already be under way, not on a timer.
            await anyio.wait_all_tasks_blocked()
            assert writer.calls == [[7]]
            writer.release.set()
        assert outcomes == {7: written(7)}
        # One after another, each is its own write.
        assert await gc.submit(8) == written(8)
        assert await gc.submit(9) == written(9)
    assert writer.calls == [[7], [8], [9]]


async def test_a_refused_item_raises_to_its_caller_only() -> None:
    def answer(item: int) -> Outcome:
        return ValueError(f"refused {item}") if item % 2 else written(item)

    writer = Writer(hold_first=True, answer=answer)
    gc: GroupCommit[int, str] = GroupCommit(writer, name="test")
    async with running(gc):
        outcomes = await burst(gc, writer, 0, range(1, 7))
    assert sorted(writer.calls[1]) == list(range(1, 7))  # one batch, refused and accepted
    for item in range(7):
        if item % 2:
            # The very exception write_many returned for it, not a wrapper.
            assert outcomes[item] is writer.answers[item]
            assert isinstance(outcomes[item], ValueError)
        else:
            assert outcomes[item] == written(item)


async def test_a_failed_write_fails_its_batch_and_the_writer_goes_on() -> None:
    writer = Writer(hold_first=True)
    writer.explode = True
    gc: GroupCommit[int, str] = GroupCommit(writer, name="test")
    async with running(gc):
        outcomes = await burst(gc, writer, 0, range(1, 6))
        assert len(writer.raised) == 2
        for item in range(6):
            failure = outcomes[item]
            assert isinstance(failure, GroupCommitFailed)
            # Chained to the error of ITS batch: the first write for item 0, the second after.
            assert failure.__cause__ is writer.raised[0 if item == 0 else 1]
        assert len({id(outcomes[item]) for item in range(6)}) == 6  # one per caller

        writer.explode = False
        assert await gc.submit(10) == written(10)
        assert await submit_all(gc, [11, 12]) == {11: written(11), 12: written(12)}
    # The failed batches do not count as written.
    stats = gc.statistics()
    assert (stats.committed, stats.waiting) == (3, 0)
    assert stats.batches in (2, 3)


@pytest.mark.parametrize("miscount", [-1, 1])
async def test_a_wrong_number_of_results_fails_the_batch(miscount: int) -> None:
    writer = Writer(hold_first=True)
    writer.miscount = miscount
    gc: GroupCommit[int, str] = GroupCommit(writer, name="test")
    async with running(gc):
        outcomes = await burst(gc, writer, 0, range(1, 4))
        for item in range(4):
            assert isinstance(outcomes[item], GroupCommitFailed)
        writer.miscount = 0
        assert await gc.submit(5) == written(5)
    assert gc.statistics() == GroupCommitStatistics(1, 1, 0, 1)


async def test_submit_needs_a_running_writer() -> None:
    writer = Writer()
    gc: GroupCommit[int, str] = GroupCommit(writer, name="test")
    # Refused at once: parking it would wait forever, as nothing would ever write it.
    with anyio.fail_after(5), pytest.raises(GroupCommitFailed):
        await gc.submit(1)
    async with running(gc):
        assert await gc.submit(2) == written(2)
    with anyio.fail_after(5), pytest.raises(GroupCommitFailed):
        await gc.submit(3)
    assert writer.calls == [[2]]
    assert gc.statistics().waiting == 0


async def test_submits_racing_the_cancel_of_run_all_fail() -> None:
    # The submits start in the same instant run is cancelled: each one either finds the writer
    # stopped or is parked and failed by run on its way out (asyncio always takes that path).
    writer = Writer()
    gc: GroupCommit[int, str] = GroupCommit(writer, name="test")
    outcomes: dict[int, Outcome] = {}
    with anyio.fail_after(10):
        async with anyio.create_task_group() as submitters:
            async with anyio.create_task_group() as tg:
                await tg.start(gc.run)
                await anyio.wait_all_tasks_blocked()
                for item in range(5):
                    submitters.start_soon(collect, gc, item, outcomes)
                tg.cancel_scope.cancel()
    assert sorted(outcomes) == list(range(5))
    assert all(isinstance(outcome, GroupCommitFailed) for outcome in outcomes.values())
    assert writer.calls == []
    assert gc.statistics() == GroupCommitStatistics(0, 0, 0, 0)


async def test_items_parked_behind_the_write_in_flight_fail_when_run_is_cancelled() -> None:
    writer = Writer(hold_first=True)
    gc: GroupCommit[int, str] = GroupCommit(writer, name="test")
    outcomes: dict[int, Outcome] = {}
    with anyio.fail_after(10):
        async with anyio.create_task_group() as submitters:
            async with anyio.create_task_group() as tg:
                await tg.start(gc.run)
                submitters.start_soon(collect, gc, 0, outcomes)
                await writer.in_flight.wait()
                for item in range(1, 4):
                    submitters.start_soon(collect, gc, item, outcomes)
                await anyio.wait_all_tasks_blocked()
                tg.cancel_scope.cancel()
                writer.release.set()
    # The write in flight was promised its answer; what was only parked was not written.
    assert outcomes[0] == written(0)
    assert writer.calls == [[0]]
    assert all(isinstance(outcomes[item], GroupCommitFailed) for item in range(1, 4))


async def test_max_batch_caps_every_write() -> None:
    with pytest.raises(ValueError):
        GroupCommit(Writer(), name="test", max_batch=0)
    writer = Writer(hold_first=True)
    gc: GroupCommit[int, str] = GroupCommit(writer, name="test", max_batch=4)
    async with running(gc):
        outcomes = await burst(gc, writer, 0, range(1, 11))
    assert outcomes == {item: written(item) for item in range(11)}
    assert [len(call) for call in writer.calls] == [1, 4, 4, 2]
    assert sorted(item for call in writer.calls for item in call) == list(range(11))
    assert gc.statistics() == GroupCommitStatistics(4, 11, 0, 4)


async def test_statistics_count_batches_items_and_waiters() -> None:
    writer = Writer(hold_first=True)
    gc: GroupCommit[int, str] = GroupCommit(writer, name="test")
    assert gc.statistics() == GroupCommitStatistics(0, 0, 0, 0)
    async with running(gc):
        # burst checks ``waiting`` while the first write is in flight.
        await burst(gc, writer, 0, range(1, 6))
        assert gc.statistics() == GroupCommitStatistics(
            batches=2, committed=6, waiting=0, largest_batch=5
        )
        await gc.submit(6)
        assert gc.statistics() == GroupCommitStatistics(
            batches=3, committed=7, waiting=0, largest_batch=5
        )
        writer.explode = True
        with pytest.raises(GroupCommitFailed):
            await gc.submit(7)
    # A failed batch is neither a batch written nor items committed.
    assert gc.statistics() == GroupCommitStatistics(3, 7, 0, 5)


async def answered(
    gc: GroupCommit[int, str], item: int, outcomes: dict[int, Outcome], done: anyio.Event
) -> None:
    """``collect``, then set ``done``."""
    await collect(gc, item, outcomes)
    done.set()


async def paced_batches(gc: GroupCommit[int, str], writer: Writer) -> dict[int, Outcome]:
    """Item 1 written alone (held), item 2 submitted during that write, item 3 right after
    the write returned; returns the outcomes once all three are answered."""
    outcomes: dict[int, Outcome] = {}
    done = {item: anyio.Event() for item in (1, 2, 3)}
    async with running(gc) as tg:
        tg.start_soon(answered, gc, 1, outcomes, done[1])
        await writer.in_flight.wait()  # an idle writer writes at once
        tg.start_soon(answered, gc, 2, outcomes, done[2])
        await anyio.wait_all_tasks_blocked()
        writer.release.set()
        await done[1].wait()
        tg.start_soon(answered, gc, 3, outcomes, done[3])
        await done[2].wait()
        await done[3].wait()
    return outcomes


async def test_min_interval_lets_a_busy_writer_gather_more_and_an_idle_one_write_at_once() -> None:
    writer = Writer(hold_first=True)
    gc: GroupCommit[int, str] = GroupCommit(writer, name="test", min_interval=0.3)
    outcomes = await paced_batches(gc, writer)
    # Item 2 came while the writer was busy: it waited for the interval, and item 3 joined
    # it instead of costing a commit of its own.
    assert writer.calls == [[1], [2, 3]]
    assert outcomes == {item: written(item) for item in (1, 2, 3)}


async def test_without_min_interval_the_next_batch_is_written_as_soon_as_the_last_ends() -> None:
    writer = Writer(hold_first=True)
    gc: GroupCommit[int, str] = GroupCommit(writer, name="test")
    await paced_batches(gc, writer)
    assert writer.calls == [[1], [2], [3]]


@pytest.mark.parametrize("bad", [-0.001, float("nan")])
async def test_min_interval_must_be_seconds(bad: float) -> None:
    with pytest.raises(ValueError, match="min_interval"):
        GroupCommit(Writer(), name="test", min_interval=bad)
