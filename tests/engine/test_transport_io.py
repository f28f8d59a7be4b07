"""``engine/transport/_io.py``: reading a socket that is watched for its connection's life.

On asyncio ``recv_some`` keeps a kept-alive connection in the loop's read set instead of
adding and removing it around every wait (two ``epoll_ctl`` calls per request), and waits
before reading when the last read emptied the kernel's buffer. What must hold: a keep-alive
connection is registered once, bytes that arrive while nobody reads are not polled every turn
(the watch pauses) and are still read later, ``close_socket`` wakes a waiting reader, and the
end of stream reads as ``b""``.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from engine_wire import Http, running

from engine import EngineOptions, HttpRequest, HttpResponse, SocketServer
from engine.transport._io import _watches, close_socket, recv_some, unwatch

pytestmark = pytest.mark.anyio


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    yield ours, theirs
    close_socket(ours)
    theirs.close()


class LoopCalls:
    """Counts the asyncio loop's add_reader calls and the callbacks they registered."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.adds = 0
        self.callbacks = 0
        self._add = loop.add_reader

        def add_reader(fd: Any, callback: Callable[..., Any], *args: Any) -> None:
            self.adds += 1

            def counted(*a: Any) -> None:
                self.callbacks += 1
                callback(*a)

            self._add(fd, counted, *args)

        loop.add_reader = add_reader  # type: ignore[method-assign]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_kept_alive_connection_is_added_to_the_read_set_once() -> None:
    async def answer(request: HttpRequest) -> HttpResponse:
        return HttpResponse(200, b"{}", ((b"content-type", b"application/json"),))

    server = SocketServer(EngineOptions(header_timeout=2))
    server.engine.add_http_route("POST", "/in", answer, max_body=100)
    async with running(server) as port:
        http = await Http.connect(port)
        await http.request("POST", "/in", b"first")  # the listener's own waits are done
        calls = LoopCalls(asyncio.get_running_loop())
        for i in range(20):
            assert (await http.request("POST", "/in", b"x" * i)).status == 200
        await http.stream.aclose()
    # anyio.wait_readable added it back for every request (20); the watch kept it.
    assert calls.adds <= 1


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_bytes_nobody_reads_yet_pause_the_watch_and_are_read_later(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, theirs = pair
    calls = LoopCalls(asyncio.get_running_loop())
    theirs.send(b"one")
    assert await recv_some(ours) == b"one"
    async with anyio.create_task_group() as tg:
        tg.start_soon(recv_some, ours)
        await anyio.wait_all_tasks_blocked()
        theirs.send(b"two")  # wakes the waiting reader: the watch is now registered
    before = calls.callbacks
    theirs.send(b"three")  # nobody reads: a level-triggered watch would fire every turn
    for _ in range(50):
        await anyio.lowlevel.checkpoint()
    assert calls.callbacks - before <= 2
    with anyio.fail_after(2):
        assert await recv_some(ours) == b"three"


async def test_close_socket_wakes_a_waiting_reader(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, _theirs = pair
    caught: list[BaseException] = []

    async def read() -> None:
        try:
            await recv_some(ours)
        except BaseException as exc:
            caught.append(exc)

    with anyio.fail_after(2):
        async with anyio.create_task_group() as tg:
            tg.start_soon(read)
            await anyio.wait_all_tasks_blocked()
            close_socket(ours)
    assert [type(exc) for exc in caught] == [anyio.ClosedResourceError]
    assert ours not in _watches


async def test_the_end_of_stream_reads_empty_and_unwatch_forgets_the_socket(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, theirs = pair
    theirs.send(b"last")
    assert await recv_some(ours) == b"last"
    theirs.shutdown(socket.SHUT_WR)
    with anyio.fail_after(2):
        assert await recv_some(ours) == b""
    assert ours in _watches
    unwatch(ours)
    unwatch(ours)  # idempotent
    assert ours not in _watches


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_second_reader_of_the_same_socket_is_refused(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, theirs = pair
    async with anyio.create_task_group() as tg:
        tg.start_soon(recv_some, ours)
        await anyio.wait_all_tasks_blocked()
        with pytest.raises(anyio.BusyResourceError):
            await recv_some(ours)
        theirs.send(b"x")  # the first reader still gets it
