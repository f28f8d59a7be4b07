"""BenchClient's in-place frame walk counts exactly what the general FrameParser path counts.

Each test feeds the same server byte stream to a client through ``data_received`` (the fast
path, falling back on its own) and compares the ledger and the client's writes with what the
stream must produce: deliveries with latency ``clock - sent_ns``, stray/misrouted/duplicate
counts, and the pongs. Streams mix what a measured phase sees (message:new + conversation:updated
pairs, Engine.IO pings) with what must take the general path (masked, fragmented, control and
8-byte-length frames), cut into reads at every offset or at random ones.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bench._client as client_module
from bench._client import BenchClient, ClientPool
from bench._stats import DeliveryLedger, format_body
from bench._ws import (
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    FrameParser,
    accept_for,
    encode_frame,
)
from bench.micro_loadgen import RecordingTransport, handshake, message_pair

NOW = 1_800_000_000_000_000_000
TENANT = 0
SENT_HERE = range(0, 40)  # registered for the client's tenant
SENT_ELSEWHERE = range(40, 50)  # registered for tenant 1: misrouted if they reach the client
# seqs from 50 on are never registered: stray


@contextmanager
def fixed_clock() -> Iterator[None]:
    """Make every receive time NOW, so that latencies are known exactly."""
    saved = client_module._time_ns
    client_module._time_ns = lambda: NOW
    try:
        yield
    finally:
        client_module._time_ns = saved


def new_ledger() -> DeliveryLedger:
    ledger = DeliveryLedger([1, 3])
    for seq in SENT_HERE:
        ledger.sent(seq, TENANT)
    for seq in SENT_ELSEWHERE:
        ledger.sent(seq, 1)
    return ledger


def connected_clients(count: int) -> list[tuple[BenchClient, RecordingTransport]]:
    """Return ``count`` handshaken clients of TENANT, each in its own pool with a new ledger."""

    async def build() -> list[tuple[BenchClient, RecordingTransport]]:
        out = []
        for _ in range(count):
            pool = ClientPool("http://127.0.0.1:9", [(TENANT, "tok")])
            client = BenchClient(pool, 7, TENANT, "tok")
            transport = handshake(client)
            transport.written.clear()
            pool.ledger = new_ledger()
            out.append((client, transport))
        return out

    return asyncio.run(build())


def text(packet: bytes, mask: bytes = b"") -> bytes:
    return encode_frame(OP_TEXT, packet, mask=mask)


def new_packet(content: object, *, spaced: bool = False, pad: int = 0) -> bytes:
    data = ["message:new", {"conversationId": "c", "message": {"id": "m", "content": content}}]
    if pad:
        data[1]["message"]["metadata"] = {"pad": "x" * pad}  # type: ignore[index]
    return b"42" + (json.dumps(data).encode() if spaced else orjson.dumps(data))


# Each piece of a stream: its frames, and what the client must do with it.
@dataclass(frozen=True)
class Piece:
    frames: bytes
    deliveries: tuple[tuple[int, int], ...] = ()  # (seq, sent_ns) handed to the ledger
    unparsed: int = 0  # message:new without a bench body: the ledger counts it stray
    replies: tuple[tuple[int, bytes], ...] = ()  # (opcode, payload) the client writes back


def bench_pair(seq: int, sent_ns: int) -> Piece:
    return Piece(message_pair(seq, TENANT, sent_ns), ((seq, sent_ns),))


def pieces_catalogue(seq: int, sent_ns: int) -> list[Piece]:
    """One piece of every kind, all about ``seq``."""
    body = format_body(seq, sent_ns)
    frag = new_packet(body)
    long_body = f"bench {seq:030d} {'2' * 40}"  # longer than the fast path's search window
    return [
        bench_pair(seq, sent_ns),
        Piece(text(new_packet(body, spaced=True)), ((seq, sent_ns),)),  # json.dumps spacing
        Piece(text(new_packet({"text": body})), ((seq, sent_ns),)),  # content as an object
        Piece(text(new_packet(body), mask=b"\x01\x02\x03\x04"), ((seq, sent_ns),)),  # masked
        Piece(
            encode_frame(OP_TEXT, frag[:20], mask=b"", fin=False)
            + encode_frame(OP_PING, b"hb", mask=b"")
            + encode_frame(OP_CONT, frag[20:], mask=b""),
            ((seq, sent_ns),),
            replies=((OP_PONG, b"hb"),),
        ),
        Piece(text(new_packet("hello")), unparsed=1),
        Piece(text(new_packet(f"bench {seq}  {sent_ns}")), unparsed=1),  # two spaces
        Piece(text(new_packet(f"bench {seq} {sent_ns} 1")), unparsed=1),
        Piece(text(b"2"), replies=((OP_TEXT, b"3"),)),  # Engine.IO ping
        Piece(encode_frame(OP_PING, b"", mask=b""), replies=((OP_PONG, b""),)),
        Piece(text(new_packet(long_body)), ((seq, int("2" * 40)),)),
        # the frame ends inside the content; the next frame (binary, RSV2) starts with a quote
        Piece(
            text(b'42["message:new",{"message":{"content":"bench 1 2')
            + b"\x22\x00"
            + encode_frame(OP_CONT, b"", mask=b""),
            unparsed=1,
        ),
        Piece(text(b'42["typing",{"content":"bench 1 2"}]')),
        Piece(text(b'42["mention",{"content":"bench 1 2"}]')),  # an "m" where message:new has one
        Piece(text(b'42["message:new"')),  # too short to be the prefix plus a payload
        Piece(text(b"") + text(b"3") + text(b"4") + text(b"42")),
    ]


def stream_of(pieces: Sequence[Piece]) -> bytes:
    return b"".join(p.frames for p in pieces)


def expected_ledger(pieces: Sequence[Piece]) -> DeliveryLedger:
    ledger = new_ledger()
    for piece in pieces:
        for seq, sent_ns in piece.deliveries:
            ledger.deliver(7, TENANT, seq, sent_ns, NOW)
        ledger.stray += piece.unparsed
    return ledger


def replies_written(transport: RecordingTransport) -> list[tuple[int, bytes]]:
    return [(m.opcode, m.payload) for m in FrameParser().feed(b"".join(transport.written))]


def assert_same_counts(got: DeliveryLedger, want: DeliveryLedger) -> None:
    assert got.summary() == want.summary()
    assert got.latencies_ns == want.latencies_ns
    for seq in range(60):
        assert got.last_receive_ns(seq) == want.last_receive_ns(seq)


def feed_in_reads(feed: Callable[[bytes], None], stream: bytes, cuts: Sequence[int]) -> None:
    bounds = [0, *sorted(set(cuts)), len(stream)]
    for a, b in zip(bounds, bounds[1:], strict=False):
        if b > a:
            feed(stream[a:b])


def check(pieces: Sequence[Piece], cuts_per_client: Sequence[Sequence[int]]) -> None:
    """Feed ``pieces`` once per cut list, through data_received, and check every outcome."""
    stream = stream_of(pieces)
    want = expected_ledger(pieces)
    want_replies = [r for p in pieces for r in p.replies]
    with fixed_clock():
        for (client, transport), cuts in zip(
            connected_clients(len(cuts_per_client)), cuts_per_client, strict=True
        ):
            feed_in_reads(client.data_received, stream, cuts)
            assert client.pool.ledger is not None
            assert_same_counts(client.pool.ledger, want)
            assert replies_written(transport) == want_replies, cuts


def test_pairs_in_one_read_are_counted_and_the_updates_ignored() -> None:
    pieces = [bench_pair(s, 1_000 + s) for s in (1, 2, 3, 41, 77, 2)]
    check(pieces, [[]])
    want = expected_ledger(pieces)
    assert (want.delivered, want.duplicates, want.misrouted, want.stray) == (3, 1, 1, 1)
    assert want.latencies_ns == [NOW - 1_001, NOW - 1_002, NOW - 1_003]


def test_every_kind_of_frame_split_at_every_offset() -> None:
    pieces = [bench_pair(5, 123)]
    for i, seq in enumerate((1, 42, 99)):
        pieces += pieces_catalogue(seq, 10**18 + i)
    pieces.append(bench_pair(6, 456))  # after every fallback, the fast walk again
    stream = stream_of(pieces)
    check(pieces, [[cut] for cut in range(1, len(stream))])


def test_a_read_per_byte() -> None:
    pieces = [*pieces_catalogue(3, 333), bench_pair(4, 444), bench_pair(4, 444)]
    check(pieces, [list(range(1, len(stream_of(pieces))))])


def test_frame_with_an_8_byte_length_takes_the_general_path() -> None:
    body = format_body(8, 888)
    big = Piece(text(new_packet(body, pad=70_000)), ((8, 888),))
    pieces = [bench_pair(1, 111), big, bench_pair(2, 222)]
    n = len(stream_of(pieces))
    check(pieces, [[], [10], [n // 2], [n - 1000], list(range(1000, n, 9000))])


def sized_new_packet(seq: int, sent_ns: int, size: int) -> bytes:
    """Return a bench message:new packet of exactly ``size`` bytes (padded in the id)."""
    packet = new_packet(format_body(seq, sent_ns))
    return packet.replace(b'"id":"m"', b'"id":"m' + b"x" * (size - len(packet)) + b'"')


@pytest.mark.parametrize("size", [90, 124, 125, 126, 127, 65535, 65536])
def test_payloads_at_every_length_encoding_boundary(size: int) -> None:
    packet = sized_new_packet(3, 30, size)
    assert len(packet) == size
    pieces = [bench_pair(1, 10), Piece(text(packet), ((3, 30),)), bench_pair(2, 20)]
    n = len(stream_of(pieces))
    cut = len(pieces[0].frames)
    check(pieces, [[], [cut + 1], [cut + 2], [cut + 3], [cut + 5], [n - 600], [n - 1]])


def test_the_handshake_answer_and_first_frames_in_one_read() -> None:
    async def build() -> tuple[BenchClient, RecordingTransport]:
        pool = ClientPool("http://127.0.0.1:9", [(TENANT, "tok")])
        client = BenchClient(pool, 7, TENANT, "tok")
        transport = RecordingTransport()
        client.connection_made(transport)  # type: ignore[arg-type]
        return client, transport

    client, transport = asyncio.run(build())
    key = transport.written[0].split(b"Sec-WebSocket-Key: ")[1].split(b"\r\n")[0].decode()
    head = b"HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: "
    head += accept_for(key).encode() + b"\r\n\r\n"
    client.pool.ledger = new_ledger()
    stream = head + text(b'0{"sid":"s"}') + text(b'40{"sid":"k"}') + message_pair(9, 0, 99)
    with fixed_clock():
        client.data_received(stream[:30])
        client.data_received(stream[30:])
    assert client.open and client.connected.done()
    assert client.pool.ledger.latencies_ns == [NOW - 99]


def test_the_fast_walk_is_back_in_charge_once_the_parser_is_idle() -> None:
    # A guard on the figure, not on correctness: the fallback must not stick.
    [(client, _)] = connected_clients(1)
    assert client._fast
    client.data_received(encode_frame(OP_TEXT, b"42[", mask=b"", fin=False))
    assert not client._fast
    client.data_received(encode_frame(OP_CONT, b"]", mask=b""))
    assert client._fast
    client.data_received(message_pair(1, 0, 1)[:50])
    assert client._fast  # an incomplete frame is kept as a tail, not handed to the parser


def test_a_close_frame_is_answered_and_later_frames_still_read() -> None:
    close = Piece(
        encode_frame(OP_CLOSE, b"\x03\xe8bye", mask=b""), replies=((OP_CLOSE, b"\x03\xe8"),)
    )
    pieces = [bench_pair(1, 1), close, bench_pair(2, 2)]
    stream = stream_of(pieces)
    with fixed_clock():
        [(client, transport)] = connected_clients(1)
        client.data_received(stream)
    assert client.pool.ledger is not None
    assert_same_counts(client.pool.ledger, expected_ledger(pieces))
    # close() also sends the Engine.IO close packet and its own close frame
    assert replies_written(transport) == [
        (OP_CLOSE, b"\x03\xe8"),
        (OP_TEXT, b"1"),
        (OP_CLOSE, b"\x03\xe8"),
    ]


def test_without_a_ledger_nothing_is_counted_but_pings_are_answered() -> None:
    with fixed_clock():
        [(client, transport)] = connected_clients(1)
        ledger = client.pool.ledger
        client.pool.ledger = None
        client.data_received(message_pair(1, 0, 1) + text(b"2") + message_pair(2, 0, 2))
    assert ledger is not None and ledger.summary()["delivered"] == 0 and ledger.stray == 0
    assert replies_written(transport) == [(OP_TEXT, b"3")]


piece_kinds = st.integers(min_value=0, max_value=len(pieces_catalogue(0, 0)) - 1)


@st.composite
def pieces_and_cuts(draw: st.DrawFn) -> tuple[list[Piece], list[list[int]]]:
    pieces = []
    for _ in range(draw(st.integers(1, 12))):
        seq = draw(st.integers(0, 60))
        sent_ns = draw(st.integers(0, 2**62))
        if draw(st.booleans()):
            pieces.append(bench_pair(seq, sent_ns))  # the common case, weighted up
        else:
            pieces.append(pieces_catalogue(seq, sent_ns)[draw(piece_kinds)])
    n = len(stream_of(pieces))
    cuts = st.lists(st.integers(1, max(1, n - 1)), max_size=6)
    return pieces, [draw(cuts), draw(cuts)]


@settings(max_examples=150, deadline=None)
@given(pieces_and_cuts())
def test_any_stream_in_any_reads_counts_as_expected(
    case: tuple[list[Piece], list[list[int]]],
) -> None:
    pieces, cuts = case
    check(pieces, cuts)


@settings(max_examples=60, deadline=None)
@given(pieces_and_cuts())
def test_fast_and_general_paths_agree(case: tuple[list[Piece], list[list[int]]]) -> None:
    pieces, [cuts, _] = case
    stream = stream_of(pieces)
    with fixed_clock():
        (fast, fast_t), (general, general_t) = connected_clients(2)
        feed_in_reads(fast.data_received, stream, cuts)
        feed_in_reads(general._receive_general, stream, cuts)
    assert fast.pool.ledger is not None and general.pool.ledger is not None
    assert_same_counts(fast.pool.ledger, general.pool.ledger)
    assert replies_written(fast_t) == replies_written(general_t)
