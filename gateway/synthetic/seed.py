"""Create and fill the four regional databases from a synthetic dataset.

Each region gets its own database (``deltagate_sh`` …) holding its own native
schema, as four provincial systems would. Rows stream from the generator
through ``COPY`` (binary, via asyncpg) without being collected, so memory stays
flat at any size; indexes are built after loading and the tables vacuumed and
analysed, so the first queries see a settled database with planner statistics.

Generating rows is Python work, so regions are seeded in separate processes
(one per CPU, at most one per region); PostgreSQL builds one region's indexes
while another's rows are still being generated.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from gateway.core.types import DELTA_REGIONS, RegionCode
from gateway.synthetic.generator import Dataset
from gateway.synthetic.native import NATIVE_TABLES


@dataclass(frozen=True, kw_only=True)
class SeedReport:
    """What ``seed_regions`` did.

    Attributes:
        persons_per_region: the dataset's size argument.
        seed: the dataset's seed.
        rows: per region, rows loaded per unified entity.
        tables: per region, rows loaded per native table.
        seconds: per region, wall-clock seconds to create, load, index and analyse it.
        database_bytes: per region, ``pg_database_size`` after loading.
        elapsed: wall-clock seconds of the whole seeding.
    """

    persons_per_region: int
    seed: int
    rows: Mapping[RegionCode, Mapping[str, int]]
    tables: Mapping[RegionCode, Mapping[str, int]]
    seconds: Mapping[RegionCode, float]
    database_bytes: Mapping[RegionCode, int]
    elapsed: float


def database_name(region: RegionCode) -> str:
    """The database a region's native schema lives in: ``deltagate_sh`` for SH."""
    return f"deltagate_{region.lower()}"


def region_dsn(dsn: str, region: RegionCode) -> str:
    """``dsn`` with its database swapped for the region's.

    Handles URLs (``postgresql://user@host:5432/postgres``, or a socket
    directory in the query: ``postgresql://postgres:@/postgres?host=/tmp/x``)
    and libpq key/value strings (``host=/tmp/x dbname=postgres``).
    """
    name = database_name(region)
    if "://" in dsn:
        parts = urlsplit(dsn)
        return urlunsplit(parts._replace(path=f"/{name}"))
    pairs = [p for p in dsn.split() if not p.startswith("dbname=")]
    return " ".join([*pairs, f"dbname={name}"])


async def seed_regions(
    dsn: str,
    persons: int,
    seed: int,
    regions: Sequence[RegionCode] = DELTA_REGIONS,
    *,
    processes: int | None = None,
) -> SeedReport:
    """(Re)create and fill one database per region on the server at ``dsn``.

    ``dsn`` names a maintenance database (``postgres``); databases named by
    ``database_name`` are dropped (closing their connections, which needs
    PostgreSQL 13 or later) and created again.

    ``processes`` bounds the worker processes (default: one per CPU, at most
    one per region; 1 seeds in this process). Workers are spawned, so they
    import the caller's main module: a script calling this needs the usual
    ``if __name__ == "__main__":`` guard.

    Example::

        report = await seed_regions("postgresql://postgres@localhost/postgres", 10_000, seed=7)
        report.rows["JS"]["person"]  # 10000
    """
    started = time.perf_counter()
    unknown = sorted(set(regions) - set(NATIVE_TABLES))
    if unknown:
        raise ValueError(f"no native schema for region(s) {', '.join(unknown)}")
    dataset = Dataset(persons, seed)  # validates the arguments before anything is dropped
    admin = await asyncpg.connect(dsn)
    try:
        for region in regions:
            name = database_name(region)
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()

    workers = min(len(regions), processes or os.cpu_count() or 1)
    if workers <= 1:
        results = [await _seed_region(region_dsn(dsn, r), dataset, r) for r in regions]
    else:
        loop = asyncio.get_running_loop()
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=spawn) as pool:
            results = await asyncio.gather(
                *(
                    loop.run_in_executor(pool, _seed_region_in_process, dsn, persons, seed, r)
                    for r in regions
                )
            )

    admin = await asyncpg.connect(dsn)
    try:
        sizes = {
            r: await admin.fetchval("SELECT pg_database_size($1)", database_name(r))
            for r in regions
        }
    finally:
        await admin.close()
    tables = {r: result[0] for r, result in zip(regions, results, strict=True)}
    return SeedReport(
        persons_per_region=persons,
        seed=seed,
        rows={r: _by_entity(r, tables[r]) for r in regions},
        tables=tables,
        seconds={r: result[1] for r, result in zip(regions, results, strict=True)},
        database_bytes=sizes,
        elapsed=time.perf_counter() - started,
    )


def _seed_region_in_process(
    dsn: str, persons: int, seed: int, region: RegionCode
) -> tuple[dict[str, int], float]:
    return asyncio.run(_seed_region(region_dsn(dsn, region), Dataset(persons, seed), region))


async def _seed_region(
    dsn: str, dataset: Dataset, region: RegionCode
) -> tuple[dict[str, int], float]:
    """Create, load, index and analyse one region's tables; rows per table and seconds."""
    started = time.perf_counter()
    counts: dict[str, int] = {}
    conn = await asyncpg.connect(dsn)
    try:
        # A seed can be redone from scratch: waiting for each commit to be durable buys nothing.
        await conn.execute("SET synchronous_commit = off")
        await conn.execute("SET maintenance_work_mem = '256MB'")
        for table in NATIVE_TABLES[region]:
            await conn.execute(table.create_sql)
            rows = dataset.rows(table.entity, region, table.kinds)
            status = await conn.copy_records_to_table(
                table.name,
                records=map(table.convert, rows),
                columns=table.column_names,
            )
            counts[table.name] = int(status.split()[-1])
        for table in NATIVE_TABLES[region]:
            for statement in table.indexes:
                await conn.execute(statement)
            await conn.execute(f"VACUUM (ANALYZE) {table.name}")
    finally:
        await conn.close()
    return counts, time.perf_counter() - started


def _by_entity(region: RegionCode, tables: Mapping[str, int]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for table in NATIVE_TABLES[region]:
        totals[table.entity] = totals.get(table.entity, 0) + tables.get(table.name, 0)
    return totals
