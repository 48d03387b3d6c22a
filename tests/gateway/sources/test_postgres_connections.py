"""What a look-up does with its connection: a stalled region times out and is named, a
cancelled look-up leaves no connection mid-query, and the connections a source keeps
between look-ups are given back when they should be."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import asyncpg
import pytest

from gateway.core.errors import SourceUnavailable
from gateway.sources import PostgresSource, postgres
from gateway.sources.mapping import RegionMapping, parse_mapping
from tests.gateway.sources.test_postgres import LI, MAPPING_TOML, NATIVE_SQL, ZHANG

# Far longer than any timeout below: a look-up that waited for it did not time out.
STALL = 60.0


@pytest.fixture(scope="module")
def dsn(make_database: Callable[[str, str], str]) -> str:
    return make_database("deltagate_test_source_connections", NATIVE_SQL)


@pytest.fixture(scope="module")
def mapping() -> RegionMapping:
    return parse_mapping(MAPPING_TOML, source="sh-test.toml")


@pytest.fixture
async def stalled_persons(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """The region's person table locked by another session: a person look-up waits on it
    until the lock is released (residences and the rest still answer)."""
    holder = await asyncpg.connect(dsn)
    try:
        transaction = holder.transaction()
        await transaction.start()
        await holder.execute("LOCK TABLE rk_jbxx IN ACCESS EXCLUSIVE MODE")
        yield holder
        await transaction.rollback()
    finally:
        await holder.close()


async def backends(dsn: str) -> list[str]:
    """The state of each of the gateway's sessions on the server (``idle``, ``active``)."""
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch(
            "SELECT state FROM pg_stat_activity"
            " WHERE application_name = 'deltagate' AND datname = current_database()"
        )
    finally:
        await connection.close()
    return [row["state"] for row in rows]


async def test_a_stalled_region_times_out_named_and_its_connection_is_reused_after(
    dsn: str, mapping: RegionMapping, stalled_persons: asyncpg.Connection
) -> None:
    source = PostgresSource("SH", dsn, mapping, max_size=1, timeout=0.3)
    async with source:
        assert [row["person_id"] for row in await source.fetch("residence", "person_id", [LI])]
        started = time.monotonic()
        with pytest.raises(SourceUnavailable) as caught:
            await source.fetch("person", "id_number", [ZHANG])
        waited = time.monotonic() - started

        # The only connection had its query cancelled on the server, so it answers again.
        rows = await source.fetch("residence", "person_id", [LI])

    assert caught.value.region == "SH"
    assert str(caught.value) == "source for region SH is unavailable"
    assert waited < STALL / 4
    assert [row["person_id"] for row in rows] == [LI]


async def test_a_lookup_waiting_for_a_busy_pool_times_out_too(
    dsn: str, mapping: RegionMapping, stalled_persons: asyncpg.Connection
) -> None:
    source = PostgresSource("SH", dsn, mapping, max_size=1, timeout=0.5)
    async with source:
        started = time.monotonic()
        results = await asyncio.gather(
            source.fetch("person", "id_number", [ZHANG]),  # holds the only connection, stalled
            source.fetch("residence", "person_id", [LI]),  # waits for it
            return_exceptions=True,
        )
        waited = time.monotonic() - started

    assert [type(result) for result in results] == [SourceUnavailable, SourceUnavailable]
    assert all(result.region == "SH" for result in results if isinstance(result, Exception))
    assert waited < STALL / 4


async def test_a_cancelled_lookup_leaves_no_connection_mid_query(
    dsn: str, mapping: RegionMapping, stalled_persons: asyncpg.Connection
) -> None:
    source = PostgresSource("SH", dsn, mapping, max_size=1, timeout=STALL)
    async with source:
        stalled = asyncio.ensure_future(source.fetch("person", "id_number", [ZHANG]))
        await asyncio.sleep(0.3)  # its statement is waiting on the lock
        assert await backends(dsn) == ["active"]
        stalled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stalled

        # The person table is still locked: with one connection only, this answers only if
        # the cancelled statement was cancelled on the server, not left running.
        rows = await asyncio.wait_for(source.fetch("residence", "person_id", [LI]), STALL / 4)
        assert await backends(dsn) == ["idle"]

    assert [row["address"] for row in rows] == ["浙江省温州市鹿城区人民路5号"]


async def test_a_connection_the_server_closed_is_not_reused(
    dsn: str, mapping: RegionMapping
) -> None:
    source = PostgresSource("SH", dsn, mapping, max_size=1, timeout=5)
    async with source:
        await source.fetch("person", "id_number", [ZHANG])
        killer = await asyncpg.connect(dsn)
        try:
            await killer.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'deltagate' AND datname = current_database()"
            )
        finally:
            await killer.close()
        await asyncio.sleep(0.3)  # the client sees the connection close

        rows = await source.fetch("person", "id_number", [ZHANG])

    assert [row["name"] for row in rows] == ["张三"]


async def test_kept_connections_go_back_to_the_pool_when_unused_and_on_close(
    dsn: str, mapping: RegionMapping, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(postgres, "KEEP_IDLE", 0.2)
    source = PostgresSource("SH", dsn, mapping, min_size=0, max_size=4, timeout=30)
    await source.start()
    try:
        await asyncio.gather(*(source.fetch("person", "id_number", [ZHANG]) for _ in range(4)))
        pool = source._pool
        assert pool is not None
        assert pool.get_idle_size() < pool.get_size()  # kept by the source, not idle in it

        await asyncio.sleep(1.0)

        assert pool.get_idle_size() == pool.get_size()
        await source.fetch("person", "id_number", [ZHANG])
    finally:
        started = time.monotonic()
        await source.close()
        closing = time.monotonic() - started

    # The pool did not wait out the timeout for a connection the source still kept.
    assert closing < 10
    assert await backends(dsn) == []


async def test_a_connection_goes_back_to_the_pool_after_so_many_lookups(
    dsn: str, mapping: RegionMapping, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(postgres, "KEEP_USES", 3)
    released: list[object] = []
    release = asyncpg.Pool.release

    async def counting_release(pool: asyncpg.Pool, connection: object, **kwargs: object) -> None:
        released.append(connection)
        await release(pool, connection, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(asyncpg.Pool, "release", counting_release)
    source = PostgresSource("SH", dsn, mapping, max_size=1, timeout=5)
    async with source:
        for _ in range(7):
            await source.fetch("person", "id_number", [ZHANG])
        await asyncio.sleep(0)  # the release runs in the background

        assert len(released) == 2  # after the third and the sixth
