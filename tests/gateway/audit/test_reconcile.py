"""``reconcile``: an upper's log against its lowers' logs, each a real audit database.

The events are written as the gateways would write them (the lower's with the
acting gateway, the upper's with the lower's receipt), then tampered with as
someone with the database's superuser would.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from gateway.audit import AuditEvent, PostgresAuditLog, StoredEvent, receipt_document
from gateway.audit.reconcile import ReconcileReport, reconcile
from tests.gateway.audit.conftest import event, new_audit_database, superuser_sql

UPPER = "deltagate-delta"
JS_PERSON = "320102199001011234"


@dataclasses.dataclass
class Logs:
    upper: PostgresAuditLog
    lower: PostgresAuditLog
    upper_dsn: str
    lower_dsn: str


@pytest.fixture
async def logs(admin_dsn: str) -> AsyncIterator[Logs]:
    async with (
        new_audit_database(admin_dsn) as upper_dsn,
        new_audit_database(admin_dsn) as lower_dsn,
    ):
        upper, lower = PostgresAuditLog(upper_dsn), PostgresAuditLog(lower_dsn)
        try:
            yield Logs(upper, lower, upper_dsn, lower_dsn)
        finally:
            await upper.close()
            await lower.close()


def released(number: int, subjects: tuple[str, ...], owner: str) -> AuditEvent:
    base = event(number, subjects=subjects)
    decisions = [{**base.decisions[0], "owner": owner}]
    return dataclasses.replace(base, decisions=tuple(decisions))


async def one_operation(
    logs: Logs,
    number: int,
    *,
    lower_subjects: tuple[str, ...] = (JS_PERSON,),
    receipt_changes: dict[str, Any] | None = None,
    lower_trace: int | None = None,
) -> tuple[StoredEvent, StoredEvent]:
    """One operation through the cascade: the lower's event, then the upper's with its receipt."""
    below = dataclasses.replace(
        released(number if lower_trace is None else lower_trace, lower_subjects, "JS"),
        acting=UPPER,
    )
    receipt = await logs.lower.append(below)
    kept = {**receipt_document(receipt, "deltagate-js"), "region": "JS", **(receipt_changes or {})}
    above = dataclasses.replace(released(number, (JS_PERSON,), "JS"), receipts=(kept,))
    upper = await logs.upper.append(above)
    return upper.stored, receipt.stored


async def check(logs: Logs) -> ReconcileReport:
    now = dt.datetime.now(dt.UTC)
    return await reconcile(
        logs.upper,
        {"JS": logs.lower},
        since=now - dt.timedelta(minutes=1),
        until=now + dt.timedelta(seconds=1),
        acting=UPPER,
    )


def name(stored: StoredEvent) -> str:
    """How a finding names an event: its chain and its number in it."""
    return f"{stored.chain}:{stored.seq}"


def kinds(report: ReconcileReport) -> list[tuple[str, str]]:
    return [(f.kind, f.where) for f in report.findings]


async def test_operations_written_at_both_levels_reconcile(logs: Logs) -> None:
    for number in range(3):
        await one_operation(logs, number)
    report = await check(logs)
    assert report.ok, report.lines()
    assert (report.upper_events, report.receipts, report.lower_events) == (3, 3, {"JS": 3})
    assert report.lines()[-1] == "reconciled"


async def test_a_receipt_whose_hash_or_trace_differs_is_reported(logs: Logs) -> None:
    upper_a, _ = await one_operation(logs, 1, receipt_changes={"hash": "f" * 64})
    upper_b, _ = await one_operation(logs, 2, lower_trace=99)
    assert kinds(await check(logs)) == [
        ("hash mismatch", f"upper {name(upper_a)}"),
        ("trace mismatch", f"upper {name(upper_b)}"),
    ]


async def test_subjects_released_below_but_not_listed_above_are_reported(logs: Logs) -> None:
    upper, _ = await one_operation(logs, 1, lower_subjects=(JS_PERSON, "320102199001015678"))
    report = await check(logs)
    assert kinds(report) == [("subjects not covered", f"upper {name(upper)}")]
    assert "1 subject(s)" in report.findings[0].detail


async def test_an_event_deleted_or_edited_at_either_level_is_reported(logs: Logs) -> None:
    upper_1, lower_1 = await one_operation(logs, 1)
    _, lower_2 = await one_operation(logs, 2)
    upper_3, lower_3 = await one_operation(logs, 3)
    await superuser_sql(logs.lower_dsn, "DELETE FROM audit_event WHERE id = $1", lower_1.id)
    await superuser_sql(
        logs.lower_dsn,
        "UPDATE audit_event SET caller_app = 'someone-else' WHERE id = $1",
        lower_2.id,
    )
    await superuser_sql(logs.upper_dsn, "DELETE FROM audit_event WHERE id = $1", upper_3.id)
    assert kinds(await check(logs)) == [
        ("missing", f"upper {name(upper_1)}"),
        ("altered", f"JS {name(lower_2)}"),
        ("orphan", f"JS {name(lower_3)}"),
    ]


async def test_an_edited_receipt_above_is_reported(logs: Logs) -> None:
    upper, _ = await one_operation(logs, 1)
    await superuser_sql(
        logs.upper_dsn,
        "UPDATE audit_event SET receipts = $1::jsonb WHERE id = $2",
        orjson.dumps([]).decode(),
        upper.id,
    )
    found = kinds(await check(logs))
    assert ("altered", f"upper {name(upper)}") in found
    assert ("no receipt", f"upper {name(upper)}") in found  # it records JS data, no JS receipt


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--lower", "JS"], "--lower takes REGION=DSN"),
        (["--lower", "JS=a", "--lower", "js=b"], "names JS twice"),
        (["--lower", "JS=a", "--since", "yesterday"], "ISO 8601"),
        (["--lower", "JS=a", "--since", "2024-06-02", "--until", "2024-06-01"], "before --until"),
    ],
)
def test_reconcile_refuses_unclear_arguments_before_reading_anything(
    arguments: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from gateway.edge.cli import main

    upper = "postgresql://nobody@127.0.0.1:1/none"
    assert main(["audit", "reconcile", "--upper", upper, *arguments]) == 2
    assert message in capsys.readouterr().err
