"""Micro-bench: what the unread counters cost the desk per customer message (no sockets).

One tenant with ``--agents`` loaded readers (the fan-out bench has 100 per tenant): the figure
is the desk step ``UnreadDesk.inbound`` for one committed message (every agent who may see the
conversation counts it), and ``flush`` of one gathering window (one ``emit_many`` per changed
agent, the events encoded, no socket behind them), in microseconds, median of rounds. Neither
touches storage: the readers are loaded once, before timing.

    python -m bench.micro_unread [--agents 100] [--conversations 50] [--rounds 30]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import orjson

from desk.ports import DeskOptions
from desk.unread import UnreadDesk
from storage import Contact, Conversation, open_storage


class _EncodingEmitter:
    """Encodes what it is given, as the engine does once per emit, and keeps nothing."""

    def __init__(self) -> None:
        self.emits = 0

    def emit(self, event: str, *args: Any, to: str | Iterable[str] | None = None, **_: Any) -> int:
        return self.emit_many([(event, args)], to=to)

    def emit_many(
        self,
        events: Sequence[tuple[str, tuple[Any, ...]]],
        *,
        to: str | Iterable[str] | None = None,
        on_written: Callable[[], None] | None = None,
        **_: Any,
    ) -> int:
        for event, args in events:
            orjson.dumps([event, *args])
        self.emits += 1
        return 1


async def _run(agents: int, conversations: int, rounds: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        storage = await open_storage(f"sqlite:///{Path(tmp) / 'micro.db'}")
        try:
            await storage.migrate()
            emitter = _EncodingEmitter()
            unread = UnreadDesk(storage, emitter, DeskOptions(node="micro"))
            for i in range(agents):
                unread.register("t", f"user-{i}", "agent")
                await unread.total("t", f"user-{i}", "agent")  # loaded (nothing unread)
            now = datetime.now(UTC)
            convs = [
                Conversation(f"c{i}", "t", f"k{i}", "a", "new", None, now, now, now,
                             Contact(f"k{i}", "t", f"55{i}", None), now, 0)
                for i in range(conversations)
            ]  # fmt: skip
            inbound, flush = [], []
            count = 0
            for _ in range(rounds):
                count += 1
                batch = [Conversation(**{**_fields(c), "inbound_count": count}) for c in convs]
                started = time.perf_counter()
                for conversation in batch:
                    unread.inbound(conversation)
                inbound.append((time.perf_counter() - started) / len(batch))
                started = time.perf_counter()
                unread.flush()
                flush.append(time.perf_counter() - started)
        finally:
            await storage.aclose()
    return {
        "agents": agents,
        "conversations_per_window": conversations,
        "inbound_us_per_message": round(statistics.median(inbound) * 1e6, 1),
        "flush_us_per_window": round(statistics.median(flush) * 1e6, 1),
        "flush_us_per_agent": round(statistics.median(flush) * 1e6 / agents, 2),
    }


def _fields(conversation: Conversation) -> dict[str, Any]:
    return {name: getattr(conversation, name) for name in Conversation.__slots__}


def main() -> None:
    """Print one JSON line of figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=100)
    parser.add_argument("--conversations", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    result = anyio.run(_run, args.agents, args.conversations, args.rounds)
    print(orjson.dumps(result).decode())


if __name__ == "__main__":
    main()
