"""Interop with a client nobody here wrote: python-socketio's AsyncClient (asyncio only)."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
import socketio
from engine_wire import (
    error_log_fixture,  # noqa: F401 (autouse fixture)
    running,
    wait_until,
)

from engine import ConnectionRefused, EngineOptions, Socket, SocketServer

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("anyio_backend", ["asyncio"])]


def _server() -> SocketServer:
    server = SocketServer(EngineOptions(ping_interval=0.2, ping_timeout=0.5))

    @server.on_connect()
    def auth(socket: Socket, auth: dict[str, Any] | None) -> None:
        if not auth or auth.get("token") != "good":
            raise ConnectionRefused("bad token")
        socket.join("desk")

    @server.on("add")
    def add(socket: Socket, a: int, b: int) -> int:
        return a + b

    @server.on("blob")
    def blob(socket: Socket, data: bytes) -> bytes:
        return data[::-1]

    @server.on("ask-me")
    async def ask_me(socket: Socket) -> Any:
        (answer,) = await socket.call("question", "why?", timeout=5)
        return answer

    server.on("hello", namespace="/admin")(lambda socket: "admin-hi")
    return server


@pytest.mark.parametrize("transports", [["websocket"], ["polling"], ["polling", "websocket"]])
async def test_async_client_round_trips(transports: list[str]) -> None:
    server = _server()
    async with running(server) as port:
        client = socketio.AsyncClient(reconnection=False)
        received: list[object] = []
        client.on("news", lambda data: received.append(data))
        client.on("question", lambda text: text.upper())
        await client.connect(
            f"http://127.0.0.1:{port}",
            auth={"token": "good"},
            transports=transports,
            namespaces=["/", "/admin"],
        )
        try:
            assert await client.call("add", (2, 3), timeout=5) == 5
            assert await client.call("blob", b"\x00\x01\x02", timeout=5) == b"\x02\x01\x00"
            assert await client.call("ask-me", timeout=5) == "WHY?"
            assert await client.call("hello", namespace="/admin", timeout=5) == "admin-hi"
            assert server.emit("news", {"n": 1}, to="desk") == 1
            await wait_until(lambda: received)
            assert received == [{"n": 1}]
            await anyio.sleep(0.5)  # a few heartbeats pass without a timeout
            assert await client.call("add", (1, 1), timeout=5) == 2
            if transports[-1] == "websocket":
                assert all(s.transport == "websocket" for s in server.sockets.values())
        finally:
            await client.disconnect()
        await wait_until(lambda: not server.sessions)


async def test_async_client_refused_auth() -> None:
    server = _server()
    async with running(server) as port:
        client = socketio.AsyncClient(reconnection=False)
        errors: list[object] = []
        client.on("connect_error", lambda data: errors.append(data))
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect(
                f"http://127.0.0.1:{port}", auth={"token": "bad"}, transports=["websocket"]
            )
        assert errors == [{"message": "bad token"}]
        await client.disconnect()


async def test_async_client_sees_server_shutdown() -> None:
    server = _server()
    async with anyio.create_task_group() as tg:
        port = await tg.start(server.serve, "127.0.0.1", 0)
        client = socketio.AsyncClient(reconnection=False)
        gone = anyio.Event()
        client.on("disconnect", lambda *reason: gone.set())
        await client.connect(
            f"http://127.0.0.1:{port}", auth={"token": "good"}, transports=["websocket"]
        )
        await server.shutdown(grace=1.0)
        with anyio.fail_after(5):
            await gone.wait()
        await client.disconnect()


@pytest.mark.parametrize("transports", [["websocket"], ["polling"], ["polling", "websocket"]])
async def test_async_client_never_gets_recovery_offsets(transports: list[str]) -> None:
    """Its one-argument handlers would raise TypeError on an offset appended to the event."""
    server = _server()
    async with running(server) as port:
        client = socketio.AsyncClient(reconnection=False)
        received: list[object] = []

        def news(data: object) -> None:  # exactly one argument, as most handlers are written
            received.append(data)

        client.on("news", news)
        await client.connect(
            f"http://127.0.0.1:{port}", auth={"token": "good"}, transports=transports
        )
        try:
            (socket,) = server.sockets.values()
            assert not socket.takes_offsets
            server.emit_many([("news", ({"n": 1},)), ("news", ({"n": 2},))], to="desk",
                             offsets=["1", "2"])  # fmt: skip
            server.emit_many([("news", ({"n": 3},))], to="desk", defer=True, offsets=["3"])
            assert socket.emit("news", {"n": 4}, offset="4")
            await wait_until(lambda: len(received) == 4)
            assert received == [{"n": 1}, {"n": 2}, {"n": 3}, {"n": 4}]
        finally:
            await client.disconnect()
        await wait_until(lambda: not server.sessions)
