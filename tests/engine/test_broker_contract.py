"""The broker contract (engine/broker.py), one suite over every implementation.

``memory`` runs on asyncio and trio; ``redis`` runs on asyncio only (redis-py is an asyncio
library) against ``REDIS_URL``, each test on its own channel. Without a reachable Redis the
redis cases skip, except under ``CI=true``, where that is a failure. Tests that need two nodes
run on the implementations that have more than one node (redis).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, NoReturn

import anyio
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.broker import (
    BroadcastMessage,
    Broker,
    BrokerUnavailable,
    MalformedMessage,
    OutgoingBuffer,
)
from engine.broker_memory import MemoryBroker

pytestmark = pytest.mark.anyio

WAIT = 10.0  # bound for one expected delivery; a healthy run takes milliseconds

BrokerFactory = Callable[..., Broker]

CASES = [
    pytest.param(("memory", "asyncio"), id="memory-asyncio"),
    pytest.param(("memory", "trio"), id="memory-trio"),
    pytest.param(("redis", "asyncio"), id="redis-asyncio", marks=pytest.mark.redis),
]


def _redis_unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"Redis is required in CI: {reason}")
    pytest.skip(f"Redis not available: {reason}")


def _redis_url() -> str:
    """REDIS_URL if a Redis answers there; skips (fails under CI) otherwise."""
    url = os.environ.get("REDIS_URL", "")
    if not url:
        _redis_unavailable("REDIS_URL is not set")
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        _redis_unavailable(f"{url}: {exc!r}")
    finally:
        client.close()
    return url


@pytest.fixture(params=CASES)
def case(request: pytest.FixtureRequest) -> tuple[str, str]:
    """(implementation, anyio backend)."""
    return tuple(request.param)  # type: ignore[return-value]


@pytest.fixture
def anyio_backend(case: tuple[str, str]) -> str:
    """The backend the implementation runs on: redis-py is asyncio only."""
    return case[1]


@pytest.fixture
def make_broker(case: tuple[str, str]) -> BrokerFactory:
    """``make_broker(**options)`` -> a fresh broker; every broker of a test shares one channel."""
    kind = case[0]
    if kind == "memory":
        # The memory broker has no buffer: max_pending and the like do not apply.
        return lambda **options: MemoryBroker(node_id=options.get("node_id"))
    url = _redis_url()
    from engine.broker_redis import RedisBroker

    channel = f"zapline-test:{uuid.uuid4().hex}"
    return lambda **options: RedisBroker(url, channel=channel, **options)


# Tests that need two nodes: implementations with more than one (the memory broker has none).
multi_node = pytest.mark.parametrize(
    "case", [pytest.param(("redis", "asyncio"), id="redis-asyncio", marks=pytest.mark.redis)]
)


class Inbox:
    """What ``deliver`` was called with, in order, with a waiting helper."""

    def __init__(self) -> None:
        self.messages: list[BroadcastMessage] = []
        self._changed: anyio.Event | None = None

    def __call__(self, message: BroadcastMessage) -> None:
        self.messages.append(message)
        if self._changed is not None:
            self._changed.set()

    def events(self) -> list[str]:
        """The event names received so far."""
        return [m.event for m in self.messages]

    async def wait_until(self, done: Callable[[], bool], within: float = WAIT) -> None:
        """Wait until ``done()`` holds after a delivery; raise AssertionError naming what came."""
        with anyio.move_on_after(within):
            while not done():
                self._changed = anyio.Event()
                await self._changed.wait()
            return
        raise AssertionError(f"not delivered in {within} s; got {self.events()}")

    async def wait_for(self, count: int, within: float = WAIT) -> list[BroadcastMessage]:
        """Wait until ``count`` messages arrived; return them all."""
        await self.wait_until(lambda: len(self.messages) >= count, within)
        return self.messages


@asynccontextmanager
async def running(broker: Broker, inbox: Inbox) -> AsyncIterator[None]:
    """Run ``broker`` delivering to ``inbox`` for the block (started = subscribed)."""
    async with anyio.create_task_group() as tg:
        await tg.start(lambda task_status: broker.run(inbox, task_status=task_status))
        yield
        tg.cancel_scope.cancel()


def message(
    node: Broker, event: str, *args: Any, rooms: tuple[str, ...] | None = ("r",)
) -> BroadcastMessage:
    """A message from ``node`` to ``rooms``."""
    return BroadcastMessage(node.node_id, "/", event, args, rooms)


# -- every implementation ------------------------------------------------------------------


async def test_publish_rejects_what_cannot_cross_nodes(make_broker: BrokerFactory) -> None:
    broker = make_broker()
    with pytest.raises(TypeError):
        broker.publish_nowait(message(broker, "e", object()))
    with pytest.raises(TypeError):
        broker.publish_nowait(message(broker, "e", {"blob": b"\x00"}))
    stats = broker.statistics()
    assert (stats.published, stats.pending, stats.dropped) == (0, 0, 0)


async def test_publish_nowait_is_bounded_without_a_running_broker(
    make_broker: BrokerFactory,
) -> None:
    broker = make_broker(max_pending=50)
    for n in range(500):
        broker.publish_nowait(message(broker, f"e{n}", n))
    stats = broker.statistics()
    assert stats.pending <= stats.max_pending
    # Every message is accounted for: handed on, waiting, or dropped (and counted).
    assert stats.published + stats.pending + stats.dropped == 500
    assert stats.node_id == broker.node_id


async def test_run_starts_and_stops_and_never_delivers_own_messages(
    make_broker: BrokerFactory,
) -> None:
    broker, inbox = make_broker(), Inbox()
    with anyio.fail_after(WAIT):
        async with running(broker, inbox):
            for n in range(20):
                broker.publish_nowait(message(broker, "own", n))
            await anyio.sleep(0.3)
    assert inbox.messages == []
    assert broker.statistics().received == 0


# -- implementations with more than one node -----------------------------------------------


@multi_node
async def test_peers_see_each_other_in_order_and_not_themselves(
    make_broker: BrokerFactory,
) -> None:
    a, b = make_broker(), make_broker()
    at_a, at_b = Inbox(), Inbox()
    async with running(a, at_a), running(b, at_b):
        for n in range(300):
            a.publish_nowait(message(a, "from-a", n, {"n": n}))
            if n % 3 == 0:
                b.publish_nowait(message(b, "from-b", n, rooms=None))
        await at_b.wait_for(300)
        await at_a.wait_for(100)
        await anyio.sleep(0.1)  # nothing more (no echo of their own) arrives
    assert [m.args for m in at_b.messages] == [(n, {"n": n}) for n in range(300)]
    assert {m.node_id for m in at_b.messages} == {a.node_id}
    assert [m.args for m in at_a.messages] == [(n,) for n in range(0, 300, 3)]
    assert all(m.rooms is None and m.event == "from-b" for m in at_a.messages)
    assert a.statistics().published == 300 and b.statistics().received == 300
    assert a.statistics().received == 100


@multi_node
async def test_a_message_arrives_whole(make_broker: BrokerFactory) -> None:
    a, b, at_b = make_broker(), make_broker(), Inbox()
    sent = BroadcastMessage(
        a.node_id,
        "/admin",
        "message:new",
        ({"conversationId": "c1", "x": [1, 2.5, None]}, "é"),
        ("tenant:t1", "conversation:c1"),
        ("sid-1",),
        "1042",  # a recovery offset
    )
    async with running(a, Inbox()), running(b, at_b):
        a.publish_nowait(sent)
        a.publish_nowait(message(a, "nobody", rooms=()))
        (got, nobody) = await at_b.wait_for(2)
    assert got == sent
    assert nobody.rooms == () and nobody.offset is None


@multi_node
async def test_oldest_are_dropped_past_max_pending(make_broker: BrokerFactory) -> None:
    a, b, at_b = make_broker(max_pending=5), make_broker(), Inbox()
    for n in range(12):
        a.publish_nowait(message(a, "e", n))
    stats = a.statistics()
    assert (stats.pending, stats.dropped, stats.max_pending) == (5, 7, 5)
    async with running(b, at_b), running(a, Inbox()):
        await at_b.wait_for(5)
        await anyio.sleep(0.1)
    assert [m.args[0] for m in at_b.messages] == [7, 8, 9, 10, 11]
    assert a.statistics().pending == 0 and a.statistics().published == 5


@multi_node
async def test_delivery_resumes_after_the_connections_are_killed(
    make_broker: BrokerFactory,
) -> None:
    import redis.asyncio as aioredis

    a, b, at_b = make_broker(), make_broker(), Inbox()
    admin = aioredis.Redis.from_url(os.environ["REDIS_URL"])
    try:
        async with running(a, Inbox()), running(b, at_b):
            a.publish_nowait(message(a, "before"))
            await at_b.wait_for(1)
            killed = 0
            for client in await admin.client_list():
                if client.get("name") in (f"zapline:{a.node_id}", f"zapline:{b.node_id}"):
                    await admin.execute_command("CLIENT", "KILL", "ID", client["id"])
                    killed += 1
            assert killed >= 2, "expected a publisher and a subscriber connection to kill"
            # Pub/Sub keeps nothing for a subscriber that is reconnecting: publish until one
            # gets through, then everything after it must arrive, in order.
            with anyio.fail_after(WAIT):
                n = 0
                while "after" not in at_b.events():
                    a.publish_nowait(message(a, "after", n))
                    n += 1
                    await anyio.sleep(0.02)
            mark = len(at_b.messages)
            for n in range(50):
                a.publish_nowait(message(a, "steady", n))
            await at_b.wait_for(mark + 50)
        assert [m.args[0] for m in at_b.messages[mark:]] == list(range(50))
        assert b.statistics().reconnects >= 1
    finally:
        await admin.aclose()


@multi_node
async def test_malformed_and_failing_deliveries_do_not_stop_the_subscriber(
    make_broker: BrokerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    import redis.asyncio as aioredis

    a, b = make_broker(), make_broker()
    inbox = Inbox()

    def deliver(msg: BroadcastMessage) -> None:
        inbox(msg)
        if msg.event == "boom":
            raise RuntimeError("a handler bug")

    admin = aioredis.Redis.from_url(os.environ["REDIS_URL"])
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(lambda task_status: b.run(deliver, task_status=task_status))
            await admin.publish(b.channel, b"not json")
            await admin.publish(b.channel, b'[99, "x"]')
            async with running(a, Inbox()):
                a.publish_nowait(message(a, "boom"))
                a.publish_nowait(message(a, "fine"))
                await inbox.wait_for(2)
            tg.cancel_scope.cancel()
    finally:
        await admin.aclose()
    assert inbox.events() == ["boom", "fine"]
    assert b.statistics().malformed == 2 and b.statistics().received == 2
    assert any("a handler bug" in (r.exc_text or "") for r in caplog.records)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_unreachable_redis_fails_at_start() -> None:
    from engine.broker_redis import RedisBroker

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    broker = RedisBroker(f"redis://127.0.0.1:{port}/0", connect_timeout=0.3)
    with anyio.fail_after(WAIT), pytest.raises(BrokerUnavailable, match="unset it"):
        await broker.run(Inbox())


# -- the codec and the buffer (no I/O) -------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
names = st.text(max_size=12)


@given(
    node=names,
    namespace=names,
    event=names,
    args=st.lists(json_values, max_size=4).map(tuple),
    rooms=st.none() | st.lists(names, max_size=4).map(tuple),
    skip=st.lists(names, max_size=3).map(tuple),
    offset=st.none() | names,
)
def test_codec_round_trips(
    node: str,
    namespace: str,
    event: str,
    args: tuple[Any, ...],
    rooms: tuple[str, ...] | None,
    skip: tuple[str, ...],
    offset: str | None,
) -> None:
    sent = BroadcastMessage(node, namespace, event, args, rooms, skip, offset)
    assert BroadcastMessage.decode(sent.encode()) == sent


def test_messages_without_an_offset_keep_the_old_wire_form() -> None:
    old = b'[1,"node-a","/","message:new",[{"id":"m1"}],["tenant:t1"],[]]'
    decoded = BroadcastMessage.decode(old)
    assert decoded == BroadcastMessage(
        "node-a", "/", "message:new", ({"id": "m1"},), ("tenant:t1",)
    )
    assert decoded.offset is None and decoded.encode() == old  # a node without offsets reads it
    marked = BroadcastMessage("node-a", "/", "e", (), None, (), "17").encode()
    assert marked == b'[1,"node-a","/","e",[],null,[],"17"]'
    with pytest.raises(MalformedMessage, match="offset must be a string"):
        BroadcastMessage.decode(b'[1,"node-a","/","e",[],null,[],17]')


@given(st.binary(max_size=64) | json_values.map(orjson.dumps))
def test_codec_rejects_garbage_cleanly(data: bytes) -> None:
    try:
        decoded = BroadcastMessage.decode(data)
    except MalformedMessage:
        return
    assert isinstance(decoded, BroadcastMessage)


def test_for_emit_mirrors_the_engine_arguments() -> None:
    m = BroadcastMessage.for_emit("n", "e", [1], to="tenant:1", skip="sid")
    assert (m.rooms, m.skip, m.args, m.namespace) == (("tenant:1",), ("sid",), (1,), "/")
    everyone = BroadcastMessage.for_emit("n", "e", (), to=None, namespace="/x")
    assert everyone.rooms is None and everyone.namespace == "/x"


def test_buffer_put_back_keeps_order_and_bound() -> None:
    buffer = OutgoingBuffer(4)
    for n in range(3):
        buffer.put_nowait(b"%d" % n)
    batch = buffer.take(2)
    assert batch == [b"0", b"1"]
    buffer.put_nowait(b"3")
    buffer.put_nowait(b"4")
    buffer.put_back(batch)  # 0 1 2 3 4: one too many, the oldest goes
    assert buffer.take(10) == [b"1", b"2", b"3", b"4"]
    assert buffer.dropped == 1
    with pytest.raises(ValueError):
        OutgoingBuffer(0)
