"""The reactor: every upgraded websocket is read by one task, and leaves it when it ends."""

from __future__ import annotations

import pytest
from engine_wire import (
    error_log_fixture,  # noqa: F401 (autouse fixture)
    running,
    sio_connect,
    wait_until,
)

from engine import EngineOptions, SocketServer

pytestmark = pytest.mark.anyio


async def test_websockets_are_registered_while_open_and_dropped_when_gone() -> None:
    server = SocketServer()
    async with running(server) as port:
        clients = [await sio_connect(port) for _ in range(20)]
        assert len(server.reactor) == 20
        for ws, _ in clients[:10]:
            await ws.aclose()
        await wait_until(lambda: len(server.reactor) == 10 and len(server.sessions) == 10)
        # The others are still served: the reactor reads them after their neighbours left.
        for ws, sid in clients[10:]:
            await ws.send('42["ping"]')
            assert server.emit("pong", to=sid) == 1
            assert await ws.recv() == '42["pong"]'
        for ws, _ in clients[10:]:
            await ws.aclose()
        await wait_until(lambda: len(server.reactor) == 0 and not server.sessions)


async def test_closing_connection_is_dropped_after_the_grace_if_the_peer_is_silent() -> None:
    from engine.transport import _websocket

    server = SocketServer(EngineOptions())
    grace = _websocket.CLOSE_GRACE
    _websocket.CLOSE_GRACE = 0.2  # a module setting, not our code's behaviour, is shortened
    try:
        async with running(server) as port:
            ws, _ = await sio_connect(port)
            session = next(iter(server.sessions.values()))
            server.close_session(session, "server shutdown", send_close=True)
            # The client never answers the close frame: the reactor still lets it go.
            await wait_until(lambda: len(server.reactor) == 0, within=2.0)
            await ws.aclose()
    finally:
        _websocket.CLOSE_GRACE = grace
