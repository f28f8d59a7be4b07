"""Socket.IO v5 codec: the spec's vectors, binary attachments and every validation rule."""

from __future__ import annotations

from typing import Any

import pytest

from engine.protocol import (
    ProtocolError,
    SioDecoder,
    SioPacket,
    SioPacketType,
    encode_sio,
    encode_sio_str,
)

T = SioPacketType
PH0 = '{"_placeholder":true,"num":0}'
PH1 = '{"_placeholder":true,"num":1}'


def decode_all(messages: list[str | bytes], max_attachments: int = 10) -> SioPacket:
    """Feed every message; only the last may complete the packet."""
    decoder = SioDecoder(max_attachments)
    for message in messages[:-1]:
        assert decoder.feed(message) is None
    packet = decoder.feed(messages[-1])
    assert packet is not None
    return packet


TEXT_VECTORS: list[tuple[SioPacket, str]] = [
    (SioPacket(T.CONNECT), "0"),
    (SioPacket(T.CONNECT, data={"sid": "wZX3oN0bSVIhsaknAAAI"}), '0{"sid":"wZX3oN0bSVIhsaknAAAI"}'),
    (SioPacket(T.CONNECT, "/admin"), "0/admin,"),
    (
        SioPacket(T.CONNECT, "/admin", {"sid": "oSO0OpakMV_3jnilAAAA"}),
        '0/admin,{"sid":"oSO0OpakMV_3jnilAAAA"}',
    ),
    (SioPacket(T.CONNECT, "/admin", {"token": "123"}), '0/admin,{"token":"123"}'),
    (
        SioPacket(T.CONNECT_ERROR, data={"message": "Not authorized"}),
        '4{"message":"Not authorized"}',
    ),
    (SioPacket(T.CONNECT_ERROR, "/x", "bad"), '4/x,"bad"'),
    (SioPacket(T.DISCONNECT), "1"),
    (SioPacket(T.DISCONNECT, "/admin"), "1/admin,"),
    (SioPacket(T.EVENT, data=["foo"]), '2["foo"]'),
    (SioPacket(T.EVENT, "/admin", ["bar"]), '2/admin,["bar"]'),
    (SioPacket(T.EVENT, data=["hey", "Jude"]), '2["hey","Jude"]'),
    (SioPacket(T.EVENT, data=["foo"], id=12), '212["foo"]'),
    (SioPacket(T.EVENT, "/admin", ["foo"], 13), '2/admin,13["foo"]'),
    (SioPacket(T.EVENT, data=["foo"], id=0), '20["foo"]'),
    (SioPacket(T.ACK, data=[], id=12), "312[]"),
    (SioPacket(T.ACK, "/admin", ["bar"], 13), '3/admin,13["bar"]'),
    (SioPacket(T.ACK, data=["bar"], id=14), '314["bar"]'),
    (SioPacket(T.EVENT, data=["é", {"a": [1, 2.5, None, True]}]), '2["é",{"a":[1,2.5,null,true]}]'),
    (SioPacket(T.EVENT, data=["big"], id=2**63 - 1), '29223372036854775807["big"]'),
    # A binary type whose data happens to hold no bytes still needs its count.
    (SioPacket(T.BINARY_EVENT, data=["x"]), '50-["x"]'),
]


@pytest.mark.parametrize(("packet", "wire"), TEXT_VECTORS)
def test_text_vectors(packet: SioPacket, wire: str) -> None:
    assert encode_sio(packet) == [wire]
    assert encode_sio_str(packet) == wire
    assert decode_all([wire]) == packet


BINARY_VECTORS: list[tuple[SioPacket, list[str | bytes]]] = [
    (
        SioPacket(T.BINARY_EVENT, data=["baz", b"\x01\x02\x03\x04"]),
        [f'51-["baz",{PH0}]', b"\x01\x02\x03\x04"],
    ),
    (
        SioPacket(T.BINARY_EVENT, "/admin", ["baz", b"\x01\x02", b"\x03\x04"]),
        [f'52-/admin,["baz",{PH0},{PH1}]', b"\x01\x02", b"\x03\x04"],
    ),
    (
        SioPacket(T.BINARY_EVENT, data=["foo", b"\x01\x02\x03\x04"], id=14),
        [f'51-14["foo",{PH0}]', b"\x01\x02\x03\x04"],
    ),
    (
        SioPacket(T.BINARY_ACK, data=["bar", b"\x01\x02\x03\x04"], id=15),
        [f'61-15["bar",{PH0}]', b"\x01\x02\x03\x04"],
    ),
    (
        SioPacket(T.BINARY_EVENT, "/n", ["up", {"files": [{"raw": b"a"}, {"raw": b""}]}], 7),
        [f'52-/n,7["up",{{"files":[{{"raw":{PH0}}},{{"raw":{PH1}}}]}}]', b"a", b""],
    ),
]


@pytest.mark.parametrize(("packet", "wire"), BINARY_VECTORS)
def test_binary_vectors(packet: SioPacket, wire: list[str | bytes]) -> None:
    assert encode_sio(packet) == wire
    assert decode_all(wire) == packet


@pytest.mark.parametrize(
    ("plain_type", "binary_type"), [(T.EVENT, T.BINARY_EVENT), (T.ACK, T.BINARY_ACK)]
)
def test_bytes_promote_event_and_ack_to_binary(plain_type: T, binary_type: T) -> None:
    data: list[Any] = ["x", bytearray(b"\x07"), (memoryview(b"\x08"),)]
    wire = encode_sio(SioPacket(plain_type, data=data, id=3))
    assert wire == [f'{int(binary_type)}2-3["x",{PH0},[{PH1}]]', b"\x07", b"\x08"]
    assert all(type(item) is bytes for item in wire[1:])
    assert decode_all(wire) == SioPacket(binary_type, data=["x", b"\x07", [b"\x08"]], id=3)


@pytest.mark.parametrize("ptype", [T.CONNECT, T.CONNECT_ERROR])
def test_bytes_refused_where_they_cannot_travel(ptype: T) -> None:
    with pytest.raises(ProtocolError, match=ptype.name):
        encode_sio(SioPacket(ptype, data={"blob": b"\x00"}))


def test_encoders_refuse_bad_namespace_and_ack_id() -> None:
    for packet in (
        SioPacket(T.EVENT, "admin", ["x"]),
        SioPacket(T.EVENT, "/a,b", ["x"]),
        SioPacket(T.EVENT, "", ["x"]),
        SioPacket(T.EVENT, data=["x"], id=-1),
        SioPacket(T.EVENT, data=["x"], id=2**63),
    ):
        with pytest.raises(ProtocolError):
            encode_sio(packet)
        with pytest.raises(ProtocolError):
            encode_sio_str(packet)


def test_non_json_data_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        encode_sio(SioPacket(T.EVENT, data=["x", object()]))
    with pytest.raises(TypeError):
        encode_sio(SioPacket(T.EVENT, data=["x", b"\x00", object()]))
    with pytest.raises(TypeError):
        encode_sio_str(SioPacket(T.EVENT, data=["x", b"\x00"]))


def test_namespace_without_trailing_comma_is_accepted() -> None:
    assert decode_all(["0/admin"]) == SioPacket(T.CONNECT, "/admin")


def test_placeholder_lookalike_in_plain_event_is_left_alone() -> None:
    assert decode_all([f'2["x",{PH0}]']).data == ["x", {"_placeholder": True, "num": 0}]


INVALID_TEXT = [
    "",
    "7",
    "a",
    "-1",
    '2"x"',
    "2",
    "2[]",
    "2[1]",
    '2{"a":1}',
    '2["x"',
    '2["x"]]',
    '2admin,["x"]',
    '299999999999999999999["x"]',
    '29223372036854775808["x"]',
    "3[]",
    '3"x"',
    "312{}",
    "0[]",
    '0"x"',
    "01",
    '01{"a":1}',
    "1{}",
    "1/a,[]",
    "11",
    "4",
    "4[]",
    '412"x"',
    '5["x"]',
    '5-["x"]',
    '5a-["x"]',
    '5١-["x"]',
    '51-["x"]',
    f'50-["x",{PH0}]',
    f'52-["x",{PH0}]',
    f'51-["x",{PH1}]',
    '51-["x",{"_placeholder":true,"num":-1}]',
    '51-["x",{"_placeholder":true,"num":true}]',
    '51-["x",{"_placeholder":true,"num":"0"}]',
    '51-["x",{"_placeholder":true}]',
    f'52-["x",{PH0},{PH0}]',
    '511-["x"]',
    f'61-["x",{PH0}]',
    '2["x\ud800"]',
    "2" + "[" * 3000 + "]" * 3000,
]


@pytest.mark.parametrize("bad", INVALID_TEXT)
def test_decoder_rejects(bad: str) -> None:
    with pytest.raises(ProtocolError):
        SioDecoder().feed(bad)


def test_attachment_limit_is_configurable() -> None:
    placeholders = ",".join(f'{{"_placeholder":true,"num":{n}}}' for n in range(3))
    wire: list[str | bytes] = [f'53-["x",{placeholders}]', b"a", b"b", b"c"]
    with pytest.raises(ProtocolError, match="at most 2"):
        SioDecoder(max_attachments=2).feed(wire[0])
    assert decode_all(wire, max_attachments=3).data == ["x", b"a", b"b", b"c"]


def test_bytes_without_pending_packet() -> None:
    decoder = SioDecoder()
    with pytest.raises(ProtocolError, match="no binary packet pending"):
        decoder.feed(b"\x01")
    assert decoder.feed('2["ok"]') == SioPacket(T.EVENT, data=["ok"])
    with pytest.raises(ProtocolError):
        decoder.feed(b"\x01")


def test_text_while_attachments_pending_resets_decoder() -> None:
    decoder = SioDecoder()
    assert decoder.feed(f'51-["x",{PH0}]') is None
    with pytest.raises(ProtocolError, match="attachments"):
        decoder.feed('2["y"]')
    # The half-built packet is gone: its attachment is now unexpected.
    with pytest.raises(ProtocolError):
        decoder.feed(b"late")
    assert decoder.feed('2["z"]') == SioPacket(T.EVENT, data=["z"])


def test_decoder_reassembles_consecutive_binary_packets() -> None:
    decoder = SioDecoder()
    assert decoder.feed(f'52-["a",{PH1},{PH0}]') is None
    assert decoder.feed(b"zero") is None
    assert decoder.feed(b"one") == SioPacket(T.BINARY_EVENT, data=["a", b"one", b"zero"])
    assert decoder.feed(f"61-9[{PH0}]") is None
    assert decoder.feed(b"\xff") == SioPacket(T.BINARY_ACK, data=[b"\xff"], id=9)
