"""HttpPoster against tiny local servers: answers are counted, a silent server is not a crash."""

from __future__ import annotations

import asyncio

import pytest

from bench._webhook import HttpPoster

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("anyio_backend", ["asyncio"])]


async def _server(answer: bool) -> tuple[asyncio.Server, str]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
                if answer:
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


async def test_answered_posts_are_counted() -> None:
    server, url = await _server(answer=True)
    async with server, HttpPoster(url, connections=2) as poster:
        for _ in range(5):
            poster.submit(b"{}")
        assert await poster.drain(5.0) is True
        assert poster.statuses == {200: 5}
        assert poster.unanswered == 0 and poster.failed == 0


async def test_a_server_that_never_answers_is_counted_not_raised() -> None:
    server, url = await _server(answer=False)
    async with server:
        async with HttpPoster(url, connections=2) as poster:
            for _ in range(5):
                poster.submit(b"{}")
            assert await poster.drain(0.3) is False
        # two in flight when the poster closed, three never sent: all five unanswered
        assert poster.unanswered == 5 and poster.failed == 5
        assert poster.statuses == {}


async def test_on_answer_is_told_each_body_and_its_status() -> None:
    server, url = await _server(answer=True)
    told: list[tuple[bytes, int | None]] = []
    async with (
        server,
        HttpPoster(url, connections=1, on_answer=lambda b, s: told.append((b, s))) as poster,
    ):
        for body in (b'{"a":1}', b'{"b":2}'):
            poster.submit(body)
        assert await poster.drain(5.0) is True
    assert told == [(b'{"a":1}', 200), (b'{"b":2}', 200)]
