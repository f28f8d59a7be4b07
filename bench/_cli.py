"""``python -m bench <scenario>``: start the server(s), run the scenario, print and record it."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, NoReturn

from bench._goals import check, goals_table
from bench._ledger import LEDGER_KEYS, format_ledger
from bench._procs import ProcessSet, pin_load_generator, pinning
from bench._report import (
    DEFAULT_RESULTS,
    append_result,
    ratio_table,
    side_by_side,
    write_reports,
)
from bench._scenarios import SATURATE_RATES, SCENARIOS, Options
from bench._targets import Target, external_target, start_baseline, start_node, start_zapline

_SUMMARY_KEYS = (
    "clients", "tenants", "rate", "connected", "connect_failures", "delivered", "expected",
    "lost", "duplicates", "misrouted", "p50_ms", "p95_ms", "p99_ms", "max_ms",
    "deliveries_per_s", "server_cpu_pct", "server_rss_mb", "loadgen_cpu_pct", "connects_per_s",
    "handshake_p50_ms", "handshake_p99_ms", "rss_kb_per_conn", "server_rss_mb_connected",
    "server_cpu_pct_connect", "loadgen_cpu_pct_connect", "max_rate_held",
    "all_received_p50_ms", "all_received_p99_ms", "server_fanout_p99_le_ms", "inbox_commits",
    "slow_inbox_commits", "post_failed", "disconnects", "passed", *LEDGER_KEYS, "median_of",
)  # fmt: skip
# --baseline names -> target names in results ("baseline" is python-socketio's older name)
BASELINES = {"python-socketio": "baseline", "node": "node"}
# The figure a run is judged by: the median run of a --repeat is the one whose figure is the
# median (its other figures are then the medians of each figure over the runs).
_PRIMARY = {"saturate": "max_rate_held", "connect": "connects_per_s",
            "broadcast": "all_received_p99_ms"}  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``python -m bench``."""
    p = argparse.ArgumentParser(prog="python -m bench", description="Zapline load harness.")
    p.add_argument("scenario", choices=[*sorted(SCENARIOS), "all"],
                   help="one scenario, or 'all': every scenario but ci, one after another")  # fmt: skip
    p.add_argument("--clients", type=int, help="Socket.IO clients (scenario default)")
    p.add_argument("--tenants", type=int, help="tenants the clients are spread over")
    p.add_argument("--rate", type=float, help="webhooks per second")
    p.add_argument("--duration", type=float, help="seconds of sending per phase")
    p.add_argument("--rates", help="saturate: comma-separated rates to climb instead of the "
                   "adaptive climb (doubling from --start-rate, then +--step from the highest "
                   f"rate held); the old ladder was {','.join(map(str, SATURATE_RATES))}")  # fmt: skip
    p.add_argument("--start-rate", type=float, default=100, help="saturate: first rate")
    p.add_argument("--step", type=float, default=100,
                   help="saturate: the knee is placed within this many webhooks/s")  # fmt: skip
    p.add_argument("--top-rate", type=float, default=6400, help="saturate: highest rate tried")
    p.add_argument("--repeat", type=int, default=1,
                   help="run each target this many times; the result is the median run")  # fmt: skip
    p.add_argument("--messages", type=int, default=20, help="broadcast: messages to send")
    p.add_argument("--contacts", type=int, default=100,
                   help="contacts (conversations) per tenant (ci: always 10)")  # fmt: skip
    p.add_argument(
        "--connections",
        type=int,
        default=32,
        help="keep-alive connections for POSTs (Meta posts concurrently; each connection waits "
        "for its answer, so N connections cap the rate at N / response time)",
    )
    p.add_argument("--target", choices=("zapline", "baseline", "python-socketio", "node"),
                   default="zapline", help="the server to run the scenario on "
                   "(baseline = python-socketio)")  # fmt: skip
    p.add_argument("--baseline", type=_baselines,
                   help="also run these baselines (comma-separated: python-socketio, node) in "
                   "the same run and print them side by side with Zapline")  # fmt: skip
    p.add_argument("--webhook-port", choices=("socket", "api"), default="socket",
                   help="zapline: post webhooks to the Socket.IO port (the engine's listener, "
                   "the default and cheaper path) or to the API port (Hypercorn); the "
                   "baselines take them on their one port either way")  # fmt: skip
    p.add_argument("--api-url", help="use a running server's API at this URL (no server started)")
    p.add_argument("--socket-url", help="the running server's Socket.IO URL (default: --api-url)")
    p.add_argument("--tenants-file", help='running server: JSON [{"id", "phoneNumberId"}, ...]')
    p.add_argument("--server-pid", type=int, help="running server: pid to read CPU/RSS from")
    p.add_argument(
        "--workdir", type=Path, help="keep server logs and database here (default: temp)"
    )
    p.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="JSONL file to append to")
    return p


def _baselines(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in BASELINES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown baseline {unknown[0]!r} (python-socketio, node)")
    return names


# Every step of `make bench`, in the order they run: a scenario and the options it overrides
# (the figures the product's targets are read from; see bench/_goals.py). The two shapes of a
# desk are the saturate steps: few tenants with many agents each (10 tenants: fan-out) and
# many tenants with few agents (100 tenants); they and idle are medians of three runs.
ALL_STEPS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("connect", {"clients": 1000}),
    ("connect", {"clients": 5000}),
    ("connect", {"clients": 10000}),
    ("fanout", {}),
    ("fanout", {"clients": 10000, "rate": 100.0}),
    ("broadcast", {}),
    ("idle", {"repeat": 3}),
    ("saturate", {"tenants": 10, "repeat": 3, "duration": 5.0}),
    ("saturate", {"tenants": 100, "repeat": 3, "duration": 5.0}),
)
# python-socketio fails the default climb's first step (100/s): climb it from lower.
BASELINE_SATURATE_RATES = [5, 10, 20, 40, 80, 100, 200]


def _options(args: argparse.Namespace) -> Options:
    opts = Options(
        clients=args.clients, tenants=args.tenants, rate=args.rate, duration=args.duration,
        messages=args.messages, contacts=args.contacts, connections=args.connections,
        start_rate=args.start_rate, step_rate=args.step, top_rate=args.top_rate,
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
        if args.api_url and name == "zapline":
            target = external_target(args.api_url, args.socket_url or args.api_url, tenants,
                                     args.tenants_file, args.server_pid,
                                     args.webhook_port)  # fmt: skip
        elif name == "baseline":
            target = start_baseline(procs, Path(tmp), tenants)
        elif name == "node":
            target = start_node(procs, Path(tmp), tenants)
        else:
            target = start_zapline(procs, Path(tmp), tenants, args.webhook_port)
        print(f"# {args.scenario} on {target.name}: api {target.api_url}, socket "
              f"{target.socket_url}, webhooks to {target.post_url}, server pid {target.pid}",
              file=sys.stderr, flush=True)  # fmt: skip
        fig = _run_async(SCENARIOS[args.scenario](target, opts))
    head = {
        "scenario": args.scenario,
        "target": target.name,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cores": os.cpu_count(),
        "pinned": pinning(),
        "python": platform.python_version(),
    }
    if "webhook_port" in target.meta:
        head["webhook_port"] = target.meta["webhook_port"]
    return {**head, **fig}


def _summary(result: dict[str, Any]) -> str:
    parts = [f"{k}={result[k]}" for k in _SUMMARY_KEYS if result.get(k) is not None]
    return f"{result['scenario']} [{result['target']}] " + " ".join(parts)


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Return the median of several runs of one scenario on one target.

    The run whose primary figure (max rate held, p99, ...) is the median is the base (its
    steps, errors, texts); every top-level number is then replaced by its median over the
    runs that have it (of integers the lower median, so counts stay counts). ``median_of``
    says how many runs; ``runs_primary`` lists each run's primary figure. One run is
    returned as it is.
    """
    if len(runs) == 1:
        return runs[0]
    key = _PRIMARY.get(str(runs[0].get("scenario")), "p99_ms")
    ranked = sorted(runs, key=lambda r: (r.get(key) is None, r.get(key) or 0))
    out = dict(ranked[(len(ranked) - 1) // 2])
    for k, v in out.items():
        if isinstance(v, int | float) and not isinstance(v, bool):
            values = [r[k] for r in runs if isinstance(r.get(k), int | float)]
            if all(isinstance(x, int) for x in values):  # counts stay counts
                out[k] = statistics.median_low(values)
            else:
                out[k] = round(statistics.median(values), 3)
    out["median_of"] = len(runs)
    out["runs_primary"] = [r.get(key) for r in runs]
    return out


def _on_sigterm(signum: int, frame: object) -> NoReturn:
    raise SystemExit(128 + signum)  # unwinds through ProcessSet, which stops the servers


def _run_scenario(args: argparse.Namespace, opts: Options) -> list[dict[str, Any]]:
    """Run ``args.scenario`` on the target (and the baselines), ``args.repeat`` times each;
    print and record every run, and return the median run of each target."""
    target = "baseline" if args.target == "python-socketio" else args.target
    names = [target]
    for baseline in args.baseline or ():
        if BASELINES[baseline] not in names:
            names.append(BASELINES[baseline])
    results: list[dict[str, Any]] = []
    for name in names:
        run_opts = opts
        if name == "baseline" and args.scenario == "saturate" and not args.rates:
            run_opts = dataclasses.replace(opts, rates=list(BASELINE_SATURATE_RATES))
        runs = []
        for attempt in range(max(1, args.repeat)):
            if args.repeat > 1:
                print(f"# {args.scenario} on {name}: run {attempt + 1} of {args.repeat}",
                      file=sys.stderr, flush=True)  # fmt: skip
            result = run_target(name, args, run_opts)
            append_result(args.results, result)
            runs.append(result)
            print(_summary(result), flush=True)
            ledger = format_ledger(result)
            if ledger:
                print(f"  cost ledger [{result['target']}]: {ledger}", flush=True)
        median = median_run(runs)
        if len(runs) > 1:
            append_result(args.results, median)
            print("median " + _summary(median), flush=True)
        results.append(median)
    if len(results) == 2:
        print(ratio_table(results[0], results[1]), flush=True)
    elif len(results) > 2:
        print(side_by_side(results), flush=True)
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
