"""Decision lists go by reference: each list's body is sent until it is known stored, then
only its digest; the event's hash still covers the list."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import asyncpg
import orjson

from gateway.audit import AuditEvent, PostgresAuditLog, verify
from gateway.audit.decision_sets import KnownSets, batch, list_digest
from gateway.audit.events import GENESIS, link
from tests.gateway.audit.conftest import event


def _withheld(number: int) -> AuditEvent:
    """An event whose list differs from ``event()``'s."""
    base = event(number)
    entry = {**base.decisions[0], "decision": "WITHHELD", "reason": "NO_MASK_RULE"}
    return replace(base, decisions=(entry,))


def test_a_batch_sends_each_new_list_once_and_every_event_by_reference() -> None:
    stored = link("c", [event(1), event(2), _withheld(3)], (0, GENESIS))
    made = batch(stored, KnownSets())
    records = orjson.loads(made.events)
    lists = orjson.loads(made.lists)
    assert all("decisions" not in r for r in records)
    assert [r["decisionSet"] for r in records] == [list_digest(s.event.decisions) for s in stored]
    # Two lists for three events, each with the body the events were hashed over.
    assert {x["digest"]: x["decisions"] for x in lists} == {
        list_digest(s.event.decisions): list(s.event.decisions) for s in stored
    }
    assert set(made.new) == {x["digest"] for x in lists}


def test_a_list_known_stored_goes_as_its_digest_alone() -> None:
    known = KnownSets()
    first = link("c", [event(1)], (0, GENESIS))
    known.add(batch(first, known).new)
    following = link("c", [event(2)], (first[-1].seq, first[-1].hash))
    made = batch(following, known)
    assert orjson.loads(made.lists) == []
    assert made.new == ()
    assert orjson.loads(made.events)[0]["decisionSet"] == list_digest(event(2).decisions)


def test_the_memo_keeps_the_most_recently_used_digests_within_its_bound() -> None:
    known = KnownSets(limit=2)
    known.add(["a", "b"])
    assert "a" in known  # used: now the newest
    known.add(["c"])
    assert ("a" in known, "b" in known, "c" in known) == (True, False, True)
    assert len(known) == 2


async def test_writers_storing_the_same_new_list_at_once_keep_one(audit_dsn: str) -> None:
    writers = [PostgresAuditLog(audit_dsn, timeout=5.0) for _ in range(3)]
    try:
        await asyncio.gather(*(w.append(event(i)) for i, w in enumerate(writers)))
        # And write on, each now sending the digest alone.
        await asyncio.gather(*(w.append(event(10 + i)) for i, w in enumerate(writers)))
    finally:
        for writer in writers:
            await writer.close()
    connection = await asyncpg.connect(audit_dsn)
    try:
        rows = await connection.fetch("SELECT digest, decisions FROM audit_decision_set")
        referring = await connection.fetchval(
            "SELECT count(*) FROM audit_event WHERE decision_set = $1", rows[0]["digest"]
        )
    finally:
        await connection.close()
    assert len(rows) == 1
    assert rows[0]["digest"] == list_digest(event().decisions)
    assert orjson.loads(rows[0]["decisions"]) == list(event().decisions)
    assert referring == 6
    report = await verify(audit_dsn)
    assert report.ok, report.lines()
