"""How many audit events per second one audit database takes from 1, 2 and 4 writer processes.

    python -m bench.audit_writers [--writers 1,2,4] [--duration 10] [--concurrency 32]
                                  [--layouts current,previous] [--repeat 3]

Each writer is a process of its own with one ``PostgresAuditLog`` (its own writer
task and group commit, as every gateway worker has) and ``concurrency`` tasks that
append events back to back, as that many requests in flight would. All writers
append to one fresh audit database (made as ``deltagate audit init`` makes it) on
one embedded PostgreSQL (``bench.database``, its own data folder). After a warm-up
every writer counts the appends that committed within the same window.

Printed per writer count: events/s, the mean events per INSERT, transactions
committed and rolled back per second (each writer appends to a chain of its own,
so a rollback is a failed INSERT, none expected), the share of sampled
PostgreSQL backends of the audit log waiting on a lock, and the CPU milliseconds
per event spent by PostgreSQL (postmaster and every backend; checkpoints
included) and by the writers. Then ``EXPLAIN ANALYZE`` shows where an INSERT's
time goes inside PostgreSQL, in the previous layout and today's (in a scratch
database; the parsing of the batch's JSON happens before execution and is not
in it).

``--layouts previous,inline,current --repeat 3`` measures earlier layouts
against today's, interleaved, each writer count three times, and prints the
medians and their ratio to the first: ``previous`` is the layout ``deltagate
audit init`` made before the link check ran once per statement (a row trigger
and an index on ``acting``), ``inline`` the one before the decision lists had a
table of their own (every event carrying its list); both are in
``tests/gateway/audit/previous_layout.py``, with their writer, which sends every
list inline. Every event is a Q1 counter look-up with its real decisions list
(14 entries, 2.3 kB): all the same list, unless ``--distinct N`` varies it over
N lists. Before ``verify``, a log of an earlier layout is brought forward by
``init`` (DDL only), as an upgrade would.

Absolute numbers depend on the machine and what else runs on it; the load
average is printed before and after each window.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import multiprocessing
import os
import statistics
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from bench.database import start
from bench.servers import cpu_seconds, spent
from gateway.audit import AuditEvent, PostgresAuditLog, create_database, verify
from gateway.audit.decision_sets import KnownSets
from gateway.audit.decision_sets import batch as batch_of
from gateway.audit.events import GENESIS, link
from gateway.audit.sql import DECISION_SETS, INSERT, init_schema
from gateway.core.errors import AuditUnavailable
from tests.gateway.audit.previous_layout import (
    INLINE_INSERT,
    INLINE_SCHEMA,
    PREVIOUS_SCHEMA,
    InlineAuditLog,
)

#: The layouts measured: today's (each decisions list stored once, events referring to
#: theirs), the one before it (every event carrying its list: ``inline``), and the one
#: before the link check ran per statement (``previous``).
LAYOUTS = ("current", "inline", "previous")

#: The audit database this benchmark makes afresh for each writer count.
DATABASE = "deltagate_audit_writers"
#: Seconds between two samples of what the audit log's backends wait on.
SAMPLE_EVERY = 0.05
#: Seconds the writers stay connected after the window, for their backends' CPU to be read.
LINGER = 3.0


#: The decisions of a Q1 counter look-up (``bench.workload``: one person, residences,
#: social insurance), as a gateway wrote them: field, grade, count, decision, reason;
#: every owner Shanghai, the clearance L3, no rule. 2.3 kB as JSON; every Q1 event has
#: the same list (``--distinct`` varies the counts, so that fewer repeat).
Q1_DECISIONS = (
    ("NaturalPerson.birthDate", "L3", 1, "CLEAR", "WITHIN_CLEARANCE"),
    ("NaturalPerson.ethnicity", "L4", 1, "WITHHELD", "NO_MASK_RULE"),
    ("NaturalPerson.gender", "L2", 1, "CLEAR", "WITHIN_CLEARANCE"),
    ("NaturalPerson.householdAddress", "L3", 1, "CLEAR", "WITHIN_CLEARANCE"),
    ("NaturalPerson.householdRegion", "L2", 1, "CLEAR", "WITHIN_CLEARANCE"),
    ("NaturalPerson.idNumber", "L3", 2, "CLEAR", "WITHIN_CLEARANCE"),
    ("NaturalPerson.name", "L2", 1, "CLEAR", "WITHIN_CLEARANCE"),
    ("NaturalPerson.phone", "L3", 1, "CLEAR", "WITHIN_CLEARANCE"),
    ("NaturalPerson.residences", "L3", 1, "CLEAR", "WITHIN_CLEARANCE"),
    ("NaturalPerson.socialInsurance", "L3", 1, "CLEAR", "WITHIN_CLEARANCE"),
    ("SocialInsurance.insuranceType", "L3", 2, "CLEAR", "WITHIN_CLEARANCE"),
    ("SocialInsurance.region", "L2", 2, "CLEAR", "WITHIN_CLEARANCE"),
    ("SocialInsurance.since", "L3", 2, "CLEAR", "WITHIN_CLEARANCE"),
    ("SocialInsurance.status", "L3", 2, "CLEAR", "WITHIN_CLEARANCE"),
)


def decisions(variant: int = 0) -> tuple[dict[str, Any], ...]:
    """Q1's decisions; ``variant`` > 0 changes the social insurance counts, as a person
    with more or fewer insurance records would."""
    return tuple(
        {
            "field": field,
            "owner": "SH",
            "decision": decision,
            "grade": grade,
            "clearance": "L3",
            "rule": None,
            "reason": reason,
            "count": count + variant if field.startswith("SocialInsurance") else count,
        }
        for field, grade, count, decision, reason in Q1_DECISIONS
    )


def event(number: int, distinct: int = 1) -> AuditEvent:
    """A Q1 event: a Shanghai counter looking one person up under a matter; its decisions
    one of ``distinct`` lists."""
    digits = f"{number:017d}"[-17:]
    return AuditEvent(
        at=dt.datetime.now(dt.UTC),
        trace_id=uuid.uuid4().hex,
        caller_app="bench-counter-sh",
        caller_region="SH",
        roles=("one_stop_app",),
        matter_code="OS-ENTERPRISE-OPENING",
        matter_name="企业开办",
        operation_name="CounterLookup",
        operation_type="query",
        document_hash="ab" * 32,
        policy_version="bench",
        subjects=(f"3101{digits[4:]}X",),
        decisions=decisions(number % distinct),
    )


@dataclass(frozen=True)
class Window:
    """When every writer warms up, starts counting and stops (``time.time()`` seconds)."""

    start: float
    stop: float


async def _append_until(
    dsn: str, window: Window, concurrency: int, layout: str, distinct: int
) -> dict[str, Any]:
    writer = PostgresAuditLog if layout == "current" else InlineAuditLog
    log = writer(dsn, timeout=30.0)
    await log.start()
    counted = 0
    refused = 0
    batches: list[int] = []

    async def requester(number: int) -> None:
        nonlocal counted, refused
        n = number
        while time.time() < window.stop:
            try:
                receipt = await log.append(event(n, distinct))
            except AuditUnavailable:
                if window.start <= time.time() < window.stop:
                    refused += 1
                continue
            finally:
                n += concurrency
            if window.start <= time.time() < window.stop:
                counted += 1
                batches.append(receipt.batch)

    await asyncio.gather(*(requester(i) for i in range(concurrency)))
    # Keep the connections (and so their backends) a moment: the parent reads their CPU
    # at the window's end, and an exited backend's CPU can no longer be read.
    await asyncio.sleep(max(0.0, window.stop + LINGER - time.time()))
    await log.close()
    return {"events": counted, "refused": refused, "batches": batches}


def _writer(
    dsn: str, window: Window, concurrency: int, layout: str, distinct: int, results: Any
) -> None:
    """One writer process: append until the window closes, report what committed in it."""
    # A refused batch is counted in the report; one log line per refusal would drown it.
    logging.getLogger("deltagate.audit").setLevel(logging.CRITICAL)
    results.put(asyncio.run(_append_until(dsn, window, concurrency, layout, distinct)))


async def _database_stats(dsn: str) -> tuple[int, int]:
    connection = await asyncpg.connect(dsn)
    try:
        row = await connection.fetchrow(
            "SELECT xact_commit, xact_rollback FROM pg_stat_database WHERE datname = $1", DATABASE
        )
        return int(row["xact_commit"]), int(row["xact_rollback"])
    finally:
        await connection.close()


async def _sample_waits(dsn: str, window: Window) -> Counter[str]:
    """What the audit log's backends are doing, sampled through the window."""
    seen: Counter[str] = Counter()
    connection = await asyncpg.connect(dsn)
    try:
        await asyncio.sleep(max(0.0, window.start - time.time()))
        while time.time() < window.stop:
            rows = await connection.fetch(
                "SELECT state, wait_event_type, wait_event FROM pg_stat_activity"
                " WHERE application_name = 'deltagate-audit' AND datname = $1",
                DATABASE,
            )
            for row in rows:
                if row["state"] != "active":
                    seen["idle"] += 1
                elif row["wait_event_type"]:
                    seen[f"{row['wait_event_type']}:{row['wait_event']}"] += 1
                else:
                    seen["running"] += 1
            await asyncio.sleep(SAMPLE_EVERY)
    finally:
        await connection.close()
    return seen


async def _fresh_log(server_dsn: str, name: str, layout: str) -> str:
    """A new audit database of ``layout``, made as that layout's ``deltagate audit init`` did."""
    dsn = await create_database(server_dsn, name, fresh=True)
    if layout != "current":
        connection = await asyncpg.connect(dsn)
        try:
            await connection.execute(
                "DROP TABLE audit_event, audit_checkpoint, audit_decision_set;"
                " DROP FUNCTION audit_event_append_only, audit_event_follows,"
                " audit_checkpoint_follows, audit_event_keys"
            )
            await connection.execute(PREVIOUS_SCHEMA if layout == "previous" else INLINE_SCHEMA)
            # The gateway checks that the table of lists is there; its writer leaves it empty.
            await connection.execute(DECISION_SETS)
        finally:
            await connection.close()
    return dsn


def measure(
    server_dsn: str,
    postmaster: int,
    writers: int,
    seconds: float,
    warmup: float,
    concurrency: int,
    layout: str = "current",
    distinct: int = 1,
) -> dict[str, Any]:
    """One window: ``writers`` processes appending to a fresh audit database of ``layout``."""
    dsn = asyncio.run(_fresh_log(server_dsn, DATABASE, layout))
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    # Spawned interpreters take a second or two to import the gateway on a busy machine.
    begin = time.time() + 3.0 + warmup
    window = Window(begin, begin + seconds)
    processes = [
        context.Process(target=_writer, args=(dsn, window, concurrency, layout, distinct, results))
        for _ in range(writers)
    ]
    for process in processes:
        process.start()
    while time.time() < window.start:
        time.sleep(0.01)
    load_before = os.getloadavg()[0]
    pg_before = cpu_seconds([postmaster], with_children=True)
    writers_before = cpu_seconds([p.pid for p in processes if p.pid], with_children=False)
    stats_before = asyncio.run(_database_stats(server_dsn))
    waits = asyncio.run(_sample_waits(server_dsn, window))
    stats_after = asyncio.run(_database_stats(server_dsn))
    pg_cpu = spent(pg_before, cpu_seconds([postmaster], with_children=True))
    writer_cpu = spent(
        writers_before, cpu_seconds([p.pid for p in processes if p.pid], with_children=False)
    )
    load_after = os.getloadavg()[0]
    reports = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(30)
    if layout != "current":
        # Verified as today's gateway reads it: brought forward first (DDL only).
        asyncio.run(init_schema(dsn))
    report = asyncio.run(verify(dsn))
    events = sum(r["events"] for r in reports)
    batches = [size for r in reports for size in r["batches"]]
    sampled = sum(waits.values()) or 1
    return {
        "layout": layout,
        "writers": writers,
        "events_per_s": events / seconds,
        "mean_batch": statistics.fmean(batches) if batches else 0.0,
        "commits_per_s": (stats_after[0] - stats_before[0]) / seconds,
        "rollbacks_per_s": (stats_after[1] - stats_before[1]) / seconds,
        "refused": sum(r["refused"] for r in reports),
        "lock_wait_share": sum(n for k, n in waits.items() if k.startswith("Lock:")) / sampled,
        "waits": dict(waits.most_common(6)),
        "pg_ms_per_event": 1000 * pg_cpu / max(events, 1),
        "writer_ms_per_event": 1000 * writer_cpu / max(events, 1),
        "load": (load_before, load_after),
        "verified": report.ok,
        "logged": report.events,
        "lists": asyncio.run(_lists(dsn)),
    }


async def _lists(dsn: str) -> int:
    """How many decisions lists the log keeps in their own table."""
    connection = await asyncpg.connect(dsn)
    try:
        return int(await connection.fetchval("SELECT count(*) FROM audit_decision_set"))
    finally:
        await connection.close()


async def explain(
    server_dsn: str, batch: int, layouts: list[str]
) -> list[tuple[str, float, float]]:
    """Where one INSERT of ``batch`` events spends its time in each of ``layouts``:
    (layout, total ms, link check ms)."""
    out = []
    for layout in layouts:
        dsn = await _fresh_log(server_dsn, f"{DATABASE}_explain", layout)
        connection = await asyncpg.connect(dsn)
        known = KnownSets()
        try:
            # A log that already holds events, as a running one does.
            head = (0, GENESIS)
            for _ in range(20):
                stored = link("explain", [event(i) for i in range(500)], head)
                sql, args = _statement(layout, stored, known)
                await connection.execute(sql, *args)
                head = (stored[-1].seq, stored[-1].hash)
            totals, triggers = [], []
            for _ in range(5):
                stored = link("explain", [event(i) for i in range(batch)], head)
                sql, args = _statement(layout, stored, known)
                # EXPLAIN ANALYZE runs the INSERT: the batch is kept and the head moves on.
                plan = await connection.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", *args)
                result = orjson.loads(plan)[0]
                totals.append(result["Execution Time"])
                triggers.append(sum(t["Time"] for t in result.get("Triggers", [])))
                head = (stored[-1].seq, stored[-1].hash)
            out.append((layout, statistics.median(totals), statistics.median(triggers)))
        finally:
            await connection.close()
    return out


def _statement(layout: str, stored: list[Any], known: KnownSets) -> tuple[str, list[str]]:
    """The INSERT of a linked batch as ``layout``'s writer sends it, and its arguments."""
    if layout == "current":
        made = batch_of(stored, known)
        known.saw(made.seen)
        known.add(made.new)  # as the writer does once its batch has committed
        return INSERT, [made.events.decode(), made.lists.decode()]
    return INLINE_INSERT, [(b"[" + b",".join(s.record for s in stored) + b"]").decode()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--writers", default="1,2,4", help="writer process counts (default 1,2,4)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds counted per count")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before counting")
    parser.add_argument("--concurrency", type=int, default=32, help="appends in flight per writer")
    parser.add_argument("--explain-batch", type=int, default=50, help="events in the EXPLAIN batch")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "deltagate-bench-audit-pg",
        help="the embedded PostgreSQL's data folder",
    )
    parser.add_argument(
        "--layouts",
        default="current",
        help="audit layouts measured, interleaved: current, inline, previous (default current)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="windows per layout and count")
    parser.add_argument(
        "--distinct", type=int, default=1, help="distinct decisions lists (default 1: Q1's)"
    )
    args = parser.parse_args()
    layouts = args.layouts.split(",")
    if not set(layouts) <= set(LAYOUTS):
        parser.error(f"--layouts takes {', '.join(LAYOUTS)}")
    database = start(args.data_dir)
    print(f"cores {os.cpu_count()}, load average {os.getloadavg()}")
    print(
        f"{'layout':>8}  {'writers':>7}  {'events/s':>8}  {'batch':>5}  {'commit/s':>8}"
        f"  {'rollbk/s':>8}  {'refused':>7}  {'lock wait':>9}  {'PG ms/ev':>8}  {'wr ms/ev':>8}"
        f"  {'load':>9}  verify"
    )
    rows = []
    for _ in range(args.repeat):
        for writers in (int(n) for n in args.writers.split(",")):
            for layout in layouts:
                row = measure(
                    database.dsn, database.postmaster_pid, writers, args.duration, args.warmup,
                    args.concurrency, layout, args.distinct,
                )  # fmt: skip
                rows.append(row)
                print(
                    f"{layout:>8}  {writers:>7}  {row['events_per_s']:>8.0f}"
                    f"  {row['mean_batch']:>5.1f}  {row['commits_per_s']:>8.0f}"
                    f"  {row['rollbacks_per_s']:>8.1f}  {row['refused']:>7}"
                    f"  {row['lock_wait_share']:>8.0%}  {row['pg_ms_per_event']:>8.3f}"
                    f"  {row['writer_ms_per_event']:>8.3f}"
                    f"  {row['load'][0]:>4.1f}/{row['load'][1]:<4.1f}"
                    f"  {'ok' if row['verified'] else 'BROKEN'} ({row['logged']} events,"
                    f" {row['lists']} lists stored)",
                    flush=True,
                )
    for row in rows:
        print(f"  {row['layout']}, {row['writers']} writer(s), backends sampled: {row['waits']}")
    if args.repeat > 1 or len(layouts) > 1:
        _medians(rows, layouts)
    print(f"one INSERT of {args.explain_batch} events inside PostgreSQL (median of 5):")
    explained = asyncio.run(explain(database.dsn, args.explain_batch, layouts))
    for label, total, trigger in explained:
        per = 1000 / args.explain_batch
        print(
            f"  {label + ' layout':<16} {total:7.2f} ms ({total * per:5.0f} µs/event),"
            f" link check {trigger:6.2f} ms ({trigger * per:4.0f} µs/event)"
        )


def _medians(rows: list[dict[str, Any]], layouts: list[str]) -> None:
    """Per writer count, each layout's median PostgreSQL and writer CPU per event, and the
    ratio of each to the first layout's."""
    print("medians (PG ms/ev, writer ms/ev, mean batch; ratio of PG ms/ev to the first layout):")
    for writers in sorted({row["writers"] for row in rows}):
        first = None
        for layout in layouts:
            mine = [r for r in rows if r["writers"] == writers and r["layout"] == layout]
            pg = statistics.median(r["pg_ms_per_event"] for r in mine)
            wr = statistics.median(r["writer_ms_per_event"] for r in mine)
            batch = statistics.median(r["mean_batch"] for r in mine)
            first = pg if first is None else first
            print(
                f"  {writers} writer(s) {layout:>8}: PG {pg:.4f}  writer {wr:.4f}"
                f"  batch {batch:5.1f}  ({pg / first:.2f} of {layouts[0]}, n={len(mine)})"
            )


if __name__ == "__main__":
    main()
