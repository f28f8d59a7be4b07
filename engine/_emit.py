"""Encoding for ``SocketServer.emit_many``: each event once, in the form every transport takes."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

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
    for i, (event, args) in enumerate(events):
        packet = SioPacket(SioPacketType.EVENT, namespace, [event, *args])
        try:
            texts.append("4" + encode_sio_str(packet))
        except TypeError:  # binary somewhere in args: attachments follow the header
            binary[i] = [("4" + p) if isinstance(p, str) else p for p in encode_sio(packet)]
            texts.append("")
    return texts, binary


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
            if socket.session.send_payloads(messages):
                reached.add(socket)
                deliveries += 1
    return len(reached), deliveries
