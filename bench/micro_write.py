"""Micro-bench: anyio ``SocketStream.send`` vs a direct non-blocking ``socket.send``.

The question the outbox answers (engine/transport/_outbox.py): per recipient of a broadcast,
is it cheaper to await the stream API (a checkpoint per send) or to call ``send`` on the raw
non-blocking socket and fall back to waiting only when the kernel refuses? Both write the same
prebuilt frame to N loopback connections whose peers drain them; the figure is microseconds per
write, median of rounds.

    python -m bench.micro_write [--conns 200] [--rounds 30] [--backend asyncio|trio]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import time

import anyio
import anyio.abc
import anyio.lowlevel

PAYLOAD = b"\x81\x7e\x02\x00" + b"x" * 512  # a 512-byte text frame


async def _pairs(
    n: int,
) -> tuple[list[anyio.abc.SocketStream], list[socket.socket], anyio.abc.Listener]:
    multi = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    listener = multi.listeners[0]
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    streams: list[anyio.abc.SocketStream] = []
    peers: list[socket.socket] = []
    async with anyio.create_task_group() as tg:

        async def accept_all() -> None:
            for _ in range(n):
                streams.append(await listener.accept())

        tg.start_soon(accept_all)
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port))
            s.setblocking(False)
            peers.append(s)
    return streams, peers, listener


def _drain(peers: list[socket.socket]) -> None:
    for p in peers:
        try:
            while p.recv(1 << 20):
                pass
        except BlockingIOError:
            pass


def _raw_pairs(n: int) -> tuple[list[socket.socket], list[socket.socket]]:
    """N loopback TCP connections as plain non-blocking sockets (what the engine's listener has)."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    ours: list[socket.socket] = []
    peers: list[socket.socket] = []
    for _ in range(n):
        peer = socket.create_connection(("127.0.0.1", port))
        conn, _ = server.accept()
        conn.setblocking(False)
        peer.setblocking(False)
        ours.append(conn)
        peers.append(peer)
    server.close()
    return ours, peers


async def main(conns: int, rounds: int) -> dict[str, float]:
    streams, peers, listener = await _pairs(conns)
    raws, raw_peers = _raw_pairs(conns)
    stream_us: list[float] = []
    direct_us: list[float] = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for s in streams:
            await s.send(PAYLOAD)
        stream_us.append((time.perf_counter() - t0) / conns * 1e6)
        _drain(peers)
        t0 = time.perf_counter()
        for r in raws:
            r.send(PAYLOAD)
        direct_us.append((time.perf_counter() - t0) / conns * 1e6)
        _drain(raw_peers)
        await anyio.lowlevel.checkpoint()
    for s in streams:
        await s.aclose()
    for p in peers + raws + raw_peers:
        p.close()
    await listener.aclose()
    return {
        "conns": conns,
        "stream_send_us_p50": round(statistics.median(stream_us), 2),
        "direct_send_us_p50": round(statistics.median(direct_us), 2),
        "ratio": round(statistics.median(stream_us) / statistics.median(direct_us), 2),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conns", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--backend", default="asyncio", choices=["asyncio", "trio"])
    args = parser.parse_args()
    options = {"use_uvloop": True} if args.backend == "asyncio" else {}
    result = anyio.run(main, args.conns, args.rounds, backend=args.backend, backend_options=options)
    print({"backend": args.backend, **result})
