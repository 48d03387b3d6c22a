"""The span store keeps the spans of audited operations in the audit database, and only those;
it never holds a request up or fails one, counts what it loses, and keeps within its bounds."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator

import asyncpg
import pytest
from opentelemetry.sdk.trace import TracerProvider

from gateway.audit import create_database, database_dsn
from gateway.telemetry.span_table import init_span_table
from gateway.telemetry.store import AUDITED, SpanStore, span_kind, spans_in_order
from tests.client import serve
from tests.conftest import Seeded, gateway_settings, token
from tests.gateway.audit.test_api import unique_app

DATABASE = "deltagate_span_store_test"


@pytest.fixture
async def spans_dsn(admin_dsn: str) -> AsyncIterator[str]:
    dsn = await create_database(admin_dsn, DATABASE, fresh=True)
    await init_span_table(dsn)
    return dsn


def tracer_with(store: SpanStore) -> TracerProvider:
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(store)
    return provider


def one_trace(provider: TracerProvider, *, audited: bool, start_ns: int | None = None) -> str:
    """An operation span with a child and a grandchild, as the gateway makes them."""
    tracer = provider.get_tracer("test")
    batch = {"deltagate.region": "SH"}
    query = {"db.system": "postgresql"}
    with tracer.start_as_current_span("query Q", start_time=start_ns) as root:
        with (
            tracer.start_as_current_span("batch person", start_time=start_ns, attributes=batch),
            tracer.start_as_current_span("SELECT person", start_time=start_ns, attributes=query),
        ):
            pass
        if audited:
            root.set_attribute(AUDITED, 1)
    return format(root.get_span_context().trace_id, "032x")


async def count(dsn: str) -> int:
    connection = await asyncpg.connect(dsn)
    try:
        return int(await connection.fetchval("SELECT count(*) FROM audit_span"))
    finally:
        await connection.close()


async def test_only_traces_with_an_audit_event_are_kept(spans_dsn: str) -> None:
    store = SpanStore(spans_dsn)
    await store.start()
    try:
        provider = tracer_with(store)
        kept = one_trace(provider, audited=True)
        dropped = one_trace(provider, audited=False)
        await store.flush()
        spans = await store.trace(kept)
        assert [s.kind for s in spans_in_order(spans)] == [
            "OPERATION", "LOADER_BATCH", "BACKEND_QUERY",
        ]  # fmt: skip
        assert await store.trace(dropped) == []
        assert await count(spans_dsn) == 3
    finally:
        await store.close()


async def test_a_store_that_cannot_write_counts_the_loss_and_raises_nothing(admin_dsn: str) -> None:
    lost: Counter[str] = Counter()
    store = SpanStore(database_dsn(admin_dsn, "deltagate_no_such_database"),
                      on_problem=lambda what, n: lost.update({what: n}), timeout=2.0)  # fmt: skip
    await store.start()
    try:
        one_trace(tracer_with(store), audited=True)
        await store.flush()
        assert lost["write_failed"] == 3
        assert store.queued == 0
    finally:
        await store.close()


async def test_a_database_without_the_span_table_stops_collecting_instead_of_failing_each_request(
    admin_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    lost: Counter[str] = Counter()
    # The server's maintenance database: reachable, but never given audit_span.
    store = SpanStore(database_dsn(admin_dsn, "postgres"),
                      on_problem=lambda what, n: lost.update({what: n}))  # fmt: skip
    await store.start()
    try:
        provider = tracer_with(store)
        one_trace(provider, audited=True)
        await store.flush()
        assert lost["write_failed"] == 3
        # Until the next try, audited requests cost nothing: no spans queued, no INSERT.
        one_trace(provider, audited=True)
        assert store.queued == 0
        await store.flush()
        assert lost["write_failed"] == 3
        told = [r for r in caplog.records if "no table audit_span" in r.getMessage()]
        assert len(told) == 1
    finally:
        await store.close()


async def test_memory_is_bounded_and_what_is_dropped_is_counted(spans_dsn: str) -> None:
    lost: Counter[str] = Counter()
    store = SpanStore(spans_dsn, max_queued=4, max_pending=2,
                      on_problem=lambda what, n: lost.update({what: n}))  # fmt: skip
    provider = tracer_with(store)
    tracer = provider.get_tracer("test")
    # Three traces whose operations never end: the oldest pending one is let go.
    open_roots = []
    for _ in range(3):
        root = tracer.start_span("query Q")
        open_roots.append(root)
        with tracer.start_as_current_span("batch person", context=_context(root)):
            pass
    assert lost["dropped"] == 1
    # Two audited traces of three spans each: the first lets one more open trace go; the
    # queue takes four spans and drops two.
    one_trace(provider, audited=True)
    one_trace(provider, audited=True)
    assert store.queued == 4
    assert lost["dropped"] == 1 + 1 + 2


def _context(span: object) -> object:
    from opentelemetry import trace

    return trace.set_span_in_context(span)  # type: ignore[arg-type]


async def test_pruning_keeps_the_newest_spans_within_age_and_count(spans_dsn: str) -> None:
    # No background writer here: the test flushes and prunes when it means to.
    store = SpanStore(spans_dsn, retention=3600.0, max_rows=4)
    try:
        provider = tracer_with(store)
        old = one_trace(provider, audited=True, start_ns=time.time_ns() - 2 * 3600 * 10**9)
        recent = [one_trace(provider, audited=True) for _ in range(2)]
        await store.flush()
        assert await count(spans_dsn) == 9
        assert await store.prune() == 5
        assert await store.trace(old) == []
        # Of six recent spans, the four newest stay.
        assert await count(spans_dsn) == 4
        assert len(await store.trace(recent[1])) == 3
    finally:
        await store.close()


def test_spans_are_classified_by_their_marks_not_their_names() -> None:
    assert span_kind("anything", {}, None) == "OPERATION"
    assert span_kind("fetch persons", {"db.system": "postgresql"}, "p") == "BACKEND_QUERY"
    assert span_kind("write", {AUDITED: 3}, "p") == "AUDIT_WRITE"
    assert span_kind("load", {"deltagate.batch.keys": 2}, "p") == "LOADER_BATCH"
    assert span_kind("load", {"deltagate.kind": "upstream"}, "p") == "UPSTREAM"
    assert span_kind("load", {"deltagate.kind": "bogus"}, "p") == "OTHER"
    # The gateway's own declarations; a batch that carries its query's marks is a batch.
    declared = {"operation": "OPERATION", "loader": "LOADER_BATCH", "query": "BACKEND_QUERY",
                "audit": "AUDIT_WRITE"}  # fmt: skip
    for value, kind in declared.items():
        attributes = {"deltagate.kind": value, "db.system": "postgresql"}
        assert span_kind("batch person", attributes, "p") == kind


async def test_through_the_gateway_a_lookup_is_stored_without_personal_values(
    seeded: Seeded,
) -> None:
    lookup = "query CounterLookup($id: ID!) { naturalPerson(idNumber: $id) { name phone } }"
    person = seeded.dataset.person("SH", 77)
    counter = token("SH", "one_stop_app", app=unique_app("counter-sh"))
    async with serve(gateway_settings(seeded.dsn)) as client:
        body = await client.query(lookup, {"id": person["id_number"]}, token=counter,
                                  matter="OS-ENTERPRISE-OPENING")  # fmt: skip
        catalog = await client.query("{ matters { code } }", token=counter)
        store = client.gateway.console.spans
        assert store is not None
        await store.flush()
        spans = await store.trace(body["extensions"]["traceId"])
        assert {"OPERATION", "LOADER_BATCH", "AUDIT_WRITE"} <= {s.kind for s in spans}
        # A loader batch's span is its backend query's too: the query's marks are on it.
        batches = [s for s in spans if s.kind == "LOADER_BATCH"]
        assert batches
        assert all(s.attributes["db.system"] == "postgresql" for s in batches)
        assert all("db.response.returned_rows" in s.attributes for s in batches)
        stored = str([(s.name, dict(s.attributes)) for s in spans])
        for value in (person["id_number"], person["name"]):
            assert value not in stored
        # The catalog touches no personal data: no audit event, no stored spans.
        assert await store.trace(catalog["extensions"]["traceId"]) == []
    await asyncio.sleep(0)


async def test_the_prune_command_applies_the_same_bounds(spans_dsn: str) -> None:
    from gateway.edge.cli import main

    store = SpanStore(spans_dsn)
    try:
        provider = tracer_with(store)
        one_trace(provider, audited=True, start_ns=time.time_ns() - 3 * 86400 * 10**9)
        one_trace(provider, audited=True)
        await store.flush()
    finally:
        await store.close()
    code = await asyncio.to_thread(
        main, ["spans", "prune", "--dsn", spans_dsn, "--days", "1", "--max-rows", "2"]
    )
    assert code == 0
    assert await count(spans_dsn) == 2
