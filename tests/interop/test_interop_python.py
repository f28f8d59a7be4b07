"""python-socketio's AsyncClient against the engine, on every transport.

Same scenarios as the JavaScript matrix (test_interop_js.py), one client per test. The client
runs on asyncio only (aiohttp), so this module does too.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
import socketio
from _scenarios import SERVER_BYTES, auth_error_message, token_for

from engine import SocketServer

pytestmark = pytest.mark.anyio

TRANSPORTS = {
    "websocket": ["websocket"],
    "polling": ["polling"],
    "upgrade": ["polling", "websocket"],
}
Handler = Callable[..., Awaitable[Any] | Any]


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=list(TRANSPORTS))
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@asynccontextmanager
async def connected(
    server: SocketServer,
    transport: str,
    handlers: dict[str, Handler] | None = None,
    *,
    tenant: str = "t-py",
    namespaces: tuple[str, ...] = ("/",),
) -> AsyncIterator[socketio.AsyncClient]:
    client = socketio.AsyncClient(reconnection=False)
    for event, handler in (handlers or {}).items():
        event, _, namespace = event.partition(" ")
        client.on(event, handler, namespace=namespace or "/")
    await client.connect(
        f"http://127.0.0.1:{server.port}",
        auth={"token": token_for(tenant)},
        transports=TRANSPORTS[transport],
        namespaces=list(namespaces),
        wait_timeout=5,
    )
    try:
        yield client
    finally:
        await client.disconnect()


async def test_connect_on_the_expected_transport(
    interop_server: SocketServer, transport: str
) -> None:
    async with connected(interop_server, transport) as client:
        expected = "polling" if transport == "polling" else "websocket"
        assert client.transport() == expected
        socket = interop_server.sockets[client.get_sid("/")]
        assert socket.transport == expected
        # python-engineio finishes the upgrade inside connect(), before the Socket.IO CONNECT,
        # so in "upgrade" mode the namespace is joined over the websocket already.
        assert socket.data["connectTransport"] == expected


async def test_server_emit_to_tenant_room(interop_server: SocketServer, transport: str) -> None:
    tenant = f"t-py-{uuid.uuid4().hex[:8]}"
    got: list[Any] = []
    arrived = anyio.Event()

    def welcome(payload: Any) -> None:
        got.append(payload)
        arrived.set()

    async with connected(interop_server, transport, {"welcome": welcome}, tenant=tenant) as client:
        with anyio.fail_after(5):
            await arrived.wait()
        assert got == [{"tenantId": tenant, "socketId": client.get_sid("/")}]


async def test_emit_with_ack(interop_server: SocketServer, transport: str) -> None:
    async with connected(interop_server, transport) as client:
        reply = await client.call("echo", ("hello", 42, {"nested": [1, "two", None]}), timeout=5)
        assert list(reply) == ["hello", 42, {"nested": [1, "two", None]}]


async def test_binary_in_event_and_ack(interop_server: SocketServer, transport: str) -> None:
    events: list[tuple[Any, ...]] = []
    arrived = anyio.Event()

    def binary_back(*args: Any) -> None:
        events.append(args)
        arrived.set()

    async with connected(interop_server, transport, {"binary-back": binary_back}) as client:
        reply = await client.call("binary", (bytes([1, 2, 3, 255]), {"inner": b"zap"}), timeout=5)
        with anyio.fail_after(5):
            await arrived.wait()
    assert list(reply) == [bytes([255, 3, 2, 1]), {"length": 4}]
    assert events == [(bytes([255, 3, 2, 1]), {"inner": b"zap!"})]


async def test_binary_from_client_in_ack(interop_server: SocketServer, transport: str) -> None:
    received: list[Any] = []

    def client_binary(blob: bytes) -> bytes:
        received.append(blob)
        return b"client:" + blob

    async with connected(interop_server, transport, {"client-binary": client_binary}) as client:
        reply = await client.call("ask-client", timeout=5)
    assert received == [SERVER_BYTES]
    assert reply == {"clientReplied": b"client:" + SERVER_BYTES}


@pytest.mark.parametrize("token", ["not-a-jwt", None])
async def test_refused_connect_carries_our_message(
    interop_server: SocketServer, transport: str, token: str | None
) -> None:
    client = socketio.AsyncClient(reconnection=False)
    errors: list[Any] = []
    client.on("connect_error", errors.append)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(
            f"http://127.0.0.1:{interop_server.port}",
            auth={"token": token} if token else {},
            transports=TRANSPORTS[transport],
            wait_timeout=5,
        )
    await client.disconnect()
    assert errors == [{"message": auth_error_message(token)}]
    assert errors[0]["message"].startswith("Authentication error: ")


async def test_custom_namespace_exchanges_events(
    interop_server: SocketServer, transport: str
) -> None:
    shouted: list[Any] = []
    arrived = anyio.Event()

    def on_shouted(text: Any) -> None:
        shouted.append(text)
        arrived.set()

    handlers: dict[str, Handler] = {"shouted /custom": on_shouted}
    async with connected(
        interop_server, transport, handlers, namespaces=("/", "/custom")
    ) as client:
        assert client.get_sid("/custom") is not None
        assert await client.call("shout", "hey", namespace="/custom", timeout=5) == "HEY"
        with anyio.fail_after(5):
            await arrived.wait()
    assert shouted == ["HEY"]


async def test_server_side_disconnect(interop_server: SocketServer, transport: str) -> None:
    reasons: list[Any] = []
    gone = anyio.Event()

    def disconnect(reason: Any = None) -> None:
        reasons.append(reason)
        gone.set()

    async with connected(interop_server, transport, {"disconnect": disconnect}) as client:
        await client.emit("kick-me")
        with anyio.fail_after(5):
            await gone.wait()
        assert reasons == [client.reason.SERVER_DISCONNECT]
