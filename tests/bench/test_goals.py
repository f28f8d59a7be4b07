"""The target check and the side-by-side table: pure functions over result dicts."""

from __future__ import annotations

from typing import Any

from bench._goals import GOALS, check, goals_table
from bench._report import side_by_side


def _saturate(target: str, held: int | None, steps: list[dict[str, Any]]) -> dict[str, Any]:
    return {"scenario": "saturate", "target": target, "clients": 1000, "tenants": 10,
            "max_rate_held": held, "steps": steps}  # fmt: skip


def _run() -> list[dict[str, Any]]:
    step = {"rate": 800, "p99_ms": 60.0, "held": True, "loadgen_cpu_pct": 70.0}
    return [
        {"scenario": "connect", "target": "zapline", "clients": 5000, "connected": 5000,
         "rss_kb_per_conn": 7.5, "loadgen_cpu_pct_connect": 40.0},
        {"scenario": "fanout", "target": "zapline", "clients": 10000, "rate": 100.0,
         "p99_ms": 80.0, "lost": 0, "delivered": 1_000_000, "connect_failures": 0},
        {"scenario": "broadcast", "target": "zapline", "clients": 1000,
         "all_received_p99_ms": 12.0, "all_received_p50_ms": 9.0},
        _saturate("zapline", 800, [step, {"rate": 1000, "p99_ms": 130.0, "held": False}]),
        _saturate("baseline", 10, [{"rate": 10, "p99_ms": 50.0, "held": True}]),
    ]  # fmt: skip


def test_each_goal_is_judged_on_its_own_figure() -> None:
    verdicts = {v.goal.name: v for v in check(_run())}
    assert set(verdicts) == {g.name for g in GOALS}
    assert verdicts["fan-out rate"].status == "met"
    assert verdicts["fan-out rate"].value == 800
    assert verdicts["fan-out rate"].loadgen_cpu_pct == 70.0
    assert verdicts["vs python-socketio"].value == 80
    assert verdicts["broadcast"].status == "met"
    assert verdicts["memory"].status == "NOT met"  # 7.5 KB > 6 KB
    assert verdicts["10,000 connections"].status == "met"
    assert verdicts["idle CPU"].status == "not measured"


def test_loss_fails_the_ten_thousand_goal_whatever_the_latency() -> None:
    run = _run()
    run[1] = {**run[1], "lost": 3}
    (verdict,) = [v for v in check(run) if v.goal.name == "10,000 connections"]
    assert verdict.status == "NOT met"


def test_the_newest_result_wins() -> None:
    run = _run() + [{"scenario": "broadcast", "target": "zapline", "clients": 1000,
                     "all_received_p99_ms": 22.0, "all_received_p50_ms": 15.0}]  # fmt: skip
    (verdict,) = [v for v in check(run) if v.goal.name == "broadcast"]
    assert (verdict.value, verdict.status) == (22.0, "NOT met")


def test_ratio_needs_the_baseline() -> None:
    run = [r for r in _run() if r["target"] != "baseline"]
    (verdict,) = [v for v in check(run) if v.goal.name == "vs python-socketio"]
    assert verdict.status == "not measured" and "baseline" in verdict.detail


def test_goals_table_has_a_row_per_goal() -> None:
    table = goals_table(check(_run()))
    rows = table.strip().splitlines()[2:]
    assert len(rows) == len(GOALS)
    assert any("NOT met" in r and r.startswith("| memory") for r in rows)


def test_side_by_side_pairs_targets_of_the_same_step() -> None:
    run = [
        {"scenario": "fanout", "target": "zapline", "clients": 1000, "rate": 100.0,
         "p99_ms": 7.0, "p50_ms": 3.0, "lost": 0},
        {"scenario": "fanout", "target": "baseline", "clients": 1000, "rate": 100.0,
         "p99_ms": 1100.0, "p50_ms": 850.0, "lost": 0},
        {"scenario": "fanout", "target": "zapline", "clients": 10000, "rate": 100.0,
         "p99_ms": 80.0},
    ]  # fmt: skip
    table = side_by_side(run)
    assert "| fanout 1000 clients @ 100/s | p99_ms | 7 | 1100 | 0.00636 |" in table
    assert "| fanout 10000 clients @ 100/s | p99_ms | 80 |  |  |" in table


def test_a_baseline_that_held_nothing_is_said_so() -> None:
    run = [r for r in _run() if r["target"] != "baseline"]
    run.append(_saturate("baseline", None, [{"rate": 5, "p99_ms": 119.0, "held": False}]))
    (verdict,) = [v for v in check(run) if v.goal.name == "vs python-socketio"]
    assert verdict.status == "not measured" and "held none" in verdict.detail


def test_the_issue_16_goals_read_both_shapes_and_node() -> None:
    run = _run() + [
        {"scenario": "saturate", "target": "zapline", "clients": 1000, "tenants": 100,
         "max_rate_held": 600, "p99_ms": 70.0, "cost_cpu_ms": 1.6, "loadgen_cpu_pct": 30.0},
        _saturate("node", 500, [{"rate": 500, "p99_ms": 20.0, "held": True}]),
        {"scenario": "idle", "target": "zapline", "clients": 100, "rate": 10.0,
         "server_cpu_pct": 3.0},
        {"scenario": "idle", "target": "node", "clients": 100, "rate": 10.0,
         "server_cpu_pct": 2.0},
    ]  # fmt: skip
    verdicts = {v.goal.name: v for v in check(run)}
    assert (verdicts["many tenants"].value, verdicts["many tenants"].status) == (600, "NOT met")
    assert verdicts["CPU per webhook"].value == 1.6
    assert verdicts["CPU per webhook"].status == "NOT met"
    assert (verdicts["vs Node (few tenants)"].value, verdicts["vs Node (few tenants)"].status) == (
        1.6,
        "NOT met",
    )  # 800/s against Node's 500/s
    assert verdicts["idle vs Node"].value == 1.5 and verdicts["idle vs Node"].status == "NOT met"


def test_side_by_side_has_a_column_and_a_ratio_per_baseline() -> None:
    run = [
        {"scenario": "saturate", "target": "zapline", "clients": 1000, "tenants": 100,
         "max_rate_held": 600, "median_of": 3},
        {"scenario": "saturate", "target": "node", "clients": 1000, "tenants": 100,
         "max_rate_held": 2000, "median_of": 3},
        {"scenario": "saturate", "target": "baseline", "clients": 1000, "tenants": 100,
         "max_rate_held": 40, "median_of": 3},
    ]  # fmt: skip
    table = side_by_side(run)
    head = table.splitlines()[0]
    assert head == (
        "| step | figure | zapline | node | python-socketio | zapline/node "
        "| zapline/python-socketio |"
    )
    row = "| saturate 1000 clients / 100 tenants (median of 3) | max_rate_held | 600 | 2000 | 40 |"
    assert row + " 0.3 | 15 |" in table
