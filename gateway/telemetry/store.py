"""The span store: the spans of audited operations, kept in the audit database.

An auditor's console draws a request's waterfall (operation, loader batches per
region, backend queries, audit write) from here, with no outside trace
collector; OTLP export, when configured, goes on beside it.

Which spans: only those of traces that wrote an audit event. ``SpanStore`` is a
span processor: it holds each trace's finished spans in memory until the
trace's operation span (its root) ends; by then the operation's audit event is
written and its id is on that span (``deltagate.audit.event_id``). A trace
with one is queued for writing, any other is dropped. The attributes are the
spans' own, which carry no personal value (``gateway.telemetry.spans``).

Never in the way of a request: ``on_end`` only appends to memory (bounded: the
oldest pending trace, or the newest spans, are dropped and counted when a
bound is reached); a background task writes the queue in batches (one INSERT
each) and prunes by age and count now and then. A failed write drops its batch
and is counted (``on_problem``), and the request it came from has long been
answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import StatusCode

from gateway.telemetry import span_table

__all__ = ["SPAN_KINDS", "SpanStore", "StoredSpan", "span_kind"]

logger = logging.getLogger("deltagate.spans")

#: The kinds a stored span is classified as (the console's waterfall rows).
SPAN_KINDS = ("OPERATION", "LOADER_BATCH", "BACKEND_QUERY", "AUDIT_WRITE", "UPSTREAM", "OTHER")

#: The values of ``deltagate.kind`` the gateway writes (``gateway.telemetry.spans``): a
#: loader batch's span is also its one backend query's, so it is a batch.
_DECLARED = {
    "operation": "OPERATION",
    "loader": "LOADER_BATCH",
    "query": "BACKEND_QUERY",
    "audit": "AUDIT_WRITE",
}

#: The operation span's attribute that says its trace wrote an audit event.
AUDITED = "deltagate.audit.event_id"


@dataclass(frozen=True, slots=True)
class StoredSpan:
    """One span as the store keeps it (times in nanoseconds since the epoch)."""

    span_id: str
    parent_id: str | None
    name: str
    start_ns: int
    end_ns: int
    attributes: Mapping[str, Any]
    status: str

    @property
    def kind(self) -> str:
        return span_kind(self.name, self.attributes, self.parent_id)


def span_kind(name: str, attributes: Mapping[str, Any], parent_id: str | None) -> str:
    """What a span stands for, by its ``deltagate.kind`` attribute when it has one, else by
    the marks each kind carries today (the root; ``db.system``; the audit write's and the
    batch's attributes), so spans renamed or merged later still classify."""
    declared = attributes.get("deltagate.kind")
    if isinstance(declared, str):
        found = _DECLARED.get(declared.lower(), declared.upper())
        if found in SPAN_KINDS:
            return found
    if parent_id is None:
        return "OPERATION"
    if "db.system" in attributes or name.startswith("SELECT "):
        return "BACKEND_QUERY"
    if AUDITED in attributes or "deltagate.audit.subjects" in attributes or name == "audit.write":
        return "AUDIT_WRITE"
    if "deltagate.batch.keys" in attributes or name.startswith("batch "):
        return "LOADER_BATCH"
    if "http.request.method" in attributes or "url.full" in attributes:
        return "UPSTREAM"
    return "OTHER"


def _row(span: ReadableSpan, trace_id: str) -> dict[str, Any]:
    # The recorder's finished spans carry their fields at hand (``FinishedSpan.fields``):
    # read there, not through ``ReadableSpan``'s properties, which copy on every read.
    fields = getattr(span, "fields", None)
    if fields is not None:
        name, context, parent, attributes, _kind, status, start, end, _links = fields
    else:
        name, context, parent = span.name, span.context, span.parent
        attributes, status, start, end = (
            span.attributes,
            span.status,
            span.start_time,
            span.end_time,
        )
    state = "OK"
    if status.status_code is StatusCode.ERROR:
        state = f"ERROR {status.description}" if status.description else "ERROR"
    return {
        "trace_id": trace_id,
        "span_id": format(context.span_id, "016x"),
        # A remote parent is the caller's own span: the operation is this trace's root.
        "parent_id": (
            format(parent.span_id, "016x") if parent is not None and not parent.is_remote else None
        ),
        "name": name,
        "start_ns": start or 0,
        "end_ns": end or start or 0,
        # orjson writes a tuple as a list, so the recorder's own dict goes as it is: a span's
        # attributes are not changed once it has ended.
        "attributes": attributes if type(attributes) is dict else dict(attributes or {}),
        "status": state,
    }


#: Seconds a store whose table is missing stops collecting before it tries again.
MISSING_TABLE_RETRY = 60.0


class SpanStore(SpanProcessor):
    """Keeps the spans of audited operations in the audit database's ``audit_span``.

    Args:
        dsn: the audit database.
        retention: seconds a span is kept.
        max_rows: spans kept at most (the oldest go first).
        on_problem: told ``(what, count)`` of spans lost: ``dropped`` (a bound was
            reached) or ``write_failed`` (the database refused or was down).
        batch: most spans per INSERT.
        max_queued: most spans waiting to be written; more are dropped.
        max_pending: most traces held in memory waiting for their operation to end.
        prune_every: seconds between two prunings.
    """

    def __init__(
        self,
        dsn: str,
        *,
        retention: float = 30 * 86400.0,
        max_rows: int = 1_000_000,
        on_problem: Callable[[str, int], None] | None = None,
        batch: int = 1000,
        max_queued: int = 50_000,
        max_pending: int = 4096,
        max_spans_per_trace: int = 2048,
        prune_every: float = 300.0,
        timeout: float = 5.0,
    ) -> None:
        self.dsn = dsn
        self.retention = retention
        self.max_rows = max_rows
        self.on_problem = on_problem
        self.batch = batch
        self.max_queued = max_queued
        self.max_pending = max_pending
        self.max_spans_per_trace = max_spans_per_trace
        self.prune_every = prune_every
        self.timeout = timeout
        self._pending: dict[int, list[ReadableSpan]] = {}
        self._queue: deque[dict[str, Any]] = deque()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._pool: asyncpg.Pool | None = None
        self._last_prune = 0.0
        self._closed = False
        # When the table is missing (an audit database not brought forward by ``audit
        # init``), spans are not even collected until the next try: each failed INSERT
        # costs the request path a round trip and a reconnection.
        self._missing_until = 0.0

    # -- the span processor (called on the request's thread: memory only) ---------------

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        if self._closed or (self._missing_until and time.monotonic() < self._missing_until):
            return
        context = span.context
        if context is None:
            return
        trace_id = context.trace_id
        parent = span.parent
        if parent is not None and not parent.is_remote:
            # Kept as it is until its operation ends: most traces are not audited, and
            # their spans are never turned into rows.
            spans = self._pending.get(trace_id)
            if spans is None:
                if len(self._pending) >= self.max_pending:
                    # The oldest pending trace goes: an operation that never ends its span.
                    oldest = next(iter(self._pending))
                    self._problem("dropped", len(self._pending.pop(oldest)))
                spans = self._pending[trace_id] = []
            if len(spans) < self.max_spans_per_trace:
                spans.append(span)
            else:
                self._problem("dropped", 1)
            return
        children = self._pending.pop(trace_id, [])
        if (span.attributes or {}).get(AUDITED) is None:
            return  # no audit event: not kept
        hex_id = format(trace_id, "032x")
        rows = [_row(one, hex_id) for one in (span, *children)]
        room = self.max_queued - len(self._queue)
        if room < len(rows):
            self._problem("dropped", len(rows) - max(room, 0))
            rows = rows[: max(room, 0)]
        self._queue.extend(rows)
        if self._wake is not None:
            self._wake.set()

    def shutdown(self) -> None:
        self._closed = True

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    # -- the writer (a task of the gateway's event loop) ------------------------------

    async def start(self) -> None:
        """Start the background writer (the pool connects on its first write)."""
        if self._task is None:
            self._wake = asyncio.Event()
            self._task = asyncio.create_task(self._write_loop(), name="deltagate-span-store")

    async def close(self) -> None:
        """Write what is queued (within ``timeout``), then close the pool."""
        self._closed = True
        if self._task is not None:
            if self._wake is not None:
                self._wake.set()
            self._task.cancel()
            # Bounded: a cancellation that lands while asyncpg connects can be swallowed
            # (asyncio.wait_for on 3.11), and the loop then ends only when it sees _closed.
            await asyncio.wait({self._task}, timeout=self.timeout)
            self._task = None
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.flush(), self.timeout)
        if self._pool is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._pool.close(), self.timeout)
            self._pool = None

    @property
    def queued(self) -> int:
        return len(self._queue)

    async def flush(self) -> None:
        """Write every queued span now (tests; ``close``). Failures are counted, not raised."""
        while self._queue:
            await self._write_batch()

    async def _write_loop(self) -> None:
        wake = self._wake
        assert wake is not None
        while not self._closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), self.prune_every)
            wake.clear()
            while self._queue:
                await self._write_batch()
            if time.monotonic() - self._last_prune >= self.prune_every:
                await self.prune()

    async def _write_batch(self) -> None:
        rows = [self._queue.popleft() for _ in range(min(self.batch, len(self._queue)))]
        if not rows:
            return
        try:
            pool = await self._get_pool()
            await pool.execute(
                span_table.INSERT, span_table.insert_args(rows), timeout=self.timeout
            )
        except asyncpg.UndefinedTableError:
            lost = len(rows) + len(self._queue)
            self._queue.clear()
            self._pending.clear()
            self._missing_until = time.monotonic() + MISSING_TABLE_RETRY
            logger.error(
                "the audit database has no table audit_span (run deltagate audit init as its"
                " owner): spans are not kept, next try in %.0f s",
                MISSING_TABLE_RETRY,
            )
            self._problem("write_failed", lost)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            logger.warning("spans not stored (%s): %d dropped", type(exc).__name__, len(rows))
            self._problem("write_failed", len(rows))
        else:
            self._missing_until = 0.0

    async def prune(self) -> int:
        """Delete spans past the retention and beyond the row bound; how many went."""
        self._last_prune = time.monotonic()
        try:
            pool = await self._get_pool()
            gone = 0
            for statement, argument in (
                (span_table.PRUNE_AGE, float(self.retention)),
                (span_table.PRUNE_ROWS, int(self.max_rows)),
            ):
                status = await pool.execute(statement, argument, timeout=self.timeout)
                gone += int(status.split()[-1])
            return gone
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            logger.warning("spans not pruned (%s)", type(exc).__name__)
            self._problem("prune_failed", 1)
            return 0

    async def trace(self, trace_id: str, limit: int = 2000) -> list[StoredSpan]:
        """The stored spans of one trace, by start time (none: an empty list).

        Raises:
            OSError, TimeoutError, asyncpg.PostgresError: the store cannot be read.
        """
        pool = await self._get_pool()
        rows = await pool.fetch(span_table.SELECT_TRACE, trace_id, limit, timeout=self.timeout)
        return [
            StoredSpan(
                span_id=row["span_id"],
                parent_id=row["parent_id"],
                name=row["name"],
                start_ns=row["start_ns"],
                end_ns=row["end_ns"],
                attributes=_attributes(row["attributes"]),
                status=row["status"],
            )
            for row in rows
        ]

    async def _get_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            self._pool = await asyncpg.create_pool(
                self.dsn, min_size=0, max_size=2, timeout=self.timeout
            )
        return self._pool

    def _problem(self, what: str, count: int) -> None:
        if self.on_problem is not None and count > 0:
            self.on_problem(what, count)


def _attributes(value: Any) -> Mapping[str, Any]:
    if isinstance(value, str | bytes):
        loaded = orjson.loads(value)
        return loaded if isinstance(loaded, dict) else {}
    return value if isinstance(value, Mapping) else {}


def spans_in_order(spans: Sequence[StoredSpan]) -> list[StoredSpan]:
    """Parents before their children, siblings by start: the waterfall's rows."""
    children: dict[str | None, list[StoredSpan]] = {}
    ids = {span.span_id for span in spans}
    for span in spans:
        parent = span.parent_id if span.parent_id in ids else None
        children.setdefault(parent, []).append(span)
    ordered: list[StoredSpan] = []
    stack = sorted(children.get(None, []), key=lambda s: s.start_ns, reverse=True)
    while stack:
        span = stack.pop()
        ordered.append(span)
        stack.extend(sorted(children.get(span.span_id, []), key=lambda s: s.start_ns, reverse=True))
    return ordered
