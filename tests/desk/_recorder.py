"""A recording ``Emitter``: the desk's output port, kept for assertions in desk tests."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import anyio


class Recorder:
    """An ``Emitter`` that keeps what it is given: (event, payload, rooms)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any, tuple[str, ...]]] = []
        self.changed = anyio.Event()
        self.skipped: list[tuple[str, ...]] = []  # the ``skip`` of each event, in order
        self.offsets: list[str | None] = []  # the offset of each event (None: not logged)

    def _record(
        self,
        event: str,
        payload: Any,
        to: str | Iterable[str] | None,
        skip: Any = (),
        offset: str | None = None,
    ) -> None:
        self.events.append((event, payload, _rooms(to)))
        self.skipped.append(_rooms(skip))
        self.offsets.append(offset)
        self.changed.set()
        self.changed = anyio.Event()

    def emit(
        self,
        event: str,
        *args: Any,
        to: str | Iterable[str] | None = None,
        skip: str | Iterable[str] = (),
        namespace: str = "/",
    ) -> int:
        self._record(event, args[0], to, skip)
        return 0

    def emit_many(
        self,
        events: Sequence[tuple[str, tuple[Any, ...]]],
        *,
        to: str | Iterable[str] | None = None,
        skip: str | Iterable[str] = (),
        namespace: str = "/",
        defer: bool = False,
        on_written: Callable[[], None] | None = None,
        offsets: Sequence[str | None] | None = None,
    ) -> int:
        marks = [None] * len(events) if offsets is None else list(offsets)
        for (event, args), offset in zip(events, marks, strict=True):
            self._record(event, args[0], to, skip, offset)
        if on_written is not None:
            on_written()
        return 0

    def named(self, event: str) -> list[Any]:
        return [payload for name, payload, _ in self.events if name == event]


def _rooms(to: str | Iterable[str] | None) -> tuple[str, ...]:
    if to is None:
        return ()
    return (to,) if isinstance(to, str) else tuple(to)
