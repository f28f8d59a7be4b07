"""Hostile and broken input: the server answers or closes, logs no error, and keeps serving."""

from __future__ import annotations

import os
import struct

import anyio
import pytest
from engine_wire import (
    Closed,
    WsClient,
    client_frame,
    error_log_fixture,  # noqa: F401 (autouse fixture)
    polling_open,
    running,
    sio_connect,
    wait_until,
    ws_open,
)

from engine import EngineOptions, SocketServer

pytestmark = pytest.mark.anyio


async def _exchange(port: int, data: bytes, *, close_write: bool = False) -> bytes:
    """Send ``data`` on a raw connection; return everything the server answers until it closes."""
    stream = await anyio.connect_tcp("127.0.0.1", port)
    received = b""
    try:
        await stream.send(data)
        if close_write:
            await stream.send_eof()
        with anyio.fail_after(5):
            while True:
                try:
                    received += await stream.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionError):
                    return received
    finally:
        await stream.aclose()


async def _still_serving(port: int) -> None:
    ws, _ = await sio_connect(port)
    await ws.send('421["x"]')
    assert await ws.recv() == "431[]"
    await ws.aclose()
    await polling_open(port)


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(100),  # a TLS ClientHello
        b"\x00\xff\r\n\r\n",
        b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nX: " + b"a" * 20_000 + b"\r\n\r\n",
        b"GET /socket.io/ HTTP/9.9\r\n\r\n",
        b"POST /socket.io/?EIO=4&transport=polling&sid=x HTTP/1.1\r\nHost: h\r\nContent-Length: nope\r\n\r\n",
        b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc",
        b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: h\r\n\r\n\x00\x01garbage\r\n\r\n",
    ],
)
async def test_garbage_instead_of_http(garbage: bytes) -> None:
    server = SocketServer()
    async with running(server) as port:
        answer = await _exchange(port, garbage, close_write=True)
        if answer:
            assert answer.startswith(b"HTTP/1.1 ")
            status = int(answer[9:12])
            assert status in (200, 400, 413, 431, 505), answer[:100]
        await _still_serving(port)


async def test_connections_dropped_midway() -> None:
    server = SocketServer()
    async with running(server) as port:
        sid, _ = await polling_open(port)
        cases = [
            b"",
            b"GET /socket.io/?EIO=4",
            f"POST /socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n42".encode(),
            b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            + struct.pack("!BBQ", 0x81, 0xFF, 2**62)
            + b"\x00\x00\x00\x00abc",
        ]
        for data in cases:
            stream = await anyio.connect_tcp("127.0.0.1", port)
            await stream.send(data) if data else None
            await stream.aclose()
        await anyio.sleep(0.05)
        await _still_serving(port)


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ("Sec-WebSocket-Version: 13\r\n", b"400"),  # no key
        ("Sec-WebSocket-Key: a2V5a2V5a2V5a2V5a2V5aw==\r\nSec-WebSocket-Version: 8\r\n", b"400"),
    ],
)
async def test_bad_websocket_handshakes(headers: str, status: bytes) -> None:
    async with running(SocketServer()) as port:
        request = (
            "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\n{headers}\r\n"
        )
        answer = await _exchange(port, request.encode(), close_write=True)
        assert answer.startswith(b"HTTP/1.1 " + status)
        await _still_serving(port)


async def test_garbage_frames_after_the_upgrade() -> None:
    server = SocketServer(EngineOptions(max_payload=10_000))
    async with running(server) as port:
        frames = [
            # Random bytes after a first byte no frame may have (RSV2 and RSV3 set): pure
            # os.urandom(64) is a valid header waiting for its payload about 2 % of the time.
            b"\xf3" + os.urandom(63),
            client_frame(b"\xff\xfe not utf-8", 0x1),  # invalid UTF-8 in a text frame
            client_frame(b"x", 0x3),  # reserved opcode
            client_frame(b"x" * 200, 0x9),  # control frame over 125 bytes
            client_frame(b"x", 0x0),  # continuation with nothing to continue
            struct.pack("!BBQ", 0x81, 0xFF, 2**62) + b"\x01\x02\x03\x04" + b"x" * 20_000,
        ]
        for data in frames:
            ws, _ = await ws_open(port)
            await ws.send_raw(data)
            code = await ws.expect_closed()
            assert code in (1002, 1007, 1009, None), code
        await wait_until(lambda: not server.sessions)
        await _still_serving(port)


async def test_flood_of_small_messages_is_handled_in_order() -> None:
    server = SocketServer()
    got: list[int] = []
    server.on("n")(lambda socket, n: got.append(n))
    async with running(server) as port:
        ws, _ = await sio_connect(port)
        await ws.send_raw(b"".join(client_frame(f'42["n",{i}]'.encode()) for i in range(2000)))
        await ws.send('421["done"]')
        assert await ws.recv() == "431[]"
        await wait_until(lambda: not (len(got) < 2000))
        assert sorted(got) == list(range(2000))
        await ws.aclose()


async def test_ping_frames_are_answered_with_pong() -> None:
    async with running(SocketServer()) as port:
        ws, _ = await ws_open(port)
        await ws.send_raw(client_frame(b"hi", 0x9))
        frame = await ws.frame()
        assert (frame.opcode, frame.payload) == (0xA, b"hi")
        await ws.aclose()


async def test_abrupt_websocket_disconnects_clean_up() -> None:
    server = SocketServer()
    reasons: list[str] = []
    server.on_disconnect()(lambda socket, reason: reasons.append(reason))
    async with running(server) as port:
        for _ in range(5):
            ws, _ = await sio_connect(port)
            await ws.aclose()
        await wait_until(lambda: not (len(reasons) < 5))
        assert not server.sessions and not server.sockets
        assert set(reasons) <= {"transport close", "transport error"}
        try:
            ws2 = await WsClient.connect(port)
            await ws2.aclose()
        except Closed:
            pytest.fail("server stopped serving")
