"""Decision lists go by reference: inline the first time a writer meets one, then stored
once and referred to by digest; the event's hash still covers the list."""

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


def test_a_list_goes_inline_the_first_time_then_stored_once_and_referred_to() -> None:
    stored = link("c", [event(1), event(2), event(3), _withheld(4)], (0, GENESIS))
    made = batch(stored, KnownSets())
    records = orjson.loads(made.events)
    digest = list_digest(event().decisions)
    # The first event with a list carries it; the next stores it and both refer to it.
    assert [("decisions" in r, r.get("decisionSet")) for r in records] == [
        (True, None), (False, digest), (False, digest), (True, None),
    ]  # fmt: skip
    assert records[0]["decisions"] == list(event().decisions)
    assert orjson.loads(made.lists) == [{"digest": digest, "decisions": list(event().decisions)}]
    assert made.new == (digest,)
    assert made.seen == (digest, list_digest(stored[3].event.decisions))


def test_a_list_met_in_an_earlier_batch_is_stored_with_its_next_event() -> None:
    known = KnownSets()
    first = link("c", [event(1)], (0, GENESIS))
    known.saw(batch(first, known).seen)
    second = link("c", [event(2)], (1, first[-1].hash))
    made = batch(second, known)
    assert made.new == (list_digest(event().decisions),)
    assert "decisions" not in orjson.loads(made.events)[0]


def test_a_list_known_stored_goes_as_its_digest_alone() -> None:
    known = KnownSets()
    known.add([list_digest(event().decisions)])
    made = batch(link("c", [event(2)], (0, GENESIS)), known)
    assert orjson.loads(made.lists) == []
    assert (made.new, made.seen) == ((), ())
    assert orjson.loads(made.events)[0]["decisionSet"] == list_digest(event(2).decisions)


def test_the_memo_keeps_the_most_recently_used_digests_within_its_bound() -> None:
    known = KnownSets(limit=2)
    known.add(["a", "b"])
    assert "a" in known  # used: now the newest
    known.saw(["c"])
    assert (known.state("a"), known.state("b"), known.state("c")) == (True, None, False)
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
    # Each writer's first event carried the list; its second stored or found it.
    assert referring == 3
    report = await verify(audit_dsn)
    assert report.ok, report.lines()


def test_a_string_that_looks_like_the_list_s_key_does_not_move_the_reference() -> None:
    tricky = replace(event(2), caller_app='app-"decisions":[{"field":"x"}]', operation_name="a\\")
    known = KnownSets()
    known.add([list_digest(tricky.decisions)])
    (record,) = orjson.loads(batch(link("c", [tricky], (0, GENESIS)), known).events)
    assert (record["callerApp"], record["operationName"]) == (tricky.caller_app, "a\\")
    assert record["decisionSet"] == list_digest(tricky.decisions)
    assert "decisions" not in record
