"""Spans to OTLP over HTTP: a protobuf encoder written for speed, and the exporter that posts it.

Why not the SDK's ``OTLPSpanExporter``: its encoder builds a protobuf object
per span, attribute and value in Python, about 45 µs a span. A Q1 look-up
makes some twenty spans, so encoding alone cost more than a millisecond of the
worker's only thread (the export thread shares the interpreter lock). This
encoder writes the same ``ExportTraceServiceRequest`` bytes directly, with the
resource, scope and repeated attributes encoded once and kept; the tests parse
its output and the SDK's and require them to be equal.

The exporter reads the same ``OTEL_EXPORTER_OTLP_*`` variables as the SDK's
(endpoint, headers, timeout, compression, certificates) and retries what the
specification calls retryable (429, 502, 503, 504, a dropped connection) with
exponential back-off until its timeout. gRPC keeps the SDK's exporter.
"""

from __future__ import annotations

import gzip
import http.client
import logging
import random
import ssl
import struct
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any, cast

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode

from gateway.core.errors import ConfigError

__all__ = ["FinishedSpan", "OtlpHttpSpanExporter", "encode_spans"]

logger = logging.getLogger("deltagate.otlp")

# Span flags (opentelemetry/proto/trace/v1/trace.proto): the SDK always says whether
# the parent was remote.
_HAS_IS_REMOTE = 0x100
_IS_REMOTE = 0x200
# Field 16 (flags, fixed32) of a span, and field 6 of a link.
_LOCAL_PARENT = b"\x85\x01" + struct.pack("<I", _HAS_IS_REMOTE)
_REMOTE_PARENT = b"\x85\x01" + struct.pack("<I", _HAS_IS_REMOTE | _IS_REMOTE)
_LOCAL_LINK = b"\x35" + struct.pack("<I", _HAS_IS_REMOTE)
_REMOTE_LINK = b"\x35" + struct.pack("<I", _HAS_IS_REMOTE | _IS_REMOTE)
# The SDK always sends a status, empty when unset.
_UNSET_STATUS = b"\x7a\x00"
# OTLP numbers span kinds from 1 (0 is unspecified), the SDK from 0.
_KINDS = {kind: bytes((0x30, kind.value + 1)) for kind in SpanKind}
_RETRYABLE = frozenset({429, 502, 503, 504})
_CACHE_LIMIT = 4096

_pack_double = struct.Struct("<d").pack
_pack_fixed64 = struct.Struct("<Q").pack


#: One-byte varints (0 to 127), as bytes: most lengths and small numbers.
_SMALL = tuple(bytes((n,)) for n in range(0x80))


def _varint(value: int) -> bytes:
    if 0 <= value < 0x80:
        return _SMALL[value]
    if 0 < value < 0x200000:  # two or three bytes: lengths, counts, times in µs
        if value < 0x4000:
            return bytes((value & 0x7F | 0x80, value >> 7))
        return bytes((value & 0x7F | 0x80, value >> 7 & 0x7F | 0x80, value >> 14))
    value &= 0xFFFFFFFFFFFFFFFF  # negative int64: two's complement, ten bytes
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    size = len(payload)
    return _varint(number << 3 | 2) + (_SMALL[size] if size < 0x80 else _varint(size)) + payload


def _string(number: int, text: str | None) -> bytes:
    return _field(number, text.encode()) if text else b""


def _uint(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value) if value else b""


def _any_value(value: Any) -> bytes:
    if value is None:
        return b""
    if isinstance(value, bool):
        return b"\x10" + (b"\x01" if value else b"\x00")
    if isinstance(value, str):
        return _field(1, value.encode())
    if isinstance(value, int):
        return b"\x18" + _varint(value)
    if isinstance(value, float):
        return b"\x21" + _pack_double(value)
    if isinstance(value, bytes):
        return _field(7, value)
    if isinstance(value, Mapping):
        pairs = b"".join(_field(1, _key_value(str(k), v)) for k, v in value.items())
        return _field(6, pairs)
    if isinstance(value, Sequence):
        return _field(5, b"".join(_field(1, _any_value(v)) for v in value))
    raise TypeError(f"attribute value of type {type(value).__name__}")


def _key_value(key: str, value: Any) -> bytes:
    return _string(1, key) + _field(2, _any_value(value))


def _status(status: Status) -> bytes:
    return _field(15, _string(2, status.description) + _uint(3, status.status_code.value))


class FinishedSpan(ReadableSpan):
    """A span made already ended, with no events (``telemetry.SpanRecorder``'s).

    It keeps its fields at hand as well, so the encoder writes it without going
    through ``ReadableSpan``'s properties, which copy on every read. ``parent``:
    None for a root.
    """

    def __init__(
        self,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        resource: Resource,
        attributes: dict[str, Any],
        kind: SpanKind,
        status: Status,
        start: int,
        end: int,
        scope: InstrumentationScope | None,
        links: tuple[Link, ...] = (),
    ) -> None:
        super().__init__(
            name, context, parent, resource, attributes, links=links,
            kind=kind, status=status, start_time=start, end_time=end,
            instrumentation_scope=scope,
        )  # fmt: skip
        self.fields = (name, context, parent, attributes, kind, status, start, end, links)


class _Encoder:
    """Keeps the encodings that repeat from span to span: attributes and names.

    One per exporter: its caches are filled from that exporter's thread only.
    """

    def __init__(self) -> None:
        # Keyed by the field number the pair is written as (span, event, link, resource),
        # and by type: True == 1 == 1.0, but each encodes differently.
        self._attributes: dict[tuple[int, str, type, Any], bytes] = {}
        # A key as field 1 of its ``KeyValue``, for the values not kept whole (large whole
        # numbers: ids, counts and times vary from span to span).
        self._keys: dict[str, bytes] = {}
        self._names: dict[str, bytes] = {}

    def attributes(self, number: int, attributes: Mapping[str, Any] | None) -> bytes:
        if not attributes:
            return b""
        cache = self._attributes
        parts = []
        tag = _varint(number << 3 | 2)
        for key, value in attributes.items():
            kind = type(value)
            # A large number (an id, a count of µs, a time) varies from span to span: kept, it
            # only churns the cache, so it is written directly after its kept key. A small
            # number recurs (a region's rows, a status code): kept whole like text.
            if kind is int and not 0 <= value < 0x80:
                head = self._keys.get(key)
                if head is None:
                    if len(self._keys) >= _CACHE_LIMIT:
                        self._keys.clear()
                    head = self._keys[key] = _string(1, key)
                body = b"\x18" + _varint(value)  # AnyValue.int_value: at most eleven bytes
                # KeyValue: the key, then the value (field 2).
                pair = head + b"\x12" + _SMALL[len(body)] + body
                size = len(pair)
                parts.append(tag + (_SMALL[size] if size < 0x80 else _varint(size)) + pair)
                continue
            try:
                entry = (number, key, kind, value)
                encoded = cache.get(entry)
            except TypeError:  # a value that cannot be hashed: not kept
                entry, encoded = None, None
            if encoded is None:
                try:
                    encoded = _field(number, _key_value(key, value))
                except TypeError:
                    logger.warning("span attribute %r of an unsupported type dropped", key)
                    continue
                if entry is not None:
                    if len(cache) >= _CACHE_LIMIT:
                        cache.clear()
                    cache[entry] = encoded
            parts.append(encoded)
        return b"".join(parts)

    def name(self, name: str) -> bytes:
        """A span's name as field 5 of its ``Span`` message."""
        encoded = self._names.get(name)
        if encoded is None:
            if len(self._names) >= _CACHE_LIMIT:
                self._names.clear()
            encoded = self._names[name] = _string(5, name)
        return encoded

    def finished(self, span: FinishedSpan) -> bytes:
        name, context, parent, attributes, kind, status, start, end, links = span.fields
        encoded_name = self.name(name)
        state = context.trace_state
        return b"".join(
            (
                b"\x0a\x10",
                context.trace_id.to_bytes(16, "big"),
                b"\x12\x08",
                context.span_id.to_bytes(8, "big"),
                _string(3, ",".join(f"{k}={v}" for k, v in state.items())) if state else b"",
                b"" if parent is None else b"\x22\x08" + parent.span_id.to_bytes(8, "big"),
                encoded_name,
                _KINDS[kind],
                b"\x39",
                _pack_fixed64(start),
                b"\x41",
                _pack_fixed64(end),
                self.attributes(9, attributes),
                self._links(links) if links else b"",
                _UNSET_STATUS
                if status.status_code is StatusCode.UNSET and not status.description
                else _field(
                    15, _string(2, status.description) + _uint(3, status.status_code.value)
                ),
                _REMOTE_PARENT if parent is not None and parent.is_remote else _LOCAL_PARENT,
            )
        )

    def _links(self, links: Sequence[Link]) -> bytes:
        parts = []
        for link in links:
            linked = link.context
            parts.append(
                _field(
                    13,
                    b"\x0a\x10" + linked.trace_id.to_bytes(16, "big")
                    + b"\x12\x08" + linked.span_id.to_bytes(8, "big")
                    + self.attributes(4, link.attributes)
                    + _uint(5, link.dropped_attributes)
                    + (_REMOTE_LINK if linked.is_remote else _LOCAL_LINK),
                )
            )  # fmt: skip
        return b"".join(parts)

    def span(self, span: ReadableSpan) -> bytes:
        if type(span) is FinishedSpan:
            return self.finished(span)
        # A started SDK span always has a context (the SDK's own ``Span`` casts it too).
        context = cast(SpanContext, span.get_span_context())
        parent = span.parent
        name = self.name(span.name)
        parts = [
            b"\x0a\x10",
            context.trace_id.to_bytes(16, "big"),
            b"\x12\x08",
            context.span_id.to_bytes(8, "big"),
        ]
        state = context.trace_state
        if state:
            parts.append(_string(3, ",".join(f"{k}={v}" for k, v in state.items())))
        if parent is not None:
            parts += (b"\x22\x08", parent.span_id.to_bytes(8, "big"))
        parts += (name, _KINDS[span.kind])
        if span.start_time:
            parts += (b"\x39", _pack_fixed64(span.start_time))
        if span.end_time:
            parts += (b"\x41", _pack_fixed64(span.end_time))
        parts.append(self.attributes(9, span.attributes))
        parts.append(_uint(10, span.dropped_attributes))
        for event in span.events:
            parts.append(
                _field(
                    11,
                    (b"\x09" + _pack_fixed64(event.timestamp) if event.timestamp else b"")
                    + _string(2, event.name)
                    + self.attributes(3, event.attributes)
                    + _uint(4, event.dropped_attributes),
                )
            )
        parts.append(_uint(12, span.dropped_events))
        parts.append(self._links(span.links))
        parts.append(_uint(14, span.dropped_links))
        status = span.status
        if status.description or status.status_code.value:
            parts.append(_status(status))
        else:
            parts.append(_UNSET_STATUS)
        parts.append(_REMOTE_PARENT if parent is not None and parent.is_remote else _LOCAL_PARENT)
        return b"".join(parts)

    def request(self, spans: Sequence[ReadableSpan]) -> bytes:
        """An ``ExportTraceServiceRequest``: spans grouped by resource, then by scope."""
        # By identity: a Resource hashes by dumping its attributes to JSON, on every call.
        resources: dict[int, Any] = {}
        scopes: dict[int, Any] = {}
        grouped: dict[int, dict[int, list[bytes]]] = {}
        for span in spans:
            resource = span.resource
            scope = span.instrumentation_scope or None
            resources[id(resource)] = resource
            scopes[id(scope)] = scope
            by_scope = grouped.get(id(resource))
            if by_scope is None:
                by_scope = grouped[id(resource)] = {}
            encoded = by_scope.get(id(scope))
            if encoded is None:
                encoded = by_scope[id(scope)] = []
            encoded.append(_field(2, self.span(span)))
        out = []
        for resource_id, by_scope in grouped.items():
            resource = resources[resource_id]
            body = [_field(1, self.attributes(1, resource.attributes))]
            for scope_id, encoded in by_scope.items():
                scope = scopes[scope_id]
                head = b""
                if scope is not None:
                    head = (
                        _string(1, scope.name)
                        + _string(2, scope.version)
                        + self.attributes(3, scope.attributes)
                    )
                schema = scope.schema_url if scope is not None else None
                body.append(_field(2, _field(1, head) + b"".join(encoded) + _string(3, schema)))
            body.append(_string(3, resource.schema_url))
            out.append(_field(1, b"".join(body)))
        return b"".join(out)


def encode_spans(spans: Sequence[ReadableSpan]) -> bytes:
    """The serialized ``ExportTraceServiceRequest`` carrying ``spans``."""
    return _Encoder().request(spans)


class OtlpHttpSpanExporter(SpanExporter):
    """Posts spans as OTLP/HTTP protobuf (``application/x-protobuf``) to a collector.

    Args:
        endpoint: the full URL of the traces endpoint, e.g. ``http://collector:4318/v1/traces``.
        headers: sent with every request (e.g. an authorization header).
        timeout: seconds an export may take, retries included.
        compression: ``gzip`` or ``none``.
        certificate, client_key, client_certificate: files for TLS to the collector.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
        compression: str = "none",
        certificate: str | None = None,
        client_key: str | None = None,
        client_certificate: str | None = None,
    ) -> None:
        url = urllib.parse.urlsplit(endpoint)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ConfigError(f"OTLP endpoint {endpoint!r} is not an http(s) URL")
        if compression not in ("none", "gzip"):
            raise ConfigError(f"OTLP compression {compression!r} is not supported (gzip, none)")
        self.endpoint = endpoint
        self._url = url
        self._path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        self._headers = {
            "Content-Type": "application/x-protobuf",
            "User-Agent": "deltagate-otlp",
            **(headers or {}),
        }
        if compression == "gzip":
            self._headers["Content-Encoding"] = "gzip"
        self._compression = compression
        self._timeout = timeout
        self._ssl: ssl.SSLContext | None = None
        if url.scheme == "https":
            self._ssl = ssl.create_default_context(cafile=certificate)
            if client_certificate:
                self._ssl.load_cert_chain(client_certificate, client_key)
        self._connection: http.client.HTTPConnection | None = None
        self._encoder = _Encoder()
        self._shutdown = False

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> OtlpHttpSpanExporter:
        """The exporter the ``OTEL_EXPORTER_OTLP_*`` variables describe (traces first)."""

        def setting(name: str) -> str | None:
            return env.get(f"OTEL_EXPORTER_OTLP_TRACES_{name}") or env.get(
                f"OTEL_EXPORTER_OTLP_{name}"
            )

        endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        if not endpoint:
            base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or "http://localhost:4318"
            endpoint = f"{base.removesuffix('/')}/v1/traces"
        timeout = setting("TIMEOUT")
        try:
            # Seconds, as the Python SDK reads it.
            seconds = float(timeout) if timeout else 10.0
        except ValueError:
            raise ConfigError(f"OTEL_EXPORTER_OTLP_TIMEOUT: {timeout!r} is not a number") from None
        return cls(
            endpoint,
            headers=_headers(setting("HEADERS") or ""),
            timeout=seconds,
            compression=(setting("COMPRESSION") or "none").strip().lower(),
            certificate=setting("CERTIFICATE"),
            client_key=setting("CLIENT_KEY"),
            client_certificate=setting("CLIENT_CERTIFICATE"),
        )

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shutdown:
            return SpanExportResult.FAILURE
        try:
            body = self._encoder.request(spans)
        except Exception as error:  # a span the encoder cannot write must not stop the thread
            logger.error("OTLP: %d spans not encoded: %s", len(spans), type(error).__name__)
            return SpanExportResult.FAILURE
        if self._compression == "gzip":
            body = gzip.compress(body, compresslevel=6)
        deadline = time.monotonic() + self._timeout
        delay = 1.0
        while True:
            status = self._post(body, deadline)
            if status is not None and 200 <= status < 300:
                return SpanExportResult.SUCCESS
            retryable = status is None or status in _RETRYABLE
            left = deadline - time.monotonic()
            if not retryable or left <= delay or self._shutdown:
                logger.warning(
                    "OTLP: %d spans not exported to %s (%s)",
                    len(spans), self.endpoint, status or "no connection",
                )  # fmt: skip
                return SpanExportResult.FAILURE
            time.sleep(delay * random.uniform(0.8, 1.2))
            delay *= 2

    def _post(self, body: bytes, deadline: float) -> int | None:
        """The response's status, or None when the collector could not be reached."""
        timeout = max(0.1, deadline - time.monotonic())
        try:
            connection = self._connection
            if connection is None:
                connection = self._connect(timeout)
            connection.timeout = timeout
            if connection.sock is not None:  # kept alive: the socket has the old deadline
                connection.sock.settimeout(timeout)
            connection.request("POST", self._path, body=body, headers=self._headers)
            response = connection.getresponse()
            response.read()
            if response.will_close:
                self._close()
            return response.status
        except (OSError, http.client.HTTPException):
            self._close()
            return None

    def _connect(self, timeout: float) -> http.client.HTTPConnection:
        url = self._url
        connection: http.client.HTTPConnection
        if self._ssl is not None:
            connection = http.client.HTTPSConnection(
                url.hostname or "", url.port, timeout=timeout, context=self._ssl
            )
        else:
            connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=timeout)
        self._connection = connection
        return connection

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def shutdown(self) -> None:
        self._shutdown = True
        self._close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True  # nothing is buffered here; the span processor holds what waits


def _headers(text: str) -> dict[str, str]:
    """``OTEL_EXPORTER_OTLP_HEADERS``: ``key=value`` pairs, comma-separated, URL-encoded."""
    headers = {}
    for pair in text.split(","):
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            continue
        headers[urllib.parse.unquote(key.strip())] = urllib.parse.unquote(value.strip())
    return headers
