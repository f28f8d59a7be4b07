"""The polling -> websocket upgrade (2probe / 3probe / 5) against the real server."""

from __future__ import annotations

import anyio
import pytest
from engine_wire import (
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


async def test_upgrade_flushes_queue_in_order_and_noops_the_parked_poll() -> None:
    server = SocketServer(EngineOptions(upgrade_timeout=0.3))
    async with running(server) as port:
        sid, _ = await polling_open(port)
        q = f"EIO=4&transport=polling&sid={sid}"
        await post(port, q, b"40")
        assert str(decode_poll((await get(port, q)).body)[0]).startswith("40{")
        session = server.sessions[sid]
        polls: list[bytes] = []

        async def park() -> None:
            polls.append((await get(port, q)).body)

        async with anyio.create_task_group() as tg:
            tg.start_soon(park)
            await wait_until(lambda: session.polling)
            ws = await WsClient.connect(port, f"EIO=4&transport=websocket&sid={sid}")
            await ws.send("2probe")
            assert await ws.recv() == "3probe"
        # The probe answered the parked poll with a noop, so the client can pause polling.
        assert polls == [b"6"]
        server.emit("queued", 1)  # still polling: goes to the queue
        server.emit("queued", 2)
        assert session.transport == "polling"
        await ws.send("5")
        await wait_until(lambda: session.transport == "websocket")
        server.emit("after", 3)
        assert [await ws.recv() for _ in range(3)] == [
            '42["queued",1]',
            '42["queued",2]',
            '42["after",3]',
        ]
        # The upgrade deadline no longer applies once the upgrade is done.
        await anyio.sleep(0.5)
        assert sid in server.sessions
        await ws.send('42["still here"]')
        server.emit("later", 4)
        assert await ws.recv() == '42["later",4]'
        # Polling on an upgraded session is refused.
        assert (await get(port, q)).status == 400
        await ws.aclose()


async def test_events_from_the_client_flow_after_upgrade() -> None:
    server = SocketServer()
    seen: list[object] = []

    @server.on("ping")
    def on_ping(socket: Socket, n: int) -> int:
        seen.append((socket.transport, n))
        return n + 1

    async with running(server) as port:
        sid, _ = await polling_open(port)
        q = f"EIO=4&transport=polling&sid={sid}"
        await post(port, q, b"40")
        assert str(decode_poll((await get(port, q)).body)[0]).startswith("40{")
        await post(port, q, b'421["ping",1]')
        assert decode_poll((await get(port, q)).body) == ["431[2]"]
        ws = await WsClient.connect(port, f"EIO=4&transport=websocket&sid={sid}")
        await ws.send("2probe")
        assert await ws.recv() == "3probe"
        await ws.send("5")
        await ws.send('422["ping",5]')
        assert await ws.recv() == "432[6]"
        assert seen == [("polling", 1), ("websocket", 5)]
        await ws.aclose()


async def test_polls_during_the_upgrade_get_a_noop_at_once() -> None:
    server = SocketServer()
    async with running(server) as port:
        sid, _ = await polling_open(port)
        q = f"EIO=4&transport=polling&sid={sid}"
        ws = await WsClient.connect(port, f"EIO=4&transport=websocket&sid={sid}")
        await ws.send("2probe")
        assert await ws.recv() == "3probe"
        assert decode_poll((await get(port, q)).body) == ["6"]
        server.emit("x")  # nobody is connected to "/": nothing queued
        assert decode_poll((await get(port, q)).body) == ["6"]
        await ws.send("5")
        assert (await get(port, q)).status == 400
        await ws.aclose()


async def test_upgrade_of_unknown_sid_is_refused() -> None:
    async with running(SocketServer()) as port:
        with pytest.raises(AssertionError, match="400"):
            await WsClient.connect(port, "EIO=4&transport=websocket&sid=nobody")


async def test_second_probe_is_accepted_then_closed() -> None:
    server = SocketServer()
    async with running(server) as port:
        sid, _ = await polling_open(port)
        first = await WsClient.connect(port, f"EIO=4&transport=websocket&sid={sid}")
        await wait_until(lambda: server.sessions[sid].probe is not None)
        second = await WsClient.connect(port, f"EIO=4&transport=websocket&sid={sid}")
        assert await second.expect_closed() == 1000
        # The first probe is untouched: it still upgrades the session.
        await first.send("2probe")
        assert await first.recv() == "3probe"
        await first.send("5")
        await wait_until(lambda: server.sessions[sid].transport == "websocket")
        await first.aclose()


async def test_websocket_with_the_sid_of_an_upgraded_session_is_closed() -> None:
    """Issue 10, behaviour 2: HTTP 101 then a close; the upgraded connection keeps working."""
    server = SocketServer()
    async with running(server) as port:
        sid, _ = await polling_open(port)
        ws = await WsClient.connect(port, f"EIO=4&transport=websocket&sid={sid}")
        await ws.send("2probe")
        assert await ws.recv() == "3probe"
        await ws.send("5")
        await wait_until(lambda: server.sessions[sid].transport == "websocket")
        extra = await WsClient.connect(port, f"EIO=4&transport=websocket&sid={sid}")
        assert await extra.expect_closed() == 1000
        await ws.send("40")
        reply = await ws.recv()
        assert isinstance(reply, str) and reply.startswith("40{"), reply
        assert server.sessions[sid].transport == "websocket"
        await ws.aclose()


async def test_probe_that_never_sends_upgrade_times_out() -> None:
    server = SocketServer(EngineOptions(upgrade_timeout=0.2))
    async with running(server) as port:
        sid, _ = await polling_open(port)
        session = server.sessions[sid]
        ws = await WsClient.connect(port, f"EIO=4&transport=websocket&sid={sid}")
        await ws.send("2probe")
        assert await ws.recv() == "3probe"
        with anyio.fail_after(3):
            assert await ws.expect_closed() is None  # dropped, no close handshake
        # The session itself goes on polling.
        assert session.probe is None and not session.closed
        q = f"EIO=4&transport=polling&sid={sid}"
        assert (await post(port, q, b"40")).body == b"ok"
        assert str(decode_poll((await get(port, q)).body)[0]).startswith("40{")


async def test_bad_packet_during_probe_closes_the_session() -> None:
    server = SocketServer()
    async with running(server) as port:
        sid, _ = await polling_open(port)
        ws = await WsClient.connect(port, f"EIO=4&transport=websocket&sid={sid}")
        await ws.send('42["too early"]')
        await ws.expect_closed()
        assert sid not in server.sessions
