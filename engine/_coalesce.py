"""Deferred emits: what is emitted within one scheduler turn leaves in one write per recipient.

Theory of operation
-------------------
``SocketServer.emit_many(..., defer=True)`` encodes its events and resolves its recipients at
once, then parks them here instead of writing. The first one parked wakes ``run``, which lets
every task already scheduled in this turn run first (one checkpoint) and then flushes: the
parked emits are grouped by their recipient set, each group's frames are concatenated once,
and each recipient gets ONE ``send`` for all of it.

Why: the send syscall is most of a delivery's cost. Workers that finish together (a group
commit wakes a batch of them at once) announce together; ten messages for one tenant's
agents then cost each agent one write instead of ten. The busier the server, the larger the
batches, so the cost per message falls as the load rises, which is what keeps p99 flat near
saturation. Idle, nothing waits: a lone emit is written on the next turn.

Order. Every recipient must see the events in emit order. Groups with the same recipients
keep their internal order; groups with disjoint recipients cannot interleave for anyone. If
two groups share some recipients but not all, concatenating per group could reorder them for
those sockets, so that flush writes every parked emit one by one, in order, instead. A
direct (non-deferred) emit flushes what is parked before it writes.

An emit may carry ``on_written`` callbacks: each runs (synchronously, once) right after that
emit's frames were handed to every recipient's socket, which is how the desk measures
"webhook receipt to the last socket write" although the write happens later in the turn.
An emit with recovery offsets parks two entries with disjoint recipients (the plain and the
offset variant, ``_emit.py``); its callback is shared and runs once both were written.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel

from engine.transport._frames import SharedFrame

if TYPE_CHECKING:
    from engine._socket import Socket

# (recipients, Engine.IO text packets, their frames, callbacks once written) of one parked emit.
Parked = tuple[Collection["Socket"], list[str], list[SharedFrame], Sequence[Callable[[], None]]]
Deliver = Callable[[Collection["Socket"], list[str], list[SharedFrame]], int]

__all__ = ["Coalescer"]

log = logging.getLogger("zapline.engine")


class Coalescer:
    """The parked emits of one server and the task that flushes them."""

    __slots__ = ("_deliver", "_parked", "_wakeup", "_running", "flushes", "merged")

    def __init__(self, deliver: Deliver) -> None:
        self._deliver = deliver
        self._parked: list[Parked] = []
        self._wakeup = anyio.Event()
        self._running = False
        self.flushes = 0  # flushes that wrote something
        self.merged = 0  # emits that shared a write with an earlier one

    @property
    def pending(self) -> bool:
        """True while emits are parked."""
        return bool(self._parked)

    def park(
        self,
        targets: Collection[Socket],
        texts: list[str],
        frames: list[SharedFrame],
        on_written: Callable[[], None] | None = None,
    ) -> None:
        """Write ``frames`` to ``targets`` at the end of this turn (now if no flusher runs).

        ``on_written`` (optional) is called once the frames were handed to every target.
        """
        done = () if on_written is None else (on_written,)
        if not targets:
            _call_all(done)
            return
        if not self._running:
            self.flush()
            self._deliver(targets, texts, frames)
            _call_all(done)
            return
        self._parked.append((targets, texts, frames, done))
        if len(self._parked) == 1:
            self._wakeup.set()

    async def run(self) -> None:
        """Flush parked emits at the end of each turn that parked some, until cancelled."""
        self._running = True
        try:
            while True:
                if not self._parked:
                    self._wakeup = anyio.Event()
                    await self._wakeup.wait()
                # The tasks woken with the first emitter (a group commit wakes them all at
                # once) are scheduled before us: let them park theirs too.
                await anyio.lowlevel.checkpoint()
                self.flush()
        finally:
            self._running = False
            self.flush()

    def flush(self) -> None:
        """Write everything parked, one write per recipient per group; never yields."""
        parked, self._parked = self._parked, []
        if not parked:
            return
        self.flushes += 1
        if len(parked) == 1:
            targets, texts, frames, done = parked[0]
            self._deliver(targets, texts, frames)
            _call_all(done)
            return
        groups: dict[frozenset[Socket], tuple[Collection[Socket], list[str], list[SharedFrame],
                                              list[Callable[[], None]]]] = {}  # fmt: skip
        for targets, texts, frames, done in parked:
            key = frozenset(targets)
            group = groups.get(key)
            if group is None:
                groups[key] = (targets, list(texts), list(frames), list(done))
            else:
                group[1].extend(texts)
                group[2].extend(frames)
                group[3].extend(done)
        if len(groups) > 1 and len(set().union(*groups)) != sum(len(k) for k in groups):
            for targets, texts, frames, done in parked:  # overlapping sets: strict order
                self._deliver(targets, texts, frames)
                _call_all(done)
            return
        self.merged += len(parked) - len(groups)
        for targets, texts, frames, done in groups.values():
            self._deliver(targets, texts, frames)
            _call_all(done)


def _call_all(callbacks: Sequence[Callable[[], None]]) -> None:
    # A failing callback is the caller's bug, but it must not cost the other emits their write.
    for callback in callbacks:
        try:
            callback()
        except Exception:
            log.exception("on_written callback failed")
