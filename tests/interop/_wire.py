"""Raw-wire helpers for the interop tests: a bare websocket client and Engine.IO polling calls.

The conformance tests speak the protocols byte for byte, as the official test-suites do, so
they must not go through a Socket.IO client that would hide what the server wrote. wsproto is
the parser; anyio does the I/O, so the helpers run on asyncio and trio alike.
"""

from __future__ import annotations

from collections import deque
from types import TracebackType

import anyio
import anyio.abc
import httpx
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)


class ServerClosed(Exception):
    """The server closed the websocket (close frame or end of stream)."""


class RawWebSocket:
    """One client websocket; ``receive()`` returns whole messages (``str`` text, ``bytes`` binary)."""

    def __init__(self, stream: anyio.abc.SocketStream, ws: WSConnection) -> None:
        self._stream = stream
        self._ws = ws
        self._events: deque[Event] = deque()
        self._parts: list[str | bytes] = []
        self.closed = False

    @classmethod
    async def connect(cls, port: int, target: str) -> RawWebSocket:
        """Open ``ws://127.0.0.1:port{target}``; raise ``ConnectionError`` if the upgrade is refused."""
        stream = await anyio.connect_tcp("127.0.0.1", port)
        ws = WSConnection(ConnectionType.CLIENT)
        self = cls(stream, ws)
        await stream.send(ws.send(Request(host=f"127.0.0.1:{port}", target=target)))
        with anyio.fail_after(5):
            while True:
                event = await self._next_event()
                if isinstance(event, AcceptConnection):
                    return self
                if isinstance(event, RejectConnection):
                    await stream.aclose()
                    raise ConnectionError(f"upgrade refused with HTTP {event.status_code}")

    async def __aenter__(self) -> RawWebSocket:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _next_event(self) -> Event:
        while not self._events:
            try:
                data = await self._stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                self.closed = True
                raise ServerClosed("connection ended") from None
            self._ws.receive_data(data)
            self._events.extend(self._ws.events())
        return self._events.popleft()

    async def send(self, message: str | bytes) -> None:
        """Send one text (``str``) or binary (``bytes``) message."""
        await self._stream.send(
            self._ws.send(
                TextMessage(message) if isinstance(message, str) else BytesMessage(message)
            )
        )

    async def receive(self, wait: float = 3.0) -> str | bytes:
        """Return the next whole message within ``wait`` s; raise ``ServerClosed`` or ``TimeoutError``."""
        with anyio.fail_after(wait):
            while True:
                event = await self._next_event()
                if isinstance(event, TextMessage | BytesMessage):
                    self._parts.append(
                        event.data if isinstance(event.data, str) else bytes(event.data)
                    )
                    if event.message_finished:
                        parts, self._parts = self._parts, []
                        return "".join(parts) if isinstance(parts[0], str) else b"".join(parts)  # type: ignore[arg-type]
                elif isinstance(event, Ping):
                    await self._stream.send(self._ws.send(event.response()))
                elif isinstance(event, CloseConnection):
                    self.closed = True
                    try:
                        await self._stream.send(self._ws.send(event.response()))
                    except (anyio.BrokenResourceError, OSError):
                        pass
                    raise ServerClosed(f"close frame {event.code}")

    async def receive_skipping_pings(self, wait: float = 3.0) -> str | bytes:
        """Return the next message that is not an Engine.IO PING (``"2"``)."""
        with anyio.fail_after(wait):
            while True:
                message = await self.receive(wait)
                if message != "2":
                    return message

    async def wait_closed(self, wait: float = 3.0) -> list[str | bytes]:
        """Read until the server closes (within ``wait`` s); return what came before. Raise ``TimeoutError``."""
        seen: list[str | bytes] = []
        with anyio.fail_after(wait):
            while True:
                try:
                    seen.append(await self.receive(wait))
                except ServerClosed:
                    return seen

    async def aclose(self) -> None:
        """Drop the connection (no close handshake: the tests do not need one)."""
        await self._stream.aclose()


def polling_url(port: int, path: str, sid: str | None = None) -> str:
    """Return the Engine.IO v4 long-polling URL of ``path`` (and ``sid``) on ``port``."""
    url = f"http://127.0.0.1:{port}{path}?EIO=4&transport=polling"
    return url if sid is None else f"{url}&sid={sid}"


async def open_polling(client: httpx.AsyncClient, port: int, path: str) -> str:
    """Open a long-polling session and return its sid. Raises ``AssertionError`` on a bad answer."""
    import orjson

    response = await client.get(polling_url(port, path))
    assert response.status_code == 200, response.text
    assert response.text.startswith("0"), response.text
    sid = orjson.loads(response.text[1:])["sid"]
    assert isinstance(sid, str)
    return sid
