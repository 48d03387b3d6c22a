"""What every ``AuditLog`` must do, run against PostgreSQL and against a list.

The PostgreSQL run is the one that protects the gateway; the in-memory run shows
that the interface alone carries everything the gateway asks of an audit log.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import AsyncIterator

import pytest

from gateway.audit import GENESIS, AuditEvent, AuditLog, EventQuery, Head, PostgresAuditLog
from gateway.core.errors import AuditUnavailable
from tests.gateway.audit.conftest import event, new_audit_database
from tests.gateway.audit.memory import MemoryAuditLog

BASE = dt.datetime(2024, 6, 1, 1, 0, tzinfo=dt.UTC)


@pytest.fixture(params=["postgres", "memory"])
async def audit_log(request: pytest.FixtureRequest, admin_dsn: str) -> AsyncIterator[AuditLog]:
    if request.param == "memory":
        async with MemoryAuditLog() as log:
            yield log
        return
    async with new_audit_database(admin_dsn) as dsn, PostgresAuditLog(dsn, timeout=5.0) as log:
        yield log


def timed(number: int, *, app: str = "counter-sh", subjects: tuple[str, ...] = ()) -> AuditEvent:
    """Event ``number``, written ``number`` minutes after ``BASE``."""
    written = event(number, app=app, subjects=subjects)
    return dataclasses.replace(written, at=BASE + dt.timedelta(minutes=number))


async def test_an_empty_log_has_no_head_and_verifies(audit_log: AuditLog) -> None:
    assert await audit_log.head() is None
    assert await audit_log.read(EventQuery()) == []
    report = await audit_log.verify()
    assert report.ok
    assert (report.events, report.head, report.broken) == (0, None, None)
    await audit_log.ping()


async def test_appended_events_read_back_unchanged_and_chained(audit_log: AuditLog) -> None:
    written = [event(i, subjects=(f"3101051985010{i}0011",)) for i in range(3)]
    receipts = [await audit_log.append(e) for e in written]
    # One writer, one chain, numbered without gaps; the receipt names each event for good.
    assert [r.seq for r in receipts] == [1, 2, 3]
    assert len({r.chain for r in receipts}) == 1
    assert receipts[0].as_json() == {"chain": receipts[0].chain, "seq": 1, "hash": receipts[0].hash}
    assert [r.stored.id for r in receipts] == sorted({r.stored.id for r in receipts})
    stored = await audit_log.read(EventQuery(limit=10, newest_first=False))
    assert stored == [r.stored for r in receipts]
    assert [s.event for s in stored] == written
    assert stored[0].prev_hash == GENESIS
    assert [s.prev_hash for s in stored[1:]] == [s.hash for s in stored[:-1]]
    assert all(s.verify_hash() for s in stored)


async def test_the_head_is_the_newest_event(audit_log: AuditLog) -> None:
    for i in range(4):
        receipt = await audit_log.append(event(i))
        assert await audit_log.head() == Head(receipt.chain, receipt.seq, receipt.hash)


async def test_verify_walks_the_chain_and_checks_an_anchor(audit_log: AuditLog) -> None:
    for i in range(5):
        await audit_log.append(event(i))
    report = await audit_log.verify()
    assert report.ok
    assert report.events == 5
    assert report.head == await audit_log.head()
    assert report.head is not None
    assert (await audit_log.verify(anchor=report.head)).ok
    wrong = await audit_log.verify(anchor=Head(report.head.chain, report.head.seq, "f" * 64))
    assert wrong.broken is not None
    assert (wrong.broken.chain, wrong.broken.seq, wrong.broken.kind) == (
        report.head.chain, 5, "anchor",
    )  # fmt: skip


async def test_queries_filter_page_and_order(audit_log: AuditLog) -> None:
    await audit_log.append(timed(1, app="a", subjects=("11010519491231002X",)))
    await audit_log.append(timed(2, app="b", subjects=("91350100M000100Y43",)))
    await audit_log.append(timed(3, app="a", subjects=("91350100M000100Y43",)))
    await audit_log.append(timed(4, app="b"))

    async def seqs(**conditions: object) -> list[int]:
        query = EventQuery(**conditions)  # type: ignore[arg-type]
        return [s.seq for s in await audit_log.read(query)]

    # One writer: its events' ids run in the order of its chain (in a fresh log, 1 to 4).
    ids = [s.id for s in await audit_log.read(EventQuery(newest_first=False))]
    assert ids == [1, 2, 3, 4]

    assert await seqs() == [4, 3, 2, 1]
    assert await seqs(newest_first=False) == [1, 2, 3, 4]
    assert await seqs(caller_app="a") == [3, 1]
    assert await seqs(subject="91350100M000100Y43") == [3, 2]
    assert await seqs(trace_id=f"{2:032x}") == [2]
    # A subject or trace with other conditions: every condition holds, in the list's order.
    assert await seqs(subject="91350100M000100Y43", caller_app="a") == [3]
    assert await seqs(subject="91350100M000100Y43", newest_first=False) == [2, 3]
    assert await seqs(subject="91350100M000100Y43", before=3) == [2]
    assert await seqs(trace_id=f"{2:032x}", caller_app="a") == []
    assert await seqs(matter_code="OS-ENTERPRISE-OPENING", limit=2) == [4, 3]
    assert await seqs(matter_code="no-such-matter") == []
    assert await seqs(before=3, limit=1) == [2]
    assert await seqs(after=2, newest_first=False) == [3, 4]
    window = {"start": BASE + dt.timedelta(minutes=2), "end": BASE + dt.timedelta(minutes=4)}
    assert await seqs(**window) == [3, 2]


async def test_a_closed_log_refuses_to_append(audit_log: AuditLog) -> None:
    await audit_log.append(event())
    await audit_log.close()
    with pytest.raises(AuditUnavailable):
        await audit_log.append(event(1))
