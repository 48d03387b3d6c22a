"""The single-region look-ups side by side: floor, PostGraphile and the gateway.

One row per look-up (L1, L2) with the three servers' throughput, latency and
CPU per request, and the gateway's throughput as a ratio to PostGraphile's
(each round's ratio, median over rounds, as the ratios to the floor). The
target of the issue: the gateway, with policy, audit log and tracing on, at
least as fast as PostGraphile on both.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

PEER = "postgraphile"
#: The order of the three in each cell: floor / PostGraphile / deltagate.
SIDES = ("floor", PEER, "gateway")
#: The gateway's throughput against PostGraphile's, per look-up.
TARGET = 1.0
#: Cores busy with other work (median over the gateway's and the peer's windows) above
#: which the target is not judged: a Python worker with a span-export thread and a Node
#: process lose throughput to a crowded machine unequally, and the ratio swings from
#: run to run (a quiet machine shows 0.1-0.2).
QUIET_CORES = 0.5


def summarise(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Per look-up the peer answered: medians per side, and the gateway-to-peer ratio."""
    windows: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for cell in results.get("main", ()):
        windows.setdefault((cell["operation"], cell["variant"]), []).append(cell)
    rows = []
    for op in dict.fromkeys(c["operation"] for c in results.get("main", ())):
        if (op, PEER) not in windows:
            continue
        sides = {}
        for variant in SIDES:
            cells = windows.get((op, variant), [])
            sides[variant] = {
                "throughput": _median(c["throughput"] for c in cells),
                "p50_ms": _median(c["latency_ms"]["p50"] for c in cells),
                "p99_ms": _median(c["latency_ms"]["p99"] for c in cells),
                "server_cpu_ms": _median(c["cpu_ms_per_request"]["server"] for c in cells),
                "postgres_cpu_ms": _median(c["cpu_ms_per_request"]["postgres"] for c in cells),
            }
        rows.append(
            {
                "operation": op,
                "sides": sides,
                "gateway_to_peer": _round_ratio(windows, op, lambda c: c["throughput"]),
                "cpu_to_peer": _round_ratio(
                    windows, op, lambda c: c["cpu_ms_per_request"]["server"]
                ),
                "other_cores": _median(
                    c["cpu_cores"]["other"]
                    for variant in ("gateway", PEER)
                    for c in windows.get((op, variant), [])
                ),
            }
        )
    return rows


def _round_ratio(
    windows: dict[tuple[str, str], list[dict[str, Any]]],
    op: str,
    value: Callable[[dict[str, Any]], float],
) -> float | None:
    """The gateway's ``value`` over the peer's, each round on its own, median."""
    peer = {c.get("round", 0): c for c in windows.get((op, PEER), [])}
    ratios = []
    for cell in windows.get((op, "gateway"), []):
        theirs = peer.get(cell.get("round", 0))
        if theirs is not None and value(theirs):
            ratios.append(value(cell) / value(theirs))
    return _median(ratios)


def targets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's target per look-up; not judged on a machine busy with other work."""
    found = []
    for row in rows:
        ratio, other = row["gateway_to_peer"], row["other_cores"]
        target = (
            f"{row['operation']} throughput >= {TARGET}x PostGraphile"
            " (policy, audit and tracing on)"
        )
        if ratio is None:
            found.append({"target": target, "measured": "not measured", "met": None})
        elif other is not None and other > QUIET_CORES:
            cpu = row["cpu_to_peer"]
            measured = (
                f"{ratio:.2f}x, not judged: {other:.2f} cores busy with other work (over"
                f" {QUIET_CORES}); server CPU per request {_x(cpu)} the peer's"
            )
            found.append({"target": target, "measured": measured, "met": None})
        else:
            found.append({"target": target, "measured": ratio, "met": ratio >= TARGET})
    return found


def render(rows: list[dict[str, Any]], table: Any) -> list[str]:
    """The side-by-side table; ``table`` is ``bench.report``'s column formatter."""
    if not rows:
        return []
    lines = [
        "",
        "Single-region look-ups against the peer: floor / PostGraphile / deltagate (req/s,"
        " latency in ms, CPU in ms per request); 'vs peer': deltagate's throughput over"
        " PostGraphile's, and its server CPU per request over PostGraphile's (the steadier"
        " figure on a shared machine), each round's ratio, median",
    ]
    header = ("op", "req/s", "vs peer", "p50", "p99", "srv CPU", "CPU vs peer", "PG CPU")
    body = []
    for row in rows:
        sides = row["sides"]
        ratio = row["gateway_to_peer"]
        body.append(
            (
                row["operation"],
                _three(sides, "throughput", "{:,.0f}"),
                "-" if ratio is None else f"{ratio:.2f}x",
                _three(sides, "p50_ms", "{:.2f}"),
                _three(sides, "p99_ms", "{:.1f}"),
                _three(sides, "server_cpu_ms", "{:.2f}"),
                "-" if row["cpu_to_peer"] is None else f"{row['cpu_to_peer']:.2f}x",
                _three(sides, "postgres_cpu_ms", "{:.2f}"),
            )
        )
    return lines + table(header, body)


def _three(sides: dict[str, dict[str, Any]], name: str, form: str) -> str:
    values = (sides[side][name] for side in SIDES)
    return " / ".join("-" if value is None else form.format(value) for value in values)


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _median(values: Any) -> float | None:
    found = [v for v in values if v is not None]
    return statistics.median(found) if found else None
