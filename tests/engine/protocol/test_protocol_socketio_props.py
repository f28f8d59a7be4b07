"""Socket.IO v5 codec properties: round-trips, interop with python-socketio's parser, fuzzing.

python-socketio's ``Packet`` is an independent implementation of the same wire format, so
agreeing with it in both directions checks our reading of the spec, not just self-consistency.
"""

from __future__ import annotations

from typing import Any

from hypothesis import assume, given, settings
from hypothesis import strategies as st
from socketio.packet import Packet as PeerPacket

from engine._emit import encode_events
from engine.protocol import (
    NEED_DATA,
    ProtocolError,
    SioConnection,
    SioDecoder,
    SioPacket,
    SioPacketType,
    encode_sio,
    encode_sio_str,
)

T = SioPacketType
PROPS = settings(deadline=None, database=None, max_examples=200)
FUZZ = settings(deadline=None, database=None, max_examples=400)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(),
)
keys = st.text().filter(lambda key: key != "_placeholder")


def json_values(leaves: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """JSON-able values built from ``leaves``, with lists and string-keyed objects."""
    return st.recursive(
        leaves,
        lambda children: (
            st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4)
        ),
        max_leaves=12,
    )


plain = json_values(scalars)
with_bytes = json_values(scalars | st.binary(max_size=16))
namespaces = st.just("/") | st.text(min_size=1).filter(lambda s: "," not in s).map(
    lambda s: "/" + s
)
ack_ids = st.integers(0, 2**63 - 1)


@st.composite
def packets(draw: st.DrawFn, values: st.SearchStrategy[Any]) -> SioPacket:
    """Any packet the decoder accepts, with data drawn from ``values``."""
    ptype = draw(st.sampled_from(T))
    namespace = draw(namespaces)
    if ptype is T.CONNECT:
        data = draw(st.none() | st.dictionaries(keys, plain, max_size=4))
        return SioPacket(ptype, namespace, data)
    if ptype is T.DISCONNECT:
        return SioPacket(ptype, namespace)
    if ptype is T.CONNECT_ERROR:
        return SioPacket(ptype, namespace, draw(st.text() | st.dictionaries(keys, plain)))
    args = draw(st.lists(values, max_size=4))
    if ptype in (T.EVENT, T.BINARY_EVENT):
        return SioPacket(ptype, namespace, [draw(st.text()), *args], draw(st.none() | ack_ids))
    return SioPacket(ptype, namespace, args, draw(ack_ids))


def has_bytes(data: Any) -> bool:
    if isinstance(data, bytes):
        return True
    if isinstance(data, list):
        return any(has_bytes(item) for item in data)
    if isinstance(data, dict):
        return any(has_bytes(item) for item in data.values())
    return False


def expected_wire_type(packet: SioPacket) -> T:
    if has_bytes(packet.data):
        return {T.EVENT: T.BINARY_EVENT, T.ACK: T.BINARY_ACK}.get(packet.type, packet.type)
    return packet.type


def decode_all(messages: list[str | bytes]) -> SioPacket | None:
    decoder = SioDecoder(max_attachments=1000)
    results = [decoder.feed(message) for message in messages]
    assert all(result is None for result in results[:-1])
    return results[-1]


@PROPS
@given(packets(with_bytes))
def test_round_trip(packet: SioPacket) -> None:
    wire = encode_sio(packet)
    expected = SioPacket(expected_wire_type(packet), packet.namespace, packet.data, packet.id)
    assert decode_all(wire) == expected
    assert len(wire) - 1 == str(wire[0]).count('"_placeholder":true')


@PROPS
@given(packets(plain))
def test_str_fast_path_matches_full_encoder(packet: SioPacket) -> None:
    assert encode_sio(packet) == [encode_sio_str(packet)]


@PROPS
@given(packets(with_bytes))
def test_peer_decodes_what_we_encode(packet: SioPacket) -> None:
    assume("?" not in packet.namespace)  # the peer strips a v2-era "?query" from namespaces
    wire = encode_sio(packet)
    peer = PeerPacket(encoded_packet=wire[0])
    for attachment in wire[1:]:
        peer.add_attachment(attachment)
    assert peer.packet_type == expected_wire_type(packet)
    assert (peer.namespace or "/") == packet.namespace
    assert peer.id == packet.id
    assert peer.data == packet.data


@PROPS
@given(packets(with_bytes))
def test_we_decode_what_the_peer_encodes(packet: SioPacket) -> None:
    # The peer leaves out a "0-" count, so it cannot send a binary type holding no bytes.
    ptype = {T.BINARY_EVENT: T.EVENT, T.BINARY_ACK: T.ACK}.get(packet.type, packet.type)
    encoded = PeerPacket(ptype, packet.data, packet.namespace, packet.id).encode()
    wire = encoded if isinstance(encoded, list) else [encoded]
    wire_type = expected_wire_type(SioPacket(ptype, data=packet.data))
    assert decode_all(wire) == SioPacket(wire_type, packet.namespace, packet.data, packet.id)


# Fuzz inputs: random text, and text built from wire-format pieces so the parser gets deep.
pieces = st.sampled_from(
    ["0", "1", "2", "3", "4", "5", "6", "1-", "2-", "/", "/a,", ",", "12", "[", "]", "{", "}",
     '"x"', ":", "true", '"_placeholder"', '"num"', "0", "-1", "\ud800", "null", "١"]
)  # fmt: skip
wire_text = st.lists(pieces, max_size=12).map("".join)
any_message = st.one_of(st.text(), wire_text, st.binary(max_size=8))


@FUZZ
@given(st.lists(any_message, max_size=8))
def test_decoder_raises_only_protocol_error(messages: list[str | bytes]) -> None:
    decoder = SioDecoder(max_attachments=3)
    for message in messages:
        try:
            packet = decoder.feed(message)
        except ProtocolError:
            continue
        assert packet is None or isinstance(packet.type, SioPacketType)


@FUZZ
@given(st.lists(any_message, max_size=8))
def test_connection_raises_only_protocol_error(messages: list[str | bytes]) -> None:
    conn = SioConnection(max_attachments=3)
    conn.receive_message("0")
    conn.accept("/", "sid")
    for message in messages:
        try:
            conn.receive_message(message)
        except ProtocolError:
            continue
    while conn.next_event() is not NEED_DATA:
        pass


# -- encode_events: the default namespace's fast path writes what the packet encoder writes ---
# It builds "42" + the JSON of [name, *args] without a SioPacket per event; every event must
# come out as encode_sio_str / encode_sio would write it, binary attachments included.

emit_batches = st.lists(
    st.tuples(st.text(min_size=1), st.lists(with_bytes, max_size=3).map(tuple)), max_size=5
)


def by_packet(event: str, args: tuple[Any, ...], namespace: str) -> list[str | bytes]:
    packet = SioPacket(SioPacketType.EVENT, namespace, [event, *args])
    try:
        return ["4" + encode_sio_str(packet)]
    except TypeError:
        return [("4" + p) if isinstance(p, str) else p for p in encode_sio(packet)]


@PROPS
@given(emit_batches)
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
