"""Verifying a range of the audit chain from the console names what a tamperer changed, only
within the range asked, and no caller can make it run back to back."""

from __future__ import annotations

import pytest

from gateway.audit import EventQuery, PostgresAuditLog
from gateway.core.errors import BatchTooLarge, InvalidInput, RateLimited
from resolvers.chain_checks import ChainChecks

# The audit tests' fixtures: a fresh audit database per test, and its store.
from tests.gateway.audit.conftest import audit_dsn, event, store, superuser_sql

__all__ = ["audit_dsn", "store"]


@pytest.fixture
async def log(store: PostgresAuditLog) -> PostgresAuditLog:
    for number in range(1, 9):
        await store.append(event(number))
    return store


async def chain_of(log: PostgresAuditLog) -> str:
    """The one writer's chain (its events' ids are their numbers in it: 1 to 8)."""
    (newest,) = await log.read(EventQuery(limit=1))
    assert (newest.id, newest.seq) == (8, 8)
    return newest.chain


async def test_an_intact_range_holds(log: PostgresAuditLog) -> None:
    result = await ChainChecks(min_interval=0).verify(log, 3, 6, by_app="audit-national")
    assert result.ok
    assert (result.first, result.last, result.checked) == (3, 6, 4)
    assert result.by_app == "audit-national"


async def test_an_altered_event_is_named_and_the_range_before_it_still_holds(
    log: PostgresAuditLog, audit_dsn: str
) -> None:
    chain = await chain_of(log)
    await superuser_sql(audit_dsn, "UPDATE audit_event SET caller_app = 'nobody' WHERE id = 5")
    checks = ChainChecks(min_interval=0)
    broken = await checks.verify(log, 2, 8, by_app="a")
    assert not broken.ok
    assert broken.checked == 3
    assert broken.problems == (
        f"event 5 ({chain}:5) is altered: its contents do not match its hash",
    )
    assert checks.last == broken
    # A range that ends before the altered event holds.
    assert (await checks.verify(log, 1, 4, by_app="a")).ok


async def test_a_deleted_event_is_named_missing(log: PostgresAuditLog, audit_dsn: str) -> None:
    chain = await chain_of(log)
    await superuser_sql(audit_dsn, "DELETE FROM audit_event WHERE id = 4")
    result = await ChainChecks(min_interval=0).verify(log, None, None, by_app="a")
    assert result.problems == (
        f"event 5 ({chain}:5): event {chain}:4 is missing (after {chain}:3 comes {chain}:5)",
    )
    # The event just before a range is read for its hash: a range starting after a gap says so.
    after_gap = await ChainChecks(min_interval=0).verify(log, 5, 8, by_app="a")
    assert after_gap.problems == (f"event {chain}:4, before the range, is missing",)


async def test_verifications_are_bounded_and_spaced(log: PostgresAuditLog) -> None:
    checks = ChainChecks(max_range=4, min_interval=3600)
    with pytest.raises(BatchTooLarge):
        await checks.verify(log, 1, 8, by_app="a")
    with pytest.raises(InvalidInput):
        await checks.verify(log, 6, 2, by_app="a")
    # Refused ranges cost nothing; the default is the newest max_range events.
    newest = await checks.verify(log, None, None, by_app="a")
    assert (newest.first, newest.last) == (5, 8)
    with pytest.raises(RateLimited):
        await checks.verify(log, 1, 2, by_app="b")
