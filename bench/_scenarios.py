"""The bench scenarios: each takes a running Target and returns one flat result dict.

A measured phase is: fresh ledger, gc frozen and off, webhooks paced for the phase, then a
drain until every expected delivery arrived or nothing arrived for ``quiet_s`` (what is
missing then is lost). Server CPU%/RSS and the load generator's own CPU% are taken over
exactly that phase so a figure is never read without the cost that produced it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import time
import uuid
from dataclasses import dataclass
from typing import Any

from bench._client import ClientPool
from bench._ledger import LEDGER_KEYS, cost_ledger, format_ledger
from bench._procs import cpu_percent, cpu_seconds, self_cpu
from bench._scrape import scrape, server_figures
from bench._stats import DeliveryLedger, percentile
from bench._targets import Target
from bench._webhook import HttpPoster, WebhookPlan, send_paced

P99_LIMIT_MS = 100.0
LOADGEN_BUSY_PCT = 85.0
# The ladder before the adaptive climb (`--rates` gives any ladder).
SATURATE_RATES = (100, 200, 400, 800, 1000, 1200, 1600, 2000, 2400, 3200)


@dataclass
class Options:
    """Scenario knobs; None means the scenario's own default."""

    clients: int | None = None
    tenants: int | None = None
    rate: float | None = None
    duration: float | None = None
    rates: list[int] | None = None  # saturate: a fixed ladder; None: the adaptive climb
    start_rate: float = 100
    step_rate: float = 100
    top_rate: float = 6400
    messages: int = 20
    contacts: int = 100  # a real desk creates conversations as it goes: 100 per tenant
    connections: int = 32
    concurrency: int = 200
    quiet_s: float = 3.0
    step_retries: int = 1
    warmup_s: float = 3.0
    drain_timeout_s: float = 30.0


def _pick(value: float | None, default: float) -> float:
    return default if value is None else value


async def _connect(
    target: Target, clients: int, tenants: int, opts: Options
) -> tuple[ClientPool, dict[str, Any]]:
    tokens = [(i % tenants, target.token(i % tenants, i)) for i in range(clients)]
    pool = ClientPool(target.socket_url, tokens)
    before, c0 = target.sample(), self_cpu()
    report = await pool.connect_all(concurrency=opts.concurrency)
    c1 = self_cpu()
    if report.connected == 0:
        await pool.close_all()
        raise RuntimeError(f"no client could connect to {target.socket_url}: {dict(report.errors)}")
    await asyncio.sleep(1.0)  # let the server settle so RSS is not read mid-allocation
    after = target.sample()
    hs = sorted(report.handshake_ns)
    fig: dict[str, Any] = {
        "clients": clients,
        "connected": report.connected,
        "connect_failures": report.failures,
        "connect_errors": dict(report.errors.most_common(3)),
        "connect_s": round(report.wall_s, 3),
        "connects_per_s": round(report.connected / report.wall_s, 1) if report.wall_s else None,
        "handshake_p50_ms": _ms(percentile(hs, 50)),
        "handshake_p99_ms": _ms(percentile(hs, 99)),
        "loadgen_cpu_pct_connect": round(100 * (c1[1] - c0[1]) / (c1[0] - c0[0]), 1),
    }
    if before is not None and after is not None:
        fig["server_rss_mb_idle"] = round(before.rss_bytes / 2**20, 1)
        fig["server_rss_mb_connected"] = round(after.rss_bytes / 2**20, 1)
        if report.connected:
            fig["rss_kb_per_conn"] = round(
                (after.rss_bytes - before.rss_bytes) / report.connected / 1024, 2
            )
        fig["server_cpu_pct_connect"] = cpu_percent(before, after)
    return pool, fig


def _ms(ns: float | None) -> float | None:
    return None if ns is None else round(ns / 1e6, 3)


async def _settle(ledger: DeliveryLedger, quiet_s: float, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    last, last_change = -1, time.monotonic()
    while time.monotonic() < deadline and ledger.delivered < ledger.expected:
        now_count = ledger.delivered + ledger.duplicates + ledger.misrouted
        if now_count != last:
            last, last_change = now_count, time.monotonic()
        elif time.monotonic() - last_change > quiet_s:
            return
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)  # a short grace so a duplicate right after the last delivery counts


async def _phase(
    target: Target, pool: ClientPool, plan: WebhookPlan, tenants: int, rate: float,
    duration: float, first_seq: int, opts: Options,
) -> tuple[dict[str, Any], int]:  # fmt: skip
    count = max(1, round(rate * duration))
    ledger = DeliveryLedger(pool.clients_per_tenant(tenants))
    disconnects0 = pool.disconnects
    gc.collect()
    gc.freeze()
    gc.disable()
    pool.ledger = ledger
    m0 = scrape(target.api_url)  # None for a target without /metrics (the baseline)
    s0, c0 = target.sample(), self_cpu()
    t_first = time.time_ns()
    try:
        async with HttpPoster(target.post_url, connections=opts.connections) as poster:
            next_seq = await send_paced(
                poster, ledger, plan, rate=rate, count=count, first_seq=first_seq
            )
            if not await poster.drain(opts.drain_timeout_s):
                print(f"  {target.name}: {poster.unanswered} webhook posts still unanswered "
                      f"after {opts.drain_timeout_s:g} s; counted as failed", flush=True)  # fmt: skip
            await _settle(ledger, opts.quiet_s, opts.drain_timeout_s)
    finally:
        pool.ledger = None
        gc.enable()
        gc.unfreeze()
    s1, c1 = target.sample(), self_cpu()
    m1 = scrape(target.api_url) if m0 is not None else None
    fig = ledger.summary()
    fig.update(server_figures(m0, m1))
    last = max((ledger.last_receive_ns(s) or 0) for s in range(first_seq, next_seq))
    span_s = (last - t_first) / 1e9 if last > t_first else 0.0
    fig.update(
        rate=rate,
        duration_s=duration,
        deliveries_per_s=round(ledger.delivered / span_s, 1) if span_s else 0.0,
        post_failed=poster.failed,
        post_unanswered=poster.unanswered,
        post_statuses={str(k): v for k, v in poster.statuses.items()},
        disconnects=pool.disconnects - disconnects0,
        loadgen_cpu_pct=round(100 * (c1[1] - c0[1]) / (c1[0] - c0[0]), 1),
    )
    cpu_s = main_s = None
    if s0 is not None and s1 is not None:
        fig["server_cpu_pct"] = cpu_percent(s0, s1)
        fig["server_rss_mb"] = round(s1.rss_bytes / 2**20, 1)
        cpu_s, main_s = cpu_seconds(s0, s1)
    answered = sum(n for status, n in poster.statuses.items() if 200 <= status < 300)
    fig.update(cost_ledger(m0, m1, webhooks=answered, cpu_s=cpu_s, main_cpu_s=main_s))
    # past this the generator, not the server, may be what limits the figures
    fig["loadgen_saturated"] = fig["loadgen_cpu_pct"] >= LOADGEN_BUSY_PCT
    return fig, next_seq


def gate_failures(fig: dict[str, Any]) -> list[str]:
    """Return why a phase misses the product promise (empty when it holds)."""
    why = [
        f"{k} {fig[k]}" for k in ("lost", "duplicates", "misrouted", "post_failed") if fig.get(k)
    ]
    if fig.get("connect_failures"):
        why.append(f"connect_failures {fig['connect_failures']}")
    p99 = fig.get("p99_ms")
    if p99 is None or p99 >= P99_LIMIT_MS:
        why.append(f"p99 {p99} ms (limit < {P99_LIMIT_MS:g} ms)")
    return why


def _held(fig: dict[str, Any]) -> bool:
    return not gate_failures(fig)


def _plan(target: Target, tenants: int, opts: Options) -> WebhookPlan:
    return WebhookPlan(target.phone_number_ids[:tenants], opts.contacts, uuid.uuid4().hex[:8])


async def connect(target: Target, opts: Options) -> dict[str, Any]:
    """Connect N clients (default 1000) and close them; returns connect rate, handshake, RSS/conn."""
    clients = int(_pick(opts.clients, 1000))
    tenants = int(_pick(opts.tenants, 10))
    pool, fig = await _connect(target, clients, tenants, opts)
    await pool.close_all()
    return {"tenants": tenants, **fig}


async def fanout(target: Target, opts: Options, *, clients: int = 1000, rate: float = 100,
                 duration: float = 10) -> dict[str, Any]:  # fmt: skip
    """Run one fan-out phase (defaults 1000 clients / 10 tenants, 100/s for 10 s); returns it."""
    clients = int(_pick(opts.clients, clients))
    tenants = min(clients, int(_pick(opts.tenants, 10)))
    rate, duration = _pick(opts.rate, rate), _pick(opts.duration, duration)
    pool, conn = await _connect(target, clients, tenants, opts)
    try:
        fig, _ = await _phase(
            target, pool, _plan(target, tenants, opts), tenants, rate, duration, 1, opts
        )
    finally:
        await pool.close_all()
    return {"clients": clients, "tenants": tenants, "connect_failures": conn["connect_failures"],
            "rss_kb_per_conn": conn.get("rss_kb_per_conn"), **fig}  # fmt: skip


def next_rate(steps: list[tuple[float, bool]], *, start: float, step: float,
              top: float) -> float | None:  # fmt: skip
    """Return the adaptive climb's next rate after ``steps`` ((rate, held) so far), or None.

    Doubling from ``start`` until a rate is missed (or ``top``), then up again from the highest
    held rate by ``step`` until one is missed: the knee is placed within ``step`` in a few
    steps more than a doubling climb, not in (knee / step) steps.
    """
    if not steps:
        return start
    held = [r for r, ok in steps if ok]
    missed = [r for r, ok in steps if not ok]
    if not held:
        return None  # the first rate already misses: the knee is below the climb
    best = max(held)
    if not missed:
        return min(best * 2, top) if best < top else None
    nxt = best + step
    return nxt if nxt < min(missed) else None


async def saturate(target: Target, opts: Options) -> dict[str, Any]:
    """Raise the rate step by step until p99 >= 100 ms or any loss; returns every step.

    The rates are ``opts.rates`` in order, or (None) the adaptive climb of ``next_rate``. An
    unmeasured warm-up of ``opts.warmup_s`` seconds at the first rate comes first; a step
    that misses is repeated ``opts.step_retries`` times before it counts as missed.
    """
    clients = int(_pick(opts.clients, 1000))
    tenants = min(clients, int(_pick(opts.tenants, 10)))
    duration = _pick(opts.duration, 10)
    pool, conn = await _connect(target, clients, tenants, opts)
    plan = _plan(target, tenants, opts)
    steps: list[dict[str, Any]] = []
    outcomes: list[tuple[float, bool]] = []
    ladder = list(opts.rates) if opts.rates is not None else None
    first = ladder[0] if ladder else opts.start_rate
    seq = 1
    try:
        if opts.warmup_s > 0 and first:
            # Unmeasured: the first traffic after 1000 connects pays for their garbage (a full
            # collection of python-socketio's heap alone is 110-150 ms), not for the rate.
            _, seq = await _phase(target, pool, plan, tenants, first, opts.warmup_s,
                                  seq, opts)  # fmt: skip
            await asyncio.sleep(1.0)
        while True:
            if ladder is not None:
                if len(outcomes) == len(ladder) or (outcomes and not outcomes[-1][1]):
                    break
                rate: float | None = ladder[len(outcomes)]
            else:
                rate = next_rate(outcomes, start=opts.start_rate, step=opts.step_rate,
                                 top=opts.top_rate)  # fmt: skip
            if rate is None:
                break
            # A step that misses is run once more before it counts: on a shared machine one
            # stall (a full GC of the baseline, a slow fsync) can break a single step's p99.
            for attempt in range(1 + opts.step_retries):
                fig, seq = await _phase(target, pool, plan, tenants, rate, duration, seq, opts)
                fig["held"] = _held(fig)
                fig["attempt"] = attempt + 1
                steps.append(fig)
                busy = " (saturated)" if fig["loadgen_saturated"] else ""
                again = f" (attempt {attempt + 1})" if attempt else ""
                print(f"  saturate {target.name} {tenants} tenants {rate:g}/s{again}: p99 "
                      f"{fig['p99_ms']} ms, lost {fig['lost']}, server CPU "
                      f"{fig.get('server_cpu_pct')}%, load generator CPU "
                      f"{fig['loadgen_cpu_pct']}%{busy}; {format_ledger(fig)}", flush=True)  # fmt: skip
                await asyncio.sleep(1.0)
                if fig["held"]:
                    break
            outcomes.append((rate, fig["held"]))
    finally:
        await pool.close_all()
    keys = ("rate", "p50_ms", "p95_ms", "p99_ms", "max_ms", "lost", "duplicates",
            "deliveries_per_s", "server_cpu_pct", "server_rss_mb", "loadgen_cpu_pct", "loadgen_saturated",
            "held", "attempt", "slow_inbox_commits", "server_fanout_p99_le_ms",
            *LEDGER_KEYS)  # fmt: skip
    held_rates = [r for r, ok in outcomes if ok]
    held = max(held_rates) if held_rates else None
    result: dict[str, Any] = {
        "clients": clients, "tenants": tenants, "contacts": opts.contacts,
        "connect_failures": conn["connect_failures"], "max_rate_held": held,
        "steps": [{k: s.get(k) for k in keys} for s in steps],
    }  # fmt: skip
    top = next((s for s in reversed(steps) if s["held"] and s["rate"] == held), None)
    if top is not None:  # the figures at the highest rate held, beside the rate itself
        for k in ("p99_ms", "server_cpu_pct", "loadgen_cpu_pct", *LEDGER_KEYS):
            result[k] = top.get(k)
    return result


async def broadcast(target: Target, opts: Options) -> dict[str, Any]:
    """Send messages one at a time to 1000 clients of one tenant; returns all-received times."""
    clients = int(_pick(opts.clients, 1000))
    pool, conn = await _connect(target, clients, 1, opts)
    plan = _plan(target, 1, opts)
    loop = asyncio.get_running_loop()
    waiting: dict[int, asyncio.Future[int]] = {}

    def complete(seq: int, last_ns: int) -> None:
        fut = waiting.get(seq)
        if fut is not None and not fut.done():
            fut.set_result(last_ns)

    ledger = DeliveryLedger(pool.clients_per_tenant(1), on_complete=complete)
    all_ms: list[float] = []
    timeouts = 0
    m0 = scrape(target.api_url)
    s0, c0 = target.sample(), self_cpu()
    pool.ledger = ledger
    try:
        async with HttpPoster(target.post_url, connections=1) as poster:
            for i in range(opts.messages):
                seq = i + 1
                waiting[seq] = loop.create_future()
                sent = time.time_ns()
                _, body = plan.body(i, seq, sent)
                ledger.sent(seq, 0)
                poster.submit(body)
                try:
                    async with asyncio.timeout(10):
                        last = await waiting[seq]
                    all_ms.append((last - sent) / 1e6)
                except TimeoutError:
                    timeouts += 1
            await _settle(ledger, 0.5, 5)
    finally:
        pool.ledger = None
        await pool.close_all()
    s1, c1 = target.sample(), self_cpu()
    m1 = scrape(target.api_url) if m0 is not None else None
    all_ms.sort()
    fig = ledger.summary()
    fig.update(server_figures(m0, m1))
    fig.update(
        clients=clients, connect_failures=conn["connect_failures"], messages=opts.messages,
        incomplete=timeouts, post_failed=poster.failed,
        all_received_p50_ms=_round(percentile(all_ms, 50)),
        all_received_p99_ms=_round(percentile(all_ms, 99)),
        loadgen_cpu_pct=round(100 * (c1[1] - c0[1]) / (c1[0] - c0[0]), 1),
    )  # fmt: skip
    if s0 is not None and s1 is not None:
        fig["server_cpu_pct"] = cpu_percent(s0, s1)
        fig["server_rss_mb"] = round(s1.rss_bytes / 2**20, 1)
    return fig


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 3)


async def idle(target: Target, opts: Options) -> dict[str, Any]:
    """100 clients, 10 msg/s in all for 20 s; returns the server's CPU% and RSS among the rest."""
    return await fanout(target, opts, clients=100, rate=10, duration=20)


async def ci(target: Target, opts: Options) -> dict[str, Any]:
    """The CI gate run (1000 clients, 10 tenants, 100/s, 10 s); returns it with ``passed``.

    Its 10 contacts per tenant are the gate's own (as it was before the 100 of the shapes).
    """
    fig = await fanout(target, dataclasses.replace(opts, contacts=10), clients=1000, rate=100,
                       duration=10)  # fmt: skip
    fig["gate_failures"] = gate_failures(fig)
    fig["passed"] = not fig["gate_failures"]
    return fig


SCENARIOS = {
    "connect": connect,
    "fanout": fanout,
    "saturate": saturate,
    "broadcast": broadcast,
    "idle": idle,
    "ci": ci,
}
