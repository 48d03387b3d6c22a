"""The run's results as tables, ratios and targets.

``summarise`` reduces the raw rows (one per timed window) to one row per
(operation, variant), medians over rounds, and computes the ratios to the
floor and the issue's targets; ``render`` prints them. Both work on the JSON
the run saves, so an old results file can be printed again:
``python -m bench.report bench/results/latest.json``.
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from bench import peer_report

#: The targets of the second performance round, as ratios of the gateway to the floor in
#: the same run (Q2's p99 at the main table's size; the scale table shows 50–100).
TARGETS = {
    "Q1": {"throughput": 0.7, "p50": 1.5},
    "Q2": {"throughput": 0.6, "p50": 1.8, "p99": 2.0},
    "Q3": {"throughput": 0.65, "p50": 1.6},
}


def summarise(results: dict[str, Any]) -> dict[str, Any]:
    check = results.get("check", {})
    rows = []
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in results.get("main", ()):
        groups.setdefault((row["operation"], row["variant"]), []).append(row)
    for (op, variant), cells in groups.items():
        queries = check.get(op, {}).get("backend_queries", {}).get(variant, [])
        rows.append(
            {
                "operation": op,
                "variant": variant,
                "rounds": len(cells),
                "throughput": _median(c["throughput"] for c in cells),
                "p50_ms": _median(c["latency_ms"]["p50"] for c in cells),
                "p99_ms": _median(c["latency_ms"]["p99"] for c in cells),
                "server_cpu_ms": _median(c["cpu_ms_per_request"]["server"] for c in cells),
                "postgres_cpu_ms": _median(c["cpu_ms_per_request"]["postgres"] for c in cells),
                "loadgen_cpu_ms": _median(c["cpu_ms_per_request"]["loadgen"] for c in cells),
                "collector_cpu_ms": _median(
                    c["cpu_ms_per_request"].get("collector", 0.0) for c in cells
                ),
                "other_cores": _median(c["cpu_cores"]["other"] for c in cells),
                "errors": sum(c["errors"] for c in cells),
                "backend_queries": _queries(queries),
            }
        )
    # Each round's ratio pairs windows measured minutes apart at most, so a slow
    # change in the machine's other load cancels out; the median of those is reported.
    windows = {
        (c["operation"], c["variant"], c.get("round", 0)): c for c in results.get("main", ())
    }
    ratios: dict[str, dict[str, Any]] = {}
    for op, variant, round_ in windows:
        floor = windows.get((op, "floor", round_))
        if variant == "floor" or floor is None:
            continue
        mine = windows[op, variant, round_]
        entry = ratios.setdefault(op, {}).setdefault(variant, {})
        for name, value in (
            ("throughput", _ratio(mine["throughput"], floor["throughput"])),
            ("p50", _ratio(mine["latency_ms"]["p50"], floor["latency_ms"]["p50"])),
            ("p99", _ratio(mine["latency_ms"]["p99"], floor["latency_ms"]["p99"])),
            (
                "server_cpu",
                _ratio(mine["cpu_ms_per_request"]["server"], floor["cpu_ms_per_request"]["server"]),
            ),
        ):
            entry.setdefault(name, []).append(value)
    ratios = {
        op: {variant: {k: _median(v) for k, v in entry.items()} for variant, entry in by.items()}
        for op, by in ratios.items()
    }
    peer = peer_report.summarise(results)
    return {
        "main": rows,
        "ratios_to_floor": ratios,
        "peer": peer,
        "costs": costs(results),
        "targets": [*_targets(ratios, results), *peer_report.targets(peer)],
        "scale": _scale(results.get("scale", ())),
    }


def _targets(ratios: dict[str, Any], results: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for op, limits in TARGETS.items():
        ratio = ratios.get(op, {}).get("gateway")
        if ratio is None:
            continue
        found.append(
            {
                "target": f"{op} throughput >= {limits['throughput']}x floor",
                "measured": ratio["throughput"],
                "met": ratio["throughput"] is not None
                and ratio["throughput"] >= limits["throughput"],
            }
        )
        for latency in ("p50", "p99"):
            if latency in limits:
                found.append(
                    {
                        "target": f"{op} {latency} <= {limits[latency]}x floor",
                        "measured": ratio[latency],
                        "met": ratio[latency] is not None and ratio[latency] <= limits[latency],
                    }
                )
    scale = [r for r in results.get("scale", ()) if r["variant"] == "gateway"]
    if scale:
        counts = {max(r["backend_queries"]) for r in scale}
        sizes = sorted({r["size"] for r in scale})
        found.append(
            {
                "target": "backend queries per operation independent of entities returned "
                f"(Q2, {sizes[0]} to {sizes[-1]} enterprises)",
                "measured": sorted(counts),
                "met": len(counts) == 1,
            }
        )
    memory = results.get("memory", {}).get("gateway")
    soak = results.get("soak")
    if soak and len(soak) > 2:
        # From the first soak window on (caches, pools and prepared statements are warm
        # by then) to the end; flat means within 10%.
        warm, end = soak[1], soak[-1]
        span = end["requests_served"] - warm["requests_served"]
        found.append(
            {
                "target": f"gateway resident memory flat over {span:,} requests (soak)",
                "measured": f"{warm['rss_mb']:.1f} -> {end['rss_mb']:.1f} MB",
                "met": None if span < 100_000 else end["rss_mb"] <= 1.1 * warm["rss_mb"],
            }
        )
    elif memory:
        found.append(
            {
                "target": "gateway resident memory over the run "
                f"({memory['requests_served']:,} requests; --soak-requests 150000 judges it)",
                "measured": f"{memory['rss_start_mb']:.0f} -> {memory['rss_end_mb']:.0f} MB",
                "met": None,
            }
        )
    share = _share_of_latency(results, "Q1", "bare")
    found.append(
        {
            "target": "policy, audit and tracing cost < 20% of Q1 latency (p50, gateway vs bare)",
            "measured": share
            if share is not None
            else "not measured: run with the variants gateway and bare",
            "met": None if share is None else share < 0.2,
        }
    )
    return found


def _share_of_latency(results: dict[str, Any], op: str, baseline: str) -> float | None:
    """``(gateway p50 - baseline p50) / gateway p50`` of each round, the median."""
    windows = {
        (c["operation"], c["variant"], c.get("round", 0)): c for c in results.get("main", ())
    }
    shares = []
    for (key, variant, round_), cell in windows.items():
        other = windows.get((key, baseline, round_))
        if key != op or variant != "gateway" or other is None:
            continue
        mine, theirs = cell["latency_ms"]["p50"], other["latency_ms"]["p50"]
        if mine:
            shares.append((mine - theirs) / mine)
    return _median(shares)


def costs(results: dict[str, Any]) -> list[dict[str, Any]]:
    """What the parts cost, per operation: shares of the gateway's p50 and of its CPU."""
    windows = {
        (c["operation"], c["variant"], c.get("round", 0)): c for c in results.get("main", ())
    }
    parts = (
        ("tracing", "untraced", "gateway"),
        ("audit log", "unaudited", "untraced"),
        ("audit log + tracing", "unaudited", "gateway"),
        ("policy", "bare", "unaudited"),
        ("policy + audit log + tracing", "bare", "gateway"),
        # With the sampled variant run: tracing one request in ten, as the README advises.
        ("tracing, 1 trace in 10", "untraced", "sampled"),
        ("policy + audit log + tracing 1 in 10", "bare", "sampled"),
    )
    found = []
    for op in dict.fromkeys(c["operation"] for c in results.get("main", ())):
        for name, without, with_ in parts:
            latency, cpu = [], []
            for (key, variant, round_), cell in windows.items():
                base = windows.get((key, without, round_))
                gateway = windows.get((key, "gateway", round_))
                if key != op or variant != with_ or base is None or gateway is None:
                    continue
                p50 = gateway["latency_ms"]["p50"]
                if p50:
                    latency.append((cell["latency_ms"]["p50"] - base["latency_ms"]["p50"]) / p50)
                total = _cpu_total(gateway)
                if total:
                    cpu.append((_cpu_total(cell) - _cpu_total(base)) / total)
            if latency:
                found.append(
                    {
                        "operation": op,
                        "part": name,
                        "p50_share": _median(latency),
                        "cpu_share": _median(cpu),
                    }
                )
    return found


def _cpu_total(cell: dict[str, Any]) -> float:
    """CPU per request of everything the request made work for (not the load generator)."""
    cpu = cell["cpu_ms_per_request"]
    return float(cpu["server"] + cpu["postgres"] + cpu.get("collector", 0.0))


def _scale(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "size": r["size"],
            "variant": r["variant"],
            "throughput": r["throughput"],
            "p50_ms": r["latency_ms"]["p50"],
            "p99_ms": r["latency_ms"]["p99"],
            "server_cpu_ms": r["cpu_ms_per_request"]["server"],
            "postgres_cpu_ms": r["cpu_ms_per_request"]["postgres"],
            "other_cores": r["cpu_cores"]["other"],
            "backend_queries": _queries(r["backend_queries"]),
            "errors": r["errors"],
        }
        for r in rows
    ]


# -- text --------------------------------------------------------------------------------------


def render(results: dict[str, Any]) -> str:
    summary = summarise(results)
    meta = results["meta"]
    options = meta["options"]
    out = [
        f"deltagate benchmark  {meta['started_at']}  commit {meta['commit']}",
        f"{options['persons']:,} persons per region (seed {options['seed']}); one worker per "
        f"server; concurrency {options['concurrency']}; {options['duration']:g} s per cell after "
        f"{options['warmup']:g} s warm-up; {meta['statistic']}; gateway mode {options['mode']}",
        f"machine: {meta['machine']['cpus']} CPUs shared by server, PostgreSQL and load "
        f"generator; Python {meta['machine']['python']}",
        "",
        "Main table: latency in ms; queries per request; CPU in ms per request (server process,"
        " all of PostgreSQL, trace collector, load generator); 'other': cores busy with anything"
        " else during the window (kernel threads ~0.1-0.2; more means the machine was shared)",
    ]
    header = ("op", "variant", "req/s", "p50", "p99", "queries", "srv CPU", "PG CPU", "coll CPU",
              "gen CPU", "other", "errors")  # fmt: skip
    out += _table(header, [_main_row(r) for r in summary["main"]])
    out += [
        "",
        "Ratios to the floor: throughput, p50, p99, server CPU per request (each round's ratio,"
        " median over rounds)",
    ]
    ratio_rows = [
        (op, variant, _x(r["throughput"]), _x(r["p50"]), _x(r["p99"]), _x(r["server_cpu"]))
        for op, entry in summary["ratios_to_floor"].items()
        for variant, r in entry.items()
    ]
    out += _table(("op", "variant", "req/s", "p50", "p99", "srv CPU"), ratio_rows)
    out += peer_report.render(summary["peer"], _table)
    if summary["scale"]:
        out += ["", "Scale table: Q2 with N enterprises per request"]
        header = (
            "N", "variant", "req/s", "p50", "p99", "queries", "srv CPU", "PG CPU", "other", "errors"
        )  # fmt: skip
        out += _table(header, [_scale_row(r) for r in summary["scale"]])
    if summary["costs"]:
        out += ["", "What the parts cost: share of the gateway's p50 and of its CPU per request"
                " (server + PostgreSQL + collector), each round's difference, median"]  # fmt: skip
        out += _table(
            ("op", "part", "p50", "CPU"),
            [
                (c["operation"], c["part"], _pct(c["p50_share"]), _pct(c["cpu_share"]))
                for c in summary["costs"]
            ],
        )
    audit, collector = results.get("audit"), results.get("collector")
    if audit or collector:
        out.append("")
    if audit:
        chain = "holds" if audit["chain_ok"] else "BROKEN"
        out.append(f"Audit log: {audit['events']:,} events written in the run; hash chain {chain}")
    if collector:
        out.append(
            f"Trace collector: {collector['spans']:,} spans in {collector['exports']:,} exports"
        )
    out += ["", "Targets"]
    for target in summary["targets"]:
        met = {True: "met", False: "NOT MET", None: "-"}[target["met"]]
        measured = target["measured"]
        if isinstance(measured, float):
            measured = _pct(measured) if "%" in target["target"] else _x(measured)
        out.append(f"  [{met:>7}] {target['target']}: {measured}")
    profile = results.get("profile")
    if profile:
        from bench.profiling import render as render_profile

        out += ["", render_profile(profile)]
    return "\n".join(out)


def _main_row(r: dict[str, Any]) -> tuple[Any, ...]:
    return (
        r["operation"], r["variant"], f"{r['throughput']:,.0f}", _ms(r["p50_ms"]),
        _ms(r["p99_ms"]), r["backend_queries"]["text"], _ms(r["server_cpu_ms"]),
        _ms(r["postgres_cpu_ms"]), _ms(r["collector_cpu_ms"]), _ms(r["loadgen_cpu_ms"]),
        _cores(r["other_cores"]),
        r["errors"],
    )  # fmt: skip


def _scale_row(r: dict[str, Any]) -> tuple[Any, ...]:
    return (
        r["size"], r["variant"], f"{r['throughput']:,.1f}", _ms(r["p50_ms"]), _ms(r["p99_ms"]),
        r["backend_queries"]["text"], _ms(r["server_cpu_ms"]), _ms(r["postgres_cpu_ms"]),
        _cores(r["other_cores"]), r["errors"],
    )  # fmt: skip


def cell(row: dict[str, Any]) -> str:
    """One timed window in a line, for progress output."""
    latency = row["latency_ms"]
    cpu = row["cpu_ms_per_request"]
    text = (
        f"{row['throughput']:,.1f} req/s, p50 {_ms(latency['p50'])} ms, p99 {_ms(latency['p99'])}"
        f" ms; CPU/request: server {_ms(cpu['server'])} ms, PostgreSQL {_ms(cpu['postgres'])} ms;"
        f" other load {_cores(row['cpu_cores']['other'])} cores"
    )
    if row["errors"]:
        text += f"; {row['errors']} ERRORS, e.g. {row['error_sample']}"
    return text


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> list[str]:
    cells = [tuple(str(c) for c in header), *[tuple(str(c) for c in row) for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = []
    for index, row in enumerate(cells):
        parts = [
            value.ljust(widths[i]) if i < 2 else value.rjust(widths[i])
            for i, value in enumerate(row)
        ]
        lines.append("  " + "  ".join(parts))
        if index == 0:
            lines.append("  " + "  ".join("-" * w for w in widths))
    return lines


def _median(values: Iterable[float | None]) -> float | None:
    found = [v for v in values if v is not None]
    return statistics.median(found) if found else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def _queries(values: list[int]) -> dict[str, Any]:
    if not values:
        return {"min": None, "max": None, "mean": None, "text": "-"}
    low, high = min(values), max(values)
    return {
        "min": low,
        "max": high,
        "mean": sum(values) / len(values),
        "text": str(low) if low == high else f"{low}-{high}",
    }


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if value < 100 else f"{value:.0f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def _cores(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


if __name__ == "__main__":
    print(render(orjson.loads(Path(sys.argv[1]).read_bytes())))
