"""``python -m bench <scenario>``: start the server(s), run the scenario, print and record it."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import signal
import sys
import tempfile
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, NoReturn

from bench._goals import check, goals_table
from bench._procs import ProcessSet, pin_load_generator, pinning
from bench._report import (
    DEFAULT_RESULTS,
    append_result,
    ratio_table,
    side_by_side,
    write_reports,
)
from bench._scenarios import SATURATE_RATES, SCENARIOS, Options
from bench._targets import Target, external_target, start_baseline, start_zapline

_SUMMARY_KEYS = (
    "clients", "tenants", "rate", "connected", "connect_failures", "delivered", "expected",
    "lost", "duplicates", "misrouted", "p50_ms", "p95_ms", "p99_ms", "max_ms",
    "deliveries_per_s", "server_cpu_pct", "server_rss_mb", "loadgen_cpu_pct", "connects_per_s",
    "handshake_p50_ms", "handshake_p99_ms", "rss_kb_per_conn", "server_rss_mb_connected",
    "server_cpu_pct_connect", "loadgen_cpu_pct_connect", "max_rate_held",
    "all_received_p50_ms", "all_received_p99_ms", "server_fanout_p99_le_ms", "inbox_commits",
    "slow_inbox_commits", "post_failed", "disconnects", "passed",
)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``python -m bench``."""
    p = argparse.ArgumentParser(prog="python -m bench", description="Zapline load harness.")
    p.add_argument("scenario", choices=[*sorted(SCENARIOS), "all"],
                   help="one scenario, or 'all': every scenario but ci, one after another")  # fmt: skip
    p.add_argument("--clients", type=int, help="Socket.IO clients (scenario default)")
    p.add_argument("--tenants", type=int, help="tenants the clients are spread over")
    p.add_argument("--rate", type=float, help="webhooks per second")
    p.add_argument("--duration", type=float, help="seconds of sending per phase")
    p.add_argument("--rates", help="saturate: comma-separated rates to climb "
                   f"(default {','.join(map(str, SATURATE_RATES))})")  # fmt: skip
    p.add_argument("--messages", type=int, default=20, help="broadcast: messages to send")
    p.add_argument("--contacts", type=int, default=10, help="contacts (conversations) per tenant")
    p.add_argument(
        "--connections",
        type=int,
        default=32,
        help="keep-alive connections for POSTs (Meta posts concurrently; each connection waits "
        "for its answer, so N connections cap the rate at N / response time)",
    )
    p.add_argument("--target", choices=("zapline", "baseline"), default="zapline")
    p.add_argument("--baseline", choices=("python-socketio",),
                   help="also run the baseline in the same run and print Zapline/baseline ratios")  # fmt: skip
    p.add_argument("--api-url", help="use a running server's API at this URL (no server started)")
    p.add_argument("--socket-url", help="the running server's Socket.IO URL (default: --api-url)")
    p.add_argument("--tenants-file", help='running server: JSON [{"id", "phoneNumberId"}, ...]')
    p.add_argument("--server-pid", type=int, help="running server: pid to read CPU/RSS from")
    p.add_argument(
        "--workdir", type=Path, help="keep server logs and database here (default: temp)"
    )
    p.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="JSONL file to append to")
    return p


# Every step of `make bench`, in the order they run: a scenario and the options it overrides
# (the figures the product's targets are read from; see bench/_goals.py).
ALL_STEPS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("connect", {"clients": 1000}),
    ("connect", {"clients": 5000}),
    ("connect", {"clients": 10000}),
    ("fanout", {}),
    ("fanout", {"clients": 10000, "rate": 100.0}),
    ("broadcast", {}),
    ("idle", {}),
    ("saturate", {}),
)
# python-socketio fails the default climb's first step (100/s): climb it from lower.
BASELINE_SATURATE_RATES = [5, 10, 20, 40, 80, 100, 200]


def _options(args: argparse.Namespace) -> Options:
    opts = Options(
        clients=args.clients, tenants=args.tenants, rate=args.rate, duration=args.duration,
        messages=args.messages, contacts=args.contacts, connections=args.connections,
    )  # fmt: skip
    if args.rates:
        opts.rates = [int(r) for r in args.rates.split(",") if r.strip()]
    return opts


def _run_async(coro: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def run_target(name: str, args: argparse.Namespace, opts: Options) -> dict[str, Any]:
    """Start target ``name`` (or use the running one), run the scenario; returns its result.

    Every process started here is stopped before this returns or raises. Raises RuntimeError
    when a server does not start.
    """
    tenants = 1 if args.scenario == "broadcast" else max(1, args.tenants or 10)
    with ProcessSet() as procs, tempfile.TemporaryDirectory(prefix="zapline-bench-") as tmp_dir:
        tmp = tmp_dir
        if args.workdir is not None:
            tmp = str(args.workdir / f"{name}-{int(time.time())}")
            os.makedirs(tmp)
        target: Target
        if args.api_url and name != "baseline":
            target = external_target(args.api_url, args.socket_url or args.api_url, tenants,
                                     args.tenants_file, args.server_pid)  # fmt: skip
        elif name == "baseline":
            target = start_baseline(procs, Path(tmp), tenants)
        else:
            target = start_zapline(procs, Path(tmp), tenants)
        print(f"# {args.scenario} on {target.name}: api {target.api_url}, socket "
              f"{target.socket_url}, server pid {target.pid}", file=sys.stderr, flush=True)  # fmt: skip
        fig = _run_async(SCENARIOS[args.scenario](target, opts))
    head = {
        "scenario": args.scenario,
        "target": target.name,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cores": os.cpu_count(),
        "pinned": pinning(),
        "python": platform.python_version(),
    }
    return {**head, **fig}


def _summary(result: dict[str, Any]) -> str:
    parts = [f"{k}={result[k]}" for k in _SUMMARY_KEYS if result.get(k) is not None]
    return f"{result['scenario']} [{result['target']}] " + " ".join(parts)


def _on_sigterm(signum: int, frame: object) -> NoReturn:
    raise SystemExit(128 + signum)  # unwinds through ProcessSet, which stops the servers


def _run_scenario(args: argparse.Namespace, opts: Options) -> list[dict[str, Any]]:
    """Run ``args.scenario`` on the target (and the baseline); print and record each result."""
    names = [args.target]
    if args.baseline and args.target != "baseline":
        names.append("baseline")
    results: list[dict[str, Any]] = []
    for name in names:
        run_opts = opts
        if name == "baseline" and args.scenario == "saturate" and not args.rates:
            run_opts = dataclasses.replace(opts, rates=list(BASELINE_SATURATE_RATES))
        result = run_target(name, args, run_opts)
        append_result(args.results, result)
        results.append(result)
        print(_summary(result), flush=True)
    if len(results) == 2:
        print(ratio_table(results[0], results[1]), flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    """Run ``python -m bench``; returns the exit status (1: the ci gate failed, 2: error)."""
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    pin_load_generator()
    opts = _options(args)
    steps = list(ALL_STEPS) if args.scenario == "all" else [(args.scenario, {})]
    results: list[dict[str, Any]] = []
    try:
        for index, (scenario, overrides) in enumerate(steps, 1):
            if len(steps) > 1:
                told = " ".join(f"--{k} {v:g}" for k, v in overrides.items())
                print(f"# [{index}/{len(steps)}] {scenario} {told}", file=sys.stderr, flush=True)
            step_args = argparse.Namespace(**{**vars(args), "scenario": scenario, **overrides})
            results += _run_scenario(step_args, _options(step_args) if overrides else opts)
    except RuntimeError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench: interrupted; servers stopped", file=sys.stderr)
        return 130
    try:
        for path in write_reports(args.results):
            print(f"# wrote {path}", file=sys.stderr)
    except OSError as exc:
        print(f"bench: could not write reports: {exc}", file=sys.stderr)
    if args.scenario == "all":
        print("\n## Side by side (this run)\n\n" + side_by_side(results), flush=True)
        print("## Targets (this run)\n\n" + goals_table(check(results)), flush=True)
    if args.scenario == "ci":
        failures = results[0].get("gate_failures") or []
        print("ci gate: " + ("PASSED" if not failures else "FAILED: " + "; ".join(failures)))
        print(json.dumps(results[0], separators=(",", ":")), flush=True)
        return 1 if failures else 0
    primary = [r for r in results if r["target"] == "zapline"] or results
    print(json.dumps(primary[-1], separators=(",", ":")), flush=True)
    return 0
