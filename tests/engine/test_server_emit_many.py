"""``SocketServer.emit_many``: several events, one write per recipient, same order everywhere."""

from __future__ import annotations

from typing import Any

import pytest
from engine_wire import (
    WsClient,
    decode_poll,
    error_log_fixture,  # noqa: F401 (autouse fixture)
    get,
    polling_open,
    post,
    running,
    sio_connect,
)

from engine import EngineOptions, Socket, SocketServer
from engine.transport._frames import SharedBatch, SharedFrame, frame

pytestmark = pytest.mark.anyio

NEW = {"conversationId": "c1", "message": {"id": "m1", "content": "olá " * 100}}
UPDATED = {"conversationId": "c1", "lastMessageAt": "2026-01-01T00:00:00Z"}
EXPECTED = [
    '42["message:new",'
    + '{"conversationId":"c1","message":{"id":"m1","content":"'
    + "olá " * 100
    + '"}}]',
    '42["conversation:updated",{"conversationId":"c1","lastMessageAt":"2026-01-01T00:00:00Z"}]',
]


def _server(options: EngineOptions | None = None) -> SocketServer:
    server = SocketServer(options)

    @server.on_connect()
    def connect(socket: Socket, auth: dict[str, Any] | None) -> None:
        socket.join("tenant")

    return server


def test_batch_is_the_frames_concatenated_in_order() -> None:
    a, b = SharedFrame(b"4first"), SharedFrame(b"4" + b"x" * 300)
    batch = SharedBatch([a, b])
    assert batch.plain == frame(b"4first") + frame(b"4" + b"x" * 300)
    # With deflate, only the frame past the threshold is compressed (RSV1 set on it alone).
    mixed = batch.for_deflate(256)
    assert mixed.startswith(frame(b"4first"))
    assert mixed[len(frame(b"4first")) :] == b.deflated
    assert b.deflated[0] & 0x40 and not frame(b"4first")[0] & 0x40


async def test_websocket_and_polling_members_get_every_event_in_order() -> None:
    server = _server()
    async with running(server) as port:
        ws, _ = await sio_connect(port)
        sid, _ = await polling_open(port)
        q = f"EIO=4&transport=polling&sid={sid}"
        await post(port, q, b"40")
        await get(port, q)
        events = [("message:new", (NEW,)), ("conversation:updated", (UPDATED,))]
        assert server.emit_many(events, to="tenant") == 2
        assert [await ws.recv(), await ws.recv()] == EXPECTED
        assert decode_poll((await get(port, q)).body) == EXPECTED
        assert server.stats.emitted["message:new"] == 1
        assert server.stats.deliveries == 4
        await ws.aclose()


async def test_deflate_members_get_the_batch_with_large_frames_compressed() -> None:
    server = _server(EngineOptions(compression=True))
    async with running(server) as port:
        ws = await WsClient.connect(port, extra="Sec-WebSocket-Extensions: permessage-deflate\r\n")
        assert ws.deflate
        await ws.recv()  # the Engine.IO handshake
        await ws.send("40")
        await ws.recv()
        server.emit_many([("message:new", (NEW,)), ("conversation:updated", (UPDATED,))])
        first, second = await ws.frame(), await ws.frame()
        assert first.rsv1 and not second.rsv1  # the short one stays under the threshold
        await ws.aclose()


async def test_skip_and_socket_ids_are_honoured() -> None:
    server = _server()
    async with running(server) as port:
        (a, a_id), (b, _) = [await sio_connect(port), await sio_connect(port)]
        assert server.emit_many([("one", (1,)), ("two", (2,))], to="tenant", skip=a_id) == 1
        assert server.emit_many([("three", ())], to=a_id) == 1
        assert await b.recv() == '42["one",1]'
        assert await b.recv() == '42["two",2]'
        assert await a.recv() == '42["three"]'
        assert server.emit_many([], to="tenant") == 0
        await a.aclose()
        await b.aclose()


async def test_a_binary_event_in_the_batch_keeps_the_order() -> None:
    server = _server()
    async with running(server) as port:
        ws, _ = await sio_connect(port)
        sent = server.emit_many([("a", (1,)), ("blob", (b"\x00\x01",)), ("c", ())], to="tenant")
        assert sent == 1
        assert await ws.recv() == '42["a",1]'
        assert await ws.recv() == '451-["blob",{"_placeholder":true,"num":0}]'
        assert await ws.recv() == b"\x00\x01"
        assert await ws.recv() == '42["c"]'
        await ws.aclose()


async def test_unserialisable_args_raise_and_send_nothing() -> None:
    server = _server()
    async with running(server) as port:
        ws, _ = await sio_connect(port)
        with pytest.raises(TypeError):
            server.emit_many([("ok", (1,)), ("bad", (object(),))], to="tenant")
        server.emit("end", to="tenant")
        assert await ws.recv() == '42["end"]'  # "ok" was never sent
        await ws.aclose()
