"""A writer with several chains: the next batch goes out while another's commit is in flight.

A commit waits for the WAL to reach the disk, and on a slow disk that wait is
longer than everything else a batch costs. With one chain, the events that
arrive meanwhile wait for it before their own INSERT is even sent; with a chain
per connection, they go out at once on another.
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from gateway.audit import EventQuery, PostgresAuditLog, verify
from tests.gateway.audit.conftest import event

PROMPT = 10.0


async def _hold_first_place(dsn: str, chain: str) -> asyncpg.Connection:
    """A session that has taken event 1 of ``chain`` and not committed: an INSERT of that
    event waits on the unique index until this session ends."""
    connection = await asyncpg.connect(dsn)
    await connection.execute("SET session_replication_role = replica")  # no guard triggers
    transaction = connection.transaction()
    await transaction.start()
    await connection.execute(
        "INSERT INTO audit_event (chain, seq, at, trace_id, caller_app, caller_region, roles,"
        " operation_type, document_hash, subjects, decisions, hash_algorithm, prev_hash, hash)"
        " VALUES ($1, 1, now(), '0', 'x', 'SH', '{}', 'query', '0', '{}', '[]', 'sha256',"
        " '0', '0')",
        chain,
    )
    return connection


async def _waiting_audit_inserts(dsn: str) -> int:
    connection = await asyncpg.connect(dsn)
    try:
        count: int = await connection.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'deltagate-audit'"
            " AND wait_event_type = 'Lock' AND query LIKE '%INSERT INTO audit_event%'"
        )
        return count
    finally:
        await connection.close()


@pytest.mark.parametrize("chains", [1, 2])
async def test_a_batch_goes_out_while_another_commit_is_in_flight(
    audit_dsn: str, chains: int
) -> None:
    log = PostgresAuditLog(audit_dsn, timeout=PROMPT, chains=chains)
    holders = [await _hold_first_place(audit_dsn, name) for name in log.chains]
    try:
        first = asyncio.create_task(log.append(event(1)))
        await asyncio.sleep(0.3)
        second = asyncio.create_task(log.append(event(2)))
        await asyncio.sleep(0.5)
        # Both held at the database (two INSERTs in flight), or the second behind the first.
        assert await _waiting_audit_inserts(audit_dsn) == chains
        assert not first.done()
        assert not second.done()
        for holder in holders:
            await holder.close()  # rolled back: the places are free again
        async with asyncio.timeout(PROMPT):
            receipts = [await first, await second]
    finally:
        for holder in holders:
            if not holder.is_closed():
                await holder.close()
        await log.close()
    assert len({receipt.chain for receipt in receipts}) == chains
    assert all(receipt.batch == 1 for receipt in receipts)
    assert (await verify(audit_dsn)).ok


async def test_events_written_on_several_chains_verify_and_are_covered(audit_dsn: str) -> None:
    log = PostgresAuditLog(audit_dsn, timeout=PROMPT, chains=3)
    try:
        async with asyncio.timeout(PROMPT):
            for wave in range(5):
                await asyncio.gather(*(log.append(event(wave * 20 + n)) for n in range(20)))
                await asyncio.sleep(0)
    finally:
        await log.close()  # a checkpoint over every chain that moved
    stored = await PostgresAuditLog(audit_dsn, guards_required=False).read(EventQuery(limit=200))
    assert len(stored) == 100
    by_chain: dict[str, list[int]] = {}
    for item in stored:
        by_chain.setdefault(item.chain, []).append(item.seq)
    assert set(by_chain) <= set(log.chains)
    for seqs in by_chain.values():  # each chain numbered from 1 without a gap
        assert sorted(seqs) == list(range(1, len(seqs) + 1))
    report = await verify(audit_dsn)
    assert report.ok, report


async def test_a_writer_needs_a_chain(audit_dsn: str) -> None:
    with pytest.raises(ValueError, match="one chain at least"):
        PostgresAuditLog(audit_dsn, chains=0)
