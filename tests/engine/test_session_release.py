"""A closed session is freed by reference counting alone: no cycle outlives the close.

The runtime raises the GC thresholds and freezes start-up objects (zapline/runtime.py), so a
full collection almost never runs: anything a closed connection leaves in a reference cycle
would stay for hours. These tests run with the collector disabled and wait for weak
references to a closed session, its websocket, its outbox and its sockets to die.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from engine_wire import (
    decode_poll,
    error_log_fixture,  # noqa: F401 (autouse fixture)
    get,
    polling_open,
    post,
    running,
    sio_connect,
    wait_until,
)

from engine import EngineOptions, Socket, SocketServer

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def no_collector() -> Iterator[None]:
    gc.collect()  # start clean: only what the test makes is watched
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _server() -> SocketServer:
    # Short heartbeats: the timer wheel may hold a closed session until its next due time.
    server = SocketServer(EngineOptions(ping_interval=0.2, ping_timeout=0.2))

    @server.on_connect()
    def join(socket: Socket, auth: dict[str, Any] | None) -> None:
        socket.join("tenant")
        socket.data["user"] = "u1"

    return server


def _watch(server: SocketServer) -> list[weakref.ref[Any]]:
    (session,) = server.sessions.values()
    refs: list[weakref.ref[Any]] = [weakref.ref(session)]
    if session.ws is not None:
        refs += [weakref.ref(session.ws), weakref.ref(session.ws.outbox)]
    refs += [weakref.ref(s) for s in session.sockets.values()]
    return refs


def _alive(refs: list[weakref.ref[Any]]) -> list[str]:
    return [type(obj).__name__ for ref in refs if (obj := ref()) is not None]


@pytest.mark.parametrize("closer", ["client", "server", "abort"])
async def test_a_closed_websocket_session_is_freed_without_the_collector(closer: str) -> None:
    server = _server()
    async with running(server) as port:
        for _ in range(3):  # more than one: nothing must depend on being the first
            ws, sid = await sio_connect(port)
            socket = server.sockets[sid]
            socket.emit("ask", callback=lambda *a: None)  # a pending ack callback too
            server.emit_many([("x", (1,))], to="tenant", defer=True, offsets=["1"])
            assert await ws.recv() == '420["ask"]'
            assert await ws.recv() == '42["x",1,"1"]'
            refs = _watch(server)
            del socket
            if closer == "client":
                await ws.send_raw(b"\x88\x82abcd" + bytes([0x03 ^ 0x61, 0xE8 ^ 0x62]))
                await ws.expect_closed()
            elif closer == "server":
                server.close_session(next(iter(server.sessions.values())), "server shutdown")
                await ws.expect_closed()
            else:
                await ws.aclose()  # TCP gone without a close frame
            await ws.aclose()
            del ws
            await wait_until(lambda: not server.sessions)
            with anyio.move_on_after(3):
                while _alive(refs):  # noqa: ASYNC110
                    await anyio.sleep(0.02)
            assert _alive(refs) == [], _referrers(refs)


async def test_a_closed_polling_session_is_freed_without_the_collector() -> None:
    server = _server()
    async with running(server) as port:
        sid, _ = await polling_open(port)
        query = f"EIO=4&transport=polling&sid={sid}"
        assert (await post(port, query, b"40")).status == 200
        (reply,) = decode_poll((await get(port, query)).body)
        assert isinstance(reply, str) and reply.startswith("40")
        server.emit("x", 1, to="tenant")
        refs = _watch(server)
        assert len(refs) == 2  # the session and its socket
        assert (await post(port, query, b"1")).status == 200  # the client closes
        await wait_until(lambda: not server.sessions)
        # A session the client closed answers one racing poll for CLOSED_POLL_GRACE (2 s);
        # a poll after that finds it expired and drops that (acyclic) reference.
        await anyio.sleep(2.1)
        assert (await get(port, query)).status == 400
        with anyio.move_on_after(3):
            while _alive(refs):  # noqa: ASYNC110
                await anyio.sleep(0.02)
        assert _alive(refs) == [], _referrers(refs)


def _referrers(refs: list[weakref.ref[Any]]) -> list[str]:
    found = []
    for ref in refs:
        obj = ref()
        if obj is not None:
            for holder in gc.get_referrers(obj):
                if holder is not refs and not isinstance(holder, type(_referrers.__code__)):
                    found.append(
                        f"{type(obj).__name__} <- {type(holder).__name__}: {str(holder)[:150]}"
                    )
    return found
