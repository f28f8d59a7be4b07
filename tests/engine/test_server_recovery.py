"""The engine side of connection state recovery: pid in the CONNECT reply, offsets on events.

Clients that can take offsets (``takes_offsets``, decided at the handshake) get each event's
offset as its last argument; python-engineio clients never do. Raw clients here: the query
``EIO=4&transport=...`` is what socket.io-client sends, ``transport=...&EIO=4&t=<float>`` what
python-engineio sends. The official clients themselves are driven in ``test_server_interop``
(python-socketio) and ``tests/interop/test_recovery_js.py`` (socket.io-client).
"""

from __future__ import annotations

from typing import Any

import anyio
import orjson
import pytest
from engine_wire import (
    WsClient,
    decode_poll,
    error_log_fixture,  # noqa: F401 (autouse fixture)
    get,
    post,
    running,
    wait_until,
    ws_open,
)

from engine import Socket, SocketServer

pytestmark = pytest.mark.anyio

JS_WS = "EIO=4&transport=websocket"
PY_WS = "transport=websocket&EIO=4&t=1796304312.9882925"
JS_POLL = "EIO=4&transport=polling&t=l7qmqxze"
PY_POLL = "transport=polling&EIO=4&t=1796304312.9882925"


def _server() -> SocketServer:
    """Sockets join "tenant"; auth ``{"pid": ...}`` sets ``socket.pid``."""
    server = SocketServer()

    @server.on_connect()
    def connect(socket: Socket, auth: dict[str, Any] | None) -> None:
        socket.join("tenant")
        if auth and "pid" in auth:
            socket.pid = auth["pid"]

    return server


async def _ws_member(port: int, query: str, auth: Any = None) -> tuple[WsClient, str]:
    """A websocket session opened with ``query``, connected to "/"; return it and its sid."""
    ws, _ = await ws_open(port, query)
    await ws.send("40" + ("" if auth is None else orjson.dumps(auth).decode()))
    reply = await ws.recv()
    assert isinstance(reply, str) and reply.startswith("40{"), reply
    return ws, orjson.loads(reply[2:])["sid"]


async def _poll_member(port: int, handshake: str) -> str:
    """A polling session opened with ``handshake`` query, connected to "/"; return its query."""
    response = await get(port, handshake)
    sid = orjson.loads(response.body[1:])["sid"]
    query = f"EIO=4&transport=polling&sid={sid}"
    assert (await post(port, query, b"40")).status == 200
    (reply,) = decode_poll((await get(port, query)).body)
    assert isinstance(reply, str) and reply.startswith("40{")
    return query


async def _poll(port: int, query: str, count: int) -> list[str | bytes]:
    packets: list[str | bytes] = []
    with anyio.fail_after(5):
        while len(packets) < count:
            packets += decode_poll((await get(port, query)).body)
    return packets


async def _recv(ws: WsClient, count: int) -> list[str | bytes]:
    return [await ws.recv() for _ in range(count)]


async def test_connect_reply_carries_the_pid_a_connect_handler_set() -> None:
    server = _server()
    async with running(server) as port:
        ws, _ = await ws_open(port)
        await ws.send('40{"pid":"p-1"}')
        reply = await ws.recv()
        assert isinstance(reply, str)
        sid = server.sessions[next(iter(server.sessions))].sockets["/"].id
        assert reply == '40{"sid":"' + sid + '","pid":"p-1"}'  # key order as socket.io's
        await ws.aclose()
        ws, _ = await ws_open(port)
        await ws.send("40")
        reply = await ws.recv()
        assert isinstance(reply, str) and list(orjson.loads(reply[2:])) == ["sid"]
        await ws.aclose()


async def test_the_handshake_decides_who_takes_offsets() -> None:
    server = _server()
    async with running(server) as port:
        js, js_id = await _ws_member(port, JS_WS)
        py, py_id = await _ws_member(port, PY_WS)
        await _poll_member(port, JS_POLL)
        await _poll_member(port, PY_POLL)
        by_transport = sorted((s.transport, s.takes_offsets) for s in server.sessions.values())
        assert by_transport == [
            ("polling", False),
            ("polling", True),
            ("websocket", False),
            ("websocket", True),
        ]
        assert server.sockets[js_id].takes_offsets and not server.sockets[py_id].takes_offsets
        await js.aclose()
        await py.aclose()


async def test_emit_many_appends_offsets_for_the_clients_that_take_them() -> None:
    server = _server()
    async with running(server) as port:
        js, _ = await _ws_member(port, JS_WS)
        py, _ = await _ws_member(port, PY_WS)
        js_poll = await _poll_member(port, JS_POLL)
        py_poll = await _poll_member(port, PY_POLL)
        events = [("a", ({"n": 1},)), ("b", ({"n": 2},)), ("c", ())]
        reached = server.emit_many(events, to="tenant", offsets=["7", None, "9"])
        assert reached == 4
        with_offsets = ['42["a",{"n":1},"7"]', '42["b",{"n":2}]', '42["c","9"]']
        plain = ['42["a",{"n":1}]', '42["b",{"n":2}]', '42["c"]']
        assert await _recv(js, 3) == with_offsets
        assert await _poll(port, js_poll, 3) == with_offsets
        assert await _recv(py, 3) == plain
        assert await _poll(port, py_poll, 3) == plain
        # One write per websocket recipient for the whole batch, in either variant.
        assert server.stats.deliveries >= 4 * 3
        # No offsets at all, or only None: everyone gets the plain form.
        server.emit_many([("d", (1,))], to="tenant", offsets=[None])
        server.emit("e", 2, to="tenant")
        assert await _recv(js, 2) == ['42["d",1]', '42["e",2]']
        assert await _recv(py, 2) == ['42["d",1]', '42["e",2]']
        await js.aclose()
        await py.aclose()


async def test_offsets_must_match_the_events() -> None:
    server = _server()
    async with running(server) as port:
        js, _ = await _ws_member(port, JS_WS)
        with pytest.raises(ValueError, match="2 offsets for 1 events"):
            server.emit_many([("a", ())], to="tenant", offsets=["1", "2"])
        assert server.stats.emitted == {}
        server.emit("after")  # nothing was sent before it
        assert await js.recv() == '42["after"]'
        await js.aclose()


async def test_deferred_emits_with_offsets_keep_order_and_batching() -> None:
    server = _server()
    async with running(server) as port:
        js1, js1_id = await _ws_member(port, JS_WS)
        js2, _ = await _ws_member(port, JS_WS)
        py, _ = await _ws_member(port, PY_WS)
        written: list[int] = []
        writes = server.stats.writes
        server.emit_many([("m", (1,))], to="tenant", defer=True, offsets=["1"],
                         on_written=lambda: written.append(server.stats.writes - writes))  # fmt: skip
        server.emit_many([("m", (2,)), ("m", (3,))], to="tenant", defer=True, offsets=["2", "3"])
        assert server.stats.writes == writes and not written  # parked
        assert await _recv(js1, 3) == ['42["m",1,"1"]', '42["m",2,"2"]', '42["m",3,"3"]']
        assert await _recv(js2, 3) == ['42["m",1,"1"]', '42["m",2,"2"]', '42["m",3,"3"]']
        assert await _recv(py, 3) == ['42["m",1]', '42["m",2]', '42["m",3]']
        # Two disjoint groups (the plain one, the offset one): one write per recipient.
        assert server.stats.writes - writes == 3
        assert written == [3]  # once, after both variants were written
        # Overlapping recipient sets (the room, then one of its members): strict order.
        writes = server.stats.writes
        server.emit_many([("o", (1,))], to="tenant", defer=True, offsets=["4"])
        server.emit_many([("o", (2,))], to=js1_id, defer=True, offsets=["5"])
        server.emit_many([("o", (3,))], to="tenant", defer=True)
        assert await _recv(js1, 3) == ['42["o",1,"4"]', '42["o",2,"5"]', '42["o",3]']
        assert await _recv(js2, 2) == ['42["o",1,"4"]', '42["o",3]']
        assert await _recv(py, 2) == ['42["o",1]', '42["o",3]']
        await js1.aclose()
        await js2.aclose()
        await py.aclose()


async def test_binary_events_carry_their_offset_after_the_placeholders() -> None:
    server = _server()
    async with running(server) as port:
        js, _ = await _ws_member(port, JS_WS)
        py, _ = await _ws_member(port, PY_WS)
        assert server.emit_many([("bin", (b"\x01",))], to="tenant", offsets=["3"]) == 2
        assert await _recv(js, 2) == ['451-["bin",{"_placeholder":true,"num":0},"3"]', b"\x01"]
        assert await _recv(py, 2) == ['451-["bin",{"_placeholder":true,"num":0}]', b"\x01"]
        await js.aclose()
        await py.aclose()


async def test_socket_emit_with_an_offset() -> None:
    server = _server()
    async with running(server) as port:
        js, js_id = await _ws_member(port, JS_WS)
        py, py_id = await _ws_member(port, PY_WS)
        assert server.sockets[js_id].emit("x", {"k": 1}, offset="12")
        assert server.sockets[py_id].emit("x", {"k": 1}, offset="12")
        assert await js.recv() == '42["x",{"k":1},"12"]'
        assert await py.recv() == '42["x",{"k":1}]'
        await js.aclose()
        await py.aclose()


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_what_reaches_a_connecting_socket_follows_its_connect_reply(transport: str) -> None:
    """Recovery replays inside the connect handler; live events meanwhile must come after."""
    server = SocketServer()
    replaying = anyio.Event()
    gate = anyio.Event()

    @server.on_connect()
    async def recover(socket: Socket, auth: dict[str, Any] | None) -> None:
        socket.join("tenant")
        if not auth:
            return
        socket.pid = "p-9"
        assert socket.emit("m", 1, offset="1")  # the replay, part one
        replaying.set()
        await gate.wait()  # as if reading the event log
        assert socket.emit("m", 2, offset="2")  # part two

    async with running(server) as port:
        other, _ = await _ws_member(port, JS_WS)
        if transport == "websocket":
            ws, _ = await ws_open(port, JS_WS)
            await ws.send('40{"recover":1}')
        else:
            response = await get(port, JS_POLL)
            sid = orjson.loads(response.body[1:])["sid"]
            query = f"EIO=4&transport=polling&sid={sid}"
            assert (await post(port, query, b'40{"recover":1}')).status == 200
        with anyio.fail_after(5):
            await replaying.wait()
        # Live events while the handler runs: direct, deferred, and one with an offset.
        assert server.emit("live", 3, to="tenant") == 2
        server.emit_many([("live", (4,))], to="tenant", defer=True, offsets=["4"])
        await anyio.sleep(0.05)  # the deferred one is flushed (held) before the handler ends
        gate.set()
        expected = ['42["m",1,"1"]', '42["live",3]', '42["live",4,"4"]', '42["m",2,"2"]']
        if transport == "websocket":
            reply, *events = await _recv(ws, 5)
            await ws.aclose()
        else:
            reply, *events = await _poll(port, query, 5)
        assert isinstance(reply, str) and reply.startswith('40{"sid":')
        assert reply.endswith(',"pid":"p-9"}')
        assert events == expected
        # The member that was connected all along got the live ones straight away.
        assert await _recv(other, 2) == ['42["live",3]', '42["live",4,"4"]']
        await other.aclose()
        await wait_until(lambda: len(server.sessions) <= 1)
