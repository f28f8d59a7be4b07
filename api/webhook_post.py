"""``POST /webhooks/whatsapp`` on the API port: a bare ASGI handler in front of the Quart app.

Every inbound message and status crosses this one route, so it is on the latency path of
every delivery and its CPU is paid per webhook. Measured on the bench machine (Hypercorn, one
pinned core, keep-alive requests): a Quart route cost 0.16 ms of CPU
more than a bare ASGI answer per request when requests come back to back, and 0.67 ms more
when they come ten a second (the interpreter runs cold between them). So this route skips
Quart's request and app contexts, before/after hooks and response objects. Everything else
(including ``GET /webhooks/whatsapp``, Meta's verification handshake) goes on to Quart
unchanged.

What the post decides is ``api.webhook_intake``'s (the same on the engine's port,
``api.webhook_engine``); this module only reads the body from ASGI messages within
``ZAPLINE_WEBHOOK_MAX_BYTES`` (dropping what an oversized post still sends, within bounds)
and writes the answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

import anyio

from api.webhook_intake import DISCARD_BYTES, DISCARD_SECONDS, PATH, Disconnected, WebhookIntake

if TYPE_CHECKING:
    from api.context import ApiServices

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class WebhookPost:
    """ASGI app: serves ``POST /webhooks/whatsapp`` itself, hands everything else to ``app``."""

    __slots__ = ("_app", "_intake", "_limit")

    def __init__(self, app: ASGIApp, runtime: ApiServices) -> None:
        self._app = app
        self._intake = WebhookIntake(runtime)
        self._limit = runtime.settings.webhook_max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection scope; returns when the response is sent."""
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != PATH:
            await self._app(scope, receive, send)
            return
        # ASGI header names are lower-case bytes; latin-1 keeps every byte (RFC 9110 values).
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        limit = self._limit

        async def read() -> bytes | None:
            return await _read_body(receive, headers.get("content-length"), limit)

        try:
            status, payload, rid = await self._intake.answer(headers, read)
        except Disconnected:
            return  # the poster went away mid-body: nothing to answer, nothing stored
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                    (b"x-request-id", rid.encode("latin-1")),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})


async def _discard(receive: Receive, budget: int, seconds: float) -> None:
    """Receive and drop body chunks until the body ends, ``budget`` bytes or ``seconds``."""
    with anyio.move_on_after(seconds):
        while budget > 0:
            message = await receive()
            if message["type"] == "http.disconnect" or not message.get("more_body", False):
                return
            budget -= len(message.get("body", b""))


async def _read_body(receive: Receive, declared: str | None, limit: int) -> bytes | None:
    """Return the whole request body, or None past ``limit``; raises ``Disconnected``.

    Past the limit, what the poster is still sending is read and dropped within bounds: a
    client that is mid-upload when the 413 leaves and the connection closes gets a reset
    instead of the answer.
    """
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        await _discard(receive, DISCARD_BYTES, DISCARD_SECONDS)
        return None
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        more = message.get("more_body", False)
        if size > limit:
            if more:
                await _discard(receive, DISCARD_BYTES, DISCARD_SECONDS)
            return None
        chunks.append(chunk)
        if not more:
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
