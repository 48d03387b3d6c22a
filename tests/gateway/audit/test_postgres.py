"""The PostgreSQL audit log: a hash chain in its own database, append-only, fail closed."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import replace
from urllib.parse import urlsplit

import asyncpg
import pytest

from gateway.audit import (
    GENESIS,
    EventQuery,
    PostgresAuditLog,
    create_database,
    database_dsn,
    verify,
)
from gateway.audit.events import chain_hash
from gateway.core.errors import AuditUnavailable
from tests.gateway.audit.conftest import event


async def test_events_are_numbered_and_chained_from_genesis(
    store: PostgresAuditLog, audit_dsn: str
) -> None:
    receipts = [await store.append(event(i)) for i in range(3)]
    assert [r.seq for r in receipts] == [1, 2, 3]
    assert {r.chain for r in receipts} == {store.chain}
    stored = list(reversed(await store.read(EventQuery(limit=10))))
    assert [s.seq for s in stored] == [1, 2, 3]
    assert stored[0].prev_hash == GENESIS
    assert [s.prev_hash for s in stored[1:]] == [s.hash for s in stored[:-1]]
    for s in stored:
        assert s.hash == chain_hash(s.chain, s.seq, s.event, s.hash_algorithm, s.prev_hash)
    # SM3 (GB/T 32905) wherever hashlib offers it, and the algorithm is in every event.
    expected = "sm3" if "sm3" in hashlib.algorithms_available else "sha256"
    assert {s.hash_algorithm for s in stored} == {expected}
    assert (await verify(audit_dsn)).ok


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE audit_event SET caller_app = 'someone-else'",
        "DELETE FROM audit_event WHERE seq = 1",
        "TRUNCATE audit_event",
    ],
)
async def test_the_database_refuses_to_change_or_remove_events(
    store: PostgresAuditLog, audit_dsn: str, sql: str
) -> None:
    await store.append(event())
    # The test server's role is a superuser: the trigger refuses even that.
    connection = await asyncpg.connect(audit_dsn)
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await connection.execute(sql)
        assert await connection.fetchval("SELECT count(*) FROM audit_event") == 1
    finally:
        await connection.close()


_COPY = (
    "INSERT INTO audit_event (chain, seq, at, trace_id, caller_app, caller_region, roles,"
    " matter_code, matter_name, operation_name, operation_type, document_hash, policy_version,"
    " subjects, decisions, decision_set, hash_algorithm, prev_hash, hash)"
    " SELECT {chain}, {seq}, at, trace_id, caller_app, caller_region, roles, matter_code,"
    " matter_name, operation_name, operation_type, document_hash, policy_version, subjects,"
    " decisions, decision_set, hash_algorithm, {prev}, 'f' FROM audit_event WHERE seq = 1"
)


@pytest.mark.parametrize(
    ("decisions", "decision_set"),
    [("NULL", "NULL"), ("decisions", "'some-digest'")],  # neither, both
)
async def test_an_event_carries_its_list_or_refers_to_one_never_both_nor_neither(
    store: PostgresAuditLog, audit_dsn: str, decisions: str, decision_set: str
) -> None:
    await store.append(event())
    connection = await asyncpg.connect(audit_dsn)
    try:
        with pytest.raises(asyncpg.CheckViolationError, match="audit_event_decisions_once"):
            await connection.execute(
                "INSERT INTO audit_event (chain, seq, at, trace_id, caller_app, caller_region,"
                " roles, subjects, decisions, decision_set, document_hash, hash_algorithm,"
                " prev_hash, hash) SELECT chain, 2, at, trace_id, caller_app, caller_region,"
                f" roles, subjects, {decisions}, {decision_set}, document_hash, hash_algorithm,"
                " hash, 'f' FROM audit_event WHERE seq = 1"
            )
    finally:
        await connection.close()


@pytest.mark.parametrize(
    ("chain", "seq", "prev"),
    [
        ("chain", "2", "'f'"),  # the wrong predecessor's hash
        ("chain", "3", "hash"),  # a gap: event 2 is not there
        ("'new-chain'", "1", "'f'"),  # a chain's first event must follow GENESIS
        ("'new-chain'", "2", "hash"),  # a chain does not start at 2
    ],
)
async def test_an_event_that_does_not_follow_its_chain_is_refused(
    store: PostgresAuditLog, audit_dsn: str, chain: str, seq: str, prev: str
) -> None:
    await store.append(event())
    connection = await asyncpg.connect(audit_dsn)
    try:
        with pytest.raises(asyncpg.IntegrityConstraintViolationError, match="does not follow"):
            await connection.execute(_COPY.format(chain=chain, seq=seq, prev=prev))
        # Twice the same (chain, seq): a fork.
        with pytest.raises(asyncpg.UniqueViolationError):
            await connection.execute(_COPY.format(chain="chain", seq="1", prev="prev_hash"))
        assert await connection.fetchval("SELECT count(*) FROM audit_event") == 1
    finally:
        await connection.close()


async def test_a_batch_with_a_gap_inside_is_refused_whole(
    store: PostgresAuditLog, audit_dsn: str
) -> None:
    await store.append(event())
    connection = await asyncpg.connect(audit_dsn)
    try:
        # Event 2 follows event 1, but the next row of the same INSERT is event 4.
        with pytest.raises(asyncpg.IntegrityConstraintViolationError, match="does not follow"):
            await connection.execute(
                "WITH one AS (SELECT * FROM audit_event WHERE seq = 1)"
                " INSERT INTO audit_event (chain, seq, at, trace_id, caller_app, caller_region,"
                " roles, subjects, decisions, decision_set, document_hash, hash_algorithm,"
                " prev_hash, hash)"
                " SELECT chain, n, at, trace_id, caller_app, caller_region, roles, subjects,"
                " decisions, decision_set, document_hash, hash_algorithm,"
                " CASE n WHEN 2 THEN hash ELSE 'x' END,"
                " CASE n WHEN 2 THEN 'x' ELSE 'y' END FROM one, unnest(ARRAY[2, 4]) AS n"
            )
        assert await connection.fetchval("SELECT count(*) FROM audit_event") == 1
    finally:
        await connection.close()


async def test_concurrent_operations_share_one_insert(
    store: PostgresAuditLog, audit_dsn: str
) -> None:
    receipts = await asyncio.gather(*(store.append(event(i)) for i in range(200)))
    assert sorted(r.seq for r in receipts) == list(range(1, 201))
    # All 200 were waiting before the writer ran: one INSERT, one commit.
    assert {r.batch for r in receipts} == {200}
    assert (await verify(audit_dsn)).events == 200


async def test_two_replicas_writing_to_one_database_keep_a_chain_each(audit_dsn: str) -> None:
    first, second = PostgresAuditLog(audit_dsn), PostgresAuditLog(audit_dsn)
    receipts = []
    try:
        for _ in range(5):
            receipts += await asyncio.gather(
                *(first.append(event(i, app="replica-1")) for i in range(10)),
                *(second.append(event(i, app="replica-2")) for i in range(10)),
            )
    finally:
        await first.close()
        await second.close()
    for writer in (first, second):
        assert sorted(r.seq for r in receipts if r.chain == writer.chain) == list(range(1, 51))
    assert first.chain != second.chain
    report = await verify(audit_dsn)
    assert report.ok
    assert (report.events, report.chains) == (100, 2)
    # Each closed with a checkpoint: every event is covered.
    assert report.checkpoints >= 1
    assert report.uncovered == 0


async def test_a_writer_whose_commit_failed_finds_its_place_again(
    store: PostgresAuditLog, audit_dsn: str
) -> None:
    await store.append(event(1))
    # A commit whose outcome the writer could not know: the head it kept is stale.
    store._chains[0].head = None  # what a broken link during COMMIT leaves
    receipt = await store.append(event(2))
    assert receipt.seq == 2
    assert (await verify(audit_dsn)).ok


async def test_closing_writes_what_is_pending(audit_dsn: str) -> None:
    store = PostgresAuditLog(audit_dsn)
    pending = [asyncio.create_task(store.append(event(i))) for i in range(20)]
    await asyncio.sleep(0)  # the requests hand their events over
    await store.close()
    assert all(task.done() for task in pending)
    assert sorted(task.result().seq for task in pending) == list(range(1, 21))
    with pytest.raises(AuditUnavailable):
        await store.append(event())


async def test_an_unreachable_database_fails_closed(admin_dsn: str) -> None:
    store = PostgresAuditLog(database_dsn(admin_dsn, "deltagate_audit_never_created"), timeout=2.0)
    try:
        with pytest.raises(AuditUnavailable):
            await store.append(event())
        with pytest.raises(AuditUnavailable):
            await store.read(EventQuery())
        with pytest.raises(AuditUnavailable):
            await store.ping()
    finally:
        await store.close()


async def test_creating_the_audit_database_keeps_an_existing_log(
    store: PostgresAuditLog, audit_dsn: str, admin_dsn: str
) -> None:
    await store.append(event())
    name = urlsplit(audit_dsn).path.lstrip("/")
    assert await create_database(admin_dsn, name) == audit_dsn
    assert (await verify(audit_dsn)).events == 1


async def test_filters_select_events_by_app_subject_and_trace(store: PostgresAuditLog) -> None:
    await store.append(event(1, app="a", subjects=("11010519491231002X",)))
    await store.append(event(2, app="b", subjects=("360426199101010071", "91350100M000100Y43")))
    await store.append(event(3, app="a", subjects=("91350100M000100Y43",)))

    async def seqs(**conditions: object) -> list[int]:
        return [s.seq for s in await store.read(EventQuery(**conditions))]  # type: ignore[arg-type]

    assert await seqs() == [3, 2, 1]
    assert await seqs(caller_app="a") == [3, 1]
    assert await seqs(subject="91350100M000100Y43") == [3, 2]
    assert await seqs(trace_id=f"{2:032x}") == [2]
    assert await seqs(before=3, limit=1) == [2]


async def test_a_running_writer_checkpoints_every_interval(audit_dsn: str) -> None:
    store = PostgresAuditLog(audit_dsn, checkpoint_interval=0.2)
    try:
        await store.append(event(1))
        assert (await verify(audit_dsn)).uncovered == 1
        for _ in range(50):  # the interval passes (at most 1.2 times it), then its checkpoint
            await asyncio.sleep(0.1)
            report = await verify(audit_dsn)
            if report.checkpoints:
                break
        assert (report.checkpoints, report.uncovered) == (1, 0)
        assert report.ok
        # Nothing new: no further checkpoint.
        await asyncio.sleep(0.5)
        assert (await verify(audit_dsn)).checkpoints == 1
    finally:
        await store.close()
    assert (await verify(audit_dsn)).checkpoints == 1  # closing had nothing left to cover


async def test_one_statement_for_two_chains_is_refused_whole_if_one_does_not_follow(
    store: PostgresAuditLog, audit_dsn: str
) -> None:
    await store.append(event())
    connection = await asyncpg.connect(audit_dsn)
    try:
        # Event 2 of the writer's chain follows; the new chain's event 1 does not follow
        # GENESIS. The check runs once for the statement, over both chains.
        with pytest.raises(asyncpg.IntegrityConstraintViolationError, match="does not follow"):
            await connection.execute(
                "WITH one AS (SELECT * FROM audit_event WHERE seq = 1)"
                " INSERT INTO audit_event (chain, seq, at, trace_id, caller_app, caller_region,"
                " roles, subjects, decisions, decision_set, document_hash, hash_algorithm,"
                " prev_hash, hash)"
                " SELECT c, s, at, trace_id, caller_app, caller_region, roles, subjects,"
                " decisions, decision_set, document_hash, hash_algorithm,"
                " CASE s WHEN 2 THEN hash ELSE 'x' END,"
                " 'y' FROM one, LATERAL (VALUES (one.chain, 2), ('other-chain', 1)) AS n(c, s)"
            )
        assert await connection.fetchval("SELECT count(*) FROM audit_event") == 1
    finally:
        await connection.close()


async def test_values_with_quotes_backslashes_and_commas_come_back_as_written(
    store: PostgresAuditLog, audit_dsn: str
) -> None:
    odd = replace(
        event(1, subjects=("11010519491231002X", "NULL", 'a "b", c\\d', "{x}")),
        roles=("role, with comma", 'quote"d', "back\\slash", ""),
        acting="upper-gateway",
        receipts=({"gateway": "lower", "region": "SH", "seq": 1, "hash": "ab" * 32},),
    )
    plain = event(2, subjects=())
    await store.append(odd)
    await store.append(plain)
    found = list(reversed(await store.read(EventQuery(limit=10))))
    assert [s.event for s in found] == [odd, plain]
    assert all(s.verify_hash() for s in found)
    assert (await verify(audit_dsn)).ok
