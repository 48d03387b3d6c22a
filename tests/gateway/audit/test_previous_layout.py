"""A log of an earlier layout, brought forward by ``audit init``: the previous one (a
per-row link trigger) and the inline one (every event carrying its decisions list).

``init`` replaces the row trigger with the per-statement link check of the same name,
drops the index nothing reads and adds the table of decision lists, as DDL only: the
events stay as they are (their lists inline), the chains go on where they were (new
events refer to their lists), and the check still refuses what does not follow.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from gateway.audit import EventQuery, PostgresAuditLog, verify
from gateway.audit.events import GENESIS, StoredEvent, link
from gateway.audit.sql import GUARDS, guard_states, init_schema
from gateway.core.errors import AuditUnavailable
from gateway.edge.cli import main
from tests.gateway.audit.conftest import event, new_audit_database
from tests.gateway.audit.previous_layout import INLINE_INSERT, INLINE_SCHEMA, PREVIOUS_SCHEMA

CHAIN = "0123456789abcdef"
OLD_EVENTS = 5


@pytest.fixture(params=["previous", "inline"])
async def previous_log(
    admin_dsn: str, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[str, list[StoredEvent]]]:
    """An audit database of an earlier layout with one chain of 5 events."""
    async with new_audit_database(admin_dsn) as dsn:
        connection = await asyncpg.connect(dsn)
        try:
            await connection.execute(
                "DROP TABLE audit_event, audit_checkpoint, audit_decision_set;"
                " DROP FUNCTION audit_event_append_only, audit_event_follows,"
                " audit_checkpoint_follows, audit_event_keys"
            )
            await connection.execute(
                PREVIOUS_SCHEMA if request.param == "previous" else INLINE_SCHEMA
            )
            written = [event(i, app=f"old-{i}") for i in range(OLD_EVENTS)]
            stored = link(CHAIN, written, (0, GENESIS))
            await connection.fetch(INLINE_INSERT, _payload(stored[:2]))
            await connection.fetch(INLINE_INSERT, _payload(stored[2:]))
        finally:
            await connection.close()
        yield dsn, stored


async def _layout(dsn: str) -> tuple[dict[str, int], set[str]]:
    """The link trigger's pg_trigger.tgtype per name, and the event table's indexes."""
    connection = await asyncpg.connect(dsn)
    try:
        triggers = await connection.fetch(
            "SELECT tgname, tgtype FROM pg_trigger WHERE tgrelid = 'audit_event'::regclass"
            " AND NOT tgisinternal"
        )
        indexes = await connection.fetch(
            "SELECT indexrelid::regclass::text AS name FROM pg_index"
            " WHERE indrelid = 'audit_event'::regclass"
        )
    finally:
        await connection.close()
    return {r["tgname"]: r["tgtype"] for r in triggers}, {r["name"] for r in indexes}


#: pg_trigger.tgtype bits: 1 row-level, 2 BEFORE, 4 INSERT.
_ROW, _BEFORE, _INSERT = 1, 2, 4


async def test_init_replaces_the_row_trigger_and_keeps_every_event(
    previous_log: tuple[str, list[StoredEvent]],
) -> None:
    dsn, old = previous_log
    triggers, indexes = await _layout(dsn)
    previous = triggers["audit_event_follows"] == _ROW | _BEFORE | _INSERT
    assert previous == ("audit_event_acting" in indexes)
    # Until then the gateway writes nothing to it, and says what to run.
    early = PostgresAuditLog(dsn, timeout=5.0)
    try:
        with pytest.raises(AuditUnavailable):
            await early.append(event(9))
        assert "deltagate audit init" in (early.problem or "")
    finally:
        await early.close()

    assert await asyncio.to_thread(main, ["audit", "init", "--dsn", dsn]) == 0
    assert await init_schema(dsn) is False  # again: nothing more to do, nothing fails

    triggers, indexes = await _layout(dsn)
    # The same guard, now once per statement (AFTER, not per row).
    assert triggers["audit_event_follows"] == _INSERT
    assert "audit_event_acting" not in indexes
    assert {"audit_event_pkey", "audit_event_id", "audit_event_keys"} <= indexes
    connection = await asyncpg.connect(dsn)
    try:
        assert await guard_states(connection) == dict.fromkeys(GUARDS, True)
    finally:
        await connection.close()

    kept = await _read_all(dsn)
    assert [(s.chain, s.seq, s.id, s.hash, s.prev_hash) for s in kept] == [
        (CHAIN, s.seq, s.seq, s.hash, s.prev_hash) for s in old
    ]
    assert [s.event for s in kept] == [s.event for s in old]

    # A gateway writes on; the old chain verifies with the new one.
    writer = PostgresAuditLog(dsn, timeout=5.0)
    try:
        receipts = await asyncio.gather(*(writer.append(event(10 + i)) for i in range(3)))
    finally:
        await writer.close()
    assert sorted(r.seq for r in receipts) == [1, 2, 3]
    report = await verify(dsn)
    assert report.ok, report.lines()
    assert (report.events, report.chains, report.uncovered) == (OLD_EVENTS + 3, 2, 0)

    # The new events refer to their one list, stored once (but the first the writer met it
    # in carries it); the old ones keep theirs inline; a read by owner and decision finds
    # them all alike.
    connection = await asyncpg.connect(dsn)
    try:
        assert await connection.fetchval("SELECT count(*) FROM audit_decision_set") == 1
        inline = await connection.fetchval(
            "SELECT count(*) FROM audit_event WHERE decisions IS NOT NULL"
        )
    finally:
        await connection.close()
    assert inline in {OLD_EVENTS + 1, OLD_EVENTS + 2}  # the new writer's first of each batch
    found = await _read_all(dsn, owner="SH", decision="CLEAR")
    assert len(found) == OLD_EVENTS + 3
    assert all(s.event.decisions == old[0].event.decisions for s in found)


async def test_after_init_the_old_chain_still_refuses_a_row_that_does_not_follow(
    previous_log: tuple[str, list[StoredEvent]],
) -> None:
    dsn, old = previous_log
    await init_schema(dsn)
    connection = await asyncpg.connect(dsn)
    try:
        with pytest.raises(asyncpg.IntegrityConstraintViolationError, match="does not follow"):
            await connection.execute(
                "INSERT INTO audit_event (chain, seq, at, trace_id, caller_app, caller_region,"
                " roles, subjects, decisions, document_hash, hash_algorithm, prev_hash, hash)"
                " SELECT chain, seq + 1, at, trace_id, caller_app, caller_region, roles,"
                " subjects, decisions, document_hash, hash_algorithm, 'f', 'f'"
                " FROM audit_event WHERE seq = $1",
                OLD_EVENTS,
            )
        # The chain's rightful next event, written by hand, is taken.
        following = link(CHAIN, [event(99)], (old[-1].seq, old[-1].hash))
        # (by the earlier layout's writer, lists inline: one not yet upgraded writes on)
        await connection.fetch(INLINE_INSERT, _payload(following))
        assert await connection.fetchval("SELECT count(*) FROM audit_event") == OLD_EVENTS + 1
    finally:
        await connection.close()
    assert (await verify(dsn)).ok


def _payload(stored: list[StoredEvent]) -> str:
    """The earlier layouts' writer's batch (its lists inline)."""
    return (b"[" + b",".join(s.record for s in stored) + b"]").decode()


async def _read_all(
    dsn: str, owner: str | None = None, decision: str | None = None
) -> list[StoredEvent]:
    log = PostgresAuditLog(dsn, guards_required=False)
    try:
        query = EventQuery(limit=100, newest_first=False, owner=owner, decision=decision)
        return await log.read(query)
    finally:
        await log.close()
