"""Socket.IO semantics on the real server: namespaces, handlers, acks, binary, disconnects."""

from __future__ import annotations

from typing import Any

import anyio
import anyio.lowlevel
import orjson
import pytest
from engine_wire import (
    ErrorLog,
    error_log_fixture,  # noqa: F401 (autouse fixture)
    running,
    sio_connect,
    wait_until,
    ws_open,
)

from engine import AckTimeout, ConnectionRefused, Socket, SocketServer

pytestmark = pytest.mark.anyio


async def test_connect_default_and_custom_namespace() -> None:
    server = SocketServer()
    auths: list[object] = []

    @server.on_connect("/admin")
    def admin(socket: Socket, auth: dict[str, Any] | None) -> None:
        auths.append(auth)
        socket.data["who"] = auth and auth.get("who")

    async with running(server) as port:
        ws, root_sid = await ws_open(port)
        await ws.send("40")
        reply = await ws.recv()
        assert isinstance(reply, str) and reply.startswith("40")
        root_sid = orjson.loads(reply[2:])["sid"]
        await ws.send('40/admin,{"who":"ann"}')
        reply = await ws.recv()
        assert isinstance(reply, str) and reply.startswith("40/admin,")
        admin_sid = orjson.loads(reply[len("40/admin,") :])["sid"]
        assert root_sid != admin_sid
        assert auths == [{"who": "ann"}]
        assert server.sockets[admin_sid].data == {"who": "ann"}
        assert server.sockets[admin_sid].namespace == "/admin"
        assert server.stats.connects == 2
        await ws.aclose()


async def test_unknown_namespace_is_refused() -> None:
    server = SocketServer()
    async with running(server) as port:
        ws, _ = await ws_open(port)
        await ws.send("40/nope,")
        assert await ws.recv() == '44/nope,{"message":"Invalid namespace"}'
        # The session survives and can still connect elsewhere.
        await ws.send("40")
        assert str(await ws.recv()).startswith("40{")
        await ws.aclose()


async def test_connection_refused_message_and_data() -> None:
    server = SocketServer()

    @server.on_connect()
    async def refuse(socket: Socket, auth: dict[str, Any] | None) -> None:
        socket.join("lobby")
        await anyio.lowlevel.checkpoint()
        if auth and auth.get("data"):
            raise ConnectionRefused("x", {"retry": False})
        raise ConnectionRefused("x")

    async with running(server) as port:
        ws, _ = await ws_open(port)
        await ws.send("40")
        assert await ws.recv() == '44{"message":"x"}'
        await ws.send('40{"data":1}')
        assert await ws.recv() == '44{"message":"x","data":{"retry":false}}'
        assert server.rooms.count("/", "lobby") == 0
        assert not server.sockets and server.stats.connect_errors == 2
        await ws.aclose()


async def test_failing_connect_handler_refuses_with_internal_error(error_log: ErrorLog) -> None:
    server = SocketServer()

    @server.on_connect()
    def broken(socket: Socket, auth: object) -> None:
        raise RuntimeError("boom")

    async with running(server) as port:
        ws, _ = await ws_open(port)
        await ws.send("40")
        assert await ws.recv() == '44{"message":"Internal server error"}'
        await ws.aclose()
    assert error_log.take() == ["connect handler failed for /"]


async def test_events_args_and_ack_shapes() -> None:
    server = SocketServer()
    calls: list[tuple[Any, ...]] = []

    @server.on("none")
    def none(socket: Socket, *args: Any) -> None:
        calls.append(args)

    @server.on("many")
    async def many(socket: Socket, a: int, b: dict[str, Any]) -> tuple[int, str, None]:
        await anyio.lowlevel.checkpoint()
        return a + 1, b["k"], None

    @server.on("one")
    def one(socket: Socket) -> list[int]:
        return [1, 2]

    @server.on_any()
    def fallback(socket: Socket, event: str, *args: Any) -> str:
        return f"any:{event}:{len(args)}"

    async with running(server) as port:
        ws, _ = await sio_connect(port)
        await ws.send('42["none",1,"two",[3]]')
        await ws.send('425["none"]')
        assert await ws.recv() == "435[]"
        await ws.send('426["many",1,{"k":"v"}]')
        assert await ws.recv() == '436[2,"v",null]'
        await ws.send('427["one"]')
        assert await ws.recv() == "437[[1,2]]"
        await ws.send('428["unknown",1,2]')
        assert await ws.recv() == '438["any:unknown:2"]'
        # One task per event: trio does not promise to start them in arrival order.
        assert sorted(calls, key=len) == [(), (1, "two", [3])]
        assert server.stats.received_events == 5
        await ws.aclose()


async def test_unhandled_event_with_ack_gets_an_empty_ack() -> None:
    server = SocketServer()
    async with running(server) as port:
        ws, _ = await sio_connect(port)
        await ws.send('423["nobody-listens"]')
        assert await ws.recv() == "433[]"
        await ws.aclose()


async def test_handler_errors_and_unserialisable_acks_do_not_kill_the_server(
    error_log: ErrorLog,
) -> None:
    server = SocketServer()

    @server.on("raise")
    def boom(socket: Socket) -> None:
        raise ValueError("handler bug")

    @server.on("weird")
    def weird(socket: Socket) -> object:
        return {1, 2}

    async with running(server) as port:
        ws, _ = await sio_connect(port)
        await ws.send('421["raise"]')
        assert await ws.recv() == '431[{"error":"internal error"}]'
        await ws.send('422["weird"]')
        assert await ws.recv() == '432[{"error":"internal error"}]'
        await ws.send('423["raise", "unexpected", "args"]')
        assert await ws.recv() == '433[{"error":"internal error"}]'
        await ws.aclose()
    assert len(error_log.take()) == 3


async def test_server_to_client_ack_with_call() -> None:
    server = SocketServer()
    results: list[object] = []

    @server.on("ready")
    async def ready(socket: Socket) -> None:
        results.append(await socket.call("question", 41, timeout=5))
        try:
            await socket.call("ignored", timeout=0.1)
        except AckTimeout:
            results.append("timeout")
        assert not socket.session.acks  # the timed-out id was dropped

    async with running(server) as port:
        ws, _ = await sio_connect(port)
        await ws.send('42["ready"]')
        assert await ws.recv() == '420["question",41]'
        await ws.send('430[42,"yes"]')
        assert await ws.recv() == '421["ignored"]'
        await wait_until(lambda: len(results) == 2)
        await ws.send('431["too late"]')  # no callback left: ignored
        assert results == [(42, "yes"), "timeout"]
        sock = next(iter(server.sockets.values()))
        assert sock.emit("x", callback=lambda *a: None)
        await ws.aclose()


async def test_call_on_a_disconnected_socket_fails_at_once() -> None:
    server = SocketServer()
    async with running(server) as port:
        ws, sid = await sio_connect(port)
        socket = server.sockets[sid]
        socket.disconnect()
        assert await ws.recv() == "41"
        with anyio.fail_after(1):
            with pytest.raises(AckTimeout):
                await socket.call("anything", timeout=30)
        assert socket.emit("anything") is False
        await ws.aclose()


async def test_binary_event_both_ways_and_binary_ack() -> None:
    server = SocketServer()

    @server.on("upload")
    def upload(socket: Socket, meta: dict[str, Any]) -> dict[str, Any]:
        socket.emit("download", {"files": [meta["file"], b"\xff"]})
        return {"size": len(meta["file"]), "echo": meta["file"]}

    async with running(server) as port:
        ws, _ = await sio_connect(port)
        await ws.send('451-9["upload",{"file":{"_placeholder":true,"num":0}}]')
        await ws.send(b"\x00" * 10)
        assert (
            await ws.recv()
            == '452-["download",{"files":[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]}]'
        )
        assert await ws.recv() == b"\x00" * 10
        assert await ws.recv() == b"\xff"
        assert await ws.recv() == '461-9[{"size":10,"echo":{"_placeholder":true,"num":0}}]'
        assert await ws.recv() == b"\x00" * 10
        # Server-wide binary emit reaches the client too.
        assert server.emit("blob", b"abc") == 1
        assert await ws.recv() == '451-["blob",{"_placeholder":true,"num":0}]'
        assert await ws.recv() == b"abc"
        await ws.aclose()


async def test_client_disconnect_runs_handler_and_leaves_rooms() -> None:
    server = SocketServer()
    reasons: list[tuple[str, str]] = []

    @server.on_connect()
    def joined(socket: Socket, auth: object) -> None:
        socket.join("room-a")

    @server.on_disconnect()
    async def left(socket: Socket, reason: str) -> None:
        reasons.append((socket.id, reason))

    async with running(server) as port:
        ws, sid = await sio_connect(port)
        assert server.rooms.count("/", "room-a") == 1
        await ws.send("41")
        await wait_until(lambda: reasons)
        assert reasons == [(sid, "client namespace disconnect")]
        assert server.rooms.count("/", "room-a") == 0 and sid not in server.sockets
        assert len(server.sessions) == 1  # the Engine.IO session stays
        # Late events for the left namespace are dropped; reconnecting works.
        await ws.send('421["late"]')
        await ws.send("40")
        reply = await ws.recv()
        assert isinstance(reply, str) and reply.startswith("40{") and sid not in reply
        await ws.aclose()


async def test_server_disconnect_sends_disconnect_packet() -> None:
    server = SocketServer()
    reasons: list[str] = []
    server.on_disconnect()(lambda socket, reason: reasons.append(reason))

    async with running(server) as port:
        ws, sid = await sio_connect(port)
        server.sockets[sid].disconnect()
        assert await ws.recv() == "41"
        await wait_until(lambda: reasons)
        assert reasons == ["server namespace disconnect"]
        await ws.aclose()


async def test_disconnect_while_connect_handler_runs_skips_accept() -> None:
    server = SocketServer()
    gate = anyio.Event()
    finished: list[str] = []
    late_joins: list[int] = []

    @server.on_connect()
    async def slow(socket: Socket, auth: dict[str, Any] | None) -> None:
        if auth and auth.get("slow"):
            socket.join("early")
            await gate.wait()
            socket.join("late")
            late_joins.append(server.rooms.count("/", "late"))
        finished.append(socket.id)

    async with running(server) as port:
        ws, _ = await ws_open(port)
        session = next(iter(server.sessions.values()))
        await ws.send('40{"slow":1}')
        await wait_until(lambda: session.connecting)
        await ws.send("41")
        await wait_until(lambda: not session.connecting)
        # Connect again (fast this time) before the first handler finishes.
        await ws.send("40")
        reply = await ws.recv()
        assert isinstance(reply, str) and reply.startswith("40{")
        gate.set()
        await wait_until(lambda: len(finished) == 2)
        await anyio.sleep(0.05)
        # The slow handler gave up: no second CONNECT reply, no socket, no room membership.
        assert len(server.sockets) == 1 and session.sio.namespaces == frozenset({"/"})
        assert server.rooms.count("/", "early") == 0 and late_joins == [0]
        await ws.send('421["x"]')
        assert await ws.recv() == "431[]"  # the first message after is the ack, not a CONNECT
        await ws.aclose()


async def test_session_closing_during_connect_handler() -> None:
    server = SocketServer()
    gate = anyio.Event()
    done: list[bool] = []

    @server.on_connect()
    async def slow(socket: Socket, auth: object) -> None:
        socket.join("r")
        await gate.wait()
        done.append(True)

    async with running(server) as port:
        ws, _ = await ws_open(port)
        await ws.send("40")
        await wait_until(lambda: any(s.connecting for s in server.sessions.values()))
        await ws.aclose()
        await wait_until(lambda: not server.sessions)
        gate.set()
        await wait_until(lambda: done)
        assert not server.sockets and server.rooms.count("/", "r") == 0


async def test_garbage_socketio_packets_close_the_session() -> None:
    server = SocketServer()
    async with running(server) as port:
        for bad in [
            "4x",
            '42{"not":"a list"}',
            "44{}",
            "40",
            '451-["b",{"_placeholder":true,"num":5}]',
            b"\x00",
        ]:
            ws, _ = await sio_connect(port)
            await ws.send(bad)  # "40" again on a connected namespace is a protocol error too
            assert await ws.expect_closed() == 1000
        for bad in ["", "9", "0", "5"]:
            ws, _ = await ws_open(port)
            await ws.send(bad)
            assert await ws.expect_closed() == 1000
        await wait_until(lambda: not server.sessions)
        ws, _ = await sio_connect(port)  # still serving
        await ws.aclose()


async def test_emits_from_a_connect_handler_follow_the_connect_reply() -> None:
    server = SocketServer()
    errors: list[str] = []

    @server.on_connect()
    async def greet(socket: Socket, auth: dict[str, Any] | None) -> None:
        assert socket.emit("hello", "early", b"\x01")
        try:
            await socket.call("nope")
        except RuntimeError as exc:
            errors.append(str(exc))
        if auth and auth.get("refuse"):
            raise ConnectionRefused("no")

    async with running(server) as port:
        ws, _ = await ws_open(port)
        await ws.send('40{"refuse":true}')
        assert await ws.recv() == '44{"message":"no"}'
        await ws.send("40")
        assert str(await ws.recv()).startswith('40{"sid":')
        assert await ws.recv() == '451-["hello","early",{"_placeholder":true,"num":0}]'
        assert await ws.recv() == b"\x01"
        assert len(errors) == 2
        await ws.aclose()
