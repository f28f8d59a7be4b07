"""Encoding for ``SocketServer.emit_many``: each event once, in the form every transport takes.

With recovery offsets an emit has two variants, each encoded at most once: the plain events
for clients that cannot take offsets (python-socketio), and the events with their offset
appended as the last argument for the others (``Socket.takes_offsets``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from engine.protocol import SioPacket, SioPacketType, encode_sio, encode_sio_str

if TYPE_CHECKING:
    from engine._socket import Socket


def encode_events(
    events: Sequence[tuple[str, tuple[Any, ...]]], namespace: str
) -> tuple[list[str], dict[int, list[str | bytes]]]:
    """Return the events' Engine.IO text packets, and the binary ones by index.

    A binary event (bytes somewhere in its args) has ``""`` in the text list and its messages
    (header text, then attachments) in the dict. Raises ``TypeError`` if any args are not
    JSON-serialisable, before anything is sent.
    """
    texts: list[str] = []
    binary: dict[int, list[str | bytes]] = {}
    if namespace == "/":
        # Every desk event: the text encode_sio_str gives ("4" + "2" + the JSON of
        # [name, *args]) without a packet object per event. timeit, 100 unread:update
        # events: 0.30 us an event instead of 1.27 (the few-tenants bench encodes about 60
        # of them per webhook).
        dumps = orjson.dumps
        for i, (event, args) in enumerate(events):
            try:
                texts.append("42" + dumps([event, *args]).decode())
            except TypeError:  # binary somewhere in args: attachments follow the header
                binary[i] = _binary_event(event, args, namespace)
                texts.append("")
        return texts, binary
    for i, (event, args) in enumerate(events):
        packet = SioPacket(SioPacketType.EVENT, namespace, [event, *args])
        try:
            texts.append("4" + encode_sio_str(packet))
        except TypeError:
            binary[i] = _binary_event(event, args, namespace)
            texts.append("")
    return texts, binary


def _binary_event(event: str, args: tuple[Any, ...], namespace: str) -> list[str | bytes]:
    packet = SioPacket(SioPacketType.EVENT, namespace, [event, *args])
    return [("4" + p) if isinstance(p, str) else p for p in encode_sio(packet)]


def with_offsets(
    events: Sequence[tuple[str, tuple[Any, ...]]], offsets: Sequence[str | None]
) -> list[tuple[str, tuple[Any, ...]]]:
    """Return ``events`` with each non-None offset appended to its event's arguments.

    Raises ``ValueError`` unless there is exactly one offset per event.
    """
    if len(offsets) != len(events):
        raise ValueError(f"{len(offsets)} offsets for {len(events)} events")
    return [
        (event, args if offset is None else (*args, offset))
        for (event, args), offset in zip(events, offsets, strict=True)
    ]


def split_by_offsets(targets: Collection[Socket]) -> tuple[list[Socket], list[Socket]]:
    """Return ``targets`` split in (those that cannot take offsets, those that can)."""
    plain: list[Socket] = []
    takers: list[Socket] = []
    for socket in targets:
        (takers if socket.session.takes_offsets else plain).append(socket)
    return plain, takers


def after_all(count: int, callback: Callable[[], None] | None) -> Callable[[], None] | None:
    """Return a callable that calls ``callback`` on its ``count``-th call (None: None)."""
    if callback is None:
        return None
    left = count

    def one_done() -> None:
        nonlocal left
        left -= 1
        if left == 0:
            callback()

    return one_done


def send_in_turn(
    targets: Collection[Socket], texts: list[str], binary: dict[int, list[str | bytes]]
) -> tuple[int, int]:
    """Send a batch holding a binary event, message by message and in order, to each target.

    Binary events carry attachments as messages of their own, so such a batch cannot be one
    shared buffer (rare: the desk sends JSON). Returns (sockets reached, event deliveries).
    """
    reached: set[Socket] = set()
    deliveries = 0
    for i, text in enumerate(texts):
        messages: list[str | bytes] = binary[i] if i in binary else [text]
        for socket in targets:
            if (not socket.connected and socket.hold(messages)) or socket.session.send_payloads(
                messages
            ):
                reached.add(socket)
                deliveries += 1
    return len(reached), deliveries
