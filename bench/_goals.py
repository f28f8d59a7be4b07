"""The product's performance targets, checked against the results of one bench run.

Each goal reads the newest result of one scenario (and, for the ratio, the baseline's) and says
met / not met / not measured, with the figure and the load generator's CPU beside it, so a
figure is never read without knowing whether the generator, not the server, was the limit.
The thresholds are the targets of the bench issue (server on one core, durable path, SQLite).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

Result = dict[str, Any]


@dataclass(frozen=True)
class Goal:
    """One target: a name, the rule in words, and how to read it off the results."""

    name: str
    rule: str
    measure: Callable[[Sequence[Result]], tuple[float | None, float | None, str]]
    holds: Callable[[float], bool]


@dataclass(frozen=True)
class Verdict:
    """A goal's outcome in one run: the figure, whether it holds, and the generator's CPU%."""

    goal: Goal
    value: float | None
    loadgen_cpu_pct: float | None
    detail: str

    @property
    def status(self) -> str:
        """Return "met", "NOT met" or "not measured"."""
        if self.value is None:
            return "not measured"
        return "met" if self.goal.holds(self.value) else "NOT met"


def _newest(
    results: Sequence[Result], scenario: str, target: str = "zapline", **match: Any
) -> Result | None:
    for r in reversed(results):
        if r.get("scenario") != scenario or r.get("target") != target:
            continue
        if all(r.get(k) == v for k, v in match.items()):
            return r
    return None


def _fanout_held(results: Sequence[Result]) -> tuple[float | None, float | None, str]:
    r = _newest(results, "saturate", clients=1000, tenants=10)
    if r is None:
        return None, None, ""
    held = [s for s in r.get("steps", []) if s.get("held")]
    top = held[-1] if held else None
    gen = top.get("loadgen_cpu_pct") if top else None
    detail = f"p99 {top['p99_ms']} ms at {top['rate']}/s" if top else "no step held"
    return float(r.get("max_rate_held") or 0), gen, detail


def _vs_baseline(results: Sequence[Result]) -> tuple[float | None, float | None, str]:
    ours = _newest(results, "saturate", clients=1000, tenants=10)
    theirs = _newest(results, "saturate", "baseline", clients=1000, tenants=10)
    if ours is None or theirs is None:
        return None, None, "needs --baseline python-socketio" if ours else ""
    if not theirs.get("max_rate_held"):
        lowest = min((st["rate"] for st in theirs.get("steps", [])), default=None)
        return None, None, f"the baseline held none of its rates (lowest {lowest}/s)"
    a, b = ours.get("max_rate_held") or 0, theirs["max_rate_held"]
    return a / b, None, f"{a}/s vs {b}/s held"


def _broadcast(results: Sequence[Result]) -> tuple[float | None, float | None, str]:
    r = _newest(results, "broadcast", clients=1000)
    if r is None or r.get("all_received_p99_ms") is None:
        return None, None, ""
    return r["all_received_p99_ms"], r.get("loadgen_cpu_pct"), f"p50 {r['all_received_p50_ms']} ms"


def _memory(results: Sequence[Result]) -> tuple[float | None, float | None, str]:
    r = _newest(results, "connect", clients=5000)
    if r is None or r.get("rss_kb_per_conn") is None:
        return None, None, ""
    return r["rss_kb_per_conn"], r.get("loadgen_cpu_pct_connect"), f"{r['connected']} connected"


def _ten_thousand(results: Sequence[Result]) -> tuple[float | None, float | None, str]:
    r = _newest(results, "fanout", clients=10000, rate=100)
    if r is None or r.get("p99_ms") is None:
        return None, None, ""
    if r.get("lost") or r.get("connect_failures"):
        return float("inf"), r.get("loadgen_cpu_pct"), f"lost {r.get('lost')}"
    detail = f"{r['delivered']} delivered, 0 lost"
    if r.get("slow_inbox_commits") is not None:
        detail += f", {r['slow_inbox_commits']} inbox commits over 25 ms"
    return r["p99_ms"], r.get("loadgen_cpu_pct"), detail


def _idle(results: Sequence[Result]) -> tuple[float | None, float | None, str]:
    r = _newest(results, "idle", clients=100)
    if r is None or r.get("server_cpu_pct") is None:
        return None, None, ""
    return r["server_cpu_pct"], r.get("loadgen_cpu_pct"), f"{r['rate']:g} webhooks/s"


def _many_tenants_held(results: Sequence[Result]) -> tuple[float | None, float | None, str]:
    r = _newest(results, "saturate", clients=1000, tenants=100)
    if r is None:
        return None, None, ""
    detail = f"p99 {r.get('p99_ms')} ms" if r.get("max_rate_held") else "no step held"
    return float(r.get("max_rate_held") or 0), r.get("loadgen_cpu_pct"), detail


def _cpu_per_webhook(results: Sequence[Result]) -> tuple[float | None, float | None, str]:
    r = _newest(results, "saturate", clients=1000, tenants=100)
    if r is None or r.get("cost_cpu_ms") is None:
        return None, None, ""
    return r["cost_cpu_ms"], r.get("loadgen_cpu_pct"), f"at {r.get('max_rate_held')}/s held"


def _vs_node(results: Sequence[Result]) -> tuple[float | None, float | None, str]:
    ours = _newest(results, "saturate", clients=1000, tenants=10)
    theirs = _newest(results, "saturate", "node", clients=1000, tenants=10)
    if ours is None or theirs is None:
        return None, None, "needs --baseline node" if ours else ""
    if not theirs.get("max_rate_held"):
        return None, None, "Node held none of its rates"
    a, b = ours.get("max_rate_held") or 0, theirs["max_rate_held"]
    return a / b, None, f"{a}/s vs {b}/s held"


def _idle_vs_node(results: Sequence[Result]) -> tuple[float | None, float | None, str]:
    ours = _newest(results, "idle", clients=100)
    theirs = _newest(results, "idle", "node", clients=100)
    if ours is None or theirs is None or not theirs.get("server_cpu_pct"):
        return None, None, "needs --baseline node" if ours else ""
    a, b = ours.get("server_cpu_pct") or 0.0, theirs["server_cpu_pct"]
    return a / b, ours.get("loadgen_cpu_pct"), f"{a} % vs {b} %"


GOALS: tuple[Goal, ...] = (
    Goal("fan-out rate", ">= 800 webhooks/s held at 1000 clients / 10 tenants (p99 <= 100 ms, "
         "0 lost)", _fanout_held, lambda v: v >= 800),
    Goal("vs python-socketio", ">= 20x the baseline's highest rate held, same run",
         _vs_baseline, lambda v: v >= 20),
    Goal("broadcast", "1000 clients of one room all have a message: p99 <= 15 ms",
         _broadcast, lambda v: v <= 15),
    Goal("memory", "<= 6 KB per idle websocket at 5000 connections", _memory, lambda v: v <= 6),
    Goal("10,000 connections", "10000 clients at 100 webhooks/s: p99 < 100 ms, 0 lost",
         _ten_thousand, lambda v: v < 100),
    Goal("idle CPU", "<= 0.5 % CPU, 100 clients at 10 webhooks/s", _idle, lambda v: v <= 0.5),
    # issue 16: the durable path as cheap as Node's socket.io doing the fan-out alone
    Goal("many tenants", ">= 1000 webhooks/s held at 1000 clients / 100 tenants",
         _many_tenants_held, lambda v: v >= 1000),
    Goal("CPU per webhook", "<= 0.5 ms server CPU per webhook at the highest rate held, "
         "100 tenants", _cpu_per_webhook, lambda v: v <= 0.5),
    Goal("vs Node (few tenants)", ">= 2x Node's socket.io highest rate held at 10 tenants, "
         "same run", _vs_node, lambda v: v >= 2),
    Goal("idle vs Node", "idle CPU <= Node's (ratio <= 1)", _idle_vs_node, lambda v: v <= 1),
)  # fmt: skip


def check(results: Sequence[Result]) -> list[Verdict]:
    """Return one Verdict per goal, read off ``results`` (oldest first, newest wins)."""
    out = []
    for goal in GOALS:
        value, gen, detail = goal.measure(results)
        out.append(Verdict(goal, value, gen, detail))
    return out


def goals_table(verdicts: Sequence[Verdict]) -> str:
    """Return a Markdown table: goal, rule, measured figure, status, load generator CPU%."""
    lines = ["| goal | target | measured | status | gen CPU% |", "|---|---|---|---|---|"]
    for v in verdicts:
        figure = "" if v.value is None else f"{v.value:.4g}"
        if v.detail:
            figure = f"{figure} ({v.detail})" if figure else v.detail
        gen = "" if v.loadgen_cpu_pct is None else f"{v.loadgen_cpu_pct:g}"
        lines.append(f"| {v.goal.name} | {v.goal.rule} | {figure} | {v.status} | {gen} |")
    return "\n".join(lines) + "\n"
