"""The conformance profile answers as the official protocol test-suites expect.

Each test replays, over raw HTTP and websocket frames, one expectation of the socket.io-protocol
or engine.io-protocol test-suite against ``run_conformance`` on a free port.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import httpx
import orjson
import pytest
from _wire import RawWebSocket, ServerClosed, open_polling, polling_url

from zapline.conformance import run_conformance

pytestmark = pytest.mark.anyio

SIO = "/socket.io/"
EIO = "/engine.io/"
WS_SIO = "/socket.io/?EIO=4&transport=websocket"
WS_EIO = "/engine.io/?EIO=4&transport=websocket"
HANDSHAKE_KEYS = {"sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"}


@pytest.fixture
async def port() -> AsyncIterator[int]:
    async with anyio.create_task_group() as tg:
        bound = await tg.start(run_conformance, "127.0.0.1", 0)
        yield bound
        tg.cancel_scope.cancel()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as client:
        yield client


def _handshake(text: str | bytes) -> dict[str, object]:
    assert isinstance(text, str) and text.startswith("0"), text
    value = orjson.loads(text[1:])
    assert isinstance(value, dict)
    return value


async def _sio_socket(port: int, connect: str = "40") -> RawWebSocket:
    ws = await RawWebSocket.connect(port, WS_SIO)
    _handshake(await ws.receive())
    await ws.send(connect)
    reply = await ws.receive()
    assert isinstance(reply, str) and reply.startswith("40"), reply
    auth = await ws.receive()
    assert isinstance(auth, str) and '["auth",' in auth, auth
    return ws


# -- Engine.IO layer, on both paths --------------------------------------------------------------


@pytest.mark.parametrize("path", [SIO, EIO])
async def test_polling_handshake_values(port: int, http: httpx.AsyncClient, path: str) -> None:
    response = await http.get(polling_url(port, path))
    assert response.status_code == 200
    value = _handshake(response.text)
    assert set(value) == HANDSHAKE_KEYS
    assert value["upgrades"] == ["websocket"]
    assert (value["pingInterval"], value["pingTimeout"], value["maxPayload"]) == (
        300,
        200,
        1_000_000,
    )


@pytest.mark.parametrize("target", [WS_SIO, WS_EIO])
async def test_websocket_handshake_offers_no_upgrade(port: int, target: str) -> None:
    async with await RawWebSocket.connect(port, target) as ws:
        value = _handshake(await ws.receive())
        assert set(value) == HANDSHAKE_KEYS and value["upgrades"] == []
        assert (value["pingInterval"], value["pingTimeout"]) == (300, 200)


@pytest.mark.parametrize("path", [SIO, EIO])
@pytest.mark.parametrize(
    ("method", "query"),
    [
        ("GET", "transport=polling"),
        ("GET", "EIO=abc&transport=polling"),
        ("GET", "EIO=4"),
        ("GET", "EIO=4&transport=abc"),
        ("POST", "EIO=4&transport=polling"),
        ("PUT", "EIO=4&transport=polling"),
    ],
)
async def test_bad_query_and_method_are_400(port: int, path: str, method: str, query: str) -> None:
    # A fresh connection per request: the engine drops a keep-alive connection after refusing
    # a request with a body (see test_engine_findings), which would fail the next request.
    async with httpx.AsyncClient(timeout=5) as http:
        response = await http.request(method, f"http://127.0.0.1:{port}{path}?{query}")
    assert response.status_code == 400


@pytest.mark.parametrize("path", [SIO, EIO])
async def test_polling_heartbeat_and_ping_timeout(
    port: int, http: httpx.AsyncClient, path: str
) -> None:
    sid = await open_polling(http, port, path)
    for _ in range(2):
        poll = await http.get(polling_url(port, path, sid))
        assert (poll.status_code, poll.text) == (200, "2")
        assert (await http.post(polling_url(port, path, sid), content=b"3")).status_code == 200
    # No pong this time: the session is gone once pingInterval + pingTimeout have passed.
    quiet = await open_polling(http, port, path)
    await anyio.sleep(0.3 + 0.2 + 0.1)
    assert (await http.get(polling_url(port, path, quiet))).status_code == 400


async def test_websocket_ping_timeout_closes(port: int) -> None:
    async with await RawWebSocket.connect(port, WS_EIO) as ws:
        seen = await ws.wait_closed(wait=2)
        # Handshake, one ping never answered, then (optionally) a CLOSE packet before the close.
        assert _handshake(seen[0]) and seen[1] == "2" and seen[2:] in ([], ["1"]), seen


# -- Engine.IO echo --------------------------------------------------------------------------------


async def test_engine_echo_over_polling(port: int, http: httpx.AsyncClient) -> None:
    sid = await open_polling(http, port, EIO)
    pushed = await http.post(polling_url(port, EIO, sid), content=b"4hello\x1ebAQIDBA==\x1e4test3")
    assert (pushed.status_code, pushed.text) == (200, "ok")
    poll = await http.get(polling_url(port, EIO, sid))
    assert (poll.status_code, poll.text) == (200, "4hello\x1ebAQIDBA==\x1e4test3")


async def test_engine_echo_over_websocket(port: int) -> None:
    async with await RawWebSocket.connect(port, WS_EIO) as ws:
        _handshake(await ws.receive())
        await ws.send("4hello")
        assert await ws.receive_skipping_pings() == "4hello"
        await ws.send(bytes([1, 2, 3, 4]))
        assert await ws.receive_skipping_pings() == bytes([1, 2, 3, 4])
        await ws.send("abc")  # not an Engine.IO packet: the session ends
        await ws.wait_closed()


async def test_upgrade_ends_the_parked_poll_with_noop(port: int, http: httpx.AsyncClient) -> None:
    # What the official clients do: a poll is parked when the probe arrives.
    sid = await open_polling(http, port, EIO)
    results: dict[str, httpx.Response] = {}

    async def poll() -> None:
        results["poll"] = await http.get(polling_url(port, EIO, sid))

    async with anyio.create_task_group() as tg:
        tg.start_soon(poll)
        await anyio.sleep(0.05)
        async with await RawWebSocket.connect(port, f"{WS_EIO}&sid={sid}") as ws:
            await ws.send("2probe")
            assert await ws.receive() == "3probe"
            await ws.send("5")
            await ws.send("4hello")
            assert await ws.receive_skipping_pings() == "4hello"
    assert (results["poll"].status_code, results["poll"].text) == (200, "6")
    assert (await http.get(polling_url(port, EIO, sid))).status_code == 400


async def test_poll_after_probe_gets_noop(port: int, http: httpx.AsyncClient) -> None:
    sid = await open_polling(http, port, EIO)
    async with await RawWebSocket.connect(port, f"{WS_EIO}&sid={sid}") as ws:
        await ws.send("2probe")
        assert await ws.receive() == "3probe"
        poll = await http.get(polling_url(port, EIO, sid))
        assert (poll.status_code, poll.text) == (200, "6")
        await ws.send("5")
        await ws.send("4hello")
        assert await ws.receive_skipping_pings() == "4hello"
        assert (await http.get(polling_url(port, EIO, sid))).status_code == 400


async def test_duplicate_poll_closes_the_session(port: int, http: httpx.AsyncClient) -> None:
    sid = await open_polling(http, port, EIO)
    results: dict[str, httpx.Response] = {}

    async def first() -> None:
        results["first"] = await http.get(polling_url(port, EIO, sid))

    async with anyio.create_task_group() as tg:
        tg.start_soon(first)
        await anyio.sleep(0.05)
        results["second"] = await http.get(polling_url(port, EIO, sid) + "&t=burst")
    assert (results["first"].status_code, results["first"].text) == (200, "1")
    assert results["second"].status_code in (400, 500)
    assert (await http.get(polling_url(port, EIO, sid))).status_code == 400


# -- Socket.IO profile -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("connect", "prefix", "auth"),
    [
        ("40", "40", "{}"),
        ('40{"token":"123"}', "40", '{"token":"123"}'),
        ("40/custom,", "40/custom,", "{}"),
        ('40/custom,{"token":"abc"}', "40/custom,", '{"token":"abc"}'),
    ],
)
async def test_connect_echoes_auth(port: int, connect: str, prefix: str, auth: str) -> None:
    async with await RawWebSocket.connect(port, WS_SIO) as ws:
        _handshake(await ws.receive())
        await ws.send(connect)
        reply = await ws.receive()
        assert isinstance(reply, str) and reply.startswith(prefix)
        assert set(orjson.loads(reply[len(prefix) :])) == {"sid"}
        nsp = prefix[2:]
        assert await ws.receive() == f'42{nsp}["auth",{auth}]'


async def test_unknown_namespace_is_refused(port: int) -> None:
    async with await RawWebSocket.connect(port, WS_SIO) as ws:
        _handshake(await ws.receive())
        await ws.send("40/random")
        assert await ws.receive() == '44/random,{"message":"Invalid namespace"}'


async def test_message_back_and_ack(port: int) -> None:
    async with await _sio_socket(port) as ws:
        await ws.send('42["message",1,"2",{"3":[true]}]')
        assert await ws.receive_skipping_pings() == '42["message-back",1,"2",{"3":[true]}]'
        await ws.send('42456["message-with-ack",1,"2",{"3":[false]}]')
        assert await ws.receive_skipping_pings() == '43456[1,"2",{"3":[false]}]'


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (
            '452-["message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]',
            '452-["message-back",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]',
        ),
        (
            '452-789["message-with-ack",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]',
            '462-789[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]',
        ),
    ],
)
async def test_binary_attachments_come_back(port: int, header: str, expected: str) -> None:
    async with await _sio_socket(port) as ws:
        for frame in (header, bytes([1, 2, 3]), bytes([4, 5, 6])):
            await ws.send(frame)
        got = [await ws.receive_skipping_pings() for _ in range(3)]
        assert got == [expected, bytes([1, 2, 3]), bytes([4, 5, 6])]


async def test_namespace_disconnect_keeps_the_session(port: int) -> None:
    async with await _sio_socket(port) as ws:
        await ws.send("40/custom,")
        reply = await ws.receive_skipping_pings()
        assert isinstance(reply, str) and reply.startswith("40/custom,")
        assert await ws.receive_skipping_pings() == '42/custom,["auth",{}]'
        await ws.send("41/custom,")
        await ws.send('42["message","message to main namespace"]')
        assert await ws.receive_skipping_pings() == '42["message-back","message to main namespace"]'


async def test_main_namespace_disconnect_then_ping(port: int) -> None:
    async with await _sio_socket(port) as ws:
        await ws.send("41")
        assert await ws.receive(wait=1) == "2"


@pytest.mark.parametrize("bad", ["4abc", "42{}", '42abc["message-with-ack",1]'])
async def test_invalid_socketio_packet_closes(port: int, bad: str) -> None:
    async with await _sio_socket(port) as ws:
        await ws.send(bad)
        await ws.wait_closed()


async def test_connect_timeout_closes_a_silent_session(port: int) -> None:
    async with await RawWebSocket.connect(port, WS_SIO) as ws:
        _handshake(await ws.receive())
        with anyio.fail_after(2.5):
            try:
                while True:
                    # Answer pings so that only the connect timeout (1 s) can end the session.
                    if await ws.receive(wait=2.5) == "2":
                        await ws.send("3")
            except ServerClosed:
                pass


async def test_client_close_over_polling_answers_noop(port: int, http: httpx.AsyncClient) -> None:
    sid = await open_polling(http, port, SIO)
    results: dict[str, httpx.Response] = {}

    async def poll() -> None:
        results["poll"] = await http.get(polling_url(port, SIO, sid))

    async with anyio.create_task_group() as tg:
        tg.start_soon(poll)
        await anyio.sleep(0.05)
        await http.post(polling_url(port, SIO, sid), content=b"1")
    assert (results["poll"].status_code, results["poll"].text) == (200, "6")
    assert (await http.get(polling_url(port, SIO, sid))).status_code == 400


# -- issue 10: the behaviours the state machine fixed ----------------------------------------------


@pytest.mark.parametrize("path", [SIO, EIO])
async def test_silent_polling_client_is_closed_for_get_and_post(
    port: int, http: httpx.AsyncClient, path: str
) -> None:
    """Behaviour 1: past pingInterval + pingTimeout without a PONG, the sid answers 400."""
    sid = await open_polling(http, port, path)
    await anyio.sleep(0.3 + 0.2 + 0.02)
    assert (await http.post(polling_url(port, path, sid), content=b"3")).status_code == 400
    assert (await http.get(polling_url(port, path, sid))).status_code == 400


@pytest.mark.parametrize("path", [SIO, EIO])
async def test_poll_racing_the_client_close_gets_a_noop(
    port: int, http: httpx.AsyncClient, path: str
) -> None:
    """Behaviour 4: the close packet overtook the poll; the poll still answers 200 "6"."""
    sid = await open_polling(http, port, path)
    assert (await http.post(polling_url(port, path, sid), content=b"1")).status_code == 200
    poll = await http.get(polling_url(port, path, sid))
    assert (poll.status_code, poll.text) == (200, "6")
    assert (await http.get(polling_url(port, path, sid))).status_code == 400


async def test_first_ping_follows_the_open_packet_by_ping_interval(port: int) -> None:
    """Behaviour 3: a per-session schedule, so the connect's event comes before any ping."""
    opened = []
    pinged = []
    sockets = []
    for _ in range(2):
        ws = await RawWebSocket.connect(port, WS_SIO)
        _handshake(await ws.receive())
        opened.append(anyio.current_time())
        sockets.append(ws)
        await anyio.sleep(0.12)  # the second session opens well inside the first's interval
    for ws in sockets:
        await ws.send("40")
        reply = await ws.receive()
        assert isinstance(reply, str) and reply.startswith("40{"), reply
        assert await ws.receive() == '42["auth",{}]'  # not overtaken by a ping
    for ws in sockets:
        assert await ws.receive() == "2"
        pinged.append(anyio.current_time())
        await ws.send("3")
    for start, ping in zip(opened, pinged, strict=True):
        assert 0.3 - 0.01 <= ping - start < 0.3 + 0.1, (opened, pinged)
    for ws in sockets:
        await ws.aclose()
