"""A log of the earlier single-chain layout, brought forward by ``deltagate audit init``.

The demo and any running deployment keep their audit database across versions:
``init`` turns the old events into the chain ``single``, unchanged (their hashes,
links and numbers), and the gateway then writes chains of its own beside it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import orjson
import pytest

from gateway.audit import LEGACY_CHAIN, EventQuery, Head, PostgresAuditLog, verify
from gateway.audit.events import GENESIS, StoredEvent, link
from gateway.audit.sql import init_schema
from gateway.core.errors import AuditUnavailable
from gateway.edge.cli import main
from tests.gateway.audit.conftest import event, new_audit_database

# The table and guards as the single-chain layout made them (verbatim).
SINGLE_CHAIN_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_event (
    seq             bigint PRIMARY KEY CHECK (seq > 0),
    at              timestamptz NOT NULL,
    trace_id        text NOT NULL,
    caller_app      text NOT NULL,
    caller_region   text NOT NULL,
    roles           text[] NOT NULL,
    matter_code     text,
    matter_name     text,
    operation_name  text,
    operation_type  text,
    document_hash   text NOT NULL,
    policy_version  text,
    subjects        text[] NOT NULL,
    decisions       jsonb NOT NULL,
    hash_algorithm  text NOT NULL,
    prev_hash       text NOT NULL,
    hash            text NOT NULL
);
COMMENT ON TABLE audit_event IS
    'deltagate audit log: append-only, hash-chained (verify with: deltagate audit verify)';
CREATE INDEX IF NOT EXISTS audit_event_subjects ON audit_event USING gin (subjects);
CREATE INDEX IF NOT EXISTS audit_event_trace ON audit_event (trace_id);
CREATE INDEX IF NOT EXISTS audit_event_app ON audit_event (caller_app, seq);
CREATE INDEX IF NOT EXISTS audit_event_matter ON audit_event (matter_code, seq);
CREATE INDEX IF NOT EXISTS audit_event_at ON audit_event (at);

CREATE OR REPLACE FUNCTION audit_event_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE OR REPLACE TRIGGER audit_event_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_event
    FOR EACH STATEMENT EXECUTE FUNCTION audit_event_append_only();

CREATE OR REPLACE FUNCTION audit_event_follows() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    expected text;
BEGIN
    IF NEW.seq = 1 THEN
        expected := repeat('0', 64);
    ELSE
        SELECT hash INTO expected FROM audit_event WHERE seq = NEW.seq - 1;
    END IF;
    IF expected IS DISTINCT FROM NEW.prev_hash THEN
        RAISE EXCEPTION 'audit event % does not follow event %', NEW.seq, NEW.seq - 1
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE OR REPLACE TRIGGER audit_event_follows
    BEFORE INSERT ON audit_event
    FOR EACH ROW EXECUTE FUNCTION audit_event_follows();
"""

OLD_INSERT = (
    "INSERT INTO audit_event (seq, at, trace_id, caller_app, caller_region, roles, matter_code,"
    " matter_name, operation_name, operation_type, document_hash, policy_version, subjects,"
    " decisions, hash_algorithm, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9,"
    " $10, $11, $12, $13, $14::jsonb, $15, $16, $17)"
)

OLD_EVENTS = 4


@pytest.fixture
async def old_log(admin_dsn: str) -> AsyncIterator[tuple[str, list[StoredEvent]]]:
    """An audit database of the single-chain layout with 4 events, as its writer left them."""
    async with new_audit_database(admin_dsn) as dsn:
        connection = await asyncpg.connect(dsn)
        try:
            # Start from an empty database: the old layout, made as the old init made it.
            await connection.execute(
                "DROP TABLE audit_event, audit_checkpoint, audit_decision_set;"
                " DROP FUNCTION audit_event_append_only, audit_event_follows,"
                " audit_checkpoint_follows, audit_event_keys"
            )
            await connection.execute(SINGLE_CHAIN_SCHEMA)
            # The old canonical form is the legacy chain's: no chain name in it.
            written = [event(i, app=f"old-{i}") for i in range(OLD_EVENTS)]
            stored = link(LEGACY_CHAIN, written, (0, GENESIS))
            for s in stored:
                e = s.event
                await connection.execute(
                    OLD_INSERT, s.seq, e.at, e.trace_id, e.caller_app, e.caller_region,
                    list(e.roles), e.matter_code, e.matter_name, e.operation_name,
                    e.operation_type, e.document_hash, e.policy_version, list(e.subjects),
                    orjson.dumps(list(e.decisions)).decode(), s.hash_algorithm, s.prev_hash,
                    s.hash,
                )  # fmt: skip
        finally:
            await connection.close()
        yield dsn, stored


async def test_the_gateway_refuses_an_old_log_and_says_what_to_do(
    old_log: tuple[str, list[StoredEvent]],
) -> None:
    dsn, _ = old_log
    log = PostgresAuditLog(dsn, timeout=5.0)
    try:
        with pytest.raises(AuditUnavailable):
            await log.append(event(9))
        assert log.problem is not None
        assert "single-chain layout" in log.problem
        assert "deltagate audit init" in log.problem
    finally:
        await log.close()


async def test_init_brings_the_old_events_forward_unchanged(
    old_log: tuple[str, list[StoredEvent]], capsys: pytest.CaptureFixture[str]
) -> None:
    dsn, old = old_log
    assert await asyncio.to_thread(main, ["audit", "init", "--dsn", dsn]) == 0
    assert "brought the single-chain log forward" in capsys.readouterr().out
    # Again: nothing more to do.
    assert await init_schema(dsn) is False

    kept = await _read_all(dsn)
    assert [(s.chain, s.seq, s.id, s.hash, s.prev_hash) for s in kept] == [
        (LEGACY_CHAIN, s.seq, s.seq, s.hash, s.prev_hash) for s in old
    ]
    assert [s.event for s in kept] == [s.event for s in old]

    # A gateway writes its own chain beside it; the old events stay first in the order.
    writer = PostgresAuditLog(dsn, timeout=5.0)
    try:
        receipt = await writer.append(event(9, app="new"))
    finally:
        await writer.close()
    assert (receipt.seq, receipt.stored.id) == (1, OLD_EVENTS + 1)
    report = await verify(dsn)
    assert report.ok, report.lines()
    assert (report.events, report.chains, report.uncovered) == (OLD_EVENTS + 1, 2, 0)
    # A head written down from the old log still anchors.
    newest_old = old[-1]
    assert (await verify(dsn, anchor=Head(LEGACY_CHAIN, newest_old.seq, newest_old.hash))).ok
    old_head = f"{newest_old.seq}:{newest_old.hash}"
    command = ["audit", "verify", "--dsn", dsn, "--anchor", old_head]
    assert await asyncio.to_thread(main, command) == 0


async def test_the_append_only_guard_holds_through_the_change(
    old_log: tuple[str, list[StoredEvent]],
) -> None:
    dsn, _ = old_log
    await init_schema(dsn)
    connection = await asyncpg.connect(dsn)
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await connection.execute("DELETE FROM audit_event WHERE seq = 1")
        # The old chain's newest event cannot be followed by a writer that is not linked.
        with pytest.raises(asyncpg.IntegrityConstraintViolationError, match="does not follow"):
            await connection.execute(
                "INSERT INTO audit_event (chain, seq, at, trace_id, caller_app, caller_region,"
                " roles, subjects, decisions, document_hash, hash_algorithm, prev_hash, hash)"
                " SELECT chain, seq + 1, at, trace_id, caller_app, caller_region, roles,"
                " subjects, decisions, document_hash, hash_algorithm, 'f', 'f'"
                " FROM audit_event WHERE seq = $1",
                OLD_EVENTS,
            )
    finally:
        await connection.close()


async def _read_all(dsn: str) -> list[StoredEvent]:
    log = PostgresAuditLog(dsn, guards_required=False)
    try:
        return await log.read(EventQuery(limit=100, newest_first=False))
    finally:
        await log.close()
