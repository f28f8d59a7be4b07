"""Results: one JSON line per run appended to results.jsonl, a Markdown table and a PNG plot
rebuilt from that file, and the Zapline/baseline ratio table.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

DEFAULT_RESULTS = Path(__file__).resolve().parent / "results" / "results.jsonl"

_COLUMNS = (
    ("time", "time"), ("scenario", "scenario"), ("target", "target"), ("clients", "clients"),
    ("tenants", "tenants"), ("connected", "connected"), ("connect_failures", "conn fail"),
    ("connects_per_s", "conn/s"), ("rate", "rate/s"), ("delivered", "delivered"), ("expected", "expected"),
    ("lost", "lost"), ("duplicates", "dup"), ("p50_ms", "p50 ms"), ("p95_ms", "p95 ms"),
    ("p99_ms", "p99 ms"), ("max_ms", "max ms"), ("deliveries_per_s", "deliv/s"),
    ("server_cpu_pct", "srv CPU%"), ("server_rss_mb", "srv RSS MB"),
    ("loadgen_cpu_pct", "gen CPU%"), ("max_rate_held", "max rate held"),
    ("server_rss_mb_connected", "srv RSS MB conn"), ("rss_kb_per_conn", "KB/conn"), ("handshake_p99_ms", "hs p99 ms"),
    ("all_received_p99_ms", "all-recv p99 ms"), ("cost_cpu_ms", "CPU ms/webhook"),
    ("median_of", "median of"),
)  # fmt: skip

RATIO_KEYS = (
    "p50_ms", "p95_ms", "p99_ms", "max_ms", "deliveries_per_s", "server_cpu_pct",
    "server_rss_mb", "rss_kb_per_conn", "handshake_p99_ms", "connects_per_s",
    "max_rate_held", "all_received_p50_ms", "all_received_p99_ms",
)  # fmt: skip


def append_result(path: Path, result: dict[str, Any]) -> None:
    """Append ``result`` as one JSON line to ``path`` (creating folders); returns None."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(result, separators=(",", ":")) + "\n")


def load_results(path: Path) -> list[dict[str, Any]]:
    """Return every well-formed JSON object line of ``path`` (none if it does not exist)."""
    rows: list[dict[str, Any]] = []
    if not path.exists():
        return rows
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            rows.append(obj)
    return rows


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def markdown_table(rows: Iterable[dict[str, Any]]) -> str:
    """Return a Markdown table of ``rows``, keeping only the columns some row fills."""
    rows = list(rows)
    cols = [(k, h) for k, h in _COLUMNS if any(r.get(k) is not None for r in rows)]
    lines = ["| " + " | ".join(h for _, h in cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(_cell(r.get(k)) for k, _ in cols) + " |")
    return "\n".join(lines) + "\n"


def ratio_table(zapline: dict[str, Any], baseline: dict[str, Any]) -> str:
    """Return a Markdown table of each shared figure for Zapline, the baseline and their ratio."""
    lines = ["| figure | zapline | baseline | zapline/baseline |", "|---|---|---|---|"]
    for k in RATIO_KEYS:
        a, b = zapline.get(k), baseline.get(k)
        if not isinstance(a, int | float) or not isinstance(b, int | float):
            continue
        ratio = f"{a / b:.3g}" if b else ""
        lines.append(f"| {k} | {_cell(a)} | {_cell(b)} | {ratio} |")
    return "\n".join(lines) + "\n"


# The figures `make bench` sets side by side per scenario (first: the one that matters most).
_COST = ("cost_cpu_ms", "cost_loop_ms", "cost_threads_ms", "cost_http_ms", "cost_fanout_ms",
         "cost_rest_ms", "cost_inbox_commit_ms", "cost_db_write_ms")  # fmt: skip
SIDE_BY_SIDE = {
    "connect": ("connects_per_s", "handshake_p99_ms", "rss_kb_per_conn"),
    "fanout": ("p50_ms", "p99_ms", "lost", "deliveries_per_s", "server_cpu_pct", "loadgen_cpu_pct",
               "server_fanout_p99_le_ms", "slow_inbox_commits", "cost_cpu_ms"),
    "broadcast": ("all_received_p50_ms", "all_received_p99_ms", "server_cpu_pct"),
    "idle": ("server_cpu_pct", "p50_ms", "p99_ms", "server_rss_mb", "loadgen_cpu_pct", *_COST),
    "saturate": ("max_rate_held", "p99_ms", "server_cpu_pct", "loadgen_cpu_pct", *_COST),
    "ci": ("p99_ms", "lost"),
}  # fmt: skip
# Columns of the side-by-side table: target name in results -> heading.
TARGETS = (("zapline", "zapline"), ("node", "node"), ("baseline", "python-socketio"))


def _step_label(r: dict[str, Any]) -> str:
    label = f"{r.get('scenario')} {r.get('clients')} clients"
    if r.get("scenario") in ("fanout", "idle", "ci", "saturate") and r.get("tenants"):
        label += f" / {r['tenants']} tenants"
    if r.get("scenario") in ("fanout", "idle", "ci") and r.get("rate") is not None:
        label += f" @ {_cell(r['rate'])}/s"
    if r.get("median_of"):
        label += f" (median of {r['median_of']})"
    return label


def side_by_side(results: Iterable[dict[str, Any]]) -> str:
    """Return one Markdown table of every step's key figures: Zapline, Node, python-socketio.

    Steps are matched by scenario, clients, tenants and rate; a step run on some targets only
    still gets its row (the other cells stay empty). The ratio columns are Zapline's figure
    over each baseline's. At a saturate step, rate-dependent figures (p99, CPU, cost) are
    those of each target's highest rate held, so compare them with that rate in mind.
    """
    steps: dict[str, dict[str, dict[str, Any]]] = {}
    for r in results:
        steps.setdefault(_step_label(r), {})[str(r.get("target"))] = r
    present = [(k, h) for k, h in TARGETS if any(k in by for by in steps.values())]
    present = present or list(TARGETS[:1])
    others = [(k, h) for k, h in present if k != "zapline"]
    head = ["step", "figure", *(h for _, h in present), *(f"zapline/{h}" for _, h in others)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, by_target in steps.items():
        scenario = next(iter(by_target.values())).get("scenario", "")
        ours = by_target.get("zapline", {})
        for key in SIDE_BY_SIDE.get(str(scenario), ()):
            cells = [_cell(by_target.get(k, {}).get(key)) for k, _ in present]
            if not any(cells):
                continue
            for k, _ in others:
                a, b = ours.get(key), by_target.get(k, {}).get(key)
                ok = isinstance(a, int | float) and isinstance(b, int | float) and b
                cells.append(f"{a / b:.3g}" if ok else "")  # type: ignore[operator]
            lines.append(f"| {label} | {key} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_reports(results: Path, keep: int = 60) -> list[Path]:
    """Rebuild results.md and latency_vs_rate.png beside ``results``; returns the files written.

    The plot is skipped (not an error) when matplotlib is not installed.
    """
    from bench._goals import check, goals_table

    everything = load_results(results)
    rows = everything[-keep:]
    md = results.with_name("results.md")
    md.write_text(
        "# Bench results\n\n## Targets (the newest result of each)\n\n"
        + goals_table(check(everything))
        + "\n## Runs (newest last)\n\n"
        + markdown_table(rows),
        encoding="utf-8",
    )
    written = [md]
    png = results.with_name("latency_vs_rate.png")
    if plot_latency(rows, png):
        written.append(png)
    return written


def plot_latency(rows: list[dict[str, Any]], png: Path) -> bool:
    """Plot p50/p99 latency against webhook rate; returns False when there is nothing to plot
    or matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    # the newest saturate run per (target, clients) is a line; single fan-out runs are points
    lines: dict[str, list[dict[str, Any]]] = {}
    points: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        label = f"{r.get('target')} {r.get('clients')} clients"
        if r.get("scenario") == "saturate" and r.get("steps"):
            # a repeated step (a retry after a miss) is drawn once: its last attempt
            last = {s["rate"]: s for s in r["steps"] if s.get("p99_ms") is not None}
            lines[label] = sorted(last.values(), key=lambda s: s["rate"])
        elif r.get("scenario") in ("fanout", "ci") and r.get("p99_ms") is not None:
            points.setdefault(label, []).append(r)
    if not any(lines.values()) and not points:
        return False
    fig, ax = plt.subplots(figsize=(8, 5))
    for label, steps in sorted(lines.items()):
        xs = [st["rate"] for st in steps]
        (line,) = ax.plot(xs, [st["p99_ms"] for st in steps], marker="o", label=f"{label} p99")
        ax.plot(xs, [st["p50_ms"] for st in steps], marker=".", linestyle="--",
                color=line.get_color(), label=f"{label} p50")  # fmt: skip
    for label, runs in sorted(points.items()):
        ax.scatter([r["rate"] for r in runs], [r["p99_ms"] for r in runs], marker="x",
                   label=f"{label} p99 (fanout)")  # fmt: skip
    ax.axhline(100, color="red", linewidth=0.8, label="p99 limit 100 ms")
    ax.set_xlabel("webhooks/s")
    ax.set_ylabel("delivery latency (ms)")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("Zapline bench: latency vs rate")
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return True
