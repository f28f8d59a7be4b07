"""Micro-bench: server CPU per webhook POST on the API port (Hypercorn) vs the Socket.IO port.

The fanout scenario's ``cost_cpu_ms`` of the two ports is confounded by the group commit: a
port that answers sooner leaves fewer posts waiting per inbox commit, so the commits are
more and smaller and the worker threads' CPU per webhook grows. This isolates what the
listener and the intake cost per POST: one ``zapline serve`` (pinned, as the bench runs it,
``ZAPLINE_LOG_LEVEL=error``) gets a realistic webhook body whose ``object`` is not WhatsApp's,
so each POST is read, parsed as JSON, refused 400 and answered, with no commit, no
processing and no log line. The same server takes ``--posts`` paced at ``--rate`` on each
port in turn (order alternated per round, ``--rounds`` rounds); the figure is the server's
CPU (whole process, from /proc) per POST, in ms, median of rounds. Prints one line of JSON.

    python -m bench.micro_webhook_http [--rate 600] [--posts 6000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

import orjson

from bench._procs import ProcessSet, cpu_seconds, pin_load_generator
from bench._targets import Target, start_zapline
from bench._webhook import HttpPoster, webhook_body


async def _phase(target: Target, url: str, body: bytes, rate: float, posts: int) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    async with HttpPoster(url, connections=32) as poster:
        s0 = target.sample()
        t0 = loop.time()
        for i in range(posts):
            delay = t0 + i / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            poster.submit(body)
        await poster.drain(30)
        s1 = target.sample()
    assert s0 is not None and s1 is not None
    cpu_s, main_s = cpu_seconds(s0, s1)
    return {
        "cpu_ms": round(1000 * cpu_s / posts, 4),
        "loop_ms": round(1000 * main_s / posts, 4),
        "statuses": {str(k): v for k, v in poster.statuses.items()},
    }


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    os.environ["ZAPLINE_LOG_LEVEL"] = "error"
    with ProcessSet() as procs, tempfile.TemporaryDirectory(prefix="zapline-micro-") as tmp:
        target = start_zapline(procs, Path(tmp), 1)
        raw = webhook_body(
            phone_number_id=target.phone_number_ids[0], wa_id="5511900000000", name="Micro",
            wamid="wamid.micro", text="micro", unix_s=1_700_000_000,
        )  # fmt: skip
        body = raw.replace(b'"whatsapp_business_account"', b'"page"', 1)
        urls = {"socket": target.socket_url, "api": target.api_url}
        await _phase(target, urls["api"], body, args.rate, args.posts // 4)  # warm both paths
        await _phase(target, urls["socket"], body, args.rate, args.posts // 4)
        runs: dict[str, list[dict[str, Any]]] = {"socket": [], "api": []}
        for r in range(args.rounds):
            for port in ("socket", "api") if r % 2 == 0 else ("api", "socket"):
                runs[port].append(await _phase(target, urls[port], body, args.rate, args.posts))
    out: dict[str, Any] = {"rate": args.rate, "posts": args.posts, "rounds": args.rounds}
    for port, phases in runs.items():
        for key in ("cpu_ms", "loop_ms"):
            values = [p[key] for p in phases]
            out[f"{port}_{key}"] = statistics.median(values)
            out[f"{port}_{key}_runs"] = values
        out[f"{port}_statuses"] = [p["statuses"] for p in phases]
    return out


def main() -> None:
    """Parse the arguments, run the rounds, print the JSON line."""
    p = argparse.ArgumentParser(prog="python -m bench.micro_webhook_http")
    p.add_argument("--rate", type=float, default=600.0, help="POSTs per second")
    p.add_argument("--posts", type=int, default=6000, help="POSTs per port per round")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    pin_load_generator()
    print(orjson.dumps(asyncio.run(_run(args))).decode(), flush=True)


if __name__ == "__main__":
    main()
