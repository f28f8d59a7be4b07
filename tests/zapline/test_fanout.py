"""``Fanout.emit_many``: all or nothing, one broker message per event, one local batch.

Single node (``MemoryBroker``): no Redis needed. The wire test uses python-socketio's client
(the raw clients of ``tests/engine`` are not importable from here), so it runs on asyncio.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
import socketio

from engine import Socket, SocketServer
from engine.broker import BroadcastMessage
from engine.broker_memory import MemoryBroker
from zapline.fanout import Fanout

pytestmark = pytest.mark.anyio

EVENTS: list[tuple[str, tuple[Any, ...]]] = [
    ("message:new", ({"conversationId": "c1", "message": {"id": "m1"}},)),
    ("conversation:updated", ({"conversationId": "c1"}, 2)),
]


class RecordingBroker(MemoryBroker):
    """The memory broker (it still validates and counts), keeping what was published."""

    def __init__(self) -> None:
        super().__init__(node_id="node-a")
        self.sent: list[BroadcastMessage] = []

    def publish_nowait(self, message: BroadcastMessage) -> None:
        super().publish_nowait(message)
        self.sent.append(message)


def _engine() -> SocketServer:
    server = SocketServer()

    @server.on_connect()
    def join(socket: Socket, auth: dict[str, Any] | None) -> None:
        socket.join("tenant:t1")

    return server


def test_unserialisable_args_raise_and_publish_nothing() -> None:
    broker = RecordingBroker()
    fanout = Fanout(SocketServer(), broker)
    with pytest.raises(TypeError):
        fanout.emit_many([("ok", (1,)), ("bad", (object(),))], to="tenant:t1")
    with pytest.raises(TypeError):  # binary cannot cross nodes either
        fanout.emit_many([("blob", (b"\x00",))], to="tenant:t1")
    assert fanout.statistics().published == 0
    assert broker.sent == []
    assert fanout.engine.stats.emitted == {}  # nor was anything emitted locally


def test_one_broker_message_per_event_in_order() -> None:
    broker = RecordingBroker()
    fanout = Fanout(SocketServer(), broker)
    # No socket on this node: nothing local, both still published for the other nodes.
    assert fanout.emit_many(EVENTS, to="tenant:t1", skip="sid-x", namespace="/desk") == 0
    assert fanout.statistics().published == 2
    assert [(m.event, m.args) for m in broker.sent] == EVENTS
    for message in broker.sent:
        assert message.node_id == "node-a" and message.namespace == "/desk"
        assert message.rooms == ("tenant:t1",) and message.skip == ("sid-x",)
    assert fanout.emit_many([], to="tenant:t1") == 0
    assert fanout.statistics().published == 2


def test_to_none_reaches_the_whole_namespace_on_every_node() -> None:
    broker = RecordingBroker()
    fanout = Fanout(SocketServer(), broker)
    fanout.emit_many(EVENTS)
    assert [m.rooms for m in broker.sent] == [None, None]


def test_one_shot_iterables_target_every_message() -> None:
    broker = RecordingBroker()
    fanout = Fanout(SocketServer(), broker)
    fanout.emit_many(EVENTS, to=iter(["tenant:t1"]), skip=iter(["sid-x"]))
    assert [(m.rooms, m.skip) for m in broker.sent] == [(("tenant:t1",), ("sid-x",))] * 2


@asynccontextmanager
async def _node(fanout: Fanout) -> AsyncIterator[int]:
    """Run the engine and the fanout for the block; yield the engine's port."""
    async with anyio.create_task_group() as tg:
        port: int = await tg.start(fanout.engine.serve, "127.0.0.1", 0)
        await tg.start(lambda task_status: fanout.run(task_status=task_status))
        try:
            yield port
        finally:
            tg.cancel_scope.cancel()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # python-socketio is asyncio-only
@pytest.mark.parametrize("defer", [False, True])
async def test_a_connected_client_gets_every_event_in_order(defer: bool) -> None:
    fanout = Fanout(_engine(), MemoryBroker())
    received: list[tuple[str, list[Any]]] = []
    arrived = anyio.Event()
    client = socketio.AsyncClient(reconnection=False)

    async def any_event(event: str, *data: Any) -> None:
        received.append((event, list(data)))
        if len(received) == len(EVENTS):
            arrived.set()

    client.on("*", any_event)

    async with _node(fanout) as port:
        await client.connect(f"http://127.0.0.1:{port}", transports=["websocket"], wait_timeout=5)
        try:
            assert fanout.emit_many(EVENTS, to="tenant:t1", defer=defer) == 1
            with anyio.fail_after(5):
                await arrived.wait()
        finally:
            await client.disconnect()
    assert received == [(event, list(args)) for event, args in EVENTS]
    assert fanout.statistics().published == 0  # one node: nobody to publish to
    assert fanout.engine.stats.deliveries == 2 and fanout.engine.stats.writes == 1


def test_offsets_travel_with_their_events() -> None:
    broker = RecordingBroker()
    fanout = Fanout(SocketServer(), broker)
    assert fanout.emit_many(EVENTS, to="tenant:t1", offsets=["5", None]) == 0
    assert [m.offset for m in broker.sent] == ["5", None]
    assert [BroadcastMessage.decode(m.encode()).offset for m in broker.sent] == ["5", None]
    with pytest.raises(ValueError, match="1 offsets for 2 events"):
        fanout.emit_many(EVENTS, to="tenant:t1", offsets=["5"])
    assert len(broker.sent) == 2  # refused before anything was published


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # python-socketio is asyncio-only
async def test_offsets_reach_clients_that_take_them_on_every_node() -> None:
    fanout = Fanout(_engine(), MemoryBroker())
    received: list[tuple[str, list[Any]]] = []
    client = socketio.AsyncClient(reconnection=False)

    async def any_event(event: str, *data: Any) -> None:
        received.append((event, list(data)))

    client.on("*", any_event)
    async with _node(fanout) as port:
        await client.connect(f"http://127.0.0.1:{port}", transports=["websocket"], wait_timeout=5)
        try:
            (session,) = fanout.engine.sessions.values()
            assert not session.takes_offsets  # python-engineio: detected at the handshake
            session.takes_offsets = True  # as a socket.io-client's session would be
            assert fanout.emit_many(EVENTS, to="tenant:t1", offsets=["5", None]) == 1
            # A message from another node, with and without an offset.
            fanout.deliver(
                BroadcastMessage("node-b", "/", "remote", ({"x": 1},), ("tenant:t1",), (), "6")
            )
            fanout.deliver(BroadcastMessage("node-b", "/", "remote", ({"x": 2},), ("tenant:t1",)))
            with anyio.fail_after(5):
                while len(received) < 4:  # noqa: ASYNC110
                    await anyio.sleep(0.01)
        finally:
            await client.disconnect()
    (_, new_args), (_, updated_args) = EVENTS
    assert received == [
        ("message:new", [*new_args, "5"]),
        ("conversation:updated", list(updated_args)),
        ("remote", [{"x": 1}, "6"]),
        ("remote", [{"x": 2}]),
    ]
