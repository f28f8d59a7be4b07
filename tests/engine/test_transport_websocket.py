"""Websocket transport against the real server: heartbeat, frames, compression, shutdown."""

from __future__ import annotations

import anyio
import pytest
from engine_wire import (
    OP_BINARY,
    OP_CLOSE,
    OP_TEXT,
    Closed,
    Http,
    WsClient,
    client_frame,
    deflate,
    error_log_fixture,  # noqa: F401 (autouse fixture)
    get,
    inflate,
    polling_open,
    running,
    sio_connect,
    wait_until,
    ws_open,
)

from engine import EngineOptions, Socket, SocketServer

pytestmark = pytest.mark.anyio

FAST = EngineOptions(ping_interval=0.1, ping_timeout=0.15)


async def test_server_pings_at_the_interval_and_pong_keeps_it_alive() -> None:
    server = SocketServer(FAST)
    async with running(server) as port:
        ws, handshake = await ws_open(port)
        assert (handshake["pingInterval"], handshake["pingTimeout"]) == (100, 150)
        start = anyio.current_time()
        for _ in range(4):
            assert await ws.recv() == "2"
            await ws.send("3")
        # Four intervals, loosely: not flooded, not starved.
        assert 0.3 <= anyio.current_time() - start < 3
        assert len(server.sessions) == 1
        await ws.aclose()


async def test_client_that_never_pongs_is_closed() -> None:
    server = SocketServer(FAST)
    disconnects: list[str] = []

    @server.on_disconnect()
    def gone(socket: Socket, reason: str) -> None:
        disconnects.append(reason)

    async with running(server) as port:
        ws, _ = await sio_connect(port)
        assert await ws.recv() == "2"
        # The close packet, then the close frame.
        assert await ws.recv() == "1"
        assert await ws.expect_closed() == 1000
        assert not server.sessions and not server.sockets
        await wait_until(lambda: disconnects, within=2)
        assert disconnects == ["ping timeout"]


async def test_client_close_packet_ends_the_session() -> None:
    server = SocketServer()
    async with running(server) as port:
        ws, _ = await sio_connect(port)
        await ws.send("1")
        assert await ws.expect_closed() == 1000
        assert not server.sessions


async def test_client_close_frame_is_answered() -> None:
    server = SocketServer()
    async with running(server) as port:
        ws, _ = await ws_open(port)
        await ws.send_raw(client_frame(b"\x03\xe8", OP_CLOSE))
        assert await ws.expect_closed() == 1000
        await wait_until(lambda: not server.sessions, within=2)


async def test_fragmented_and_binary_client_messages() -> None:
    server = SocketServer()
    got: list[object] = []

    @server.on("parts")
    def parts(socket: Socket, text: str, blob: bytes) -> tuple[str, bytes]:
        got.append((text, blob))
        return text.upper(), blob[::-1]

    async with running(server) as port:
        ws, _ = await sio_connect(port)
        head = b'451-7["parts","hello",{"_placeholder":true,"num":0}]'
        await ws.send_raw(
            client_frame(head[:10], OP_TEXT, fin=False) + client_frame(head[10:], 0, fin=True)
        )
        await ws.send(b"\x00\x01\x02")
        assert await ws.recv() == '461-7["HELLO",{"_placeholder":true,"num":0}]'
        assert await ws.recv() == b"\x02\x01\x00"
        assert got == [("hello", b"\x00\x01\x02")]
        await ws.aclose()


async def test_unmasked_client_frame_is_a_protocol_error() -> None:
    server = SocketServer()
    async with running(server) as port:
        ws, _ = await ws_open(port)
        await ws.send_raw(client_frame(b'42["x"]', OP_TEXT, mask=False))
        assert await ws.expect_closed() == 1002
        await wait_until(lambda: not server.sessions, within=3)


async def test_message_over_max_payload_is_closed_with_1009() -> None:
    server = SocketServer(EngineOptions(max_payload=1000))
    async with running(server) as port:
        ws, _ = await ws_open(port)
        await ws.send("4" + "x" * 2000)
        assert await ws.expect_closed() == 1009
        # Fragments count together.
        ws2, _ = await ws_open(port)
        await ws2.send_raw(client_frame(b"4" + b"y" * 600, OP_TEXT, fin=False))
        await ws2.send_raw(client_frame(b"y" * 600, 0, fin=True))
        assert await ws2.expect_closed() == 1009
        await wait_until(lambda: not server.sessions, within=3)


async def test_websocket_only_server_refuses_polling() -> None:
    server = SocketServer(EngineOptions(allow_polling=False))
    async with running(server) as port:
        assert (await get(port, "EIO=4&transport=polling")).json()["code"] == 0
        ws, _ = await ws_open(port)
        await ws.aclose()


async def test_polling_only_server_refuses_websocket() -> None:
    server = SocketServer(EngineOptions(allow_websocket=False))
    async with running(server) as port:
        _, handshake = await polling_open(port)
        assert handshake["upgrades"] == []
        with pytest.raises(AssertionError, match="400"):
            await WsClient.connect(port)


# -- permessage-deflate ----------------------------------------------------------------------

OFFER = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"


async def test_deflate_negotiated_and_frames_compressed() -> None:
    server = SocketServer(EngineOptions(compression=True, compression_threshold=64))
    server.on("echo")(lambda socket, value: value)
    async with running(server) as port:
        ws = await WsClient.connect(port, extra=OFFER)
        header = ws.headers["sec-websocket-extensions"]
        assert header.startswith("permessage-deflate")
        assert "server_no_context_takeover" in header
        opened = await ws.frame()
        assert opened.opcode == OP_TEXT and opened.rsv1  # the handshake is over the threshold
        assert inflate(opened.payload).startswith(b'0{"sid":')
        await ws.send("40")
        await ws.recv()
        # The client compresses too; wsproto inflates it for the server.
        await ws.send_raw(
            client_frame(deflate(b'421["echo","' + b"q" * 300 + b'"]'), OP_TEXT, rsv1=True)
        )
        echoed = await ws.frame()
        assert echoed.rsv1 and inflate(echoed.payload) == b'431["' + b"q" * 300 + b'"]'
        big = "z" * 5000
        server.emit("big", big)
        server.emit("small", 1)
        frame = await ws.frame()
        assert frame.rsv1 and len(frame.payload) < 200
        assert inflate(frame.payload).decode() == f'42["big","{big}"]'
        frame = await ws.frame()
        assert not frame.rsv1 and frame.payload == b'42["small",1]'
        # Binary attachments are compressed too.
        server.emit("bin", b"\x01" * 1000)
        assert await ws.recv() == '451-["bin",{"_placeholder":true,"num":0}]'
        frame = await ws.frame()
        assert frame.opcode == OP_BINARY and frame.rsv1
        assert inflate(frame.payload) == b"\x01" * 1000
        await ws.aclose()


async def test_deflate_not_used_when_not_offered_or_disabled() -> None:
    async with running(
        SocketServer(EngineOptions(compression=True, compression_threshold=16))
    ) as port:
        ws = await WsClient.connect(port)
        assert "sec-websocket-extensions" not in ws.headers
        frame = await ws.frame()
        assert not frame.rsv1 and frame.payload.startswith(b'0{"sid":')
        await ws.aclose()
        # A client wanting a smaller window than the shared frames use gets none at all.
        ws = await WsClient.connect(
            port, extra=OFFER.replace("client_max_window_bits", "server_max_window_bits=9")
        )
        assert "sec-websocket-extensions" not in ws.headers
        assert not (await ws.frame()).rsv1
        await ws.aclose()
    async with running(SocketServer(EngineOptions(compression=False))) as port:
        ws = await WsClient.connect(port, extra=OFFER)
        assert "sec-websocket-extensions" not in ws.headers
        frame = await ws.frame()
        assert not frame.rsv1
        await ws.aclose()


# -- shutdown --------------------------------------------------------------------------------


async def test_shutdown_closes_websockets_and_answers_polls() -> None:
    server = SocketServer()
    results: list[object] = []

    async def poll(port: int, sid: str) -> None:
        response = await get(port, f"EIO=4&transport=polling&sid={sid}")
        results.append(response.body)

    async def watch(ws: WsClient) -> None:
        messages: list[object] = []
        try:
            while True:
                messages.append(await ws.recv())
        except Closed as exc:
            results.append((messages, exc.code))

    async with anyio.create_task_group() as outer:
        port = await outer.start(server.serve, "127.0.0.1", 0)
        clients = [(await sio_connect(port))[0] for _ in range(3)]
        sid, _ = await polling_open(port)
        async with anyio.create_task_group() as tg:
            for ws in clients:
                tg.start_soon(watch, ws)
            tg.start_soon(poll, port, sid)
            await wait_until(lambda: server.sessions[sid].polling)
            with anyio.fail_after(5):
                await server.shutdown(grace=1.0)
    assert sorted(map(repr, results)) == sorted(map(repr, [b"1", *[(["1"], 1000)] * 3]))
    # Nothing listens any more.
    with pytest.raises(OSError):
        await Http.connect(port)


async def test_session_without_connect_times_out() -> None:
    server = SocketServer(EngineOptions(connect_timeout=0.1))
    async with running(server) as port:
        ws, _ = await ws_open(port)
        assert await ws.recv() == "1"
        assert await ws.expect_closed() == 1000
        connected, _ = await sio_connect(port)
        await anyio.sleep(0.3)
        assert len(server.sessions) == 1  # a connected one stays
        await connected.aclose()


async def test_client_ping_is_answered() -> None:
    async with running(SocketServer()) as port:
        ws, _ = await ws_open(port)
        await ws.send("2hello")
        assert await ws.recv() == "3hello"
        await ws.aclose()
