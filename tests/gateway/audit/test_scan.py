"""``scan``: reading many events a page at a time, in the query's order, up to a bound."""

from __future__ import annotations

from gateway.audit import EventQuery, PostgresAuditLog, scan
from tests.gateway.audit.conftest import event


async def test_pages_join_without_repeats_or_gaps_in_either_order(store: PostgresAuditLog) -> None:
    for number in range(1, 12):
        await store.append(event(number))
    newest = await scan(store, EventQuery(), most=100, page=4)
    oldest = await scan(store, EventQuery(newest_first=False), most=100, page=4)
    assert [s.id for s in newest] == list(range(11, 0, -1))
    assert [s.id for s in oldest] == list(range(1, 12))


async def test_at_most_the_bound_is_read_even_when_pages_are_larger(
    store: PostgresAuditLog,
) -> None:
    for number in range(1, 8):
        await store.append(event(number))
    # One more than a caller shows tells it the window holds more (the signals, the export).
    assert [s.id for s in await scan(store, EventQuery(), most=6, page=5)] == [7, 6, 5, 4, 3, 2]
    assert len(await scan(store, EventQuery(), most=7, page=100)) == 7
    assert len(await scan(store, EventQuery(), most=50, page=7)) == 7
