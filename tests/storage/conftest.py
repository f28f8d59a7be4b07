"""Fixtures for the storage contract suite: one ``storage`` per implementation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from _stores import migrated

from storage import Storage


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def storage(
    request: pytest.FixtureRequest, tmp_path: Path, anyio_backend: str
) -> AsyncIterator[Storage]:
    """A migrated, empty storage of each implementation, closed (and dropped) afterwards."""
    async with migrated(request.param, tmp_path) as (store, _, _):
        yield store
