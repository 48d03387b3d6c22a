"""Create and fill the regional databases from a synthetic dataset.

Each region gets its own database (``deltagate_sh`` …) holding its own native
schema, as four provincial systems would; the schema and how to write into it
come from the region's mapping file (``gateway.synthetic.native``). Rows stream from the generator
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
from gateway.sources.mapping import SHIPPED_MAPPINGS, RegionMapping, load_mapping
from gateway.synthetic.divisions import DEFAULT_PREFIXES
from gateway.synthetic.generator import Dataset
from gateway.synthetic.native import NativeTable, native_tables


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
    mappings: Mapping[RegionCode, RegionMapping] | None = None,
    prefixes: Mapping[RegionCode, Sequence[str]] | None = None,
) -> SeedReport:
    """(Re)create and fill one database per region on the server at ``dsn``.

    ``dsn`` names a maintenance database (``postgres``); databases named by
    ``database_name`` are dropped (closing their connections, which needs
    PostgreSQL 13 or later) and created again.

    A region's tables are made from its mapping: ``mappings`` (region ->
    mapping), or else the shipped ``gateway/sources/mappings/<region>.toml``.
    ``prefixes`` gives every region of the dataset its admin-division prefixes
    (default: the four provinces); the seeded regions must be among them. A
    fifth region, such as a city platform, is a mapping and an entry here::

        await seed_regions(dsn, 1000, 7, ["NJ"], mappings={"NJ": nj},
                           prefixes={**DEFAULT_PREFIXES, "NJ": ("3201",)})

    ``processes`` bounds the worker processes (default: one per CPU, at most
    one per region; 1 seeds in this process). Workers are spawned, so they
    import the caller's main module: a script calling this needs the usual
    ``if __name__ == "__main__":`` guard.

    Example::

        report = await seed_regions("postgresql://postgres@localhost/postgres", 10_000, seed=7)
        report.rows["JS"]["person"]  # 10000
    """
    started = time.perf_counter()
    dataset_regions = {r: tuple(p) for r, p in (prefixes or DEFAULT_PREFIXES).items()}
    unknown = sorted(set(regions) - set(dataset_regions))
    if unknown:
        raise ValueError(f"no admin-division prefixes for region(s) {', '.join(unknown)}")
    chosen = _mappings(regions, mappings)
    # Validates the arguments before anything is dropped.
    dataset = Dataset(persons, seed, dataset_regions)
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
        results = [await _seed_region(region_dsn(dsn, r), dataset, r, chosen[r]) for r in regions]
    else:
        loop = asyncio.get_running_loop()
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=spawn) as pool:
            results = await asyncio.gather(
                *(
                    loop.run_in_executor(
                        pool,
                        _seed_region_in_process,
                        dsn,
                        persons,
                        seed,
                        dataset_regions,
                        r,
                        chosen[r],
                    )
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
        rows={r: _by_entity(native_tables(chosen[r]), tables[r]) for r in regions},
        tables=tables,
        seconds={r: result[1] for r, result in zip(regions, results, strict=True)},
        database_bytes=sizes,
        elapsed=time.perf_counter() - started,
    )


def _mappings(
    regions: Sequence[RegionCode], given: Mapping[RegionCode, RegionMapping] | None
) -> dict[RegionCode, RegionMapping]:
    """Each region's mapping: given, or the shipped file; refused if it owns another region."""
    chosen = {}
    for region in regions:
        if given is not None and region in given:
            mapping = given[region]
        else:
            path = SHIPPED_MAPPINGS / f"{region.lower()}.toml"
            if not path.is_file():
                raise ValueError(f"no mapping for region {region} (looked for {path.name})")
            mapping = load_mapping(path)
        if mapping.region != region:
            raise ValueError(f"{mapping.source} maps region {mapping.region}, not {region}")
        chosen[region] = mapping
    return chosen


def _seed_region_in_process(
    dsn: str,
    persons: int,
    seed: int,
    prefixes: dict[RegionCode, tuple[str, ...]],
    region: RegionCode,
    mapping: RegionMapping,
) -> tuple[dict[str, int], float]:
    dataset = Dataset(persons, seed, prefixes)
    return asyncio.run(_seed_region(region_dsn(dsn, region), dataset, region, mapping))


async def _seed_region(
    dsn: str, dataset: Dataset, region: RegionCode, mapping: RegionMapping
) -> tuple[dict[str, int], float]:
    """Create, load, index and analyse one region's tables; rows per table and seconds."""
    started = time.perf_counter()
    counts: dict[str, int] = {}
    conn = await asyncpg.connect(dsn)
    try:
        # A seed can be redone from scratch: waiting for each commit to be durable buys nothing.
        await conn.execute("SET synchronous_commit = off")
        await conn.execute("SET maintenance_work_mem = '256MB'")
        tables = native_tables(mapping)
        for table in tables:
            schema, _, name = table.name.rpartition(".")
            if schema:
                await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            await conn.execute(table.create_sql)
            rows = dataset.rows(table.entity, region, table.kinds)
            status = await conn.copy_records_to_table(
                name,
                schema_name=schema or None,
                records=map(table.convert, rows),
                columns=table.column_names,
            )
            counts[table.name] = int(status.split()[-1])
        for table in tables:
            for statement in table.indexes:
                await conn.execute(statement)
            await conn.execute(f"VACUUM (ANALYZE) {table.quoted_name}")
    finally:
        await conn.close()
    return counts, time.perf_counter() - started


def _by_entity(native: Sequence[NativeTable], tables: Mapping[str, int]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for table in native:
        totals[table.entity] = totals.get(table.entity, 0) + tables.get(table.name, 0)
    return totals
