"""One benchmark run: seed, start the servers, check them, load them, report.

The steps, in order:

1. the embedded PostgreSQL in its own data folder, seeded unless it already
   holds this seed (``bench.database``);
2. one configuration for every server (``bench.config``), and each variant's
   server started as a process of its own (``bench.servers``);
3. the check: a sample of the requests sent to every server, answers
   compared, queries per operation read (``bench.check``);
4. the main table: each operation against each variant, from a separate
   load-generator process at a fixed concurrency (``bench.loadgen``), with the
   CPU each process spent in the timed window;
5. the scale table: Q2 with 10 to 100 enterprises per request;
6. optionally, a soak that records the gateway's memory, and py-spy on the gateway
   and the floor under each operation (``bench.profiling``);
7. the tables on standard output and everything as JSON (``bench.report``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import logging
import os
import platform
import signal
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bench import database, postgraphile, report
from bench.check import check_operation
from bench.config import RunConfig, write_config
from bench.servers import (
    COLLECTOR,
    DEFAULT_VARIANTS,
    ROOT,
    SCALE_VARIANTS,
    VARIANTS,
    Server,
    Variant,
    cpu_seconds,
    machine_busy_seconds,
    spent,
)
from bench.workload import OPERATIONS, Q2, Operation
from gateway.audit import create_database, verify
from gateway.synthetic import Dataset
from resolvers.cursors import CursorCodec

logger = logging.getLogger("bench")

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True, kw_only=True)
class Options:
    """What one run does (``python -m bench --help`` documents each).

    Attributes:
        persons: persons per region in the seed (each region also holds a
            quarter as many enterprises and half as many credit records).
        seed: the synthetic dataset's seed.
        data_dir: the embedded PostgreSQL's data folder; by default one per size under
            the system temp folder (``deltagate-bench-pg-100000``), so runs of different
            sizes keep their seeds.
        reseed: seed again even if the marker says the data is there.
        concurrency: connections the load generator keeps busy.
        warmup: seconds of load before each timed window.
        duration: seconds of each timed window of the main table.
        rounds: times the main table is measured; the report gives medians.
        operations: the operations of the main table.
        variants: the servers under test.
        scale_sizes: Q2 list lengths of the scale table (empty: no scale table).
        scale_duration: seconds of each timed window of the scale table.
        soak_requests: after the tables, keep loading the gateway (each operation in turn,
            in windows of 15 s) until it has served this many requests more, and record
            its resident memory after each window (0: no soak; the full run's 150,000
            judge the memory target, the quick run has none). More, not in all: the full
            tables alone serve more than 150,000, which left the soak with nothing to do.
        mode: the gateway's mode (``production``: RS256 tokens, as callers meet it).
        gateway_env: extra environment for every server (e.g. a feature switch).
        check_samples: requests per operation compared across servers before timing.
        profile: record the gateway and the floor under each operation with py-spy.
        profile_seconds: seconds recorded per profiled operation.
        profile_variants: the variants recorded (those also run).
        output: the JSON results file (a copy is kept with a timestamp beside it).
    """

    persons: int = 100_000
    seed: int = 20240601
    data_dir: Path | None = None
    reseed: bool = False
    concurrency: int = 8
    warmup: float = 2.0
    duration: float = 10.0
    rounds: int = 3
    operations: tuple[str, ...] = ("Q1", "Q2", "Q3", "L1", "L2")
    variants: tuple[str, ...] = DEFAULT_VARIANTS
    scale_sizes: tuple[int, ...] = (10, 25, 50, 75, 100)
    scale_duration: float = 5.0
    soak_requests: int = 150_000
    mode: str = "production"
    gateway_env: dict[str, str] = field(default_factory=dict)
    check_samples: int = 20
    profile: bool = False
    profile_seconds: float = 15.0
    profile_variants: tuple[str, ...] = ("gateway", "floor")
    output: Path = RESULTS / "latest.json"


#: Distinct request bodies per operation: every request of a window is a different look-up.
REQUEST_POOL = {"Q1": 4000, "Q2": 400, "Q3": 2000, "L1": 4000, "L2": 4000}
SCALE_POOL = 200


def run(options: Options) -> dict[str, Any]:
    # A run stopped with SIGTERM still stops its servers (the finally below); a run
    # started in the background from a shell has SIGINT ignored.
    signal.signal(signal.SIGTERM, _terminate)
    started = dt.datetime.now(dt.UTC)
    work = options.output.parent / "work"
    work.mkdir(parents=True, exist_ok=True)
    logging.getLogger("pgserver").setLevel(logging.WARNING)

    data_dir = options.data_dir or default_data_dir(options.persons)
    say(f"PostgreSQL: embedded, data in {data_dir}")
    db = database.start(data_dir)
    say(f"Seed: {options.persons:,} persons per region, seed {options.seed} ...")
    seeded = asyncio.run(
        database.ensure_seeded(db.dsn, options.persons, options.seed, force=options.reseed)
    )
    say("  kept the existing seed" if seeded is None else f"  seeded in {seeded:.0f} s")
    dataset = Dataset(options.persons, options.seed)
    # A fresh audit log per run: it grows by an event per request.
    audit_dsn = asyncio.run(create_database(db.dsn, fresh=True))

    collector = Server(COLLECTOR, None, {}, work)
    collector.start()
    try:
        collector.wait_ready()
    except BaseException:
        collector.stop()
        raise
    config = write_config(
        work,
        db.regions,
        audit_dsn=audit_dsn,
        collector_url=collector.url,
        apps=[op.caller.app for op in OPERATIONS.values()],
        mode=options.mode,
        extra_env=options.gateway_env,
    )
    variants = _variants(options, db, work)
    servers = {
        key: Server(variant, config.path, config.env, work) for key, variant in variants.items()
    }
    rig = Rig(db, collector)
    results: dict[str, Any] = {
        "meta": _meta(options, started, seeded),
        "variants": {key: asdict(variant) for key, variant in variants.items()},
        "operations": {
            key: {
                "title": OPERATIONS[key].title,
                "caller": asdict(OPERATIONS[key].caller),
                "document": OPERATIONS[key].document,
            }
            for key in options.operations
        },
    }
    try:
        for server in servers.values():
            server.start()
        for server in servers.values():
            server.wait_ready()
        rss_start = {key: server.rss_mb() for key, server in servers.items()}
        say(f"Servers: {', '.join(f'{k} :{s.port}' for k, s in servers.items())}")

        bodies = {
            key: OPERATIONS[key].bodies(dataset, REQUEST_POOL[key], options.seed)
            for key in options.operations
        }
        results["check"] = _check(options, config, servers, bodies)
        results["main"] = _main_table(options, config, servers, rig, bodies, work)
        if options.scale_sizes:
            results["scale"] = _scale_table(options, config, servers, rig, dataset, work)
        if options.soak_requests and "gateway" in servers:
            gateway = servers["gateway"]
            results["soak"] = _soak(options, config, gateway, rig, bodies, work, results)
        results["memory"] = {
            key: {
                "rss_start_mb": rss_start[key],
                "rss_end_mb": server.rss_mb(),
                "requests_served": _served(results, key),
            }
            for key, server in servers.items()
        }
        if options.profile:
            from bench import profiling

            results["profile"] = {
                key: profiling.profile_server(
                    servers[key], config, bodies, options, rig, work, options.operations
                )
                for key in options.profile_variants
                if key in servers
            }
        results["collector"] = _collector_stats(collector)
    finally:
        for server in [*servers.values(), collector]:
            server.stop()
    results["audit"] = asyncio.run(
        _audit_log(audit_dsn, config.env["DELTAGATE_AUDIT_CHECKPOINT_SECRET"].encode())
    )
    results["summary"] = report.summarise(results)
    say("")
    say(report.render(results))
    _save(results, options.output, started)
    say(f"\nJSON: {options.output}")
    return results


def _variants(options: Options, db: database.Database, work: Path) -> dict[str, Variant]:
    """The run's variants; the peer installed and pointed at its region, or left out."""
    found = {key: VARIANTS[key] for key in options.variants}
    peer = found.get("postgraphile")
    if peer is None:
        return found
    if not any(runs(OPERATIONS[op], peer) for op in options.operations):
        del found["postgraphile"]
        return found
    say("PostGraphile: installing into bench/peers/postgraphile if needed (npm ci) ...")
    ready = postgraphile.prepare(work / "postgraphile-npm.log")
    if isinstance(ready, str):
        say(f"PostGraphile: SKIPPED, {ready}; the run goes on without the peer")
        del found["postgraphile"]
        return found
    say(f"PostGraphile: Node {ready.version}, serving {postgraphile.REGION}'s database")
    found["postgraphile"] = dataclasses.replace(
        peer,
        program=postgraphile.program(ready),
        env=postgraphile.environment(db.regions[postgraphile.REGION]),
    )
    return found


def runs(op: Operation, variant: Variant) -> bool:
    """Whether ``variant`` answers ``op`` in the run (both may restrict it)."""
    return (op.variants is None or variant.key in op.variants) and (
        variant.operations is None or op.key in variant.operations
    )


def _terminate(signum: int, _: Any) -> None:
    raise SystemExit(128 + signum)


def default_data_dir(persons: int) -> Path:
    # Under the system temp folder: run as root, pgserver opens every parent of its data dir.
    return Path(tempfile.gettempdir()) / f"deltagate-bench-pg-{persons}"


def say(text: str) -> None:
    print(text, flush=True)


# -- steps -------------------------------------------------------------------------------------


def _check(
    options: Options,
    config: RunConfig,
    servers: dict[str, Server],
    bodies: dict[str, list[bytes]],
) -> dict[str, Any]:
    say(f"Check: {options.check_samples} requests per operation, every server the same data ...")
    codec = CursorCodec(config.mask_secret.encode())
    found = {}
    for key in options.operations:
        op = OPERATIONS[key]
        # The peer speaks its own schema: compared on its own below.
        here = {
            name: server
            for name, server in servers.items()
            if runs(op, server.variant) and name != "postgraphile"
        }
        urls = {name: server.url for name, server in here.items()}
        unlike = [name for name, server in here.items() if not server.variant.same_data]
        sample = bodies[key][: options.check_samples]
        result = check_operation(urls, sample, config.headers(op.caller), codec, unlike=unlike)
        found[key] = {"samples": result.samples, "backend_queries": result.queries}
        per = ", ".join(f"{v} {_span(q)}" for v, q in result.queries.items())
        same = "equal" if not unlike else f"equal (but {', '.join(unlike)}: not compared)"
        say(f"  {key}: {same} over {result.samples} requests; queries per request: {per}")
        peer = servers.get("postgraphile")
        if peer is not None and runs(op, peer.variant):
            if "gateway" in servers:
                compared = postgraphile.check(
                    peer.url, servers["gateway"].url, sample, config.headers(op.caller)
                )
                say(f"  {key}: postgraphile equal to the gateway over {compared} requests")
            else:
                say(f"  {key}: postgraphile not compared (no gateway in the run)")
            sent = postgraphile.warm(peer.url, bodies[key])
            say(f"  {key}: postgraphile warmed up with {sent} requests (Node's JIT)")
    return found


def _main_table(
    options: Options,
    config: RunConfig,
    servers: dict[str, Server],
    rig: Rig,
    bodies: dict[str, list[bytes]],
    work: Path,
) -> list[dict[str, Any]]:
    rows = []
    for round_ in range(options.rounds):
        for key in options.operations:
            op = OPERATIONS[key]
            requests = _requests_file(work, key, config, op, bodies[key])
            for variant, server in servers.items():
                if not runs(op, server.variant):
                    continue
                asked = requests
                if variant == "postgraphile":
                    theirs = postgraphile.translate(bodies[key])
                    asked = _requests_file(work, f"{key}-{variant}", config, op, theirs)
                say(f"Main{_round(options, round_)}: {key} on {variant} ...")
                row = measure(server, asked, options, rig, options.duration)
                row.update(operation=key, variant=variant, round=round_)
                rows.append(row)
                say("  " + report.cell(row))
    return rows


def _scale_table(
    options: Options,
    config: RunConfig,
    servers: dict[str, Server],
    rig: Rig,
    dataset: Dataset,
    work: Path,
) -> list[dict[str, Any]]:
    rows = []
    codec = CursorCodec(config.mask_secret.encode())
    servers = {key: s for key, s in servers.items() if key in SCALE_VARIANTS}
    urls = {key: server.url for key, server in servers.items()}
    headers = config.headers(Q2.caller)
    for size in options.scale_sizes:
        bodies = Q2.bodies(dataset, SCALE_POOL, options.seed, size=size)
        checked = check_operation(urls, bodies[:3], headers, codec)
        requests = _requests_file(work, f"Q2-{size}", config, Q2, bodies)
        for variant, server in servers.items():
            say(f"Scale: Q2 with {size} enterprises on {variant} ...")
            row = measure(server, requests, options, rig, options.scale_duration)
            row.update(
                operation="Q2",
                size=size,
                variant=variant,
                backend_queries=checked.queries[variant],
            )
            rows.append(row)
            say("  " + report.cell(row))
    return rows


def _soak(
    options: Options,
    config: RunConfig,
    server: Server,
    rig: Rig,
    bodies: dict[str, list[bytes]],
    work: Path,
    results: dict[str, Any],
) -> list[dict[str, Any]]:
    """Load the gateway until it served ``soak_requests`` more; its memory after each window."""
    served = _served(results, server.variant.key)
    until = served + options.soak_requests
    series = [{"requests_served": served, "rss_mb": server.rss_mb()}]
    files = [
        _requests_file(work, key, config, OPERATIONS[key], bodies[key])
        for key in options.operations
    ]
    window = 0
    while served < until:
        requests = files[window % len(files)]
        row = measure(server, requests, options, rig, 15.0)
        served += row["completed"]
        series.append({"requests_served": served, "rss_mb": row["rss_mb"]})
        say(f"Soak: {served:,} requests served, resident memory {row['rss_mb']:.1f} MB")
        window += 1
    return series


def measure(
    server: Server,
    requests: Path,
    options: Options,
    rig: Rig,
    duration: float,
    *,
    during: Any = None,
) -> dict[str, Any]:
    """One timed window: the load generator's results and the CPU each process spent in it.

    Besides the server, PostgreSQL and the load generator, the machine's total
    busy time is read, so a window shared with unrelated work shows it
    (``cpu_cores["other"]``; on a quiet machine only the kernel's own threads,
    about 0.1-0.2 of a core here).

    ``during`` (if given) is called when the window opens and must return a
    callable that is called when it closes (the profiler uses this).
    """
    argv = [
        sys.executable, "-m", "bench.loadgen",
        "--port", str(server.port),
        "--requests", str(requests),
        "--concurrency", str(options.concurrency),
        "--warmup", str(options.warmup),
        "--duration", str(duration),
    ]  # fmt: skip
    load = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    if load.stdout is None:  # for the type checker: stdout=PIPE
        raise RuntimeError("no pipe from the load generator")
    before: Reading | None = None
    usage: dict[str, float] = {}
    result: dict[str, Any] = {}
    finish = None
    for line in load.stdout:
        line = line.strip()
        if line == "measure-start":
            before = _reading(server, rig)
            if during is not None:
                finish = during()
        elif line == "measure-end":
            after = _reading(server, rig)
            if before is not None:
                usage = {
                    "server": spent(before.server, after.server),
                    "postgres": spent(before.postgres, after.postgres),
                    "collector": spent(before.collector, after.collector),
                    "machine": after.machine - before.machine,
                }
            if finish is not None:
                finish()
        elif line.startswith("{"):
            result = orjson.loads(line)
    if load.wait() != 0 or not result or not usage:
        raise RuntimeError(f"the load generator failed against {server.variant.key}")
    usage["loadgen"] = result.pop("cpu_seconds")
    machine = usage.pop("machine")
    # The collector works for every traced server, and only while one is under load.
    usage["other"] = max(0.0, machine - sum(usage.values()))
    count = result["requests"] or 1
    result["cpu_ms_per_request"] = {k: v * 1000 / count for k, v in usage.items() if k != "other"}
    result["cpu_cores"] = {k: v / result["seconds"] for k, v in usage.items()}
    result["rss_mb"] = server.rss_mb()
    return result


@dataclass(frozen=True)
class Reading:
    server: dict[int, float]
    postgres: dict[int, float]
    collector: dict[int, float]
    machine: float


@dataclass(frozen=True)
class Rig:
    """What serves every server under test: PostgreSQL and the trace collector."""

    db: database.Database
    collector: Server


def _reading(server: Server, rig: Rig) -> Reading:
    return Reading(
        cpu_seconds([server.pid], with_children=True),
        cpu_seconds([rig.db.postmaster_pid], with_children=True),
        cpu_seconds([rig.collector.pid], with_children=False),
        machine_busy_seconds(),
    )


def _collector_stats(collector: Server) -> dict[str, Any]:
    import urllib.request

    with urllib.request.urlopen(f"{collector.url}/stats", timeout=10) as response:
        stats: dict[str, Any] = orjson.loads(response.read())
    return stats


async def _audit_log(dsn: str, secret: bytes) -> dict[str, Any]:
    """How many events the run's audit log holds, and whether its chains and checkpoints hold."""
    report = await verify(dsn, secret=secret)
    return {"events": report.events, "chain_ok": report.ok}


def _requests_file(
    work: Path, name: str, config: RunConfig, op: Operation, bodies: list[bytes]
) -> Path:
    path = work / f"requests-{name}.json"
    spec = {
        "path": "/graphql",
        "headers": config.headers(op.caller),
        "bodies": [body.decode() for body in bodies],
    }
    path.write_bytes(orjson.dumps(spec))
    return path


def _served(results: dict[str, Any], variant: str) -> int:
    """Requests ``variant`` answered so far in the run (warm-ups included)."""
    if variant == "gateway" and results.get("soak"):
        return int(results["soak"][-1]["requests_served"])
    rows = [*results.get("main", ()), *results.get("scale", ())]
    return sum(row.get("completed", row["requests"]) for row in rows if row["variant"] == variant)


def _span(values: list[int]) -> str:
    low, high = min(values), max(values)
    return str(low) if low == high else f"{low}-{high}"


def _round(options: Options, round_: int) -> str:
    return f" (round {round_ + 1}/{options.rounds})" if options.rounds > 1 else ""


def _meta(options: Options, started: dt.datetime, seeded: float | None) -> dict[str, Any]:
    from importlib.metadata import version

    packages = ("strawberry-graphql", "graphql-core", "starlette", "uvicorn", "uvloop",
                "httptools", "asyncpg", "orjson", "pycasbin")  # fmt: skip
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, check=True, cwd=Path(__file__).parent,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        commit = None
    return {
        "started_at": started.isoformat(timespec="seconds"),
        "commit": commit,
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(options).items()},
        "seeded_seconds": seeded,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "versions": {name: version(name) for name in packages},
        "workers": 1,
        "statistic": "median over rounds" if options.rounds > 1 else "one round",
    }


def _save(results: dict[str, Any], output: Path, started: dt.datetime) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(results, indent=2, ensure_ascii=False, default=str)
    output.write_text(text + "\n", encoding="utf-8")
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    (output.parent / f"{output.stem}-{stamp}.json").write_text(text + "\n", encoding="utf-8")
