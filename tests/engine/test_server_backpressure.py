"""Slow consumers: a client that stops reading is cut off, the room never waits for it."""

from __future__ import annotations

import pytest
from engine_wire import (
    Closed,
    WsClient,
    decode_poll,
    error_log_fixture,  # noqa: F401 (autouse fixture)
    get,
    polling_open,
    post,
    running,
    wait_until,
)

from engine import EngineOptions, Socket, SocketServer

pytestmark = pytest.mark.anyio

LIMIT = 64 * 1024
CHUNK = "x" * 16_000


async def _join(ws: WsClient, room: str) -> str:
    await ws.send("40")
    reply = await ws.recv()
    assert isinstance(reply, str) and reply.startswith("40{")
    await ws.send(f'421["join","{room}"]')
    assert await ws.recv() == "431[]"
    return reply


async def test_slow_websocket_is_cut_off_while_the_room_keeps_receiving() -> None:
    server = SocketServer(EngineOptions(outbox_limit=LIMIT))
    server.on("join")(lambda socket, room: socket.join(room))
    disconnects: list[str] = []
    server.on_disconnect()(lambda socket, reason: disconnects.append(reason))

    async with running(server) as port:
        fast = await WsClient.connect(port)
        await fast.recv()
        await _join(fast, "room")
        before = set(server.sessions)
        slow = await WsClient.connect(port, rcvbuf=4096)
        await slow.recv()
        await _join(slow, "room")
        [slow_sid] = set(server.sessions) - before
        slow_session = server.sessions[slow_sid]
        slow_ws = slow_session.ws
        assert slow_ws is not None
        frame_size = len(CHUNK) + 40
        peak = 0
        sent = 0
        # Lockstep with the fast reader, so only the slow one can fall behind.
        while not slow_session.closed:
            assert sent < 2000, "the slow consumer was never cut off"
            delivered = server.emit("chunk", sent, CHUNK, to="room")
            peak = max(peak, slow_ws.outbox.pending_bytes)
            assert slow_ws.outbox.pending_bytes <= LIMIT + frame_size
            message = await fast.recv()
            assert message == f'42["chunk",{sent},"{CHUNK}"]'
            assert delivered in (1, 2)
            sent += 1
        assert peak > LIMIT // 2  # the bounded outbox really was in use
        assert slow_ws.outbox.pending_bytes == 0
        assert server.stats.slow_consumers == 1
        # The fast client goes on receiving.
        for i in range(sent, sent + 20):
            assert server.emit("chunk", i, CHUNK, to="room") == 1
            assert await fast.recv() == f'42["chunk",{i},"{CHUNK}"]'
        await wait_until(lambda: disconnects)
        assert disconnects == ["slow consumer"]
        # What reached the slow client is a gap-free prefix, then the connection ends.
        received = 0
        try:
            while True:
                message = await slow.recv()
                if message == "1":
                    break
                assert message == f'42["chunk",{received},"{CHUNK}"]'
                received += 1
        except Closed:
            pass
        assert 0 < received < sent
        await fast.aclose()
        await slow.aclose()


async def test_polling_client_that_stops_polling_is_cut_off() -> None:
    server = SocketServer(EngineOptions(outbox_limit=LIMIT))
    server.on("join")(lambda socket, room: socket.join(room))

    async with running(server) as port:
        sid, _ = await polling_open(port)
        q = f"EIO=4&transport=polling&sid={sid}"
        await post(port, q, b"40")
        await get(port, q)
        await post(port, q, b'421["join","room"]')
        assert decode_poll((await get(port, q)).body) == ["431[]"]
        for i in range(10):
            server.emit("chunk", i, CHUNK, to="room")
        assert sid not in server.sessions
        assert server.stats.slow_consumers == 1
        assert (await get(port, q)).status == 400


async def test_socket_emit_to_a_slow_client_returns_false() -> None:
    server = SocketServer(EngineOptions(outbox_limit=LIMIT))
    sockets: list[Socket] = []
    server.on_connect()(lambda socket, auth: sockets.append(socket))

    async with running(server) as port:
        slow = await WsClient.connect(port, rcvbuf=4096)
        await slow.recv()
        await slow.send("40")
        await slow.recv()
        results = [sockets[0].emit("chunk", CHUNK) for _ in range(1000)]
        assert results[0] is True and results[-1] is False
        assert not server.sessions
        await slow.aclose()


async def test_a_client_merely_behind_still_gets_a_clean_close() -> None:
    server = SocketServer(EngineOptions(outbox_limit=4 << 20))
    async with running(server) as port:
        slow = await WsClient.connect(port, rcvbuf=4096)
        await slow.recv()
        await slow.send("40")
        await slow.recv()
        [session] = server.sessions.values()
        assert session.ws is not None
        sent = 0
        while session.ws.outbox.pending_bytes == 0:
            assert sent < 2000
            server.emit("chunk", sent, CHUNK)
            sent += 1
        server.emit("chunk", sent, CHUNK)  # one more behind the pending bytes
        sent += 1
        server.close_session(session, "server shutdown", send_close=True)
        for i in range(sent):
            assert await slow.recv() == f'42["chunk",{i},"{CHUNK}"]'
        assert await slow.recv() == "1"
        assert await slow.expect_closed() == 1000
