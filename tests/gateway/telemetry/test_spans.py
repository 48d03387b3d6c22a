"""Tracing: one span per operation with its batches (each its backend query), queries outside a
batch and audit write below it; the caller's trace linked, never adopted; the trace id in every
response; no personal value in any span."""

from __future__ import annotations

import gzip
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from gateway.core.errors import ConfigError
from gateway.edge.app import Gateway
from gateway.telemetry.spans import OperationTrace, Telemetry
from tests.client import serve
from tests.conftest import Seeded, gateway_settings, token

EXAMPLES = Path(__file__).parents[3] / "examples"
OS = "OS-ENTERPRISE-OPENING"
JH = "JH-HUKOU-MIGRATION"


class Traces:
    """A tracer provider whose spans stay in memory, for one test."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))

    def of(self, trace_id: str) -> list[ReadableSpan]:
        return [
            span
            for span in self.exporter.get_finished_spans()
            if format(span.context.trace_id, "032x") == trace_id
        ]


@pytest.fixture
def traces() -> Iterator[Traces]:
    found = Traces()
    yield found
    found.provider.shutdown()


def children(spans: list[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    return [s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id]


async def test_an_operation_is_one_span_with_its_batches_queries_and_audit_write(
    seeded: Seeded, traces: Traces
) -> None:
    person = seeded.dataset.cross_region_person("SH")
    document = (EXAMPLES / "counter-lookup.graphql").read_text(encoding="utf-8")
    async with serve(gateway_settings(seeded.dsn), tracer_provider=traces.provider) as client:
        body = await client.query(
            document,
            {"idNumber": person["id_number"]},
            token=token("SH", "one_stop_app", app="counter-sh"),
            matter=OS,
        )
    spans = traces.of(body["extensions"]["traceId"])
    [root] = [s for s in spans if s.parent is None]
    assert root.name == "query CounterLookup"
    assert root.kind is SpanKind.SERVER
    attributes = dict(root.attributes or {})
    assert attributes["graphql.operation.name"] == "CounterLookup"
    assert attributes["graphql.operation.type"] == "query"
    assert attributes["deltagate.caller.app"] == "counter-sh"
    assert attributes["deltagate.caller.region"] == "SH"
    assert attributes["deltagate.matter.code"] == OS

    assert attributes["deltagate.kind"] == "operation"

    below = children(spans, root)
    batches = [s for s in below if s.name.startswith("batch ")]
    [audit] = [s for s in below if s.name == "audit.write"]
    assert audit.attributes["deltagate.kind"] == "audit"
    assert len(below) == len(batches) + 1
    # The person from SH; residences and social insurance from every region, both in one
    # round trip per region.
    assert sorted((s.attributes["deltagate.entity"], s.attributes["deltagate.region"])
                  for s in batches) == sorted(
        [("person", "SH")]
        + [("residence+social_insurance", region) for region in ("SH", "JS", "ZJ", "AH")]
    )  # fmt: skip
    for batch in batches:
        # One key per look-up: the person's ID number, once for each entity read.
        looked_up = batch.attributes["deltagate.entity"].count("+") + 1
        assert batch.attributes["deltagate.batch.keys"] == looked_up
        # The batch's one backend query is recorded on the batch's own span.
        assert batch.kind is SpanKind.CLIENT
        assert batch.attributes["deltagate.kind"] == "loader"
        assert batch.attributes["db.system"] == "postgresql"
        assert (
            batch.attributes["db.response.returned_rows"]
            == batch.attributes["deltagate.batch.rows"]
        )
        assert children(spans, batch) == []
    assert sum(b.attributes["deltagate.batch.rows"] for b in batches) == 1 + len(
        body["data"]["naturalPerson"]["residences"]
    ) + len(body["data"]["naturalPerson"]["socialInsurance"])
    # Nothing else: no span per field, none per query beside its batch.
    assert len(spans) == 1 + len(batches) + 1
    assert audit.attributes["deltagate.audit.event_id"] == attributes["deltagate.audit.event_id"]


async def test_a_query_outside_a_batch_has_a_span_of_its_own(
    seeded: Seeded, traces: Traces
) -> None:
    search = '{ searchLegalPersons(name: "上", first: 5) { edges { node { uscc } } } }'
    async with serve(gateway_settings(seeded.dsn), tracer_provider=traces.provider) as client:
        body = await client.query(search, token=token("SH", "public_portal"))
    spans = traces.of(body["extensions"]["traceId"])
    [root] = [s for s in spans if s.parent is None]
    queries = [s for s in children(spans, root) if s.attributes["deltagate.kind"] == "query"]
    # One page from each region, each its own backend query.
    assert sorted(s.attributes["deltagate.region"] for s in queries) == sorted(
        ["SH", "JS", "ZJ", "AH"]
    )
    assert all(s.name == "SELECT enterprise" and s.kind is SpanKind.CLIENT for s in queries)
    assert {s.attributes["deltagate.kind"] for s in spans} <= {
        "operation", "loader", "query", "audit"
    }  # fmt: skip


async def test_masked_and_withheld_counts_are_on_the_operation_span(
    seeded: Seeded, traces: Traces
) -> None:
    usccs = [seeded.dataset.uscc(region, i) for i in range(3) for region in ("SH", "JS", "ZJ")]
    document = (EXAMPLES / "joint-handling-list.graphql").read_text(encoding="utf-8")
    async with serve(gateway_settings(seeded.dsn), tracer_provider=traces.provider) as client:
        body = await client.query(document, {"usccs": usccs}, token=token("AH", "public_portal"))
    [root] = [s for s in traces.of(body["extensions"]["traceId"]) if s.parent is None]
    fields = body["extensions"]["policy"]["fields"]
    masked = sum(e["count"] for e in fields if e["decision"] == "MASKED")
    withheld = sum(e["count"] for e in fields if e["decision"] == "WITHHELD")
    assert masked > 0
    assert withheld > 0
    assert root.attributes["deltagate.policy.masked"] == masked
    assert root.attributes["deltagate.policy.withheld"] == withheld


def span_texts(spans: list[ReadableSpan]) -> list[str]:
    texts = []
    for span in spans:
        texts.append(span.name)
        for value in (span.attributes or {}).values():
            texts.extend(str(v) for v in (value if isinstance(value, tuple) else (value,)))
        if span.status.description:
            texts.append(span.status.description)
        texts.extend(event.name for event in span.events)
    return texts


async def test_no_personal_value_reaches_a_span(seeded: Seeded, traces: Traces) -> None:
    persons = [seeded.dataset.person(region, 7) for region in ("SH", "JS", "ZJ", "AH")]
    ids = [p["id_number"] for p in persons]
    literal = ", ".join(f'"{i}"' for i in ids)  # in the document itself, not in variables
    documents = [
        (f"{{ naturalPersons(idNumbers: [{literal}]) {{ idNumber name phone birthDate"
         " householdAddress residences { address } creditRecords { subjectId title } } }"),
        f'{{ creditRecords(subjectId: "{ids[0]}") {{ edges {{ node {{ subjectId }} }} }} }}',
        f'{{ naturalPerson(idNumber: "{ids[1][:-1]}0") {{ name }} }}',  # a bad check digit
        (f'query Who {{ auditEvents(filter: {{subjectId: "{ids[2]}"}}) '
         "{ edges { node { subjects } } } }"),
    ]  # fmt: skip
    async with serve(gateway_settings(seeded.dsn), tracer_provider=traces.provider) as client:
        for document in documents:
            for caller, matter in (
                (token("JS", "joint_handling_officer"), JH),
                (token("NATIONAL", "auditor"), None),
            ):
                await client.post(document, token=caller, matter=matter)
    texts = span_texts(list(traces.exporter.get_finished_spans()))
    assert len(texts) > 50
    keys = ("id_number", "name", "phone", "household_address", "birth_date")
    personal = [p[key] for p in persons for key in keys if p.get(key)]
    leaked = [(value, text) for value in personal for text in texts if str(value) in text]
    assert leaked == []


async def test_the_caller_trace_is_linked_not_adopted(seeded: Seeded, traces: Traces) -> None:
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    async with serve(gateway_settings(seeded.dsn), tracer_provider=traces.provider) as client:
        response = await client.post(
            "query($u: ID!) { legalPerson(uscc: $u) { name } }",
            {"u": seeded.dataset.uscc("SH", 1)},
            token=token("SH", "public_portal"),
            headers={"traceparent": f"00-{trace_id}-{parent_id}-01"},
        )
    own = response.json()["extensions"]["traceId"]
    assert own != trace_id  # the gateway's own trace, not one the caller chose
    assert traces.of(trace_id) == []
    [root] = [s for s in traces.of(own) if s.name.startswith("query")]
    assert root.parent is None
    [link] = root.links  # from the gateway's trace back to the caller's
    assert format(link.context.trace_id, "032x") == trace_id
    assert format(link.context.span_id, "016x") == parent_id
    assert link.context.is_remote
    assert link.attributes == {"deltagate.link": "caller"}


@pytest.mark.parametrize("recording", [True, False])
async def test_every_response_carries_its_trace_id(seeded: Seeded, recording: bool) -> None:
    provider = Traces().provider if recording else None
    uscc = seeded.dataset.uscc("JS", 1)
    person = seeded.dataset.person("JS", 1)["id_number"]
    given = "0af7651916cd43dd8448eb211c80319c"
    async with serve(gateway_settings(seeded.dsn), tracer_provider=provider) as client:
        answers = [
            await client.post("{ catalog { coordinate } }", token=None),  # 401
            await client.post("{ nope }", token=token("SH", "public_portal")),  # invalid
            await client.post(  # 403 matter
                "{ __typename }", token=token("SH", "public_portal"), matter="JH-HUKOU-MIGRATION"
            ),
            await client.post(
                "query($u: ID!) { legalPerson(uscc: $u) { name } }",
                {"u": uscc},
                token=token("SH", "public_portal"),
            ),
            await client.post(
                "query($i: ID!) { naturalPerson(idNumber: $i) { name } }",
                {"i": person},
                token=token("SH", "one_stop_app"),
                headers={"traceparent": f"00-{given}-00f067aa0ba902b7-01"},
            ),
        ]
    trace_ids = [answer.json()["extensions"]["traceId"] for answer in answers]
    assert [answer.status_code for answer in answers] == [401, 200, 403, 200, 200]
    assert all(len(t) == 32 and int(t, 16) for t in trace_ids)
    assert len(set(trace_ids)) == len(trace_ids)
    assert given not in trace_ids  # the gateway's own, even when nothing is recorded


@pytest.mark.parametrize("ratio", [0.0, 1.0])
async def test_the_sampler_decides_for_the_operation_and_its_spans(
    seeded: Seeded, ratio: float
) -> None:
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    traces = Traces()
    traces.provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(ratio)))
    traces.provider.add_span_processor(SimpleSpanProcessor(traces.exporter))
    given = "0af7651916cd43dd8448eb211c80319c"
    try:
        async with serve(gateway_settings(seeded.dsn), tracer_provider=traces.provider) as client:
            response = await client.post(
                "query($u: ID!) { legalPerson(uscc: $u) { name } }",
                {"u": seeded.dataset.uscc("JS", 2)},
                token=token("SH", "public_portal"),
                # A sampled caller does not make the gateway record its request.
                headers={"traceparent": f"00-{given}-00f067aa0ba902b7-01"},
            )
    finally:
        traces.provider.shutdown()
    trace_id = response.json()["extensions"]["traceId"]
    assert len(trace_id) == 32
    assert trace_id != given
    spans = traces.of(trace_id)
    if ratio == 0.0:
        assert traces.exporter.get_finished_spans() == ()
    else:
        assert {s.attributes["deltagate.kind"] for s in spans} == {"operation", "loader"}
        assert all(s.context.trace_flags.sampled for s in spans)


def test_nothing_is_exported_unless_the_environment_says_so() -> None:
    assert not Telemetry.from_environment({}).recording
    assert not Telemetry.from_environment({"OTEL_TRACES_EXPORTER": "none"}).recording
    endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}
    assert not Telemetry.from_environment({**endpoint, "OTEL_SDK_DISABLED": "true"}).recording
    console = Telemetry.from_environment({"OTEL_TRACES_EXPORTER": "console"})
    assert console.recording
    assert console.provider is not None
    processor = console.provider._active_span_processor._span_processors[0]  # type: ignore[attr-defined]
    assert isinstance(processor.span_exporter, ConsoleSpanExporter)
    console.shutdown()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "unknown exporter"),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "carrier-pigeon"},
         "not supported"),
    ],
)  # fmt: skip
def test_a_wrong_exporter_setting_is_a_configuration_error(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        Telemetry.from_environment(env)


class Collector(http.server.BaseHTTPRequestHandler):
    """An OTLP/HTTP endpoint on the loopback interface that keeps what it receives."""

    received: ClassVar[list[tuple[str, bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        self.received.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


async def test_spans_reach_an_otlp_collector_named_in_the_environment(
    seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    Collector.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
        monkeypatch.setenv("OTEL_SERVICE_NAME", "deltagate-test")
        async with serve(gateway_settings(seeded.dsn)) as client:
            assert client.gateway.telemetry.recording
            body = await client.query(
                "query Registry($u: ID!) { legalPerson(uscc: $u) { name } }",
                {"u": seeded.dataset.uscc("AH", 1)},
                token=token("SH", "public_portal"),
            )
        # Closing the gateway flushed the exporter.
    finally:
        server.shutdown()
        server.server_close()
    assert {path for path, _ in Collector.received} == {"/v1/traces"}
    names = {}
    for _, payload in Collector.received:
        request = ExportTraceServiceRequest.FromString(payload)
        for resource in request.resource_spans:
            service = {a.key: a.value.string_value for a in resource.resource.attributes}
            for scope in resource.scope_spans:
                for span in scope.spans:
                    names[span.name] = (span.trace_id.hex(), service["service.name"])
    assert names["query Registry"] == (body["extensions"]["traceId"], "deltagate-test")
    assert "batch enterprise" in names


def test_a_gateway_with_a_tracer_provider_given_leaves_its_shutdown_to_the_caller(
    seeded: Seeded,
) -> None:
    traces = Traces()
    gateway = Gateway.from_settings(gateway_settings(seeded.dsn), tracer_provider=traces.provider)
    gateway.telemetry.shutdown()
    with traces.provider.get_tracer("t").start_as_current_span("still open"):
        pass
    assert [s.name for s in traces.exporter.get_finished_spans()] == ["still open"]


def test_a_verified_parent_is_continued_and_a_malformed_one_is_not() -> None:
    """The trace context a trusted upper signed is continued (``parent``); anything else
    starts the gateway's own trace, as for any caller."""
    traces = Traces()
    telemetry = Telemetry(traces.provider)
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    forged = {"traceparent": "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"}
    with telemetry.operation(forged, parent=f"00-{trace_id}-{parent_id}-01") as op:
        pass
    assert op.trace_id == trace_id
    assert op.traceparent.startswith(f"00-{trace_id}-")
    [span] = traces.of(trace_id)
    assert span.parent is not None
    assert format(span.parent.span_id, "016x") == parent_id
    assert not span.links  # the unsigned header is not even linked
    with telemetry.operation({}, parent="00-not-a-trace-context") as own:
        pass
    assert own.trace_id != trace_id
    [root] = traces.of(own.trace_id)
    assert root.parent is None
    traces.provider.shutdown()


def test_an_exception_leaving_the_operation_marks_its_span_and_ends_it() -> None:
    traces = Traces()
    telemetry = Telemetry(traces.provider)
    found: list[Any] = []

    def operation() -> OperationTrace:
        with telemetry.operation({}) as op:
            with telemetry.span("inner", {"deltagate.kind": "test"}) as inner:
                found.append(inner)  # the operation's span is the current one
            raise TimeoutError
        return op  # never reached

    try:
        with pytest.raises(TimeoutError):
            operation()
        [inner] = found
        assert inner is not None
        with telemetry.span("after", {}) as after:
            assert after is None  # and is no longer, once its block is left
    finally:
        traces.provider.shutdown()
    spans = {span.name: span for span in traces.exporter.get_finished_spans()}
    assert spans["operation"].status.status_code is StatusCode.ERROR
    assert spans["operation"].attributes["deltagate.error.code"] == "TimeoutError"
    assert spans["inner"].parent.span_id == spans["operation"].context.span_id


def test_the_default_sampler_is_decided_as_when_it_is_asked() -> None:
    """A new root under the default sampler (decided without calling it) is sampled with
    nothing added, as when the same sampler is asked; a caller's ``traceparent``, sampled
    or not, changes nothing."""
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON, DEFAULT_ON, ParentBased

    shortcut, asked = Traces(), Traces()
    asked.provider = TracerProvider(sampler=ParentBased(ALWAYS_ON))  # not the default's object
    asked.provider.add_span_processor(SimpleSpanProcessor(asked.exporter))
    assert shortcut.provider.sampler is DEFAULT_ON
    try:
        for headers in ({}, {"traceparent": f"00-{'ab' * 16}-{'cd' * 8}-00"}):
            made = []
            for traces in (shortcut, asked):
                with Telemetry(traces.provider).operation(headers) as op:
                    pass
                assert op.recorder is not None
                [span] = traces.of(op.trace_id)
                made.append((op.context.trace_flags, op.context.trace_state, span.attributes,
                             len(span.links)))  # fmt: skip
            assert made[0] == made[1]
            assert made[0][0].sampled
    finally:
        shortcut.provider.shutdown()
        asked.provider.shutdown()
