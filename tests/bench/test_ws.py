"""The bench websocket codec: frames round-trip through the parser, handshake checks."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench._ws import (
    OP_BINARY,
    OP_CONT,
    OP_PING,
    OP_TEXT,
    FrameParser,
    Message,
    WebSocketError,
    accept_for,
    check_upgrade_response,
    encode_frame,
    upgrade_request,
)

masks = st.one_of(st.just(b""), st.binary(min_size=4, max_size=4))


def test_accept_matches_rfc6455_example() -> None:
    assert accept_for("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_upgrade_request_names_key_and_target() -> None:
    req = upgrade_request("127.0.0.1:9", "/socket.io/?EIO=4&transport=websocket", "k==")
    assert req.startswith(b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n")
    assert b"Sec-WebSocket-Key: k==\r\n" in req and req.endswith(b"\r\n\r\n")


def test_check_upgrade_response_accepts_and_refuses() -> None:
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    ok = f"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: {accept_for(key)}"
    check_upgrade_response(ok.encode(), key)
    with pytest.raises(WebSocketError, match="refused"):
        check_upgrade_response(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0", key)
    with pytest.raises(WebSocketError, match="Accept"):
        check_upgrade_response(b"HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: x", key)


@pytest.mark.parametrize("n", [0, 125, 126, 65535, 65536])
def test_length_encodings(n: int) -> None:
    frame = encode_frame(OP_BINARY, b"x" * n, mask=b"")
    header = {125: 2, 126: 4, 65535: 4, 65536: 10, 0: 2}[n]
    assert len(frame) == header + n
    assert FrameParser().feed(frame) == [Message(OP_BINARY, b"x" * n)]


def test_client_frame_is_masked() -> None:
    frame = encode_frame(OP_TEXT, b"hello", mask=b"\x01\x02\x03\x04")
    assert frame[1] & 0x80 and frame[2:6] == b"\x01\x02\x03\x04"
    assert frame[6:] != b"hello"


@given(
    payloads=st.lists(st.binary(max_size=70000), min_size=1, max_size=4),
    mask=masks,
    cut=st.integers(min_value=1, max_value=50),
)
def test_roundtrip_any_split(payloads: list[bytes], mask: bytes, cut: int) -> None:
    stream = b"".join(encode_frame(OP_BINARY, p, mask=mask) for p in payloads)
    parser = FrameParser()
    got: list[Message] = []
    step = max(1, len(stream) // cut)
    for i in range(0, len(stream), step):
        got += parser.feed(stream[i : i + step])
    assert got == [Message(OP_BINARY, p) for p in payloads]


@given(parts=st.lists(st.binary(max_size=300), min_size=2, max_size=5), mask=masks)
def test_fragments_are_joined_around_control_frames(parts: list[bytes], mask: bytes) -> None:
    frames = [encode_frame(OP_TEXT, parts[0], mask=mask, fin=False)]
    frames.append(encode_frame(OP_PING, b"p", mask=mask))
    frames += [encode_frame(OP_CONT, p, mask=mask, fin=False) for p in parts[1:-1]]
    frames.append(encode_frame(OP_CONT, parts[-1], mask=mask))
    assert FrameParser().feed(b"".join(frames)) == [
        Message(OP_PING, b"p"),
        Message(OP_TEXT, b"".join(parts)),
    ]


def test_protocol_violations_raise() -> None:
    with pytest.raises(WebSocketError, match="continuation"):
        FrameParser().feed(encode_frame(OP_CONT, b"x", mask=b""))
    with pytest.raises(WebSocketError, match="control"):
        FrameParser().feed(encode_frame(OP_PING, b"x", mask=b"", fin=False))
    with pytest.raises(ValueError):
        encode_frame(OP_TEXT, b"x", mask=b"123")
