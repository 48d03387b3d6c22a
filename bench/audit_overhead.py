"""What audit and tracing cost: the same workload with both on and with both off, in one run.

    python bench/audit_overhead.py [--persons 1000] [--requests 2000] [--concurrency 16]

An embedded PostgreSQL (its own data folder under the system temp folder) is
seeded, and two gateways are built over it in this process:

- on: every operation touching L2+ data commits its audit event (group commit
  into ``deltagate_audit``) before it is answered, and every span is recorded
  and handed to a batch processor (its exporter drops them: the cost measured
  is the gateway's, not a collector's);
- off: no audit write and no tracer provider (trace ids only, as a gateway
  with no ``OTEL_*`` exporter configured).

Requests go straight to ``Gateway.execute`` (no HTTP client in the process),
``concurrency`` at a time, mixing four of the example operations (all of them
touch personal data, so each writes an audit event). Rounds alternate off/on;
the medians of CPU time per request (this process only: PostgreSQL's work is
in its own processes) and of requests per second are reported, with the
ratio on/off of each. Rate limits are off (one caller sends everything).
The spans are dropped, not encoded: the export's cost, and the whole request
over HTTP, are in `make bench` (the parts table).
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from starlette.types import Receive

from gateway.audit import create_database, verify
from gateway.core.types import DELTA_REGIONS
from gateway.edge.app import Gateway
from gateway.edge.auth import mint_token
from gateway.edge.embedded import start_embedded
from gateway.edge.settings import Settings, local_sources
from gateway.synthetic import Dataset, region_dsn, seed_regions

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
# Made for each run: a secret written in the source is known to every reader.
SECRET = secrets.token_urlsafe(32)


class Dropped(SpanExporter):
    """Counts the spans it is given and keeps none."""

    def __init__(self) -> None:
        self.spans = 0
        self.audit_batches: list[int] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans += len(spans)
        for span in spans:
            if span.name == "audit.write" and span.attributes:
                self.audit_batches.append(int(span.attributes["deltagate.audit.batch"]))
        return SpanExportResult.SUCCESS


class Unaudited(Gateway):
    """The gateway with its audit step left out: the baseline only, never a mode to serve in."""

    async def _audit(self, *args: Any) -> None:
        return None


def workload(dataset: Dataset) -> list[tuple[bytes, list[tuple[bytes, bytes]]]]:
    """(body, headers) of each request, in the order they are sent (cycled)."""

    def request(file: str, variables: dict[str, Any], region: str, role: str, matter: str | None):
        query = (EXAMPLES / file).read_text(encoding="utf-8")
        caller = mint_token(sub=f"bench-{role}", region=region, roles=[role], secret=SECRET)
        headers = [(b"authorization", f"Bearer {caller}".encode()),
                   (b"content-type", b"application/json")]  # fmt: skip
        if matter:
            headers.append((b"x-matter-code", matter.encode()))
        return orjson.dumps({"query": query, "variables": variables}), headers

    out = []
    for i in range(50):
        region = DELTA_REGIONS[i % 4]
        person = dataset.person(region, i)["id_number"]
        usccs = [dataset.uscc(r, (i + k) % 40) for k in range(13) for r in DELTA_REGIONS][:50]
        out += [
            request("counter-lookup.graphql", {"idNumber": person}, region, "one_stop_app",
                    "OS-ENTERPRISE-OPENING"),
            request("hukou-migration.graphql", {"idNumber": person}, "JS",
                    "joint_handling_officer", "JH-HUKOU-MIGRATION"),
            request("joint-handling-list.graphql", {"usccs": usccs}, "AH",
                    "joint_handling_officer", "JH-HUKOU-MIGRATION"),
            request("credit-check.graphql", {"uscc": dataset.uscc(region, i)}, "SH",
                    "public_portal", None),
        ]  # fmt: skip
    return out


def asgi_request(body: bytes, headers: list[tuple[bytes, bytes]]) -> tuple[dict[str, Any], Receive]:
    """The ASGI scope and ``receive`` of a request as the server would hand them over."""
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    scope = {"type": "http", "method": "POST", "path": "/graphql", "headers": headers,
             "query_string": b""}  # fmt: skip
    return scope, receive


async def run(
    gateway: Gateway, requests: list[Any], count: int, concurrency: int
) -> tuple[float, float]:
    """Send ``count`` requests; (CPU seconds, wall seconds)."""
    position = 0

    async def worker() -> None:
        nonlocal position
        while position < count:
            body, headers = requests[position % len(requests)]
            position += 1
            answer = await gateway.execute(*asgi_request(body, headers))
            if answer.status != 200 or b'"errors"' in answer.body:
                raise SystemExit(f"request failed: {answer.status} {answer.body[:300]!r}")

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.process_time() - cpu, time.perf_counter() - wall


async def main(args: argparse.Namespace) -> None:
    data_dir = Path(tempfile.gettempdir()) / "deltagate-bench-audit-pg"
    print(f"embedded PostgreSQL in {data_dir}; seeding {args.persons} persons per region ...")
    # Stopped when this process exits (gateway.edge.embedded's exit hook).
    dsn = (await asyncio.to_thread(start_embedded, data_dir)).uri
    await seed_regions(dsn, args.persons, args.seed)
    audit_dsn = await create_database(dsn, fresh=True)
    dataset = Dataset(args.persons, args.seed)
    # Up to five gateways on one server: small pools keep them under its 100 connections.
    sources = local_sources({r: region_dsn(dsn, r) for r in DELTA_REGIONS})
    settings = Settings(
        jwt_secret=SECRET,
        mask_secret=SECRET,
        sources=tuple(replace(source, pool_max=3) for source in sources),
        audit_dsn=audit_dsn,
    ).check()
    exporter = Dropped()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=65536))
    gateways = {
        "off": Unaudited.from_settings(replace(settings, audit_dsn=None)),
        "on": Gateway.from_settings(settings, tracer_provider=provider),
    }
    if args.each:
        sampled = TracerProvider(sampler=ParentBased(TraceIdRatioBased(0.1)))
        sampled.add_span_processor(BatchSpanProcessor(Dropped(), max_queue_size=65536))
        gateways["audit"] = Gateway.from_settings(settings)
        gateways["tracing"] = Unaudited.from_settings(
            replace(settings, audit_dsn=None), tracer_provider=provider
        )
        gateways["on, 10% sampled"] = Gateway.from_settings(settings, tracer_provider=sampled)
    requests = workload(dataset)
    for gateway in gateways.values():
        # One process drives them as fast as it can: the shipped per-app quota would refuse it.
        gateway.rate_limiter = None
    for gateway in gateways.values():  # warm: pools, parse caches, plans, audit table
        await gateway.start()
        await run(gateway, requests, len(requests), args.concurrency)
    results: dict[str, list[tuple[float, float]]] = {mode: [] for mode in gateways}
    modes = list(gateways)
    for round_number in range(args.rounds):
        # Each round starts with another mode: what runs before a mode does not favour it.
        shift = round_number % len(modes)
        for mode in modes[shift:] + modes[:shift]:
            gateway = gateways[mode]
            cpu, wall = await run(gateway, requests, args.requests, args.concurrency)
            results[mode].append((cpu / args.requests * 1000, args.requests / wall))
            print(f"round {round_number + 1} {mode}: {cpu / args.requests * 1000:.3f} ms CPU"
                  f" per request, {args.requests / wall:.0f} requests/s")  # fmt: skip
    for gateway in gateways.values():
        await gateway.close()
    provider.shutdown()
    report = await verify(audit_dsn)

    cpu = {mode: statistics.median(r[0] for r in rows) for mode, rows in results.items()}
    rate = {mode: statistics.median(r[1] for r in rows) for mode, rows in results.items()}
    batches = exporter.audit_batches
    print()
    print(f"workload: {args.requests} requests x {args.rounds} rounds, concurrency"
          f" {args.concurrency}, four example operations, all writing an audit event")  # fmt: skip
    print(f"{'':>18} {'off':>10} {'on':>10} {'on/off':>8}")
    print(f"{'CPU ms / request':>18} {cpu['off']:>10.3f} {cpu['on']:>10.3f}"
          f" {cpu['on'] / cpu['off']:>8.2f}")  # fmt: skip
    print(f"{'requests / s':>18} {rate['off']:>10.0f} {rate['on']:>10.0f}"
          f" {rate['on'] / rate['off']:>8.2f}")  # fmt: skip
    for mode, label in (("audit", "audit only"), ("tracing", "tracing only"),
                        ("on, 10% sampled", "both, 10% traced")):  # fmt: skip
        if mode in cpu:
            print(f"{label:>18} {cpu[mode]:>10.3f} CPU ms ({cpu[mode] / cpu['off']:.2f} x off),"
                  f" {rate[mode]:.0f} requests/s ({rate[mode] / rate['off']:.2f})")  # fmt: skip
    print(f"audit: {report.events} events, chain {'intact' if report.ok else 'BROKEN'};"
          f" events per INSERT: mean {statistics.mean(batches):.1f}, max {max(batches)};"
          f" spans recorded: {exporter.spans}")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--persons", type=int, default=1000, help="persons per region")
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--requests", type=int, default=2000, help="requests per round and mode")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--each", action="store_true", help="also audit only and tracing only")
    try:
        import uvloop
    except ImportError:
        asyncio.run(main(parser.parse_args()))
    else:
        uvloop.run(main(parser.parse_args()))
