"""Tampering with the audit log, as a superuser who bypasses its triggers, is found by verify."""

from __future__ import annotations

import pytest

from gateway.audit import PostgresAuditLog, verify
from gateway.edge.cli import main
from tests.gateway.audit.conftest import event, superuser_sql

EVENTS = 6


@pytest.fixture
async def log(store: PostgresAuditLog, audit_dsn: str) -> str:
    for i in range(EVENTS):
        await store.append(event(i, app=f"app-{i}"))
    await store.close()
    return audit_dsn


async def test_an_intact_log_verifies_and_names_its_head(log: str) -> None:
    report = await verify(log)
    assert report.ok
    assert report.events == EVENTS
    assert report.head is not None
    assert report.head[0] == EVENTS
    assert report.guards == {"audit_event_append_only": True, "audit_event_follows": True}


async def test_an_edited_field_is_reported_with_the_event_id(log: str) -> None:
    await superuser_sql(log, "UPDATE audit_event SET caller_app = 'nobody' WHERE seq = 3")
    report = await verify(log)
    assert not report.ok
    assert report.broken is not None
    assert (report.broken.seq, report.broken.kind) == (3, "altered")
    assert report.events == 2  # the events before it hold


async def test_an_edited_subject_list_is_reported(log: str) -> None:
    await superuser_sql(log, "UPDATE audit_event SET subjects = '{}' WHERE seq = 5")
    report = await verify(log)
    assert report.broken is not None
    assert report.broken.seq == 5


async def test_a_deleted_row_is_reported_as_missing(log: str) -> None:
    await superuser_sql(log, "DELETE FROM audit_event WHERE seq = 4")
    report = await verify(log)
    assert report.broken is not None
    assert (report.broken.seq, report.broken.kind) == (4, "missing")


async def test_a_reordered_pair_is_reported(log: str) -> None:
    await superuser_sql(
        log,
        "UPDATE audit_event SET seq = 1000 WHERE seq = 2;"
        " UPDATE audit_event SET seq = 2 WHERE seq = 3;"
        " UPDATE audit_event SET seq = 3 WHERE seq = 1000",
    )
    report = await verify(log)
    assert report.broken is not None
    assert (report.broken.seq, report.broken.kind) == (2, "reordered")


async def test_removing_the_newest_events_is_found_against_an_anchor(log: str) -> None:
    anchor = (await verify(log)).head
    assert anchor is not None
    await superuser_sql(log, "DELETE FROM audit_event WHERE seq = $1", EVENTS)
    # The chain alone cannot show a shortened tail ...
    assert (await verify(log)).broken is None
    # ... the head written down earlier can.
    report = await verify(log, anchor=anchor)
    assert report.broken is not None
    assert (report.broken.seq, report.broken.kind) == (EVENTS, "anchor")


async def test_a_disabled_guard_fails_verification(log: str) -> None:
    await superuser_sql(log, "ALTER TABLE audit_event DISABLE TRIGGER audit_event_append_only")
    report = await verify(log)
    assert report.broken is None
    assert not report.ok
    assert report.guards["audit_event_append_only"] is False


def test_the_audit_commands_verify_and_tail(log: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "verify", "--dsn", log]) == 0
    out = capsys.readouterr().out
    assert f"chain intact: {EVENTS} events" in out
    assert main(["audit", "tail", "--dsn", log, "-n", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == [f"#{EVENTS - 1}", f"#{EVENTS}"]
    assert "app-5" in lines[1]
    assert f"trace {5:032x}" in lines[1]


async def test_the_verify_command_names_a_tampered_event_and_fails(
    log: str, capsys: pytest.CaptureFixture[str]
) -> None:
    await superuser_sql(log, "UPDATE audit_event SET matter_code = NULL WHERE seq = 2")
    code = await _run_cli(["audit", "verify", "--dsn", log])
    assert code == 1
    assert "chain BROKEN at event 2 (altered)" in capsys.readouterr().out


async def _run_cli(argv: list[str]) -> int:
    import asyncio

    # The command runs its own event loop: give it a thread of its own.
    return await asyncio.to_thread(main, argv)


@pytest.mark.parametrize("command", [["verify"], ["tail", "-n", "3"]])
def test_the_audit_commands_name_a_database_without_the_log(
    admin_dsn: str, command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # The server's own database holds no audit_event table: the owner has not run init.
    assert main(["audit", *command, "--dsn", admin_dsn]) == 1
    assert "run deltagate audit init" in capsys.readouterr().err
