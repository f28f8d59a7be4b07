"""Rooms and emit targeting on the real server, observed by raw websocket clients."""

from __future__ import annotations

from typing import Any

import pytest
from engine_wire import (
    WsClient,
    error_log_fixture,  # noqa: F401 (autouse fixture)
    running,
    sio_connect,
    wait_until,
)

from engine import Socket, SocketServer

pytestmark = pytest.mark.anyio


async def _drain(ws: WsClient, prefix: str = "") -> list[str]:
    """Messages up to the ``end`` marker (which every test emits last)."""
    seen: list[str] = []
    while True:
        message = await ws.recv()
        assert isinstance(message, str)
        if message == f'42{prefix}["end"]':
            return seen
        seen.append(message)


def _server() -> SocketServer:
    server = SocketServer()

    @server.on("join")
    def join(socket: Socket, room: str) -> list[str]:
        socket.join(room)
        return sorted(socket.rooms)

    @server.on("leave")
    def leave(socket: Socket, room: str) -> list[str]:
        socket.leave(room)
        return sorted(socket.rooms)

    return server


async def _clients(port: int, rooms: list[list[str]]) -> list[tuple[WsClient, str]]:
    out = []
    for wanted in rooms:
        ws, sid = await sio_connect(port)
        for i, room in enumerate(wanted):
            await ws.send(f'42{i}["join","{room}"]')
            reply = await ws.recv()
            assert isinstance(reply, str) and reply.startswith(f"43{i}[")
        out.append((ws, sid))
    return out


async def test_join_leave_and_room_emits() -> None:
    server = _server()
    async with running(server) as port:
        (a, a_id), (b, b_id), (c, c_id), (d, d_id) = await _clients(
            port, [["r1"], ["r1", "r2"], ["r2"], []]
        )
        assert server.rooms.count("/", "r1") == 2 and sorted(server.rooms.rooms("/")) == [
            "r1",
            "r2",
        ]
        assert server.emit("one", 1, to="r1") == 2
        assert server.emit("both", 2, to=["r1", "r2"]) == 3  # b is in both and counted once
        assert server.emit("skip-room", 3, to="r1", skip="r2") == 1
        assert server.emit("skip-sid", 4, to=["r1", "r2"], skip=[b_id, "nobody"]) == 2
        assert server.emit("direct", 5, to=c_id) == 1
        assert server.emit("direct-skipped", 6, to=c_id, skip=c_id) == 0
        assert server.emit("all", 7) == 4
        assert server.emit("all-but-r1", 8, skip="r1") == 2
        assert server.emit("nobody", 9, to="empty-room") == 0
        assert server.emit("end") == 4
        assert await _drain(a) == [
            '42["one",1]',
            '42["both",2]',
            '42["skip-room",3]',
            '42["skip-sid",4]',
            '42["all",7]',
        ]
        assert await _drain(b) == ['42["one",1]', '42["both",2]', '42["all",7]']
        assert await _drain(c) == [
            '42["both",2]',
            '42["skip-sid",4]',
            '42["direct",5]',
            '42["all",7]',
            '42["all-but-r1",8]',
        ]
        assert await _drain(d) == ['42["all",7]', '42["all-but-r1",8]']
        await b.send('429["leave","r1"]')
        assert await b.recv() == '439[["r2"]]'
        assert server.emit("after-leave", to="r1") == 1
        assert server.rooms.count("/", "r1") == 1
        await c.send('429["leave","r2"]')
        assert await c.recv() == "439[[]]"
        await b.send('428["leave","r2"]')
        assert await b.recv() == "438[[]]"
        assert server.rooms.rooms("/") == ["r1"]  # empty rooms are dropped
        for ws, _ in [(a, a_id), (b, b_id), (c, c_id), (d, d_id)]:
            await ws.aclose()


async def test_namespaces_are_separate() -> None:
    server = _server()
    server.on("join", namespace="/admin")(lambda socket, room: socket.join(room))
    async with running(server) as port:
        ws, root_id = await sio_connect(port)
        await ws.send("40/admin,")
        reply = await ws.recv()
        assert isinstance(reply, str) and reply.startswith("40/admin,")
        await ws.send('421["join","r"]')
        assert await ws.recv() == '431[["r"]]'
        await ws.send('42/admin,2["join","r"]')
        assert await ws.recv() == "43/admin,2[]"
        assert server.emit("admins", to="r", namespace="/admin") == 1
        assert server.emit("root", to="r") == 1
        assert server.emit("everyone-admin", namespace="/admin") == 1
        assert server.emit("direct", to=root_id, namespace="/admin") == 0  # a "/" socket id
        server.emit("end")
        assert await _drain(ws) == [
            '42/admin,["admins"]',
            '42["root"]',
            '42/admin,["everyone-admin"]',
        ]
        await ws.aclose()


async def test_disconnected_sockets_leave_every_room() -> None:
    server = _server()
    async with running(server) as port:
        [(a, a_id), (b, _)] = await _clients(port, [["r1", "r2"], ["r1"]])
        await a.aclose()
        await wait_until(lambda: a_id not in server.sockets)
        assert server.rooms.count("/", "r1") == 1 and server.rooms.count("/", "r2") == 0
        assert server.emit("x", to=["r1", "r2"]) == 1
        await b.aclose()


async def test_polling_and_websocket_members_get_the_same_broadcast() -> None:
    from engine_wire import decode_poll, get, polling_open, post

    server = _server()
    async with running(server) as port:
        [(ws, _)] = await _clients(port, [["r"]])
        sid, _ = await polling_open(port)
        q = f"EIO=4&transport=polling&sid={sid}"
        await post(port, q, b"40")
        await get(port, q)
        await post(port, q, b'421["join","r"]')
        assert decode_poll((await get(port, q)).body) == ['431[["r"]]']
        payload: dict[str, Any] = {"text": "olá", "n": [1, 2.5, None, True]}
        assert server.emit("news", payload, to="r") == 2
        expected = '42["news",{"text":"olá","n":[1,2.5,null,true]}]'
        assert await ws.recv() == expected
        assert decode_poll((await get(port, q)).body) == [expected]
        await ws.aclose()
