"""The runtime's periodic full collection frees cyclic garbage that reached the oldest
generation, which the server's raised GC thresholds would otherwise keep for hours."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import anyio
import pytest

from zapline.runtime import _collect_cycles

pytestmark = pytest.mark.anyio


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture
def no_automatic_collection() -> Iterator[None]:
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


async def test_old_cyclic_garbage_is_freed_within_an_interval(
    no_automatic_collection: None,
) -> None:
    a, b = Node(), Node()
    a.other, b.other = b, a  # a closed session and its connection, say
    gone = weakref.ref(a)
    gc.collect()  # survivors of a full collection sit in the oldest generation
    del a, b
    assert gone() is not None  # a cycle: reference counting alone never frees it
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(_collect_cycles, 0.05)
            while gone() is not None:  # noqa: ASYNC110
                await anyio.sleep(0.01)
            tg.cancel_scope.cancel()
