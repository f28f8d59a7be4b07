"""Plain HTTP routes mounted beside Engine.IO (``EngineIO.add_http_route``, issue 16).

The contract of ``engine/transport/_routes.py``: the body is read first within the route's
limit (Content-Length or while reading, chunked too), a handler's answer goes out with its
headers and a content-length, keep-alive survives, a raising handler is a 500 and the
listener goes on, other methods of a mounted path get a 405, Engine.IO is untouched.
"""

from __future__ import annotations

import anyio
import orjson
import pytest
from engine_wire import (
    ErrorLog,
    Http,
    error_log_fixture,  # noqa: F401 (autouse fixture)
    polling_open,
    running,
)

from engine import EngineOptions, HttpRequest, HttpResponse, SocketServer

pytestmark = pytest.mark.anyio

ROUTE = "/hooks/in"
LIMIT = 1000


class Recorder:
    """A handler that answers what it was given, and keeps every request."""

    def __init__(self) -> None:
        self.requests: list[HttpRequest] = []

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        self.requests.append(request)
        if request.headers.get("x-fail") == "yes":
            raise RuntimeError("handler bug")
        size = None if request.body is None else len(request.body)
        body = orjson.dumps({"size": size, "n": len(self.requests)})
        return HttpResponse(200, body, ((b"content-type", b"application/json"),))


def mounted() -> tuple[SocketServer, Recorder]:
    server = SocketServer(EngineOptions(header_timeout=2))
    handler = Recorder()
    server.engine.add_http_route("POST", ROUTE, handler, max_body=LIMIT)
    return server, handler


async def test_posts_on_one_keep_alive_connection_reach_the_handler_whole() -> None:
    server, handler = mounted()
    async with running(server) as port:
        http = await Http.connect(port)
        try:
            for i in range(5):
                answer = await http.request(
                    "POST", ROUTE, b"x" * (10 * i), [("x-request-id", f"r{i}")]
                )
                assert answer.status == 200
                assert answer.json() == {"size": 10 * i, "n": i + 1}
                assert answer.headers["content-type"] == "application/json"
                assert int(answer.headers["content-length"]) == len(answer.body)
                assert "connection" not in answer.headers
        finally:
            await http.aclose()
        assert server.stats.listener.accepted == 1
    assert [r.headers["x-request-id"] for r in handler.requests] == [f"r{i}" for i in range(5)]
    assert {(r.method, r.path) for r in handler.requests} == {("POST", ROUTE)}
    assert handler.requests[3].body == b"x" * 30


async def test_a_body_over_the_limit_reaches_the_handler_as_none() -> None:
    server, handler = mounted()
    async with running(server) as port:
        http = await Http.connect(port)
        try:
            # told by Content-Length: the body is read and dropped, the connection kept
            told = await http.request("POST", ROUTE, b"y" * (LIMIT + 1))
            assert told.status == 200 and told.json()["size"] is None
            exact = await http.request("POST", ROUTE, b"y" * LIMIT)
            assert exact.json()["size"] == LIMIT
        finally:
            await http.aclose()
        # found while reading: a chunked body that grows past the limit
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            head = f"POST {ROUTE} HTTP/1.1\r\nhost: h\r\ntransfer-encoding: chunked\r\n\r\n"
            chunk = b"1f4\r\n" + b"z" * 500 + b"\r\n"
            await stream.send(head.encode() + chunk * 3 + b"0\r\n\r\n")
            data = b""
            with anyio.fail_after(5):
                while b'"n":3}' not in data:
                    data += await stream.receive()
        assert data.startswith(b"HTTP/1.1 200")
        assert b'{"size":null,"n":3}' in data
    assert [r.body is None for r in handler.requests] == [True, False, True]


async def test_a_raising_handler_answers_500_and_the_listener_goes_on(
    error_log: ErrorLog,
) -> None:
    server, _ = mounted()
    async with running(server) as port:
        http = await Http.connect(port)
        try:
            failed = await http.request("POST", ROUTE, b"{}", [("x-fail", "yes")])
            assert failed.status == 500
            assert failed.json() == {"error": "internal server error"}
            assert failed.headers["content-type"] == "application/json"
            again = await http.request("POST", ROUTE, b"{}")  # same connection
            assert again.status == 200
        finally:
            await http.aclose()
        sid, _ = await polling_open(port)  # and Engine.IO as ever
        assert sid in server.sessions
    (message,) = error_log.take()
    assert "the handler failed" in message


async def test_other_methods_of_a_mounted_path_get_405_and_engine_io_is_untouched() -> None:
    server, handler = mounted()
    async with running(server) as port:
        http = await Http.connect(port)
        try:
            refused = await http.request("GET", ROUTE)
            assert refused.status == 405
            assert refused.headers["allow"] == "POST"
            assert refused.json() == {"error": "method not allowed"}
            other = await http.request("POST", ROUTE + "/more", b"{}")
            assert other.status == 404
        finally:
            await http.aclose()
        sid, handshake = await polling_open(port)
        assert handshake["sid"] == sid
    assert handler.requests == []


def test_the_engine_io_path_and_a_route_twice_cannot_be_mounted() -> None:
    server, handler = mounted()
    for path in ("/socket.io/", "/socket.io", "relative"):
        with pytest.raises(ValueError):
            server.engine.add_http_route("POST", path, handler)
    with pytest.raises(ValueError):
        server.engine.add_http_route("post", ROUTE, handler)
    server.engine.add_http_route("GET", ROUTE, handler)  # another method of the same path
    assert set(server.engine.http_routes[ROUTE]) == {"GET", "POST"}
