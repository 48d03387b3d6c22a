"""What one request costs the gateway's process, measured in-process: CPU or instructions.

The main benchmark runs each server as a process of its own behind HTTP, on a
machine shared with PostgreSQL and the load generator, so its CPU per request
moves with whatever else runs. This runs the gateway's ASGI app in this
process (no HTTP server, no load generator), eight requests at a time
(``--concurrency``), over an embedded PostgreSQL with a small seed, and prints
the process's CPU per request (every thread: the span exporter and the audit
writer included), PostgreSQL's (the server and its backends) and the
requests' latency.
Under ``valgrind --tool=callgrind`` the instruction count is repeatable
whatever the machine's load: run it for two request counts and divide the
difference (startup and warm-up cancel out)::

    python -m bench.request_cost Q1 1500                       # CPU ms per request
    python -m bench.request_cost Q1 1500 --profile              # and cProfile (thread CPU)
    SORT=tottime python -m bench.request_cost Q1 1500 --profile # by own time, not cumulative
    python -m bench.request_cost Q1 1500 --floor                # the floor, for the ratio
    valgrind --tool=callgrind python -m bench.request_cost Q1 30
    valgrind --tool=callgrind python -m bench.request_cost Q1 230   # (I230 - I30) / 200

Tracing exports every span over OTLP/HTTP to a ``bench.collector`` process
(``--notrace``: none); the audit log is on; rate limits are off.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import uvloop
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from bench.servers import cpu_seconds, spent
from bench.workload import OPERATIONS
from gateway.audit import create_database, database_dsn
from gateway.core.types import DELTA_REGIONS
from gateway.edge.app import Gateway, create_app
from gateway.edge.auth import mint_token
from gateway.edge.embedded import EmbeddedServer
from gateway.edge.settings import Settings, local_sources
from gateway.synthetic import Dataset, region_dsn, seed_regions
from gateway.telemetry.otlp import OtlpHttpSpanExporter
from resolvers.console_settings import ConsoleSettings

PERSONS = 2000
SEED = 20240601
JWT_SECRET = "deltagate-request-cost-jwt-secret-0123456789"
MASK_SECRET = "deltagate-request-cost-mask-secret-0123456789"
CONCURRENCY = 8
WARMUP = 100


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def _run(args: argparse.Namespace, collector_port: int | None) -> None:
    data = Path(args.data_dir)
    server = EmbeddedServer(data)
    provider = None
    try:
        dsn = server.uri
        marker = data.with_name(data.name + ".seeded")
        if not marker.exists():
            await seed_regions(dsn, PERSONS, SEED, processes=2)
            marker.write_text(f"{PERSONS} {SEED}\n")
        await create_database(dsn, fresh=True)
        operation = OPERATIONS[args.operation]
        bodies = operation.bodies(Dataset(PERSONS, SEED), 400, 1)
        if collector_port is not None:
            provider = TracerProvider()
            endpoint = f"http://127.0.0.1:{collector_port}/v1/traces"
            provider.add_span_processor(BatchSpanProcessor(OtlpHttpSpanExporter(endpoint)))
        settings = Settings(
            jwt_secret=JWT_SECRET,
            mask_secret=MASK_SECRET,
            sources=local_sources({r: region_dsn(dsn, r) for r in DELTA_REGIONS}),
            audit_dsn=database_dsn(dsn),
            audit_gather=args.gather,
            audit_chains=args.chains,
            rate_limits=False,
            # As deployed (production): no console, so no span store; --spans keeps them.
            console=ConsoleSettings(keep_spans=args.spans),
        ).check()
        if args.floor:
            from bench import floor

            app = floor.create_app(floor.Floor(settings))
        else:
            app = create_app(Gateway.from_settings(settings, tracer_provider=provider))
        caller = operation.caller
        bearer = mint_token(
            sub=caller.app, region=caller.region, roles=list(caller.roles), secret=JWT_SECRET
        )
        headers = [
            (b"content-type", b"application/json"),
            (b"authorization", f"Bearer {bearer}".encode()),
        ]
        if caller.matter:
            headers.append((b"x-matter-code", caller.matter.encode()))
        await _serve(app, headers, bodies, args, server.pid())
    finally:
        if provider is not None:
            provider.shutdown()
        server.close()


async def _serve(
    app: Any, headers: list[tuple[bytes, bytes]], bodies: list[bytes], args: Any, postmaster: int
) -> None:
    async def one(body: bytes) -> dict[str, Any]:
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "POST", "scheme": "http", "path": "/graphql", "raw_path": b"/graphql",
            "query_string": b"", "root_path": "", "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80),
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }  # fmt: skip
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.Event().wait()  # the client never disconnects
            return {}

        out: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            out.append(message)

        await app(scope, receive, send)
        if out[0]["status"] != 200:
            raise RuntimeError(f"status {out[0]['status']}: {out}")
        answer: dict[str, Any] = orjson.loads(b"".join(m.get("body", b"") for m in out[1:]))
        return answer

    lifespan: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    told: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await lifespan.put({"type": "lifespan.startup"})
    life = asyncio.ensure_future(
        app({"type": "lifespan", "asgi": {"version": "3.0"}}, lifespan.get, told.put)
    )
    await told.get()
    try:
        first = await one(bodies[0])
        print(f"backend queries per request: {first['extensions']['backendQueries']}")
        for body in bodies[:WARMUP]:
            await one(body)
        numbers = iter(range(args.requests))

        latencies: list[float] = []

        async def worker() -> None:
            for n in numbers:
                started = time.perf_counter()
                await one(bodies[n % len(bodies)])
                latencies.append(time.perf_counter() - started)

        profile = cProfile.Profile(time.thread_time_ns, 1e-9) if args.profile else None
        database = cpu_seconds([postmaster], with_children=True)
        wall, cpu = time.perf_counter(), time.process_time()
        if profile is not None:
            profile.enable()
        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
        if profile is not None:
            profile.disable()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        database_cpu = spent(database, cpu_seconds([postmaster], with_children=True))
        print(
            f"{args.operation}: {args.requests} requests, {args.requests / wall:.0f} req/s,"
            f" CPU {1000 * cpu / args.requests:.3f} ms/request (this process, every thread),"
            f" PostgreSQL {1000 * database_cpu / args.requests:.3f} ms/request,"
            f" latency p50 {1000 * statistics.median(latencies):.2f} ms"
            f" p99 {1000 * statistics.quantiles(latencies, n=100)[98]:.2f} ms"
        )
        if profile is not None:
            if os.environ.get("PROFILE_OUT"):
                profile.dump_stats(os.environ["PROFILE_OUT"])
            text = io.StringIO()
            pstats.Stats(profile, stream=text).sort_stats(
                os.environ.get("SORT", "cumulative")
            ).print_stats(60)
            print(text.getvalue())
    finally:
        await lifespan.put({"type": "lifespan.shutdown"})
        await life


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.request_cost", description=__doc__)
    parser.add_argument("operation", choices=sorted(OPERATIONS))
    parser.add_argument("requests", type=int, nargs="?", default=1500)
    parser.add_argument("--profile", action="store_true", help="cProfile, by thread CPU time")
    parser.add_argument("--notrace", action="store_true", help="record no spans")
    parser.add_argument(
        "--spans", action="store_true", help="keep spans in the audit database (the console's)"
    )
    parser.add_argument(
        "--floor", action="store_true", help="the floor (bench.floor) in place of the gateway"
    )
    parser.add_argument(
        "--concurrency", type=int, default=CONCURRENCY, help="requests at a time (default 8)"
    )
    parser.add_argument(
        "--gather",
        type=float,
        default=Settings.audit_gather,
        help="the audit writer's audit.gather, in seconds (default: the gateway's)",
    )
    parser.add_argument(
        "--chains",
        type=int,
        default=Settings.audit_chains,
        help="the audit writer's audit.chains per worker (default: the gateway's)",
    )
    parser.add_argument(
        "--data-dir",
        default=str(Path(tempfile.gettempdir()) / "deltagate-request-cost-pg"),
        help="the embedded PostgreSQL's data (seeded with 2,000 persons per region once)",
    )
    args = parser.parse_args()
    collector = None
    port = None
    if args.floor:
        args.notrace = True
    if not args.notrace:  # the trace collector, a process of its own as in the benchmark
        port = _free_port()
        collector = subprocess.Popen([sys.executable, "-m", "bench.collector", "--port", str(port)])
        time.sleep(1.0)
    try:
        # uvloop, as the servers run under uvicorn (the asyncio loop's own overhead differs).
        uvloop.run(_run(args, port))
    finally:
        if collector is not None:
            collector.terminate()
            collector.wait()


if __name__ == "__main__":
    main()
