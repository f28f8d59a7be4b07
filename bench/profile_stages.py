"""Fold a py-spy profile of the server into the cost ledger's stages.

    py-spy record --pid PID --duration 15 --rate 250 --nonblocking --threads --format raw \\
        -o prof.txt                        # while a bench phase runs (README "Bench")
    python -m bench.profile_stages prof.txt [--loop-ms 1.0 --threads-ms 0.5]

py-spy samples the running server from outside (no code change, no tracing overhead in it;
``--nonblocking`` does not even pause it), which is why it is the profiler here rather than
cProfile or yappi, whose per-call hooks would inflate exactly the small, frequent calls a
webhook is made of. Each sample's stack is read from the leaf towards the root; the first
frame a rule names decides its stage. Worker-thread samples waiting for work
(``Condition.wait`` under the worker's loop) are idle and left out. With the ledger's
``--loop-ms``/``--threads-ms`` (CPU per webhook of the event loop and of the other threads),
each stage's share becomes milliseconds per webhook. Samples are wall-clock samples of
non-idle threads: a thread inside an fsync counts, so read the SQLite rows as time, not CPU.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

# (stage, substrings of a frame "function (file:line)") in the order they are tried per frame
LOOP_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("thread hand-off (run_sync, queue, notify)", ("threading.py", "queue.py", "to_thread.py")),
    # before fan-out: the engine's HTTP code (a webhook on the Socket.IO port) is http here
    ("http: Hypercorn and h11", ("hypercorn/", "h11/", "engine/transport/_http.py")),
    ("http: webhook handler", ("api/webhook_",)),
    ("fan-out (encode, rooms, socket writes)", ("engine/_server.py", "engine/_coalesce.py",
     "engine/rooms.py", "engine/_emit.py", "engine/transport/", "engine/protocol/",
     "zapline/fanout.py")),
    ("processing (desk, jobs, group commit)", ("desk/", "engine/jobs.py",
     "engine/group_commit.py", "storage/")),
    ("event loop (uvloop C code, scheduling)", ("asyncio/", "anyio/", "uvloop/")),
)  # fmt: skip
WORKER_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("sqlite: SQL and commit (C)", ("StorableConnection.execute",)),
    ("sqlite: Python around the SQL", ("storage/",)),
    ("worker thread plumbing", ("threading.py", "queue.py", "anyio/")),
)
IDLE = "idle"
_LINE = re.compile(r":\d+\)")


def classify(frames: list[str], rules: tuple[tuple[str, tuple[str, ...]], ...]) -> str:
    """Return the stage of one sample's stack (root first), by the first rule from the leaf."""
    for frame in reversed(frames):
        for stage, needles in rules:
            if any(n in frame for n in needles):
                return stage
    return "other"


def fold(lines: list[str]) -> tuple[Counter[str], Counter[str]]:
    """Return (event loop stages, worker thread stages) sample counts of a raw py-spy file."""
    loop: Counter[str] = Counter()
    worker: Counter[str] = Counter()
    for line in lines:
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        thread, *frames = stack.split(";")
        frames = [_LINE.sub(")", f) for f in frames]
        if "MainThread" in thread:
            loop[classify(frames, LOOP_RULES)] += int(count)
        elif frames and "Condition.wait" in frames[-1]:
            worker[IDLE] += int(count)
        else:
            worker[classify(frames, WORKER_RULES)] += int(count)
    return loop, worker


def table(title: str, counts: Counter[str], ms: float | None) -> str:
    """Return a Markdown table of ``counts`` (idle left out) with shares and ms per webhook."""
    busy = {k: v for k, v in counts.items() if k != IDLE}
    total = sum(busy.values()) or 1
    head = f"| {title} | samples | share |" + (" ms/webhook |" if ms is not None else "")
    lines = [head, "|---|---|---|" + ("---|" if ms is not None else "")]
    for stage, n in sorted(busy.items(), key=lambda kv: -kv[1]):
        row = f"| {stage} | {n} | {100 * n / total:.1f} % |"
        if ms is not None:
            row += f" {ms * n / total:.3f} |"
        lines.append(row)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Print the stage tables of a raw py-spy profile; returns 0."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("profile", type=Path, help="py-spy record --format raw --threads output")
    p.add_argument("--loop-ms", type=float, help="the ledger's cost_loop_ms of that phase")
    p.add_argument("--threads-ms", type=float, help="the ledger's cost_threads_ms")
    args = p.parse_args(argv)
    loop, worker = fold(args.profile.read_text().splitlines())
    print(table("event loop thread", loop, args.loop_ms))
    print(table("worker threads", worker, args.threads_ms))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
