"""Tampering with the audit log, as a superuser who bypasses its triggers, is found by verify.

Two writers (two gateway processes) leave a chain each, and a checkpoint as each
closes; every edit, deletion or forgery below is then named by ``verify``.
"""

from __future__ import annotations

import asyncio
import datetime as dt

import asyncpg
import orjson
import pytest

from gateway.audit import Head, PostgresAuditLog, verify
from gateway.audit.checkpoints import seal
from gateway.audit.decision_sets import list_digest
from gateway.edge.cli import main
from tests.gateway.audit.conftest import event, superuser_sql

EVENTS = 3
SECRET = b"checkpoint secret of the tests"


@pytest.fixture
async def chains(audit_dsn: str) -> tuple[str, str]:
    """Two writers' chains (first, second), 3 events each, one after the other; each
    writer's close writes a checkpoint over its chain (checkpoints 1 and 2)."""
    names = []
    for offset in (0, 10):
        writer = PostgresAuditLog(audit_dsn, checkpoint_secret=SECRET)
        try:
            for i in range(offset, offset + EVENTS):
                await writer.append(event(i, app=f"app-{i}"))
        finally:
            await writer.close()
        names.append(writer.chain)
    return names[0], names[1]


@pytest.fixture
def log(audit_dsn: str, chains: tuple[str, str]) -> str:
    return audit_dsn


async def check(dsn: str) -> tuple[str | None, int, str] | None:
    """The break ``verify`` reports as (chain, seq, kind), None for a log that holds."""
    report = await verify(dsn, secret=SECRET)
    if report.broken is None:
        return None
    return report.broken.chain, report.broken.seq, report.broken.kind


async def test_an_intact_log_verifies_and_names_its_newest_event(
    log: str, chains: tuple[str, str]
) -> None:
    report = await verify(log, secret=SECRET)
    assert report.ok
    assert (report.events, report.chains) == (2 * EVENTS, 2)
    assert report.head is not None
    assert (report.head.chain, report.head.seq) == (chains[1], EVENTS)
    assert report.checkpoints == 2  # one as each writer closed
    assert report.uncovered == 0
    assert report.guards == {
        "audit_event_append_only": True,
        "audit_event_follows": True,
        "audit_checkpoint_append_only": True,
        "audit_checkpoint_follows": True,
        "audit_decision_set_append_only": True,
    }


async def test_an_edited_field_is_reported_with_the_event(
    log: str, chains: tuple[str, str]
) -> None:
    await superuser_sql(
        log, "UPDATE audit_event SET caller_app = 'nobody' WHERE chain = $1 AND seq = 2", chains[0]
    )
    assert await check(log) == (chains[0], 2, "altered")


async def test_an_edited_subject_list_is_reported(log: str, chains: tuple[str, str]) -> None:
    await superuser_sql(
        log, "UPDATE audit_event SET subjects = '{}' WHERE chain = $1 AND seq = 3", chains[1]
    )
    assert await check(log) == (chains[1], 3, "altered")


async def test_moving_an_event_to_another_chain_is_reported(
    log: str, chains: tuple[str, str]
) -> None:
    # The chain's name is hashed: an event cannot pass for another chain's.
    await superuser_sql(
        log, "UPDATE audit_event SET chain = 'elsewhere' WHERE chain = $1 AND seq = 1", chains[0]
    )
    # Whichever chain the walk reaches first: one lost its event 1, the other's is not its own.
    assert await check(log) in {(chains[0], 1, "missing"), ("elsewhere", 1, "altered")}


async def test_a_deletion_inside_a_chain_is_reported_as_missing(
    log: str, chains: tuple[str, str]
) -> None:
    await superuser_sql(log, "DELETE FROM audit_event WHERE chain = $1 AND seq = 2", chains[1])
    assert await check(log) == (chains[1], 2, "missing")


async def test_a_reordered_pair_is_reported(log: str, chains: tuple[str, str]) -> None:
    await superuser_sql(
        log,
        f"UPDATE audit_event SET seq = 1000 WHERE chain = '{chains[0]}' AND seq = 1;"
        f" UPDATE audit_event SET seq = 1 WHERE chain = '{chains[0]}' AND seq = 2;"
        f" UPDATE audit_event SET seq = 2 WHERE chain = '{chains[0]}' AND seq = 1000",
    )
    assert await check(log) == (chains[0], 1, "reordered")


async def test_removing_a_chains_newest_events_a_checkpoint_covered_is_reported(
    log: str, chains: tuple[str, str]
) -> None:
    await superuser_sql(log, "DELETE FROM audit_event WHERE chain = $1 AND seq = $2", chains[0], 3)
    # The chain alone still holds (events 1 and 2, linked) ...
    # ... but a checkpoint recorded event 3 as its head.
    assert await check(log) == (chains[0], 3, "removed")


async def test_removing_a_whole_chain_a_checkpoint_named_is_reported(
    log: str, chains: tuple[str, str]
) -> None:
    await superuser_sql(log, "DELETE FROM audit_event WHERE chain = $1", chains[1])
    assert await check(log) == (chains[1], EVENTS, "removed")


async def test_rewriting_a_chains_tail_a_checkpoint_covered_is_reported(
    log: str, chains: tuple[str, str]
) -> None:
    # A tamperer removes event 3 and writes a different event 3, correctly hashed and linked:
    # the chain holds, but its head is not the one the checkpoint signed.
    writer = PostgresAuditLog(log, checkpoint_secret=SECRET)
    writer._chains[0].name = chains[0]
    writer._chains[0].head = None  # it reads the chain's head from the database
    await superuser_sql(log, "DELETE FROM audit_event WHERE chain = $1 AND seq = 3", chains[0])
    try:
        await writer.append(event(99, app="someone-else"))
    finally:
        writer._written_id = 0  # no checkpoint: that needs the secret's holder
        await writer.close()
    assert await check(log) == (chains[0], 3, "removed")


async def test_an_edited_checkpoint_is_reported(log: str) -> None:
    await superuser_sql(
        log,
        "UPDATE audit_checkpoint SET heads = jsonb_set(heads, '{0,1}', '2') WHERE seq = 1",
    )
    assert await check(log) == (None, 1, "altered")


async def test_a_checkpoint_forged_without_the_secret_is_reported(
    log: str, chains: tuple[str, str]
) -> None:
    # Whoever rewrites a checkpoint whole (root and hash recomputed) still cannot sign it.
    await superuser_sql(log, "DELETE FROM audit_checkpoint WHERE seq = 2")
    forged = await _checkpoint_after(log, 1, [Head(chains[1], 1, await _hash(log, chains[1], 1))])
    await superuser_sql(log, "DELETE FROM audit_event WHERE chain = $1 AND seq > 1", chains[1])
    await _insert_checkpoint(log, forged, secret=b"a guess")
    assert await check(log) == (None, 2, "forged")


async def test_a_deleted_checkpoint_is_reported_as_missing(log: str) -> None:
    await superuser_sql(log, "DELETE FROM audit_checkpoint WHERE seq = 1")
    assert await check(log) == (None, 1, "missing")


async def test_a_chain_going_backwards_is_reported(log: str, chains: tuple[str, str]) -> None:
    # Even signed with the secret, a checkpoint may not set a chain's head back.
    back = [Head(chains[0], 1, await _hash(log, chains[0], 1))]
    await _insert_checkpoint(log, await _checkpoint_after(log, 2, back), secret=SECRET)
    assert await check(log) == (None, 3, "backwards")


async def test_verify_with_another_secret_fails(log: str) -> None:
    report = await verify(log, secret=b"not the gateway's")
    assert report.broken is not None
    assert (report.broken.chain, report.broken.seq, report.broken.kind) == (None, 1, "forged")


async def test_events_after_the_newest_checkpoint_are_counted_not_covered(
    log: str, chains: tuple[str, str]
) -> None:
    writer = PostgresAuditLog(log, checkpoint_secret=SECRET, checkpoint_interval=3600)
    try:
        await writer.append(event(50))
        report = await verify(log, secret=SECRET)
        assert report.ok
        assert report.uncovered == 1
        # What no checkpoint covers yet can be removed unseen: the docs say so.
        await superuser_sql(log, "DELETE FROM audit_event WHERE chain = $1", writer.chain)
        assert await check(log) is None
    finally:
        writer._written_id = 0  # its events are gone: nothing to cover
        await writer.close()


async def test_an_anchor_written_down_must_still_be_there(
    log: str, chains: tuple[str, str]
) -> None:
    digest = await _hash(log, chains[0], 2)
    assert (await verify(log, secret=SECRET, anchor=Head(chains[0], 2, digest))).ok
    wrong = await verify(log, secret=SECRET, anchor=Head(chains[0], 2, "f" * 64))
    assert wrong.broken is not None
    assert (wrong.broken.seq, wrong.broken.kind) == (2, "anchor")


async def test_a_disabled_guard_fails_verification(log: str) -> None:
    await superuser_sql(
        log, "ALTER TABLE audit_checkpoint DISABLE TRIGGER audit_checkpoint_follows"
    )
    report = await verify(log, secret=SECRET)
    assert report.broken is None
    assert not report.ok
    assert report.guards["audit_checkpoint_follows"] is False


async def test_a_disabled_guard_on_the_decision_lists_fails_verification(log: str) -> None:
    await superuser_sql(
        log, "ALTER TABLE audit_decision_set DISABLE TRIGGER audit_decision_set_append_only"
    )
    report = await verify(log, secret=SECRET)
    assert not report.ok
    assert report.guards["audit_decision_set_append_only"] is False
    assert "guard audit_decision_set_append_only: MISSING OR DISABLED" in report.lines()


async def _lists(dsn: str) -> list[tuple[str, int]]:
    """Each stored list's digest and how many events refer to it."""
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch(
            "SELECT s.digest, count(e.id) AS n FROM audit_decision_set AS s"
            " LEFT JOIN audit_event AS e ON e.decision_set = s.digest GROUP BY s.digest"
        )
        inline = await connection.fetchval(
            "SELECT count(*) FROM audit_event WHERE decisions IS NOT NULL"
        )
    finally:
        await connection.close()
    # Each writer's first event carries its list: met for the first time.
    assert inline == 2
    return [(row["digest"], row["n"]) for row in rows]


async def test_both_writers_store_their_common_list_once(log: str, chains: tuple[str, str]) -> None:
    [(_, users)] = await _lists(log)
    assert users == 2 * EVENTS - 2
    assert (await verify(log, secret=SECRET)).ok


@pytest.mark.parametrize(
    ("tampering", "said"),
    [
        (
            "UPDATE audit_decision_set"
            " SET decisions = jsonb_set(decisions, '{0,decision}', '\"WITHHELD\"')",
            "was edited",
        ),
        ("DELETE FROM audit_decision_set", "is missing"),
    ],
)
async def test_an_edited_or_missing_decisions_list_breaks_the_events_that_use_it(
    log: str, chains: tuple[str, str], tampering: str, said: str
) -> None:
    [(digest, _)] = await _lists(log)
    await superuser_sql(log, tampering)
    report = await verify(log, secret=SECRET)
    assert report.broken is not None
    # The walk stops at the first event that uses it (chains in name order; event 1 of
    # each carries the list itself), and says why.
    first = min(chains)
    assert (report.broken.chain, report.broken.seq, report.broken.kind) == (first, 2, "altered")
    assert f"its decisions list {digest} {said}" in report.broken.detail


async def test_an_event_pointed_at_another_list_is_reported(
    log: str, chains: tuple[str, str]
) -> None:
    # Another list, stored under its rightful digest: the event's hash still covers its own.
    forged = [{"field": "NaturalPerson.name", "owner": "SH", "decision": "WITHHELD"}]
    digest = list_digest(forged)
    await superuser_sql(
        log,
        "INSERT INTO audit_decision_set VALUES ($1, $2::jsonb)",
        digest,
        orjson.dumps(forged).decode(),
    )
    await superuser_sql(
        log,
        "UPDATE audit_event SET decision_set = $1 WHERE chain = $2 AND seq = 2",
        digest,
        chains[1],
    )
    assert await check(log) == (chains[1], 2, "altered")


def test_the_audit_commands_verify_and_tail(
    log: str,
    chains: tuple[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DELTAGATE_AUDIT_CHECKPOINT_SECRET", SECRET.decode())
    assert main(["audit", "verify", "--dsn", log]) == 0
    out = capsys.readouterr().out
    assert f"chains intact: {2 * EVENTS} events in 2 chains" in out
    assert "checkpoints intact: 2" in out
    assert "checked with DELTAGATE_AUDIT_CHECKPOINT_SECRET" in out
    assert main(["audit", "tail", "--dsn", log, "-n", "4"]) == 0
    lines = capsys.readouterr().out.splitlines()
    # Newest last, across chains, each named chain:seq.
    expected = [f"{chains[0]}:3", f"{chains[1]}:1", f"{chains[1]}:2", f"{chains[1]}:3"]
    assert [line.split()[0] for line in lines] == expected
    assert "app-12" in lines[3]
    assert f"trace {12:032x}" in lines[3]


async def test_the_verify_command_names_a_tampered_event_and_fails(
    log: str,
    chains: tuple[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DELTAGATE_AUDIT_CHECKPOINT_SECRET", SECRET.decode())
    await superuser_sql(
        log, "UPDATE audit_event SET matter_code = NULL WHERE chain = $1 AND seq = 2", chains[0]
    )
    code = await asyncio.to_thread(main, ["audit", "verify", "--dsn", log])
    assert code == 1
    assert f"log BROKEN at event {chains[0]}:2 (altered)" in capsys.readouterr().out


async def test_the_verify_command_without_the_secret_fails_on_signed_checkpoints(
    log: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DELTAGATE_AUDIT_CHECKPOINT_SECRET", raising=False)
    code = await asyncio.to_thread(main, ["audit", "verify", "--dsn", log])
    out = capsys.readouterr().out
    assert code == 1
    assert "checkpoint 1 (forged)" in out
    assert "development secret" in out


@pytest.mark.parametrize("command", [["verify"], ["tail", "-n", "3"]])
def test_the_audit_commands_name_a_database_without_the_log(
    admin_dsn: str, command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # The server's own database holds no audit_event table: the owner has not run init.
    assert main(["audit", *command, "--dsn", admin_dsn]) == 1
    assert "run deltagate audit init" in capsys.readouterr().err


# -- helpers: a tamperer's hand ----------------------------------------------------------------


async def _hash(dsn: str, chain: str, seq: int) -> str:
    connection = await asyncpg.connect(dsn)
    try:
        return str(
            await connection.fetchval(
                "SELECT hash FROM audit_event WHERE chain = $1 AND seq = $2", chain, seq
            )
        )
    finally:
        await connection.close()


async def _checkpoint_after(dsn: str, seq: int, heads: list[Head]) -> dict[str, object]:
    connection = await asyncpg.connect(dsn)
    try:
        row = await connection.fetchrow(
            "SELECT hash, through_id, hash_algorithm FROM audit_checkpoint WHERE seq = $1", seq
        )
    finally:
        await connection.close()
    return {"seq": seq + 1, "prev": row["hash"], "through": row["through_id"],
            "algorithm": row["hash_algorithm"], "heads": heads}  # fmt: skip


async def _insert_checkpoint(dsn: str, spec: dict[str, object], *, secret: bytes) -> None:
    made = seal(
        seq=int(spec["seq"]),  # type: ignore[call-overload]
        at=dt.datetime.now(dt.UTC),
        through_id=int(spec["through"]),  # type: ignore[call-overload]
        heads=spec["heads"],  # type: ignore[arg-type]
        prev_hash=str(spec["prev"]),
        algorithm=str(spec["algorithm"]),
        secret=secret,
    )
    await superuser_sql(
        dsn,
        "INSERT INTO audit_checkpoint (seq, at, through_id, heads, root, hash_algorithm,"
        " prev_hash, hash, signature) VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7, $8, $9)",
        made.seq, made.at, made.through_id, made.heads_json(), made.root, made.hash_algorithm,
        made.prev_hash, made.hash, made.signature,
    )  # fmt: skip
