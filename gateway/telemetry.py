"""OpenTelemetry tracing: a span per operation, loader batch, backend query and audit write.

The span tree of one request::

    query CounterLookup                 (SERVER; caller app and region, matter, masked/withheld)
    ├── batch person                    (entity, region, keys, rows)
    │   └── SELECT person               (CLIENT; db.system postgresql, region, rows)
    ├── batch residence ...
    └── audit.write                     (event id, events in its INSERT)

No span per field: the stock Strawberry extension opens one per resolver,
which costs more than the work it measures. No personal value goes into an
attribute: no ID number, name or phone, and no document (its SHA-256 only,
the same hash the audit event carries). Exceptions are recorded by type, never
by message, since a message may quote a value.

A ``traceparent`` header from the caller is continued (W3C Trace Context);
without one a new trace starts. Either way the trace id is returned in the
response's ``extensions.traceId`` and written into the audit event.

Exporters come from the standard environment variables, read by
``Telemetry.from_environment``: ``OTEL_TRACES_EXPORTER`` (``otlp``,
``console``, ``none``; a comma-separated list), else OTLP when
``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is
set, over ``http/protobuf`` or ``grpc`` (``OTEL_EXPORTER_OTLP_PROTOCOL``);
``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES`` and ``OTEL_TRACES_SAMPLER``
apply as the SDK defines them. With no exporter nothing is recorded: trace ids
are still made (and continued), but no span is kept and no child span is opened.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import time
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from gateway.errors import ConfigError
from gateway.types import Caller

__all__ = ["OperationTrace", "Telemetry", "child_span"]

_PROPAGATOR = TraceContextTextMapPropagator()

#: The OTLP exporter of each protocol: (module, the distribution that provides it).
_OTLP = {
    "http/protobuf": (
        "opentelemetry.exporter.otlp.proto.http.trace_exporter",
        "opentelemetry-exporter-otlp-proto-http",
    ),
    "grpc": (
        "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
        "opentelemetry-exporter-otlp-proto-grpc",
    ),
}


class OperationTrace:
    """The span of one operation, filled in as the request goes.

    Attributes:
        span: the operation's span (not recording when nothing is exported).
        trace_id: its trace id, 32 lower-case hex digits.
    """

    __slots__ = ("span", "trace_id")

    def __init__(self, span: trace.Span) -> None:
        self.span = span
        self.trace_id = format(span.get_span_context().trace_id, "032x")

    def caller(self, caller: Caller, matter: str | None) -> None:
        if self.span.is_recording():
            self.span.set_attributes(
                {
                    "deltagate.caller.app": caller.app,
                    "deltagate.caller.region": caller.region,
                    "deltagate.caller.roles": list(caller.roles),
                    "deltagate.matter.code": matter or "",
                }
            )

    def operation(self, name: str | None, kind: str | None, document_hash: str) -> None:
        span = self.span
        if span.is_recording():
            span.update_name(f"{kind or 'operation'} {name}" if name else kind or "operation")
            span.set_attributes(
                {
                    "graphql.operation.name": name or "",
                    "graphql.operation.type": kind or "",
                    "graphql.document.sha256": document_hash,
                }
            )

    def decisions(self, fields: list[dict[str, Any]], policy_version: str | None) -> None:
        """The policy's outcome: how many values were masked and withheld."""
        if self.span.is_recording():
            masked = withheld = 0
            for entry in fields:
                if entry["decision"] == "MASKED":
                    masked += entry["count"]
                elif entry["decision"] == "WITHHELD":
                    withheld += entry["count"]
            self.span.set_attributes(
                {
                    "deltagate.policy.version": policy_version or "",
                    "deltagate.policy.masked": masked,
                    "deltagate.policy.withheld": withheld,
                }
            )

    def audited(self, event_id: int) -> None:
        if self.span.is_recording():
            self.span.set_attribute("deltagate.audit.event_id", event_id)

    def failed(self, code: str) -> None:
        """The request ended with an error whose ``extensions.code`` is ``code``."""
        if self.span.is_recording():
            self.span.set_attribute("deltagate.error.code", code)
            self.span.set_status(Status(StatusCode.ERROR, code))


class Telemetry:
    """The gateway's tracer: spans for operations, loader batches, backend queries, audit writes.

    Args:
        tracer_provider: where spans go. None records nothing (trace ids are
            still made and continued). Passed in, never global, so a test can
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
        # Without a provider, one that samples nothing: it still makes trace ids.
        source = tracer_provider or TracerProvider(sampler=ALWAYS_OFF, shutdown_on_exit=False)
        self.tracer = source.get_tracer("deltagate")

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None) -> Telemetry:
        """A tracer exporting as the ``OTEL_*`` variables say; none set, nothing is exported.

        Raises:
            ConfigError: an unknown exporter or protocol, or the OTLP package is not installed.
        """
        env = os.environ if env is None else env
        exporters = _exporters(env)
        if not exporters:
            return cls(None)
        attributes = {}
        if not env.get("OTEL_SERVICE_NAME") and "service.name" not in env.get(
            "OTEL_RESOURCE_ATTRIBUTES", ""
        ):
            attributes["service.name"] = "deltagate"
        provider = TracerProvider(resource=Resource.create(attributes), shutdown_on_exit=False)
        for exporter in exporters:
            provider.add_span_processor(BatchSpanProcessor(exporter))
        return cls(provider, owned=True)

    def child_tracer(self, operation: OperationTrace) -> trace.Tracer | None:
        """The tracer for spans below ``operation``'s; None unless that span is recorded.

        A request the sampler left out opens no span below its operation's:
        under ratio sampling, the requests not sampled cost almost nothing.
        """
        return self.tracer if operation.span.is_recording() else None

    @contextlib.contextmanager
    def operation(self, headers: Mapping[str, str]) -> Iterator[OperationTrace]:
        """The span of one request, current while the block runs, continuing ``traceparent``."""
        parent = _PROPAGATOR.extract(headers)
        with self.tracer.start_as_current_span(
            "operation",
            context=parent,
            kind=SpanKind.SERVER,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            op = OperationTrace(span)
            try:
                yield op
            except BaseException as exc:
                op.failed(type(exc).__name__)
                raise

    def span(
        self, name: str, attributes: Mapping[str, Any]
    ) -> contextlib.AbstractContextManager[Any]:
        """A child span of the current one (a no-op when that one is not recorded)."""
        if not trace.get_current_span().is_recording():
            return contextlib.nullcontext()
        return child_span(self.tracer, name, attributes)

    def observe_query(
        self, region: str, entity: str, field: str, keys: int, rows: int, seconds: float, /
    ) -> None:
        """A ``QueryObserver``: one finished span per backend query, under the current span.

        The keys and the field looked up are on the batch span above it.
        """
        if not trace.get_current_span().is_recording():
            return
        end = time.time_ns()
        span = self.tracer.start_span(
            f"SELECT {entity}",
            kind=SpanKind.CLIENT,
            start_time=end - int(seconds * 1e9),
            attributes={
                "db.system": "postgresql",
                "db.response.returned_rows": rows,
                "deltagate.region": region,
                "deltagate.entity": entity,
            },
        )
        span.end(end_time=end)

    def shutdown(self) -> None:
        """Export what is buffered and stop the exporters of a provider it owns (blocking)."""
        if self.provider is not None and self.owned:
            self.provider.shutdown()


@contextlib.contextmanager
def child_span(
    tracer: trace.Tracer, name: str, attributes: Mapping[str, Any]
) -> Iterator[trace.Span]:
    """A span under the current one, current while the block runs.

    An exception ends it in error, named by its type only: a message may quote a value.
    """
    with tracer.start_as_current_span(
        name, attributes=attributes, record_exception=False, set_status_on_exception=False
    ) as span:
        try:
            yield span
        except BaseException as exc:
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise


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
    found = _OTLP.get(protocol)
    if found is None:
        raise ConfigError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL: {protocol!r} is not supported (http/protobuf, grpc)"
        )
    module_name, distribution = found
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise ConfigError(
            f"OTLP over {protocol} needs the {distribution} package (pip install 'deltagate[otlp]')"
        ) from None
    exporter: SpanExporter = module.OTLPSpanExporter()  # endpoint, headers, timeout: OTEL_*
    return exporter
