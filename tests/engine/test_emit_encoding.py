"""``engine/_emit.encode_events``: the default namespace's fast path encodes exactly as a packet.

The fast path builds ``42`` + the JSON of ``[name, *args]`` without a ``SioPacket`` per event;
every event must come out as ``encode_sio_str`` / ``encode_sio`` would write it (the packet
path other namespaces take), binary attachments included.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from engine._emit import encode_events
from engine.protocol import SioPacket, SioPacketType, encode_sio, encode_sio_str

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
events = st.lists(
    st.tuples(
        st.text(min_size=1),
        st.lists(json_values | st.binary(max_size=8), max_size=3).map(tuple),
    ),
    max_size=5,
)


def by_packet(event: str, args: tuple[Any, ...], namespace: str) -> list[str | bytes]:
    packet = SioPacket(SioPacketType.EVENT, namespace, [event, *args])
    try:
        return ["4" + encode_sio_str(packet)]
    except TypeError:
        return [("4" + p) if isinstance(p, str) else p for p in encode_sio(packet)]


@given(events)
def test_the_fast_path_writes_what_the_packet_encoder_writes(
    batch: list[tuple[str, tuple[Any, ...]]],
) -> None:
    texts, binary = encode_events(batch, "/")
    assert len(texts) == len(batch)
    for i, (event, args) in enumerate(batch):
        got = binary[i] if i in binary else [texts[i]]
        assert got == by_packet(event, args, "/")
        if i in binary:
            assert texts[i] == ""


def test_a_unread_update_is_one_text_packet() -> None:
    update = {"conversationId": "c1", "unreadCount": 2, "totalUnread": 5}
    texts, binary = encode_events([("unread:update", (update,))], "/")
    assert texts == ['42["unread:update",{"conversationId":"c1","unreadCount":2,"totalUnread":5}]']
    assert binary == {}
    texts, _ = encode_events([("unread:update", (update,))], "/desk")
    assert texts == [
        '42/desk,["unread:update",{"conversationId":"c1","unreadCount":2,"totalUnread":5}]'
    ]
