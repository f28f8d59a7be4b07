"""An agent's browser played by the official socket.io-client in Node (tests/js/recover.mjs),
driven over its stdin/stdout: wait for a step, cut its transport, ask for its report."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import orjson
from _node import JS_DIR, require_node


class JsListener:
    """One running ``recover.mjs``; every line it printed is kept in ``lines``."""

    def __init__(self, process: anyio.abc.Process) -> None:
        self.process = process
        self.lines: list[dict[str, Any]] = []
        self._new_line = anyio.Event()
        self.stderr = b""

    async def _read(self) -> None:
        assert self.process.stdout is not None
        buffer = b""
        async for chunk in self.process.stdout:
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                if line.strip():
                    self.lines.append(orjson.loads(line))
                    self._new_line.set()
                    self._new_line = anyio.Event()

    async def _read_errors(self) -> None:
        assert self.process.stderr is not None
        async for chunk in self.process.stderr:
            self.stderr = (self.stderr + chunk)[-4000:]

    async def step(self, name: str, within: float = 15.0) -> dict[str, Any]:
        """The first line whose ``step`` is ``name``, once printed. Raises TimeoutError."""
        with anyio.fail_after(within):
            while True:
                for line in self.lines:
                    if line.get("step") == name:
                        return line
                await self._new_line.wait()

    async def send(self, command: str) -> None:
        """Write one command line ("cut", "report") to the client."""
        assert self.process.stdin is not None
        await self.process.stdin.send(command.encode() + b"\n")

    async def report(self, within: float = 15.0) -> dict[str, Any]:
        """Ask for the client's report and return it (the client exits after it)."""
        await self.send("report")
        try:
            return await self.step("report", within)
        except TimeoutError:
            raise AssertionError(f"no report from node: {self.stderr.decode()[-2000:]}") from None


@asynccontextmanager
async def js_listener(
    url: str, token: str, *, transport: str = "websocket"
) -> AsyncIterator[JsListener]:
    """Run ``recover.mjs`` against ``url`` with ``token``; wait for its first connect."""
    node = require_node()
    command = [node, str(JS_DIR / "recover.mjs"), "--url", url, "--token", token,
               "--transport", transport]  # fmt: skip
    async with await anyio.open_process(command) as process, anyio.create_task_group() as tg:
        listener = JsListener(process)
        tg.start_soon(listener._read)
        tg.start_soon(listener._read_errors)
        try:
            await listener.step("connected")
            yield listener
        finally:
            if process.returncode is None:
                process.kill()
            tg.cancel_scope.cancel()
