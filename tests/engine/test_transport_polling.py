"""HTTP long-polling against the real server: handshake, errors, payloads, expiry, CORS."""

from __future__ import annotations

import base64
import re

import anyio
import orjson
import pytest
from engine_wire import (
    PATH,
    Http,
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

HANDSHAKE = re.compile(
    rb'0\{"sid":"[A-Za-z0-9_-]{20}","upgrades":\["websocket"\],"pingInterval":25000,'
    rb'"pingTimeout":20000,"maxPayload":1000000\}'
)


async def test_handshake_body_is_exact() -> None:
    server = SocketServer()
    async with running(server) as port:
        response = await get(port, "EIO=4&transport=polling")
        assert response.status == 200
        assert response.headers["content-type"].startswith("text/plain")
        assert HANDSHAKE.fullmatch(response.body), response.body
        sid = orjson.loads(response.body[1:])["sid"]
        assert sid in server.sessions


async def test_websocket_handshake_sends_the_open_packet_without_upgrades() -> None:
    server = SocketServer()
    async with running(server) as port:
        ws = await WsClient.connect(port)
        first = await ws.recv()
        # Same packet, same key order; a websocket session has nothing to upgrade to, so it
        # advertises no upgrades, as the reference server and the protocol test-suite expect.
        expected = HANDSHAKE.pattern.replace(rb'\["websocket"\]', rb"\[\]")
        assert isinstance(first, str) and re.fullmatch(expected, first.encode()), first
        await ws.aclose()


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("EIO=3&transport=polling", 5),
        ("transport=polling", 5),
        ("EIO=4&transport=carrier-pigeon", 0),
        ("EIO=4&transport=polling&sid=nope", 1),
    ],
)
async def test_handshake_errors(query: str, code: int) -> None:
    async with running(SocketServer()) as port:
        response = await get(port, query)
        assert response.status == 400
        assert response.json()["code"] == code


async def test_post_without_sid_is_a_bad_handshake_method() -> None:
    async with running(SocketServer()) as port:
        response = await post(port, "EIO=4&transport=polling", b"40")
        assert response.status == 400
        assert response.json() == {"code": 2, "message": "Bad handshake method"}


async def test_other_paths_are_404() -> None:
    async with running(SocketServer()) as port:
        http = await Http.connect(port)
        assert (await http.request("GET", "/socket.iox/?EIO=4&transport=polling")).status == 404
        assert (await http.request("GET", "/elsewhere")).status == 404
        await http.aclose()


async def test_keep_alive_serves_several_requests_on_one_connection() -> None:
    server = SocketServer()
    async with running(server) as port:
        http = await Http.connect(port)
        opened = await http.request("GET", PATH + "?EIO=4&transport=polling")
        sid = orjson.loads(opened.body[1:])["sid"]
        query = f"{PATH}?EIO=4&transport=polling&sid={sid}"
        assert (await http.request("POST", query, b"40")).body == b"ok"
        polled = await http.request("GET", query)
        assert decode_poll(polled.body)[0].startswith("40{")  # type: ignore[union-attr]
        await http.aclose()


async def test_post_ok_and_long_poll_joins_packets() -> None:
    server = SocketServer()

    @server.on("hello")
    def hello(socket: Socket, name: str) -> None:
        socket.emit("one", name)
        socket.emit("two", {"n": 2})

    async with running(server) as port:
        sid, _ = await polling_open(port)
        q = f"EIO=4&transport=polling&sid={sid}"
        answer = await post(port, q, b"40")
        assert (answer.status, answer.body) == (200, b"ok")
        connected = decode_poll((await get(port, q)).body)
        assert len(connected) == 1 and str(connected[0]).startswith('40{"sid":')
        assert (await post(port, q, b'42["hello","ann"]')).body == b"ok"
        await wait_until(lambda: not (len(server.sessions[sid].queue) < 2))
        body = (await get(port, q)).body
        assert body == b'42["one","ann"]\x1e42["two",{"n":2}]'


async def test_long_poll_waits_for_data() -> None:
    server = SocketServer()
    async with running(server) as port:
        sid, _ = await polling_open(port)
        q = f"EIO=4&transport=polling&sid={sid}"
        await post(port, q, b"40")
        await get(port, q)  # the CONNECT reply
        bodies: list[bytes] = []

        async def poll() -> None:
            bodies.append((await get(port, q)).body)

        async with anyio.create_task_group() as tg:
            tg.start_soon(poll)
            await wait_until(lambda: server.sessions[sid].polling)
            assert bodies == []
            assert server.emit("late", 1) == 1
        assert bodies == [b'42["late",1]']


async def test_binary_both_ways_as_base64() -> None:
    server = SocketServer()
    got: list[object] = []

    @server.on("blob")
    def blob(socket: Socket, data: bytes) -> None:
        got.append(data)
        socket.emit("echo", data + b"!")

    async with running(server) as port:
        sid, _ = await polling_open(port)
        q = f"EIO=4&transport=polling&sid={sid}"
        await post(port, q, b"40")
        await get(port, q)
        raw = bytes(range(256))
        body = '451-["blob",{"_placeholder":true,"num":0}]\x1eb' + base64.b64encode(raw).decode()
        assert (await post(port, q, body.encode())).body == b"ok"
        await wait_until(lambda: not (len(server.sessions[sid].queue) < 2))
        packets = decode_poll((await get(port, q)).body)
        assert got == [raw]
        assert packets == ['451-["echo",{"_placeholder":true,"num":0}]', raw + b"!"]


async def test_duplicate_get_is_refused_and_closes_the_session() -> None:
    server = SocketServer()
    async with running(server) as port:
        sid, _ = await polling_open(port)
        q = f"EIO=4&transport=polling&sid={sid}"
        first: list[bytes] = []

        async def park() -> None:
            first.append((await get(port, q)).body)

        async with anyio.create_task_group() as tg:
            tg.start_soon(park)
            await wait_until(lambda: server.sessions[sid].polling)
            second = await get(port, q)
            assert second.status == 400
        assert first == [b"1"]
        assert sid not in server.sessions
        assert (await get(port, q)).json()["code"] == 1


async def test_client_close_answers_the_parked_poll_with_a_noop() -> None:
    server = SocketServer()
    async with running(server) as port:
        sid, _ = await polling_open(port)
        q = f"EIO=4&transport=polling&sid={sid}"
        bodies: list[bytes] = []

        async def park() -> None:
            bodies.append((await get(port, q)).body)

        async with anyio.create_task_group() as tg:
            tg.start_soon(park)
            await wait_until(lambda: server.sessions[sid].polling)
            assert (await post(port, q, b"1")).body == b"ok"
        assert bodies == [b"6"]
        assert sid not in server.sessions


async def test_refused_request_with_unread_body_announces_close() -> None:
    async with running(SocketServer()) as port:
        http = await Http.connect(port)
        response = await http.request("POST", PATH + "?EIO=4&transport=polling", b"abc")
        assert response.status == 400
        assert response.headers.get("connection") == "close"
        await http.aclose()


async def test_oversized_post_is_413_and_closes() -> None:
    server = SocketServer(EngineOptions(max_payload=1000))
    async with running(server) as port:
        sid, handshake = await polling_open(port)
        assert handshake["maxPayload"] == 1000
        q = f"EIO=4&transport=polling&sid={sid}"
        response = await post(port, q, b"4" + b"x" * 1500)
        assert response.status == 413
        assert sid not in server.sessions


@pytest.mark.parametrize(
    "body", [b"", b"9", b"4\x1e", b"bnot-base64!", b"\xff\xfe", b"42[nope", b"5"]
)
async def test_malformed_payload_is_400_and_closes(body: bytes) -> None:
    server = SocketServer()
    async with running(server) as port:
        sid, _ = await polling_open(port)
        q = f"EIO=4&transport=polling&sid={sid}"
        if body == b"42[nope":
            await post(port, q, b"40")
        response = await post(port, q, body)
        assert response.status == 400
        assert sid not in server.sessions


async def test_session_expires_without_pong() -> None:
    server = SocketServer(EngineOptions(ping_interval=0.05, ping_timeout=0.1))
    async with running(server) as port:
        sid, handshake = await polling_open(port)
        assert (handshake["pingInterval"], handshake["pingTimeout"]) == (50, 100)
        q = f"EIO=4&transport=polling&sid={sid}"
        assert decode_poll((await get(port, q)).body) == ["2"]
        assert decode_poll((await get(port, q)).body) == ["1"]
        assert sid not in server.sessions
        assert server.stats.disconnects["ping timeout"] == 0  # no socket was connected


async def test_pong_keeps_a_polling_session_alive() -> None:
    server = SocketServer(EngineOptions(ping_interval=0.05, ping_timeout=0.1))
    async with running(server) as port:
        sid, _ = await polling_open(port)
        q = f"EIO=4&transport=polling&sid={sid}"
        for _ in range(4):
            assert decode_poll((await get(port, q)).body) == ["2"]
            assert (await post(port, q, b"3")).body == b"ok"
        assert sid in server.sessions


# -- CORS ------------------------------------------------------------------------------------


async def test_cors_allowed_origin_is_echoed() -> None:
    server = SocketServer(EngineOptions(cors_origins=("http://a.example",)))
    async with running(server) as port:
        response = await get(port, "EIO=4&transport=polling", [("origin", "http://a.example")])
        assert response.status == 200
        assert response.headers["access-control-allow-origin"] == "http://a.example"
        assert response.headers["access-control-allow-credentials"] == "true"


async def test_cors_other_origin_is_403() -> None:
    server = SocketServer(EngineOptions(cors_origins=("http://a.example",)))
    async with running(server) as port:
        response = await get(port, "EIO=4&transport=polling", [("origin", "http://b.example")])
        assert response.status == 403
        assert response.json()["code"] == 4
        assert "access-control-allow-origin" not in response.headers
        assert not server.sessions


async def test_cors_preflight() -> None:
    server = SocketServer(EngineOptions(cors_origins=("http://a.example",)))
    async with running(server) as port:
        http = await Http.connect(port)
        response = await http.request(
            "OPTIONS",
            PATH + "?EIO=4&transport=polling",
            headers=[("origin", "http://a.example"), ("access-control-request-method", "POST")],
        )
        assert response.status == 204
        assert "POST" in response.headers["access-control-allow-methods"]
        assert response.headers["access-control-allow-origin"] == "http://a.example"
        await http.aclose()
