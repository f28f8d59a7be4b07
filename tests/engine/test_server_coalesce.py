"""Deferred emits (``emit_many(..., defer=True)``): one write per recipient per turn, in order.

Over the wire with raw clients for the server, and the ``Coalescer`` on its own with a
recording ``deliver`` for the grouping rules (``engine/_coalesce.py``).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import anyio
import pytest
from engine_wire import (
    WAIT,
    ErrorLog,
    WsClient,
    decode_poll,
    error_log_fixture,  # noqa: F401 (autouse fixture)
    get,
    polling_open,
    post,
    running,
    sio_connect,
)

from engine import Socket, SocketServer
from engine._coalesce import Coalescer
from engine.transport._frames import SharedFrame

pytestmark = pytest.mark.anyio


def _server() -> SocketServer:
    """A server whose sockets join the rooms their auth names (``{"rooms": [...]}``)."""
    server = SocketServer()

    @server.on_connect()
    def connect(socket: Socket, auth: dict[str, Any] | None) -> None:
        for room in (auth or {}).get("rooms", ["tenant"]):
            socket.join(room)

    return server


def _event(name: str, n: int) -> tuple[str, tuple[Any, ...]]:
    return (name, ({"n": n},))


def _packet(name: str, n: int) -> str:
    return f'42["{name}",{{"n":{n}}}]'


async def _recv_all(ws: WsClient, count: int) -> list[str | bytes]:
    return [await ws.recv() for _ in range(count)]


async def _poll(port: int, query: str, count: int) -> list[str | bytes]:
    """Long-poll until ``count`` packets arrived; return them in order."""
    packets: list[str | bytes] = []
    with anyio.fail_after(WAIT):
        while len(packets) < count:
            packets += decode_poll((await get(port, query)).body)
    return packets


async def _polling_member(port: int) -> str:
    """A polling session connected to "/" (so in "tenant"); return its poll query."""
    sid, _ = await polling_open(port)
    query = f"EIO=4&transport=polling&sid={sid}"
    assert (await post(port, query, b"40")).status == 200
    (reply,) = decode_poll((await get(port, query)).body)
    assert isinstance(reply, str) and reply.startswith("40")
    return query


# -- over the wire ---------------------------------------------------------------------------


async def test_deferred_emits_of_one_turn_reach_each_client_in_one_write() -> None:
    server = _server()
    async with running(server) as port:
        clients = [(await sio_connect(port))[0] for _ in range(3)]
        writes, deliveries = server.stats.writes, server.stats.deliveries
        # Same turn, no await in between: four events in three emits.
        assert server.emit_many([_event("a", 1)], to="tenant", defer=True) == 3
        assert server.emit_many([_event("a", 2), _event("b", 3)], to="tenant", defer=True) == 3
        assert server.emit_many([_event("c", 4)], to="tenant", defer=True) == 3
        assert server.stats.writes == writes  # nothing written yet: parked
        expected = [_packet("a", 1), _packet("a", 2), _packet("b", 3), _packet("c", 4)]
        for ws in clients:
            assert await _recv_all(ws, 4) == expected
        assert server.stats.writes - writes == 3  # one per recipient, not per emit
        assert server.stats.deliveries - deliveries == 3 * 4
        assert server.stats.emitted["a"] == 2 and server.stats.emitted["c"] == 1
        for ws in clients:
            await ws.aclose()


async def test_overlapping_recipient_sets_keep_the_emit_order() -> None:
    server = _server()
    async with running(server) as port:
        c1, _ = await sio_connect(port, auth={"rooms": ["A"]})
        c2, _ = await sio_connect(port, auth={"rooms": ["A", "B"]})
        c3, _ = await sio_connect(port, auth={"rooms": ["B"]})
        writes, deliveries = server.stats.writes, server.stats.deliveries
        server.emit_many([_event("A", 1)], to="A", defer=True)
        server.emit_many([_event("B", 1)], to="B", defer=True)
        server.emit_many([_event("A", 2)], to="A", defer=True)
        assert await _recv_all(c1, 2) == [_packet("A", 1), _packet("A", 2)]
        assert await _recv_all(c2, 3) == [_packet("A", 1), _packet("B", 1), _packet("A", 2)]
        assert await _recv_all(c3, 1) == [_packet("B", 1)]
        # Overlapping sets are written emit by emit: one write per recipient per emit.
        assert server.stats.writes - writes == 6
        assert server.stats.deliveries - deliveries == 6
        for ws in (c1, c2, c3):
            await ws.aclose()


async def test_disjoint_recipient_sets_are_each_written_once() -> None:
    server = _server()
    async with running(server) as port:
        c1, _ = await sio_connect(port, auth={"rooms": ["A"]})
        c2, _ = await sio_connect(port, auth={"rooms": ["B"]})
        writes = server.stats.writes
        server.emit_many([_event("A", 1)], to="A", defer=True)
        server.emit_many([_event("B", 1)], to="B", defer=True)
        server.emit_many([_event("A", 2)], to="A", defer=True)
        assert await _recv_all(c1, 2) == [_packet("A", 1), _packet("A", 2)]
        assert await _recv_all(c2, 1) == [_packet("B", 1)]
        assert server.stats.writes - writes == 2
        await c1.aclose()
        await c2.aclose()


async def test_a_direct_emit_flushes_the_deferred_ones_first() -> None:
    server = _server()
    async with running(server) as port:
        c1, _ = await sio_connect(port)
        c2, _ = await sio_connect(port)
        writes = server.stats.writes
        server.emit_many([_event("d", 1)], to="tenant", defer=True)
        server.emit_many([_event("d", 2)], to="tenant", defer=True)
        assert server.emit("direct", to="tenant") == 2
        # Written synchronously: the parked batch (one write each), then the direct emit.
        assert server.stats.writes - writes == 4
        for ws in (c1, c2):
            assert await _recv_all(ws, 3) == [_packet("d", 1), _packet("d", 2), '42["direct"]']
        await c1.aclose()
        await c2.aclose()


async def test_a_binary_emit_flushes_the_deferred_ones_first() -> None:
    server = _server()
    async with running(server) as port:
        ws, _ = await sio_connect(port)
        server.emit_many([_event("d", 1)], to="tenant", defer=True)
        server.emit("blob", b"\x00\x01", to="tenant")
        assert await ws.recv() == _packet("d", 1)
        assert await ws.recv() == '451-["blob",{"_placeholder":true,"num":0}]'
        assert await ws.recv() == b"\x00\x01"
        await ws.aclose()


async def test_a_lone_deferred_emit_is_written_by_the_flusher() -> None:
    server = _server()
    async with running(server) as port:
        ws, _ = await sio_connect(port)
        writes = server.stats.writes
        assert server.emit_many([_event("solo", 1)], to="tenant", defer=True) == 1
        assert server.stats.writes == writes
        # No other emit follows: the flusher alone must write it, on the next turn.
        assert await ws.recv(within=1.0) == _packet("solo", 1)
        assert server.stats.writes == writes + 1
        # And again on a later turn: the flusher went back to waiting, it did not stop.
        server.emit_many([_event("solo", 2)], to="tenant", defer=True)
        assert await ws.recv(within=1.0) == _packet("solo", 2)
        await ws.aclose()


async def test_polling_members_get_the_deferred_events_in_order() -> None:
    server = _server()
    async with running(server) as port:
        ws, _ = await sio_connect(port)
        query = await _polling_member(port)
        deliveries = server.stats.deliveries
        server.emit_many([_event("p", 1), _event("p", 2)], to="tenant", defer=True)
        server.emit_many([_event("p", 3)], to="tenant", defer=True)
        expected = [_packet("p", 1), _packet("p", 2), _packet("p", 3)]
        assert await _recv_all(ws, 3) == expected
        assert await _poll(port, query, 3) == expected
        assert server.stats.deliveries - deliveries == 2 * 3
        # Deferred, then direct: the polling member sees them in that order too.
        server.emit_many([_event("p", 4)], to="tenant", defer=True)
        server.emit("direct", to="tenant")
        assert await _poll(port, query, 2) == [_packet("p", 4), '42["direct"]']
        assert await _recv_all(ws, 2) == [_packet("p", 4), '42["direct"]']
        await ws.aclose()


async def test_a_recipient_closed_before_the_flush_does_not_stop_the_others() -> None:
    server = _server()
    async with running(server) as port:
        c1, _ = await sio_connect(port)
        c2, c2_id = await sio_connect(port)
        writes = server.stats.writes
        assert server.emit_many([_event("x", 1)], to="tenant", defer=True) == 2
        server.close_session(server.sockets[c2_id].session, "server shutdown")
        assert await c1.recv() == _packet("x", 1)
        assert await c2.expect_closed() == 1000  # closed, and never sent the parked event
        assert server.stats.writes - writes == 1
        assert server.stats.slow_consumers == 0  # a closed session is not a slow one
        await c1.aclose()


# -- the Coalescer on its own ----------------------------------------------------------------


class Recorder:
    """A ``deliver`` that records its calls and signals each one."""

    def __init__(self) -> None:
        self.calls: list[tuple[Collection[Any], list[str], list[SharedFrame]]] = []
        self.called = anyio.Event()

    def __call__(self, targets: Collection[Any], texts: list[str], frames: list[Any]) -> int:
        self.calls.append((targets, list(texts), list(frames)))
        self.called.set()
        return len(targets)

    async def wait(self) -> None:
        """Wait for the next flush (its calls are all made at once: ``flush`` never yields)."""
        with anyio.fail_after(WAIT):
            await self.called.wait()
        self.called = anyio.Event()

    def texts(self) -> list[tuple[set[Any], list[str]]]:
        return [(set(targets), texts) for targets, texts, _ in self.calls]


def _park(coalescer: Coalescer, targets: Collection[Any], *texts: str) -> None:
    frames = [SharedFrame(t.encode()) for t in texts]
    coalescer.park(targets, list(texts), frames)


async def test_without_a_flusher_park_delivers_at_once() -> None:
    deliver = Recorder()
    coalescer = Coalescer(deliver)
    _park(coalescer, ("a", "b"), "one")
    _park(coalescer, ("a", "b"), "two")
    assert deliver.texts() == [({"a", "b"}, ["one"]), ({"a", "b"}, ["two"])]
    assert not coalescer.pending
    assert coalescer.flushes == 0 and coalescer.merged == 0
    _park(coalescer, (), "nobody")
    assert len(deliver.calls) == 2


async def test_one_turn_to_the_same_targets_is_one_delivery() -> None:
    deliver = Recorder()
    coalescer = Coalescer(deliver)
    async with anyio.create_task_group() as tg:
        tg.start_soon(coalescer.run)
        await anyio.wait_all_tasks_blocked()
        first = ("a", "b")
        _park(coalescer, first, "1")
        _park(coalescer, {"b", "a"}, "2", "3")  # same set, another collection
        _park(coalescer, ["a", "b"], "4")
        _park(coalescer, (), "nobody")  # no targets: never parked
        assert coalescer.pending and deliver.calls == []
        await deliver.wait()
        assert not coalescer.pending
        ((targets, texts, frames),) = deliver.calls
        assert targets is first
        assert texts == ["1", "2", "3", "4"]
        assert [f.payload for f in frames] == [b"1", b"2", b"3", b"4"]
        assert coalescer.flushes == 1 and coalescer.merged == 2
        tg.cancel_scope.cancel()


async def test_disjoint_targets_are_one_delivery_each() -> None:
    deliver = Recorder()
    coalescer = Coalescer(deliver)
    async with anyio.create_task_group() as tg:
        tg.start_soon(coalescer.run)
        await anyio.wait_all_tasks_blocked()
        _park(coalescer, ("a",), "A1")
        _park(coalescer, ("b", "c"), "B1")
        _park(coalescer, ("a",), "A2")
        await deliver.wait()
        assert deliver.texts() == [({"a"}, ["A1", "A2"]), ({"b", "c"}, ["B1"])]
        assert coalescer.flushes == 1 and coalescer.merged == 1
        tg.cancel_scope.cancel()


async def test_overlapping_targets_are_delivered_emit_by_emit_in_order() -> None:
    deliver = Recorder()
    coalescer = Coalescer(deliver)
    async with anyio.create_task_group() as tg:
        tg.start_soon(coalescer.run)
        await anyio.wait_all_tasks_blocked()
        _park(coalescer, ("a", "b"), "A1")
        _park(coalescer, ("b", "c"), "B1")
        _park(coalescer, ("a", "b"), "A2")
        await deliver.wait()
        assert deliver.texts() == [
            ({"a", "b"}, ["A1"]),
            ({"b", "c"}, ["B1"]),
            ({"a", "b"}, ["A2"]),
        ]
        assert coalescer.flushes == 1 and coalescer.merged == 0
        tg.cancel_scope.cancel()


async def test_each_turn_is_flushed_on_its_own() -> None:
    deliver = Recorder()
    coalescer = Coalescer(deliver)
    async with anyio.create_task_group() as tg:
        tg.start_soon(coalescer.run)
        await anyio.wait_all_tasks_blocked()
        _park(coalescer, ("a",), "1")
        await deliver.wait()
        assert deliver.texts() == [({"a"}, ["1"])]
        _park(coalescer, ("a",), "2")
        _park(coalescer, ("a",), "3")
        await deliver.wait()
        assert deliver.texts() == [({"a"}, ["1"]), ({"a"}, ["2", "3"])]
        assert coalescer.flushes == 2 and coalescer.merged == 1
        tg.cancel_scope.cancel()


async def test_tasks_woken_together_share_one_flush() -> None:
    deliver = Recorder()
    coalescer = Coalescer(deliver)
    go = anyio.Event()

    async def worker(n: int) -> None:
        await go.wait()
        _park(coalescer, ("a",), str(n))

    async with anyio.create_task_group() as tg:
        tg.start_soon(coalescer.run)
        for n in range(5):
            tg.start_soon(worker, n)
        await anyio.wait_all_tasks_blocked()
        go.set()  # as a group commit wakes its waiters: all in one turn
        await deliver.wait()
        ((targets, texts, _),) = deliver.calls
        assert sorted(texts) == ["0", "1", "2", "3", "4"]
        assert coalescer.flushes == 1 and coalescer.merged == 4
        tg.cancel_scope.cancel()


async def test_a_task_woken_by_an_emitter_joins_its_flush() -> None:
    # The second task becomes runnable after the flusher was woken, in the same turn: the
    # flusher lets it run (and park) before it flushes.
    deliver = Recorder()
    coalescer = Coalescer(deliver)
    second = anyio.Event()

    async def first_worker() -> None:
        _park(coalescer, ("a",), "1")
        second.set()

    async def second_worker() -> None:
        await second.wait()
        _park(coalescer, ("a",), "2")

    async with anyio.create_task_group() as tg:
        tg.start_soon(coalescer.run)
        tg.start_soon(second_worker)
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(first_worker)
        await deliver.wait()
        assert deliver.texts() == [({"a"}, ["1", "2"])]
        assert coalescer.flushes == 1 and coalescer.merged == 1
        tg.cancel_scope.cancel()


async def test_stopping_the_flusher_flushes_what_is_parked() -> None:
    deliver = Recorder()
    coalescer = Coalescer(deliver)
    async with anyio.create_task_group() as tg:
        tg.start_soon(coalescer.run)
        await anyio.wait_all_tasks_blocked()
        _park(coalescer, ("a",), "1")
        _park(coalescer, ("a",), "2")
        assert deliver.calls == []
        tg.cancel_scope.cancel()
    assert deliver.texts() == [({"a"}, ["1", "2"])]
    assert not coalescer.pending
    # Stopped: a park is delivered at once again.
    _park(coalescer, ("a",), "3")
    assert deliver.texts()[-1] == ({"a"}, ["3"])


async def test_on_written_runs_after_the_write_of_its_own_emit() -> None:
    deliver = Recorder()
    coalescer = Coalescer(deliver)
    seen: list[tuple[str, int]] = []

    def note(name: str) -> Any:
        return lambda: seen.append((name, len(deliver.calls)))

    note("alone")()  # without a flusher: written at once, then told
    coalescer.park(("a",), ["x"], [SharedFrame(b"x")], note("direct"))
    assert seen[-1] == ("direct", 1)
    coalescer.park((), ["y"], [SharedFrame(b"y")], note("nobody"))
    assert seen[-1] == ("nobody", 1)  # nothing to write: told at once
    deliver.called = anyio.Event()  # forget the direct write: wait for the flush
    async with anyio.create_task_group() as tg:
        tg.start_soon(coalescer.run)
        await anyio.wait_all_tasks_blocked()
        coalescer.park(("a",), ["1"], [SharedFrame(b"1")], note("merged-1"))
        coalescer.park(("b",), ["2"], [SharedFrame(b"2")], note("other"))
        coalescer.park(("a",), ["3"], [SharedFrame(b"3")], note("merged-2"))
        assert len(seen) == 3  # parked, not written: nobody told yet
        await deliver.wait()
        # Each after its own group's write: ("a": 1, 3) first, then ("b": 2).
        assert seen[3:] == [("merged-1", 2), ("merged-2", 2), ("other", 3)]
        tg.cancel_scope.cancel()


async def test_a_failing_on_written_does_not_stop_the_flush(error_log: ErrorLog) -> None:
    deliver = Recorder()
    coalescer = Coalescer(deliver)
    told: list[str] = []

    def boom() -> None:
        raise RuntimeError("observer bug")

    async with anyio.create_task_group() as tg:
        tg.start_soon(coalescer.run)
        await anyio.wait_all_tasks_blocked()
        coalescer.park(("a",), ["1"], [SharedFrame(b"1")], boom)
        coalescer.park(("b",), ["2"], [SharedFrame(b"2")], lambda: told.append("b"))
        await deliver.wait()
        assert len(deliver.calls) == 2 and told == ["b"]
        tg.cancel_scope.cancel()
    assert error_log.take() == ["on_written callback failed"]


async def test_emit_many_tells_on_written_once_the_clients_have_it() -> None:
    server = _server()
    async with running(server) as port:
        ws, _ = await sio_connect(port)
        writes = server.stats.writes
        written: list[int] = []
        server.emit_many(
            [_event("a", 1)], to="tenant", defer=True,
            on_written=lambda: written.append(server.stats.writes - writes),
        )  # fmt: skip
        assert written == []
        assert await ws.recv() == _packet("a", 1)
        assert written == [1]  # after the one write, not at park time
        server.emit_many([_event("b", 2)], to="tenant", on_written=lambda: written.append(-1))
        assert written == [1, -1]  # direct: told before emit_many returns
        assert await ws.recv() == _packet("b", 2)
        await ws.aclose()
