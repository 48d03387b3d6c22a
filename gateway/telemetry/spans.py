"""OpenTelemetry tracing: a span per operation, loader batch and audit write.

The span tree of one request (``deltagate.kind`` on each: ``operation``,
``loader``, ``query``, ``audit``)::

    query CounterLookup                 (SERVER, operation; caller app and region, matter,
    │                                    masked/withheld, audit event id)
    ├── batch person                    (CLIENT, loader; entity, region, keys, rows, db.system)
    ├── batch residence+social_insurance  (one round trip to a region for both look-ups)
    ├── ...
    ├── SELECT enterprise               (CLIENT, query: a backend query outside a batch, e.g.
    │                                    a search page)
    └── audit.write                     (audit; event id, events in its INSERT)

A loader batch sends exactly one backend round trip, so its span is that
query's span too (``db.system``, ``db.response.returned_rows``): a span of its
own per query would double the spans and tell nothing more. Only a query
outside a batch gets a ``query`` span.

No span per field: the stock Strawberry extension opens one per resolver,
which costs more than the work it measures. Every span, the operation's
included, is made by ``SpanRecorder`` as a ``FinishedSpan`` (a finished
``ReadableSpan``) handed straight to the provider's span processors; the
provider's sampler and id generator decide and number the operation's span as
they would an SDK span.
The SDK's live span (locks, bounded attributes, context attach and detach)
cost about 40 µs each; a finished span costs a tenth of that. Children follow
their operation's sampling decision, as the SDK's parent-based samplers do. No
personal value goes into an attribute: no ID number, name or phone, and no
document (its SHA-256 only, the same hash the audit event carries). Exceptions
are recorded by type, never by message, since a message may quote a value.

Every request starts a trace of the gateway's own, and that trace id is
returned in the response's ``extensions.traceId`` and written into the audit
event. A caller's ``traceparent`` (W3C Trace Context) is kept as a link of the
operation's span, so the caller's trace and the gateway's still lead to each
other, but it is never the gateway's trace: a caller who chose its trace id
could otherwise give its request the trace id of another caller's request,
and an auditor looking up that trace would find both audit events. The
sampler decides for the new trace as for any root, so a caller's sampled flag
does not make the gateway record (and export) its requests either.

One exception: a request from a trusted upper gateway in the cascade continues
the upper's trace, taken from the ``traceparent`` the upper signed into its
delegation (``gateway.edge.delegated``), so one trace id runs from the
caller's gateway to the lowest backend query and every level's audit event
carries it. Only a gateway this one trusts to act for others can choose it,
and its id is recorded beside it (the event's ``acting``).

Exporters come from the standard environment variables, read by
``Telemetry.from_environment``: ``OTEL_TRACES_EXPORTER`` (``otlp``,
``console``, ``none``; a comma-separated list), else OTLP when
``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is
set, over ``http/protobuf`` or ``grpc`` (``OTEL_EXPORTER_OTLP_PROTOCOL``);
``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES`` and ``OTEL_TRACES_SAMPLER``
apply as the SDK defines them. Beside them, the gateway keeps the spans of
audited operations in the audit database (``gateway.telemetry.store``) when it
has one. With neither, nothing is recorded: trace ids are still made, but no
span is kept and no child span is opened.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import random
import time
from collections.abc import Mapping, Sequence
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import DEFAULT_ON
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from gateway.core.errors import ConfigError
from gateway.core.types import Caller
from gateway.telemetry.otlp import FinishedSpan, OtlpHttpSpanExporter

__all__ = ["ChildSpan", "OperationTrace", "SpanRecorder", "Telemetry"]

_PROPAGATOR = TraceContextTextMapPropagator()

#: The SDK's OTLP exporter for gRPC: (module, the distribution that provides it).
#: OTLP over HTTP is deltagate's own (gateway/telemetry/otlp.py).
_OTLP_GRPC = (
    "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
    "opentelemetry-exporter-otlp-proto-grpc",
)

_UNSET = Status(StatusCode.UNSET)
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)

# An empty context: the operation's span is a root whatever is current, a trace of its own.
_NEW_TRACE = Context()
# Marks the link to the caller's trace (the span that called, in the caller's system).
_CALLER_LINK = {"deltagate.link": "caller"}


def _processor_of(provider: TracerProvider) -> SpanProcessor:
    """The provider's span processors, as one.

    They have no public accessor; ``add_span_processor`` feeds this one. With a single
    processor (the usual batch processor) spans go to it without the fan-out in between.
    """
    processor = provider._active_span_processor
    inner: tuple[SpanProcessor, ...] = getattr(processor, "_span_processors", ())
    return inner[0] if len(inner) == 1 else processor


def _child_of(parent: SpanContext) -> SpanContext:
    """A new span's context under ``parent``: same trace, flags and state, a random id."""
    span_id = random.getrandbits(64) or 1  # zero is the invalid id
    return SpanContext(parent.trace_id, span_id, False, parent.trace_flags, parent.trace_state)


class SpanRecorder:
    """Makes the spans below one recorded operation's span, as finished spans.

    Each child goes to the provider's span processors when it ends, as an SDK
    span would, with the operation's trace id, sampling flags, resource and
    instrumentation scope. Processors see ``on_end`` only, never ``on_start``:
    the batch and simple processors (the ones exporting) need nothing else.
    """

    __slots__ = ("_processor", "_resource", "_root", "_scope")

    def __init__(
        self, provider: TracerProvider, operation: SpanContext, scope: InstrumentationScope
    ) -> None:
        self._processor = _processor_of(provider)
        self._resource = provider.resource
        self._scope = scope
        self._root = operation

    def span(
        self,
        name: str,
        attributes: dict[str, Any],
        kind: SpanKind = SpanKind.INTERNAL,
        *,
        batch: bool = False,
    ) -> ChildSpan:
        """A span under the current child (or the operation), current while its block runs.

        ``batch``: a loader batch (a ``CLIENT`` span), whose one backend query is recorded on it
        (``observe_query``) rather than in a span of its own.
        """
        if batch:
            kind = SpanKind.CLIENT
        current = _CURRENT.get()
        parent = current.context if current is not None else self._root
        return ChildSpan(self, name, attributes, kind, parent, batch)

    def finished(
        self,
        name: str,
        attributes: dict[str, Any],
        kind: SpanKind,
        start: int,
        end: int,
        parent: SpanContext,
    ) -> None:
        """Record a span under ``parent`` that already ended (``start``, ``end``: ns, epoch)."""
        self._processor.on_end(
            FinishedSpan(
                name,
                _child_of(parent),
                parent,
                self._resource,
                attributes,
                kind,
                _UNSET,
                start,
                end,
                self._scope,
            )
        )

    def operation_ended(self, op: OperationTrace, end: int) -> None:
        """Record the operation's own span: a root (the caller's trace as a link), or the child
        of an upper gateway's span."""
        self._processor.on_end(
            FinishedSpan(
                op.name,
                op.context,
                op.parent,
                self._resource,
                op.attributes or {},
                SpanKind.SERVER,
                op.status,
                op.start,
                end,
                self._scope,
                op.links,
            )
        )

    def _ended(self, child: ChildSpan, end: int) -> None:
        self._processor.on_end(
            FinishedSpan(
                child.name,
                child.context,
                child.parent,
                self._resource,
                child.attributes,
                child.kind,
                child.status,
                child.start,
                end,
                self._scope,
            )
        )


class ChildSpan:
    """A span below the operation's: attributes set while it runs, recorded when it ends.

    An exception ends it in error, named by its type only: a message may quote a value.
    """

    __slots__ = (
        "_token",
        "attributes",
        "batch",
        "context",
        "kind",
        "name",
        "parent",
        "recorder",
        "start",
        "status",
    )  # fmt: skip

    def __init__(
        self,
        recorder: SpanRecorder,
        name: str,
        attributes: dict[str, Any],
        kind: SpanKind,
        parent: SpanContext,
        batch: bool = False,
    ) -> None:
        self.recorder = recorder
        self.batch = batch
        self.name = name
        self.attributes = dict(attributes)
        self.kind = kind
        self.parent = parent
        self.status = _UNSET
        self.context = _child_of(parent)
        self.start = 0

    def set_attribute(self, key: str, value: Any) -> None:
        self.attributes[key] = value

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        self.attributes.update(attributes)

    def __enter__(self) -> ChildSpan:
        self.start = time.time_ns()
        self._token = _CURRENT.set(_Current(self.recorder, self.context, self))
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        end = time.time_ns()
        _CURRENT.reset(self._token)
        if kind is not None:
            self.status = Status(StatusCode.ERROR, kind.__name__)
        self.recorder._ended(self, end)


class _Current:
    """What ``_CURRENT`` holds: the recorder of the running operation and the span to nest under
    (``span``: None for the operation's own)."""

    __slots__ = ("context", "recorder", "span")

    def __init__(
        self, recorder: SpanRecorder, context: SpanContext, span: ChildSpan | None = None
    ) -> None:
        self.recorder = recorder
        self.context = context
        self.span = span


# The innermost span of the running operation that spans may nest under; None when
# nothing is recorded. Tasks started by gather copy it, so a batch's backend query
# nests under its batch.
_CURRENT: ContextVar[_Current | None] = ContextVar("deltagate_span", default=None)


class OperationTrace:
    """The span of one operation, filled in as the request goes and recorded as it ends.

    Attributes:
        recorder: makes the spans below it; None when the span is not recorded (a
            request the sampler left out opens no span below its operation's).
        trace_id: its trace id, 32 lower-case hex digits.
        attributes: what the span will carry (None when it is not recorded).
    """

    __slots__ = (
        "attributes", "context", "links", "name", "parent", "recorder", "start", "status",
        "trace_id",
    )  # fmt: skip

    def __init__(
        self,
        context: SpanContext,
        recorder: SpanRecorder | None = None,
        links: tuple[Link, ...] = (),
        attributes: Mapping[str, Any] | None = None,
        parent: SpanContext | None = None,
    ) -> None:
        self.context = context
        self.recorder = recorder
        self.parent = parent
        self.links = links
        self.trace_id = format(context.trace_id, "032x")
        self.name = "operation"
        self.status = _UNSET
        self.start = time.time_ns()
        self.attributes: dict[str, Any] | None = (
            {"deltagate.kind": "operation", **(attributes or {})} if recorder is not None else None
        )

    @property
    def traceparent(self) -> str:
        """W3C ``traceparent`` of the operation's span: what the requests it makes carry."""
        context = self.context
        return f"00-{self.trace_id}-{context.span_id:016x}-{int(context.trace_flags):02x}"

    def caller(self, caller: Caller, matter: str | None) -> None:
        if self.attributes is not None:
            self.attributes.update(
                {
                    "deltagate.caller.app": caller.app,
                    "deltagate.caller.region": caller.region,
                    "deltagate.caller.roles": caller.roles,  # a tuple: its encoding is kept
                    "deltagate.matter.code": matter or "",
                }
            )

    def operation(self, name: str | None, kind: str | None, document_hash: str) -> None:
        if self.attributes is not None:
            self.name = f"{kind or 'operation'} {name}" if name else kind or "operation"
            self.attributes.update(
                {
                    "graphql.operation.name": name or "",
                    "graphql.operation.type": kind or "",
                    "graphql.document.sha256": document_hash,
                }
            )

    def decisions(self, fields: list[dict[str, Any]], policy_version: str | None) -> None:
        """The policy's outcome: how many values were masked and withheld."""
        if self.attributes is not None:
            masked = withheld = 0
            for entry in fields:
                if entry["decision"] == "MASKED":
                    masked += entry["count"]
                elif entry["decision"] == "WITHHELD":
                    withheld += entry["count"]
            self.attributes.update(
                {
                    "deltagate.policy.version": policy_version or "",
                    "deltagate.policy.masked": masked,
                    "deltagate.policy.withheld": withheld,
                }
            )

    def audited(self, event_id: int) -> None:
        if self.attributes is not None:
            self.attributes["deltagate.audit.event_id"] = event_id

    def failed(self, code: str) -> None:
        """The request ended with an error whose ``extensions.code`` is ``code``."""
        if self.attributes is not None:
            self.attributes["deltagate.error.code"] = code
            self.status = Status(StatusCode.ERROR, code)

    def finish(self) -> None:
        """End the span and hand it to the span processors (if it is recorded)."""
        if self.recorder is not None:
            self.recorder.operation_ended(self, time.time_ns())


class _Operation:
    """``Telemetry.operation``'s ``with`` block: the operation's span is the current one inside
    it, fails with the type of an exception that leaves it, and ends with it. A class rather
    than a generator: every request enters one."""

    __slots__ = ("_op", "_token")

    def __init__(self, op: OperationTrace) -> None:
        self._op = op
        self._token: Token[_Current | None] | None = None

    def __enter__(self) -> OperationTrace:
        op = self._op
        if op.recorder is not None:
            self._token = _CURRENT.set(_Current(op.recorder, op.context))
        return op

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        op = self._op
        try:
            if kind is not None:
                op.failed(kind.__name__)
        finally:
            if self._token is not None:
                _CURRENT.reset(self._token)
            op.finish()


class Telemetry:
    """The gateway's tracer: spans for operations, loader batches, backend queries, audit writes.

    Args:
        tracer_provider: where spans go. None records nothing (trace ids are
            still made). Passed in, never global, so a test can
            hand in a provider with an in-memory exporter.
        owned: shut the provider down with the gateway (one it made itself);
            a provider handed in is left to whoever made it.

    Example::

        telemetry = Telemetry.from_environment()       # OTEL_* variables
        with telemetry.operation(request.headers) as op:
            ...
            response["extensions"]["traceId"] = op.trace_id
    """

    def __init__(
        self, tracer_provider: TracerProvider | None = None, *, owned: bool = False
    ) -> None:
        self.provider = tracer_provider
        self.owned = owned
        self.recording = tracer_provider is not None
        self.scope = InstrumentationScope("deltagate")

    @classmethod
    def from_environment(
        cls, env: Mapping[str, str] | None = None, processors: Sequence[SpanProcessor] = ()
    ) -> Telemetry:
        """A tracer exporting as the ``OTEL_*`` variables say, and to ``processors`` (the
        span store); with neither, nothing is recorded.

        Raises:
            ConfigError: an unknown exporter or protocol, or the OTLP package is not installed.
        """
        env = os.environ if env is None else env
        exporters = _exporters(env)
        if not exporters and not processors:
            return cls(None)
        attributes = {}
        if not env.get("OTEL_SERVICE_NAME") and "service.name" not in env.get(
            "OTEL_RESOURCE_ATTRIBUTES", ""
        ):
            attributes["service.name"] = "deltagate"
        provider = TracerProvider(resource=Resource.create(attributes), shutdown_on_exit=False)
        for exporter in exporters:
            provider.add_span_processor(BatchSpanProcessor(exporter))
        for processor in processors:
            provider.add_span_processor(processor)
        return cls(provider, owned=True)

    def operation(self, headers: Mapping[str, str], *, parent: str | None = None) -> _Operation:
        """The span of one request, in a new trace, linked to the caller's ``traceparent``.

        ``headers`` are the request's, read by lower-cased name (the first value of a
        repeated one: Starlette's ``Headers``, or the edge's ``request_headers``).
        ``parent`` is a trace context the gateway has verified (an upper gateway's,
        signed inside its delegation): the span continues that trace instead.

        The provider's sampler decides, as for any span; the span is made as it ends and
        handed to the provider's processors like its children (``SpanRecorder``): an SDK
        span (locks, attribute checks, context attach and detach) cost a Q1 look-up about
        50 µs.
        """
        return _Operation(self._begin(headers, parent))

    def _begin(self, headers: Mapping[str, str], parent: str | None) -> OperationTrace:
        upper: SpanContext | None = None
        if parent is not None:
            found = trace.get_current_span(_PROPAGATOR.extract({"traceparent": parent}))
            if found.get_span_context().is_valid:
                upper = found.get_span_context()
        provider = self.provider
        if provider is None:  # nothing is recorded: a trace id all the same
            trace_id = upper.trace_id if upper is not None else random.getrandbits(128) or 1
            return OperationTrace(SpanContext(trace_id, random.getrandbits(64) or 1, False))
        ids = provider.id_generator
        links: tuple[Link, ...] = ()
        if upper is not None:  # the upper gateway's trace, continued
            trace_id = upper.trace_id
            context = trace.set_span_in_context(trace.NonRecordingSpan(upper), _NEW_TRACE)
        else:
            # A root whatever the caller sent (``_NEW_TRACE``): the caller's trace is a link.
            # Without a ``traceparent`` there is none, and nothing to parse.
            if "traceparent" in headers:
                caller = trace.get_current_span(_PROPAGATOR.extract(headers)).get_span_context()
                if caller.is_valid:
                    links = (Link(caller, _CALLER_LINK),)
            trace_id = ids.generate_trace_id()
            context = _NEW_TRACE
        if upper is None and provider.sampler is DEFAULT_ON:
            # The default sampler (parent-based, always on) records and samples every root,
            # adding no attribute and no trace state: decided without its calls (2 µs).
            own = SpanContext(trace_id, ids.generate_span_id(), False, _SAMPLED)
            return OperationTrace(own, SpanRecorder(provider, own, self.scope), links)
        sampled = provider.sampler.should_sample(
            context, trace_id, "operation", SpanKind.SERVER, None, list(links)
        )
        flags = TraceFlags(TraceFlags.SAMPLED if sampled.decision.is_sampled() else 0)
        own = SpanContext(trace_id, ids.generate_span_id(), False, flags, sampled.trace_state)
        if not sampled.decision.is_recording():
            return OperationTrace(own, parent=upper)
        recorder = SpanRecorder(provider, own, self.scope)
        return OperationTrace(own, recorder, links, sampled.attributes, upper)

    def span(
        self, name: str, attributes: dict[str, Any]
    ) -> contextlib.AbstractContextManager[ChildSpan | None]:
        """A child span of the current one (a no-op when the operation is not recorded)."""
        current = _CURRENT.get()
        if current is None:
            return contextlib.nullcontext()
        return current.recorder.span(name, attributes)

    def observe_query(
        self, region: str, entity: str, field: str, keys: int, rows: int, seconds: float, /
    ) -> None:
        """A ``QueryObserver``: a backend query, recorded on its loader batch's span, or as a
        finished span of its own under the current span outside a batch.

        The keys and the field looked up are on the batch span.
        """
        current = _CURRENT.get()
        if current is None:
            return
        batch = current.span
        if batch is not None and batch.batch:
            attributes = batch.attributes
            attributes["db.system"] = "postgresql"
            attributes["db.response.returned_rows"] = (
                attributes.get("db.response.returned_rows", 0) + rows
            )
            return
        end = time.time_ns()
        current.recorder.finished(
            f"SELECT {entity}",
            {
                "deltagate.kind": "query",
                "db.system": "postgresql",
                "db.response.returned_rows": rows,
                "deltagate.region": region,
                "deltagate.entity": entity,
            },
            SpanKind.CLIENT,
            end - int(seconds * 1e9),
            end,
            current.context,
        )

    def shutdown(self) -> None:
        """Export what is buffered and stop the exporters of a provider it owns (blocking)."""
        if self.provider is not None and self.owned:
            self.provider.shutdown()


def _exporters(env: Mapping[str, str]) -> list[SpanExporter]:
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    names = env.get("OTEL_TRACES_EXPORTER")
    if names is None:
        endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get(
            "OTEL_EXPORTER_OTLP_ENDPOINT"
        )
        names = "otlp" if endpoint else "none"
    exporters: list[SpanExporter] = []
    for name in (n.strip().lower() for n in names.split(",")):
        if name in ("", "none"):
            continue
        if name == "console":
            exporters.append(ConsoleSpanExporter())
        elif name == "otlp":
            exporters.append(_otlp(env))
        else:
            raise ConfigError(
                f"OTEL_TRACES_EXPORTER: unknown exporter {name!r} (otlp, console, none)"
            )
    return exporters


def _otlp(env: Mapping[str, str]) -> SpanExporter:
    protocol = (
        env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"  # the specification's default
    ).strip()
    if protocol == "http/protobuf":
        return OtlpHttpSpanExporter.from_environment(env)
    if protocol != "grpc":
        raise ConfigError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL: {protocol!r} is not supported (http/protobuf, grpc)"
        )
    module_name, distribution = _OTLP_GRPC
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise ConfigError(
            f"OTLP over gRPC needs the {distribution} package (pip install 'deltagate[otlp]')"
        ) from None
    exporter: SpanExporter = module.OTLPSpanExporter()  # endpoint, headers, timeout: OTEL_*
    return exporter
