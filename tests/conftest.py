"""Shared fixtures: every runtime test runs on asyncio and trio unless it says otherwise."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """The anyio backend for ``@pytest.mark.anyio`` tests: both, unless a test parametrizes it."""
    return str(request.param)
