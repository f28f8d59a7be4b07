"""Connection state recovery, engine side, with the official socket.io-client (Node).

A toy recovery app written here (the desk's durable one is tested in tests/integration):
its connect handler sets ``socket.pid``, every tick it emits carries an offset and is kept in
a list, and a CONNECT carrying a known ``{pid, offset}`` gets what followed that offset,
emitted to the socket inside the connect handler (the engine sends it right after the
CONNECT reply). The client (tests/js/recovery.mjs) receives one tick, loses its transport
without a close, misses five, and reconnects by itself: it must be ``recovered`` and have
every tick once, in order.
"""

from __future__ import annotations

import secrets
from typing import Any

import anyio
import anyio.abc
import orjson
import pytest
from _node import JS_DIR, require_node

from engine import Socket, SocketServer

pytestmark = [pytest.mark.node, pytest.mark.anyio]

MISSED = 5


class ToyRecovery:
    """The smallest recovery app: an in-memory list of (offset, payload) and a set of pids."""

    def __init__(self, server: SocketServer) -> None:
        self.server = server
        self.log: list[tuple[str, Any]] = []
        self.pids: set[str] = set()
        self.recoveries: list[dict[str, Any]] = []
        server.on_connect()(self.connect)

    def connect(self, socket: Socket, auth: dict[str, Any] | None) -> None:
        socket.join("all")
        auth = auth or {}
        pid, offset = auth.get("pid"), auth.get("offset")
        if pid in self.pids:
            offsets = [o for o, _ in self.log]
            start = offsets.index(offset) + 1 if offset in offsets else 0
            for missed_offset, payload in self.log[start:]:
                socket.emit("tick", payload, offset=missed_offset)
            self.recoveries.append({"offset": offset, "replayed": len(self.log) - start})
            socket.pid = pid
        else:
            socket.pid = secrets.token_hex(8)
            self.pids.add(socket.pid)

    def publish(self, payload: Any) -> None:
        offset = str(len(self.log) + 1)
        self.log.append((offset, payload))
        self.server.emit_many([("tick", (payload,))], to="all", offsets=[offset])


async def _lines(stream: anyio.abc.ByteReceiveStream) -> Any:
    buffer = b""
    async for chunk in stream:
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            yield orjson.loads(line)


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_the_official_client_recovers_what_it_missed(transport: str) -> None:
    node = require_node()
    server = SocketServer()
    app = ToyRecovery(server)
    steps: list[str] = []
    report: dict[str, Any] = {}
    async with anyio.create_task_group() as tg:
        port = await tg.start(server.serve, "127.0.0.1", 0)
        command = [
            node,
            str(JS_DIR / "recovery.mjs"),
            "--url",
            f"http://127.0.0.1:{port}",
            "--transport",
            transport,
            "--expect",
            str(1 + MISSED),
        ]
        with anyio.fail_after(30):
            async with await anyio.open_process(command) as process:
                assert process.stdout is not None
                async for message in _lines(process.stdout):
                    steps.append(message["step"])
                    if message["step"] == "connected":
                        app.publish({"n": 0})
                    elif message["step"] == "disconnected":
                        for n in range(1, 1 + MISSED):  # while it is away
                            app.publish({"n": n})
                    elif message["step"] == "done":
                        report = message
                await process.wait()
                assert process.stderr is not None
                errors = (
                    (await process.stderr.receive(65536)).decode() if process.returncode else ""
                )
        tg.cancel_scope.cancel()
    assert steps == ["connected", "disconnected", "done"], (report, errors)
    assert report["reason"] == "all arrived", report
    assert report["recovered"] is True
    assert [c["recovered"] for c in report["connects"]] == [False, True]
    assert {c["transport"] for c in report["connects"]} == {transport}
    assert report["disconnects"][0] == (
        "transport close" if transport == "websocket" else "transport error"
    )
    # Every tick once, in order, each with its offset as the extra last argument.
    assert report["ticks"] == [[{"n": n}, str(n + 1)] for n in range(1 + MISSED)]
    assert report["lastOffset"] == str(1 + MISSED)
    # The five came from the replay in the connect handler, not from a live emit.
    assert app.recoveries == [{"offset": "1", "replayed": MISSED}]
