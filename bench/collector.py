"""A trace collector that keeps nothing: the end of the gateway's OTLP/HTTP export.

In production the gateway exports its spans to an OpenTelemetry collector
(``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``); the benchmark gives it this one, so
that tracing runs as deployed (spans recorded, batched, serialised and sent)
without a real collector. It reads each export request, counts its spans
(to show that tracing was on, and how many spans a request makes) and
answers with an empty ``ExportTraceServiceResponse``. Its CPU is measured
apart from the gateway's.

Run: ``python -m bench.collector --port 4318``; ``GET /stats`` gives
``{"exports": n, "spans": m}``.
"""

from __future__ import annotations

import argparse

import orjson
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench.serving import serve

PROTOBUF = "application/x-protobuf"


def create_app() -> Starlette:
    counts = {"exports": 0, "spans": 0}

    async def traces(request: Request) -> Response:
        export = ExportTraceServiceRequest.FromString(await request.body())
        counts["exports"] += 1
        counts["spans"] += sum(
            len(scope.spans) for resource in export.resource_spans for scope in resource.scope_spans
        )
        return Response(b"", media_type=PROTOBUF)

    async def stats(_: Request) -> Response:
        return Response(orjson.dumps(counts), media_type="application/json")

    async def healthz(_: Request) -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    return Starlette(
        routes=[
            Route("/v1/traces", traces, methods=["POST"]),
            Route("/stats", stats, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )


def main() -> None:

    parser = argparse.ArgumentParser(prog="python -m bench.collector", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4318)
    args = parser.parse_args()
    serve(create_app(), args.host, args.port)


if __name__ == "__main__":
    main()
