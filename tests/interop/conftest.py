"""Fixtures of the interop suite: a real engine server on a free port."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest
from _scenarios import build_server

from engine import SocketServer


@pytest.fixture(scope="module")
async def interop_server(anyio_backend: str) -> AsyncIterator[SocketServer]:
    """The scenario server on a free port, shared by a module's tests (``server.port``)."""
    async with anyio.create_task_group() as tg:
        server = build_server()
        await tg.start(server.serve, "127.0.0.1", 0)
        yield server
        tg.cancel_scope.cancel()
