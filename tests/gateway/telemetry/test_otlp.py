"""deltagate's OTLP encoder and exporter: the SDK's bytes, posted as a collector expects them."""

from __future__ import annotations

import gzip
import http.server
import threading
import time
from collections.abc import Iterator

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk_encode
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode, TraceState, set_span_in_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from gateway.core.types import Caller
from gateway.telemetry.otlp import FinishedSpan, OtlpHttpSpanExporter, _Encoder, encode_spans
from gateway.telemetry.spans import SpanRecorder, Telemetry


def spans_of_every_shape() -> list[ReadableSpan]:
    """SDK spans with every field the encoder writes, and spans made by ``SpanRecorder``."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "deltagate", "n": 3}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("deltagate", "1.2.3")
    other = TracerProvider(resource=Resource.create({"service.name": "other"}))
    other.add_span_processor(SimpleSpanProcessor(exporter))
    remote = TraceContextTextMapPropagator().extract(
        {
            "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "tracestate": "vendor=value,other=1",
        }
    )
    with tracer.start_as_current_span("op", context=remote, kind=SpanKind.SERVER) as op:
        op.set_attributes(
            {
                "text": "上海",
                "flag": True,
                "off": False,
                "count": 3,
                "negative": -5,
                "large": 2**40,
                "ratio": 1.5,
                "regions": ["SH", "JS"],
                "numbers": [1, 2],
                "empty": "",
            }
        )
        op.add_event("retry", {"attempt": 2})
        op.set_status(Status(StatusCode.ERROR, "SOURCE_UNAVAILABLE"))
        with tracer.start_as_current_span(
            "batch person",
            kind=SpanKind.INTERNAL,
            links=[Link(op.get_span_context(), {"why": "follows"})],
        ) as batch:
            batch.set_attribute("deltagate.batch.rows", 0)
            batch.set_attribute("attempt", 2)  # as on the event: written under another field
        recorder = SpanRecorder(provider, op.get_span_context(), op.instrumentation_scope)
        with recorder.span("batch residence", {"deltagate.region": "ZJ"}) as child:
            recorder.finished(
                "SELECT residence", {"db.system": "postgresql"}, SpanKind.CLIENT, 1, 2,
                child.context,
            )  # fmt: skip
        with pytest.raises(KeyError), recorder.span("audit.write", {}):
            raise KeyError("a value that must not be exported")
    with other.get_tracer("x").start_as_current_span("plain", context=set_span_in_context(op)):
        pass
    with tracer.start_as_current_span("stated", context=remote) as stated:
        stated.set_status(Status(StatusCode.OK))
    # The gateway's own operation spans: a root linked to the caller's trace (its roles a
    # tuple), and one continuing an upper gateway's trace; whole numbers at every width the
    # encoder writes its own way (one, two, three and ten bytes, and the edges between).
    telemetry = Telemetry(provider)
    caller = Caller(app="app-1", region="SH", roles=("one_stop_app", "auditor"))
    widths = [0, 127, 128, 16_383, 16_384, 2**21 - 1, 2**21, 2**40, 2**63 - 1, -1, -(2**63)]
    traceparent = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
    with telemetry.operation(traceparent) as operation:
        operation.caller(caller, "M-1")
        operation.operation("Lookup", "query", "ab" * 32)
        operation.audited(2**40)
        assert operation.recorder is not None
        with operation.recorder.span("batch enterprise", {"deltagate.region": "SH"}) as batch:
            batch.set_attributes({f"n{i}": n for i, n in enumerate(widths)})
    upper = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    with telemetry.operation({}, parent=upper) as delegated:
        delegated.caller(caller, None)
        delegated.failed("FORBIDDEN")
    return list(exporter.get_finished_spans())


def test_the_encoder_writes_what_the_sdk_encoder_writes() -> None:
    spans = spans_of_every_shape()
    assert len(spans) == 10
    # The gateway's own spans, the operation's with its link too, take the encoder's short way.
    operations = [s for s in spans if s.kind is SpanKind.SERVER and type(s) is FinishedSpan]
    assert [len(s.links) for s in operations] == [1, 0]
    ours = ExportTraceServiceRequest.FromString(encode_spans(spans))
    theirs = ExportTraceServiceRequest.FromString(sdk_encode(spans).SerializeToString())
    assert ours == theirs
    # An exporter's encoder keeps what repeats; what it writes from its caches is the same.
    encoder = _Encoder()
    first = encoder.request(spans)
    assert encoder.request(spans) == first == encode_spans(spans)


def test_a_child_span_ended_by_an_exception_names_only_its_type() -> None:
    [audit] = [s for s in spans_of_every_shape() if s.name == "audit.write"]
    assert audit.status.status_code is StatusCode.ERROR
    assert audit.status.description == "KeyError"


def test_child_spans_share_the_operation_trace_and_nest() -> None:
    spans = {s.name: s for s in spans_of_every_shape()}
    op, batch, query = spans["op"], spans["batch residence"], spans["SELECT residence"]
    assert batch.context.trace_id == op.context.trace_id == query.context.trace_id
    assert batch.parent == op.context
    assert query.parent == batch.context
    assert batch.context.trace_state == TraceState([("vendor", "value"), ("other", "1")])
    assert batch.resource is op.resource
    assert batch.instrumentation_scope == op.instrumentation_scope


class Collector(http.server.BaseHTTPRequestHandler):
    """Answers each POST with the next status of ``statuses`` (then 200), keeping what came."""

    statuses: list[int]
    received: list[tuple[dict[str, str], bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((dict(self.headers), body))
        status = type(self).statuses.pop(0) if type(self).statuses else 200
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[tuple[str, type[Collector]]]:
    handler = type("Handler", (Collector,), {"statuses": [], "received": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", handler
    server.shutdown()
    server.server_close()


def test_the_exporter_posts_protobuf_with_the_configured_headers_and_gzip(
    collector: tuple[str, type[Collector]],
) -> None:
    base, handler = collector
    exporter = OtlpHttpSpanExporter.from_environment(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": base + "/",
            "OTEL_EXPORTER_OTLP_HEADERS": "Authorization=Bearer%20abc,x-tenant=delta",
            "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION": "gzip",
        }
    )
    spans = spans_of_every_shape()
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    assert exporter.export(spans[:1]) is SpanExportResult.SUCCESS  # the same connection
    [(headers, body), _] = handler.received
    assert headers["Content-Type"] == "application/x-protobuf"
    assert headers["Authorization"] == "Bearer abc"
    assert headers["x-tenant"] == "delta"
    assert headers["Content-Encoding"] == "gzip"
    request = ExportTraceServiceRequest.FromString(gzip.decompress(body))
    assert sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans) == len(spans)
    exporter.shutdown()


def test_the_exporter_retries_what_the_collector_asks_to_retry(
    collector: tuple[str, type[Collector]], monkeypatch: pytest.MonkeyPatch
) -> None:
    base, handler = collector
    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    handler.statuses = [503, 429]
    exporter = OtlpHttpSpanExporter(base + "/v1/traces", timeout=30)
    assert exporter.export(spans_of_every_shape()) is SpanExportResult.SUCCESS
    assert len(handler.received) == 3


def test_the_exporter_gives_up_on_a_refused_batch_without_retrying(
    collector: tuple[str, type[Collector]],
) -> None:
    base, handler = collector
    handler.statuses = [400]
    exporter = OtlpHttpSpanExporter(base + "/v1/traces", timeout=30)
    assert exporter.export(spans_of_every_shape()) is SpanExportResult.FAILURE
    assert len(handler.received) == 1


def test_an_unreachable_collector_fails_the_export_within_its_timeout() -> None:
    exporter = OtlpHttpSpanExporter("http://127.0.0.1:9/v1/traces", timeout=0.5)
    started = time.monotonic()
    assert exporter.export(spans_of_every_shape()) is SpanExportResult.FAILURE
    assert time.monotonic() - started < 5
