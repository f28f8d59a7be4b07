"""The cost ledger: server CPU per webhook, and from the server's own metrics where it goes.

A phase gives the server's CPU from /proc (whole process tree, and its main thread alone) and
two scrapes of /metrics. Divided by the webhooks the phase got answered, that is:

- ``cost_cpu_ms``: server CPU per webhook, every thread;
- ``cost_loop_ms``: of it, the main thread's (Zapline's and Node's event loop);
  ``cost_threads_ms``: every other thread's (Zapline: the SQLite worker threads);
- from ``zapline_stage_seconds_total`` (api/metrics.py), per webhook: ``cost_http_ms`` (the
  webhook handler's own CPU), ``cost_fanout_ms`` (CPU of encoding emits and socket writes),
  ``cost_rest_ms`` (the event loop's remainder: processing, job queue and group-commit
  plumbing, Hypercorn's HTTP parsing, scheduling), and the wall time of the worker-thread
  stages ``cost_inbox_commit_ms`` (durable inbox commits, fsync included) and
  ``cost_db_write_ms`` (batched message/contact/conversation writes of the messages that take
  the job path; a webhook of plain messages is stored in its inbox commit and has none). Wall
  per webhook of a shared batch: at load, batches grow and these fall.

A regression shows as the stage whose figure moved. A target without /metrics (the
baselines) gets the /proc figures only. Figures are per webhook answered 2xx.
"""

from __future__ import annotations

from typing import Any

from bench._scrape import Samples

STAGE_METRIC = "zapline_stage_seconds_total"
WEBHOOKS_METRIC = "zapline_webhook_posts_total"
LEDGER_KEYS = (
    "cost_cpu_ms", "cost_loop_ms", "cost_threads_ms", "cost_http_ms", "cost_fanout_ms",
    "cost_rest_ms", "cost_inbox_commit_ms", "cost_db_write_ms",
)  # fmt: skip


def stage_seconds(samples: Samples) -> dict[str, float]:
    """Return the seconds of each stage in one scrape (``{stage: seconds}``)."""
    out: dict[str, float] = {}
    for (name, labels), value in samples.items():
        if name == STAGE_METRIC:
            stage = dict(labels).get("stage")
            if stage is not None:
                out[stage] = value
    return out


def _ok_webhooks(samples: Samples) -> float:
    return samples.get((WEBHOOKS_METRIC, (("result", "ok"),)), 0.0)


def _ms(seconds: float, webhooks: float) -> float:
    return round(1000 * seconds / webhooks, 3)


def cost_ledger(
    before: Samples | None,
    after: Samples | None,
    *,
    webhooks: int,
    cpu_s: float | None,
    main_cpu_s: float | None,
) -> dict[str, Any]:
    """Return the ledger of one phase (keys ``cost_*``; {} when nothing was answered).

    ``webhooks`` is what the load generator got 2xx for; the server's own count of accepted
    webhooks replaces it when both scrapes have one. ``cpu_s``/``main_cpu_s``: the server
    tree's and its main thread's CPU seconds over the phase (None when unknown).
    """
    n = float(webhooks)
    stages: dict[str, float] = {}
    if before is not None and after is not None:
        counted = _ok_webhooks(after) - _ok_webhooks(before)
        if counted > 0:
            n = counted
        s0, s1 = stage_seconds(before), stage_seconds(after)
        stages = {k: v - s0.get(k, 0.0) for k, v in s1.items()}
    if n <= 0:
        return {}
    fig: dict[str, Any] = {"cost_webhooks": int(n)}
    if cpu_s is not None:
        fig["cost_cpu_ms"] = _ms(cpu_s, n)
        if main_cpu_s is not None:
            fig["cost_loop_ms"] = _ms(main_cpu_s, n)
            fig["cost_threads_ms"] = _ms(max(0.0, cpu_s - main_cpu_s), n)
    for stage in ("http", "fanout", "inbox_commit", "db_write"):
        if stage in stages:
            fig[f"cost_{stage}_ms"] = _ms(stages[stage], n)
    if main_cpu_s is not None and "http" in stages and "fanout" in stages:
        rest = main_cpu_s - stages["http"] - stages["fanout"]
        fig["cost_rest_ms"] = _ms(max(0.0, rest), n)
    return fig


def format_ledger(fig: dict[str, Any]) -> str:
    """Return the ledger of a phase as one line ("" when it has none)."""
    if fig.get("cost_cpu_ms") is None:
        return ""
    line = f"CPU/webhook {fig['cost_cpu_ms']} ms"
    if fig.get("cost_loop_ms") is not None:
        line += f" = loop {fig['cost_loop_ms']}"
        parts = [
            f"{label} {fig[key]}"
            for label, key in (
                ("http", "cost_http_ms"),
                ("fan-out", "cost_fanout_ms"),
                ("rest", "cost_rest_ms"),
            )  # fmt: skip
            if fig.get(key) is not None
        ]
        if parts:
            line += f" ({', '.join(parts)})"
        line += f" + threads {fig.get('cost_threads_ms')}"
    walls = [
        f"{label} {fig[key]}"
        for label, key in (
            ("inbox commit", "cost_inbox_commit_ms"),
            ("db writes", "cost_db_write_ms"),
        )  # fmt: skip
        if fig.get(key) is not None
    ]
    if walls:
        line += f"; wall/webhook: {', '.join(walls)} ms"
    return line
