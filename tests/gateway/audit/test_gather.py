"""Group commit under load: the writer waits a moment for operations still running.

An operation announces itself to the log (``expect``) before it runs and settles
as it appends its event (or ends without one). While announced operations run,
a write waits up to ``gather`` seconds for their events; with none running it
never waits. Each test gives ``gather`` a long bound, so that a wait that should
not happen, or one that does not end when it should, shows as a test that hangs
into its ``asyncio.timeout`` instead of as a slow pass.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from gateway.audit import EventQuery, Expectation, PostgresAuditLog, Receipt, verify
from tests.gateway.audit.conftest import event

#: Far longer than any test waits: a writer that waits this long fails the test.
LONG = 30.0
#: What a test allows for a write that should not wait.
PROMPT = 5.0


async def held_write(
    log: PostgresAuditLog, seq: int, settle_after: float = 0.1
) -> tuple[Expectation, asyncio.Task[Receipt]]:
    """An operation announced, then another's event appended and held for it a moment."""
    running = log.expect()
    write = asyncio.create_task(log.append(event(seq)))
    await asyncio.sleep(settle_after)
    return running, write


@pytest.fixture
async def gathering(audit_dsn: str) -> AsyncIterator[PostgresAuditLog]:
    log = PostgresAuditLog(audit_dsn, timeout=5.0, gather=LONG)
    yield log
    await log.close()


async def test_with_no_operation_running_an_event_is_written_at_once(
    gathering: PostgresAuditLog,
) -> None:
    async with asyncio.timeout(PROMPT):
        receipt = await gathering.append(event(1))
    assert receipt.batch == 1


async def test_a_write_waits_for_the_event_of_an_operation_still_running(
    gathering: PostgresAuditLog, audit_dsn: str
) -> None:
    running, first = await held_write(gathering, 1, settle_after=0.2)
    assert not first.done()  # held for the operation still running

    running.settle()  # as the pipeline does, right before that operation appends
    async with asyncio.timeout(PROMPT):
        second = await gathering.append(event(2))
        receipt = await first
    # One INSERT, one commit, for both: the point of waiting.
    assert receipt.batch == second.batch == 2
    assert [e.seq for e in await gathering.read(EventQuery(limit=5))] == [2, 1]
    assert (await verify(audit_dsn)).ok


async def test_an_operation_that_ends_without_an_event_stops_the_wait(
    gathering: PostgresAuditLog,
) -> None:
    running, first = await held_write(gathering, 1)
    running.settle()  # refused, failed or touched no L2+ data: no event comes
    async with asyncio.timeout(PROMPT):
        receipt = await first
    assert receipt.batch == 1


async def test_an_operation_that_starts_during_the_wait_is_not_waited_for(
    gathering: PostgresAuditLog,
) -> None:
    running, first = await held_write(gathering, 1)
    later = gathering.expect()  # a whole operation away from its event
    running.settle()
    async with asyncio.timeout(PROMPT):
        assert (await first).batch == 1
    # It is waited for by the next write, as one running when that write began.
    second = asyncio.create_task(gathering.append(event(2)))
    await asyncio.sleep(0.1)
    assert not second.done()
    later.settle()
    async with asyncio.timeout(PROMPT):
        assert (await second).seq == 2


async def test_the_wait_is_bounded_when_an_operation_never_settles(audit_dsn: str) -> None:
    log = PostgresAuditLog(audit_dsn, timeout=5.0, gather=0.05)
    try:
        log.expect()  # never settled: a hung backend call, say
        async with asyncio.timeout(PROMPT):
            receipts = [await log.append(event(n)) for n in range(3)]
        assert [r.seq for r in receipts] == [1, 2, 3]
    finally:
        await log.close()


async def test_settling_twice_counts_once(gathering: PostgresAuditLog) -> None:
    one, other = gathering.expect(), gathering.expect()
    one.settle()
    one.settle()  # a finally after the settle before the append: must not release the other
    first = asyncio.create_task(gathering.append(event(1)))
    await asyncio.sleep(0.2)
    assert not first.done()  # still waiting for the other
    other.settle()
    async with asyncio.timeout(PROMPT):
        assert (await first).batch == 1


async def test_a_full_batch_is_written_without_waiting(audit_dsn: str) -> None:
    log = PostgresAuditLog(audit_dsn, timeout=5.0, gather=LONG, max_batch=3)
    try:
        log.expect()  # still running, but the batch is already full
        async with asyncio.timeout(PROMPT):
            receipts = await asyncio.gather(*(log.append(event(n)) for n in range(3)))
        assert {r.batch for r in receipts} == {3}
    finally:
        await log.close()


async def test_closing_ends_a_wait_and_writes_what_is_pending(audit_dsn: str) -> None:
    log = PostgresAuditLog(audit_dsn, timeout=5.0, gather=LONG)
    log.expect()
    pending = asyncio.create_task(log.append(event(1)))
    await asyncio.sleep(0.1)
    async with asyncio.timeout(PROMPT):
        await log.close()
        assert (await pending).seq == 1


async def test_a_log_that_does_not_gather_needs_no_settling(audit_dsn: str) -> None:
    log = PostgresAuditLog(audit_dsn, timeout=5.0, gather=0)
    try:
        log.expect()  # ignored
        async with asyncio.timeout(PROMPT):
            assert (await log.append(event(1))).batch == 1
    finally:
        await log.close()
