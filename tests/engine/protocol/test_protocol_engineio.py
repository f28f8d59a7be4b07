"""Engine.IO v4 codec: spec vectors, round-trips and fuzzing."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.protocol import (
    NOOP,
    PING_PROBE,
    PING_WS,
    PONG_PROBE,
    EioPacket,
    EioPacketType,
    ProtocolError,
    decode_payload,
    decode_ws,
    encode_payload,
    encode_ws,
    open_packet,
)

T = EioPacketType
PROPS = settings(deadline=None, database=None, max_examples=200)

WS_VECTORS: list[tuple[EioPacket, str | bytes]] = [
    (EioPacket(T.OPEN, '{"sid":"abc"}'), '0{"sid":"abc"}'),
    (EioPacket(T.CLOSE), "1"),
    (EioPacket(T.PING), "2"),
    (EioPacket(T.PING, "probe"), "2probe"),
    (EioPacket(T.PONG), "3"),
    (EioPacket(T.PONG, "probe"), "3probe"),
    (EioPacket(T.MESSAGE, "hello"), "4hello"),
    (EioPacket(T.MESSAGE, "€€€"), "4€€€"),
    (EioPacket(T.MESSAGE, '2["foo"]'), '42["foo"]'),
    (EioPacket(T.UPGRADE), "5"),
    (EioPacket(T.NOOP), "6"),
    # v4 dropped the type byte from binary frames: the frame is the message.
    (EioPacket(T.MESSAGE, b"\x01\x02\x03"), b"\x01\x02\x03"),
    (EioPacket(T.MESSAGE, b""), b""),
]


@pytest.mark.parametrize(("packet", "wire"), WS_VECTORS)
def test_ws_vectors(packet: EioPacket, wire: str | bytes) -> None:
    assert encode_ws(packet) == wire
    assert decode_ws(wire) == packet


def test_hot_packet_constants_match_the_encoder() -> None:
    assert encode_ws(EioPacket(T.PING)) == PING_WS
    assert encode_ws(EioPacket(T.PONG, "probe")) == PONG_PROBE
    assert encode_ws(EioPacket(T.PING, "probe")) == PING_PROBE
    assert encode_ws(EioPacket(T.NOOP)) == NOOP


def test_decode_ws_types_are_enums() -> None:
    packet = decode_ws("3")
    assert packet.type is EioPacketType.PONG
    assert decode_ws(b"\x00").data == b"\x00"


@pytest.mark.parametrize("bad", ["", "7", "9hello", "x", "b", "bAQID", " 4"])
def test_decode_ws_rejects(bad: str) -> None:
    with pytest.raises(ProtocolError):
        decode_ws(bad)


def test_binary_only_on_message() -> None:
    with pytest.raises(ProtocolError, match="MESSAGE"):
        encode_ws(EioPacket(T.PING, b"\x01"))
    with pytest.raises(ProtocolError, match="MESSAGE"):
        encode_payload([EioPacket(T.CLOSE, b"\x01")])


PAYLOAD_VECTORS: list[tuple[list[EioPacket], str]] = [
    ([EioPacket(T.MESSAGE, "hello")], "4hello"),
    ([EioPacket(T.MESSAGE, "hello"), EioPacket(T.MESSAGE, "€€€")], "4hello\x1e4€€€"),
    ([EioPacket(T.MESSAGE, "hello"), EioPacket(T.MESSAGE, b"\x01\x02\x03")], "4hello\x1ebAQID"),
    (
        [EioPacket(T.PING, "probe"), EioPacket(T.MESSAGE, "test"), EioPacket(T.CLOSE)],
        "2probe\x1e4test\x1e1",
    ),
    (
        [EioPacket(T.MESSAGE, '2["hello"]'), EioPacket(T.MESSAGE, '2["world"]')],
        '42["hello"]\x1e42["world"]',
    ),
    ([EioPacket(T.MESSAGE, b"")], "b"),
    ([EioPacket(T.NOOP)], "6"),
]


@pytest.mark.parametrize(("packets", "body"), PAYLOAD_VECTORS)
def test_payload_vectors(packets: list[EioPacket], body: str) -> None:
    assert encode_payload(packets) == body
    assert decode_payload(body) == packets


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "\x1e",
        "4a\x1e",
        "\x1e4a",
        "4a\x1e\x1e4b",
        "7",
        "4a\x1e9",
        "b!!!",
        "bAQI",
        "bAQID=",
        "bé",
    ],
)
def test_decode_payload_rejects(bad: str) -> None:
    with pytest.raises(ProtocolError):
        decode_payload(bad)


def test_encode_payload_rejects_separator_in_data_and_empty_batches() -> None:
    with pytest.raises(ProtocolError, match="separator"):
        encode_payload([EioPacket(T.MESSAGE, "a\x1eb")])
    with pytest.raises(ProtocolError):
        encode_payload([])


def test_open_packet_key_order_and_values() -> None:
    packet = open_packet("lv_VI97HAXpY6yYWAAAC", ["websocket"], 25000, 20000, 1000000)
    assert packet.type is EioPacketType.OPEN
    assert packet.data == (
        '{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],'
        '"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}'
    )
    assert str(encode_ws(open_packet("s", (), 1, 2, 3))).startswith('0{"sid":"s","upgrades":[],')
    assert list(orjson.loads(str(packet.data))) == [
        "sid",
        "upgrades",
        "pingInterval",
        "pingTimeout",
        "maxPayload",
    ]


text_packets = st.builds(EioPacket, st.sampled_from(EioPacketType), st.text())
binary_packets = st.builds(EioPacket, st.just(T.MESSAGE), st.binary())


@PROPS
@given(st.one_of(text_packets, binary_packets))
def test_ws_round_trip(packet: EioPacket) -> None:
    assert decode_ws(encode_ws(packet)) == packet


payload_packets = st.one_of(
    st.builds(
        EioPacket, st.sampled_from(EioPacketType), st.text().filter(lambda s: "\x1e" not in s)
    ),
    binary_packets,
)


@PROPS
@given(st.lists(payload_packets, min_size=1, max_size=8))
def test_payload_round_trip(packets: list[EioPacket]) -> None:
    assert decode_payload(encode_payload(packets)) == packets


# Lone surrogates reach us when a peer's text is decoded with surrogateescape, so fuzz them.
any_text = st.text() | st.text(
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF) | st.sampled_from("0123456b\x1e=+/A")
)


@PROPS
@given(st.one_of(any_text, st.binary()))
def test_decode_ws_raises_only_protocol_error(message: str | bytes) -> None:
    try:
        packet = decode_ws(message)
    except ProtocolError:
        return
    assert isinstance(packet.type, EioPacketType)


@PROPS
@given(any_text)
def test_decode_payload_raises_only_protocol_error(body: str) -> None:
    try:
        packets = decode_payload(body)
    except ProtocolError:
        return
    assert len(packets) == body.count("\x1e") + 1
