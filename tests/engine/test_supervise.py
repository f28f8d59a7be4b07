"""Supervisor: restarts with backoff, readiness, individual and ordered stops, on asyncio and trio."""

from __future__ import annotations

import logging

import anyio
import anyio.abc
import anyio.lowlevel
import pytest

from engine.supervise import ChildStatus, Supervisor

pytestmark = pytest.mark.anyio


class Boom(Exception):
    """A child's planned crash."""


async def test_crashing_child_is_restarted_with_backoff(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[float] = []
    steady = anyio.Event()

    async def flaky() -> None:
        calls.append(anyio.current_time())
        if len(calls) <= 3:
            raise Boom(f"crash {len(calls)}")
        steady.set()
        await anyio.sleep_forever()

    with caplog.at_level(logging.ERROR, logger="zapline.supervise"), anyio.fail_after(10):
        async with Supervisor(min_backoff=0.005, max_backoff=0.01) as sup:
            await sup.start("flaky", flaky)
            await steady.wait()
            state = sup.children()["flaky"]
            assert state.status is ChildStatus.RUNNING
            assert state.restarts == 3
            assert state.last_error == repr(Boom("crash 3"))
    # Backoffs were 0.005, 0.01 and 0.01 (capped): a loose lower bound on the gaps.
    assert calls[3] - calls[0] >= 0.02
    messages = [r.getMessage() for r in caplog.records if r.name == "zapline.supervise"]
    assert [m.split(" in ")[1] for m in messages] == ["0.005s", "0.010s", "0.010s"]
    assert sup.children()["flaky"].status is ChildStatus.STOPPED


async def test_status_is_restarting_during_backoff() -> None:
    async def crash() -> None:
        raise Boom("down")

    with anyio.fail_after(10):
        async with Supervisor(min_backoff=0.05, max_backoff=0.05) as sup:
            await sup.start("c", crash)
            await anyio.wait_all_tasks_blocked()  # the runner is asleep in its backoff
            state = sup.children()["c"]
            assert (state.status, state.restarts) == (ChildStatus.RESTARTING, 1)
            await sup.stop("c")  # stop() also interrupts a backoff
            assert sup.children()["c"].status is ChildStatus.STOPPED


async def test_backoff_resets_after_a_healthy_run(caplog: pytest.LogCaptureFixture) -> None:
    calls = 0
    settled = anyio.Event()

    async def child() -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            await anyio.sleep(0.03)  # longer than reset_after: counts as healthy
        if calls <= 3:
            raise Boom(str(calls))
        settled.set()
        await anyio.sleep_forever()

    with caplog.at_level(logging.ERROR, logger="zapline.supervise"), anyio.fail_after(10):
        async with Supervisor(min_backoff=0.001, max_backoff=1.0, reset_after=0.02) as sup:
            await sup.start("c", child)
            await settled.wait()
    messages = [r.getMessage() for r in caplog.records if r.name == "zapline.supervise"]
    assert [m.split(" in ")[1] for m in messages] == ["0.001s", "0.002s", "0.001s"]


async def test_normal_return_is_not_restarted() -> None:
    calls = 0

    async def once() -> None:
        nonlocal calls
        calls += 1

    with anyio.fail_after(10):
        async with Supervisor(min_backoff=0.001) as sup:
            await sup.start("once", once)
            await anyio.wait_all_tasks_blocked()
            state = sup.children()["once"]
            assert (state.status, state.restarts, calls) == (ChildStatus.STOPPED, 0, 1)
            await sup.start("once", once)  # a finished name may be started again
            await anyio.wait_all_tasks_blocked()
    assert calls == 2


async def test_stop_one_child() -> None:
    stopped: list[str] = []

    async def service(name: str) -> None:
        try:
            await anyio.sleep_forever()
        finally:
            stopped.append(name)

    with anyio.fail_after(10):
        async with Supervisor() as sup:
            await sup.start("a", service, "a")
            await sup.start("b", service, "b")
            await sup.stop("a")
            assert stopped == ["a"]
            states = sup.children()
            assert states["a"].status is ChildStatus.STOPPED
            assert states["b"].status is ChildStatus.RUNNING
            with pytest.raises(ValueError, match="already running"):
                await sup.start("b", service, "b")
            with pytest.raises(KeyError):
                await sup.stop("nobody")
    assert stopped == ["a", "b"]


@pytest.mark.parametrize("how", ["stop_all", "exit", "host cancelled"])
async def test_children_stop_in_reverse_start_order(how: str) -> None:
    events: list[str] = []

    async def service(name: str) -> None:
        try:
            await anyio.sleep_forever()
        finally:
            events.append(f"{name} stopping")
            # A cleanup that takes time: the next child must not be cancelled meanwhile.
            with anyio.CancelScope(shield=True):
                await anyio.sleep(0.005)
            events.append(f"{name} stopped")

    with anyio.fail_after(10):
        with anyio.CancelScope() as host:
            async with Supervisor() as sup:
                for name in "abc":
                    await sup.start(name, service, name)
                if how == "stop_all":
                    await sup.stop_all()
                    assert all(s.status is ChildStatus.STOPPED for s in sup.children().values())
                elif how == "host cancelled":
                    host.cancel()
                    await anyio.sleep_forever()
        assert host.cancelled_caught == (how == "host cancelled")
    assert events == [f"{n} {what}" for n in "cba" for what in ("stopping", "stopped")]


async def test_task_status_readiness() -> None:
    ready: list[int] = []

    async def listener(port: int, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        await anyio.sleep(0.005)  # e.g. binding a socket
        ready.append(port)
        task_status.started()
        await anyio.sleep_forever()

    with anyio.fail_after(10):
        async with Supervisor() as sup:
            await sup.start("listener", listener, 3334)
            assert ready == [3334]
            assert sup.children()["listener"].status is ChildStatus.RUNNING


async def test_restarted_child_signals_readiness_again() -> None:
    attempts = 0
    second_ready = anyio.Event()

    async def listener(*, task_status: anyio.abc.TaskStatus[None]) -> None:
        nonlocal attempts
        attempts += 1
        task_status.started()
        if attempts == 1:
            raise Boom("lost the socket")
        second_ready.set()
        await anyio.sleep_forever()

    with anyio.fail_after(10):
        async with Supervisor(min_backoff=0.001) as sup:
            await sup.start("listener", listener)
            await second_ready.wait()
            state = sup.children()["listener"]
            assert (state.status, state.restarts) == (ChildStatus.RUNNING, 1)


async def test_failure_before_ready_raises_from_start() -> None:
    async def cannot_bind(*, task_status: anyio.abc.TaskStatus[None]) -> None:
        raise OSError("address in use")

    async def other() -> None:
        await anyio.sleep_forever()

    with anyio.fail_after(10):
        async with Supervisor(min_backoff=0.001) as sup:
            await sup.start("other", other)
            with pytest.raises(OSError, match="address in use"):
                await sup.start("listener", cannot_bind)
            states = sup.children()
            assert states["listener"].status is ChildStatus.STOPPED
            assert states["listener"].restarts == 0
            assert states["other"].status is ChildStatus.RUNNING


async def test_crash_without_restart_cancels_the_tree() -> None:
    stopped: list[str] = []

    async def service(name: str) -> None:
        try:
            await anyio.sleep_forever()
        finally:
            stopped.append(name)

    async def fatal() -> None:
        await anyio.lowlevel.checkpoint()
        raise Boom("fatal")

    with anyio.fail_after(10):
        with pytest.raises(ExceptionGroup) as info:
            async with Supervisor() as sup:
                await sup.start("a", service, "a")
                await sup.start("b", service, "b")
                await sup.start("fatal", fatal, restart=False)
                await anyio.sleep_forever()
    assert info.group_contains(Boom, match="fatal")
    assert stopped == ["b", "a"]
    assert sup.children()["fatal"].last_error == repr(Boom("fatal"))


async def test_start_outside_context_is_refused() -> None:
    async def noop() -> None:
        pass

    with pytest.raises(RuntimeError, match="async with"):
        await Supervisor().start("x", noop)
