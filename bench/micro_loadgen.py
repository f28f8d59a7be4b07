"""Micro-bench: the load generator's own CPU per ``message:new`` delivery, general vs fast path.

No server and no socket: 1000 ``BenchClient`` objects, handshaken through ``data_received`` on
a transport that records writes, sit in one ``ClientPool`` with a fresh ``DeliveryLedger`` per
round and are fed the bytes the server writes per recipient, one ``data_received`` call per
chunk. A chunk is ``pairs`` back-to-back frame pairs, each the ``message:new`` frame (~600
bytes of JSON carrying ``"content":"bench <seq> <sent_ns>"``) then the ``conversation:updated``
frame (~330 bytes): what one TCP read holds under load. Per chunk size it times:

- ``general``: ``BenchClient._receive_general``, the frame parser + per-packet path;
- ``fast``: ``BenchClient.data_received``, the in-place frame walk;
- ``fast_split``: ``data_received`` with every chunk cut mid-frame into two reads.

The figure is microseconds of process CPU time per counted delivery, median of rounds (CPU,
not wall, time: another process on the core does not inflate it); each round checks that the ledger counted every delivery exactly once. GC is off while
timing, as it is during a measured bench phase. Prints one line of JSON.

    python -m bench.micro_loadgen [--clients 1000] [--tenants 10] [--batches 10] [--rounds 7]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import re
import statistics
import time
from collections.abc import Callable

import orjson

from bench._client import BenchClient, ClientPool
from bench._stats import DeliveryLedger, format_body
from bench._ws import OP_TEXT, accept_for, encode_frame

SENT_NS = 1_700_000_000_123_456_789


class RecordingTransport:
    """A transport that keeps what is written to it and never closes (what a client needs)."""

    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        """Keep ``data`` in ``written``; returns None."""
        self.written.append(data)

    def is_closing(self) -> bool:
        """Return False: this transport never closes."""
        return False

    def close(self) -> None:
        """Do nothing; returns None."""

    def abort(self) -> None:
        """Do nothing; returns None."""


def event_frame(event: str, data: object) -> bytes:
    """Return the unmasked server text frame of Socket.IO EVENT ``[event, data]``."""
    return encode_frame(OP_TEXT, b"42" + orjson.dumps([event, data]), mask=b"")


def message_pair(seq: int, tenant: int, sent_ns: int = SENT_NS) -> bytes:
    """Return the ``message:new`` + ``conversation:updated`` frames announcing bench ``seq``."""
    conv = f"c0ffee00-0000-4000-8000-{tenant:06d}{seq % 1000:06d}"
    body = format_body(seq, sent_ns)
    stamp = "2025-01-15T12:34:56.789Z"
    contact = {"id": f"0c0ac7ac-0000-4000-8000-{seq % 97:012d}", "phoneNumber": "5511900000000"}
    contact["name"] = f"Bench {tenant}-{seq % 10}"
    message = {
        "id": f"a11ce000-0000-4000-8000-{seq:012d}",
        "conversationId": conv,
        "whatsappMessageId": f"wamid.HBgNNTUxMTkwMDAwMDAwMBUCABIYFjNFQjA{seq:016d}",
        "direction": "inbound",
        "type": "text",
        "content": body,
        "metadata": {"phoneNumberId": f"10{tenant:013d}", "profileName": contact["name"]},
        "status": "received",
        "error": None,
        "timestamp": stamp,
        "contact": contact,
    }
    new = event_frame("message:new", {"conversationId": conv, "message": message})
    summary = {"id": message["id"], "direction": "inbound", "type": "text", "content": body}
    summary |= {"status": "received", "timestamp": stamp}
    updated = event_frame(
        "conversation:updated",
        {"conversationId": conv, "lastMessage": summary, "lastMessageAt": stamp},
    )
    return new + updated


def handshake(client: BenchClient) -> RecordingTransport:
    """Connect ``client`` to a RecordingTransport and feed it a server's side of the handshake.

    The 101 answer (with the accept value for the key the client sent), the Engine.IO OPEN and
    the Socket.IO CONNECT ack go through ``data_received`` as a server would send them. Returns
    the transport; raises RuntimeError if the client did not end up connected.
    """
    transport = RecordingTransport()
    client.connection_made(transport)  # type: ignore[arg-type]  # a duck-typed transport
    found = re.search(rb"Sec-WebSocket-Key: (\S+)\r\n", transport.written[0])
    if found is None:
        raise RuntimeError("the client sent no Sec-WebSocket-Key")
    accept = accept_for(found.group(1).decode("ascii")).encode("ascii")
    answer = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    answer += b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    open_packet = b'0{"sid":"s","upgrades":[],"pingInterval":25000,"pingTimeout":20000}'
    client.data_received(answer + encode_frame(OP_TEXT, open_packet, mask=b""))
    client.data_received(encode_frame(OP_TEXT, b'40{"sid":"k"}', mask=b""))
    if not client.open:
        raise RuntimeError("the client did not connect")
    return transport


def make_pool(clients: int, tenants: int) -> ClientPool:
    """Return a pool of ``clients`` handshaken clients, client ``i`` of tenant ``i % tenants``."""
    pool = ClientPool("http://127.0.0.1:9", [(i % tenants, f"t{i}") for i in range(clients)])
    pool.clients = [BenchClient(pool, i, t, tok) for i, (t, tok) in enumerate(pool.tokens)]
    for c in pool.clients:
        handshake(c)
    return pool


def make_chunks(tenants: int, batches: int, pairs: int) -> list[tuple[int, list[int], bytes]]:
    """Return (tenant, seqs, chunk bytes) per chunk: ``batches`` chunks per tenant."""
    chunks: list[tuple[int, list[int], bytes]] = []
    seq = 0
    for _ in range(batches):
        for t in range(tenants):
            seqs = list(range(seq, seq + pairs))
            seq += pairs
            chunks.append((t, seqs, b"".join(message_pair(s, t) for s in seqs)))
    return chunks


def time_round(
    pool: ClientPool,
    tenants: int,
    chunks: list[tuple[int, list[int], bytes]],
    feed: Callable[[BenchClient, bytes], None],
    split: bool,
) -> float:
    """Return µs per delivery of one round; raises RuntimeError if the ledger is not exact."""
    per_tenant = [[c for c in pool.clients if c.tenant == t] for t in range(tenants)]
    ledger = DeliveryLedger([len(cs) for cs in per_tenant])
    for t, seqs, _ in chunks:
        for s in seqs:
            ledger.sent(s, t)
    pool.ledger = ledger
    gc.collect()
    gc.disable()
    try:
        t0 = time.process_time()
        if split:
            for t, _, chunk in chunks:
                cut = len(chunk) // 2 + 7  # inside the first frame's payload or a later one
                head, tail = chunk[:cut], chunk[cut:]
                for c in per_tenant[t]:
                    feed(c, head)
                    feed(c, tail)
        else:
            for t, _, chunk in chunks:
                for c in per_tenant[t]:
                    feed(c, chunk)
        elapsed = time.process_time() - t0
    finally:
        gc.enable()
        pool.ledger = None
    figures = ledger.summary()
    if figures["lost"] or figures["duplicates"] or figures["misrouted"] or figures["stray"]:
        raise RuntimeError(f"the ledger is not exact after a round: {figures}")
    return elapsed / ledger.delivered * 1e6


async def main(clients: int, tenants: int, batches: int, rounds: int) -> dict[str, object]:
    """Return the figures (µs per delivery, median of ``rounds``) per chunk size and path."""
    pool = make_pool(clients, tenants)
    paths: dict[str, tuple[Callable[[BenchClient, bytes], None], bool]] = {
        "general": (BenchClient._receive_general, False),
        "fast": (BenchClient.data_received, False),
        "fast_split": (BenchClient.data_received, True),
    }
    result: dict[str, object] = {"clients": clients, "tenants": tenants, "rounds": rounds}
    for pairs in (1, 4):
        chunks = make_chunks(tenants, batches, pairs)
        times: dict[str, list[float]] = {name: [] for name in paths}
        for _ in range(rounds):
            for name, (feed, split) in paths.items():  # interleaved: drift hits all alike
                times[name].append(time_round(pool, tenants, chunks, feed, split))
        med = {name: statistics.median(v) for name, v in times.items()}
        for name, v in med.items():
            result[f"pairs{pairs}_{name}_us"] = round(v, 3)
        result[f"pairs{pairs}_speedup"] = round(med["general"] / med["fast"], 2)
    result["pair_bytes"] = len(message_pair(1, 0))
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--tenants", type=int, default=10)
    parser.add_argument("--batches", type=int, default=10, help="chunks per tenant per round")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    figures = asyncio.run(main(args.clients, args.tenants, args.batches, args.rounds))
    print(orjson.dumps(figures).decode())
