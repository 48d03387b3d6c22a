"""Seeding the four regional databases, read back through the regional mappings.

What the gateway reads through a region's mapping must be exactly the
dataset's unified rows: this is what ties each native schema, its converter
and its mapping file together.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from gateway.core.entities import ENTITY_FIELDS, MONEY_FIELDS
from gateway.core.types import DELTA_REGIONS, Row
from gateway.sources.mapping import RegionMapping, load_mapping
from gateway.sources.postgres import PostgresSource
from gateway.synthetic import database_name, region_dsn, seed_regions
from gateway.synthetic.native import native_tables
from tests.conftest import Seeded

MAPPINGS = Path(__file__).parents[3] / "gateway" / "sources" / "mappings"
STREAMS = {
    "person": "persons",
    "residence": "residences",
    "social_insurance": "social_insurance",
    "enterprise": "enterprises",
    "credit_record": "credit_records",
}


def mapping(region: str) -> RegionMapping:
    return load_mapping(MAPPINGS / f"{region.lower()}.toml")


def key(row: Row) -> tuple[str, ...]:
    return tuple(str(value) for value in row.values())


@pytest.fixture
async def sources(seeded: Seeded) -> AsyncIterator[dict[str, PostgresSource]]:
    made = {
        r: PostgresSource(r, region_dsn(seeded.dsn, r), mapping(r), min_size=0, max_size=2)
        for r in DELTA_REGIONS
    }
    yield made
    for source in made.values():
        await source.close()


@pytest.mark.parametrize(
    ("dsn", "expected"),
    [
        (
            "postgresql://gw@db.example:5432/postgres",
            "postgresql://gw@db.example:5432/deltagate_js",
        ),
        (
            "postgresql://postgres:@/postgres?host=/tmp/x",
            "postgresql://postgres:@/deltagate_js?host=/tmp/x",
        ),
        ("postgresql://db.example", "postgresql://db.example/deltagate_js"),
        ("host=/tmp/x dbname=postgres user=gw", "host=/tmp/x user=gw dbname=deltagate_js"),
    ],
)
def test_region_dsn_swaps_only_the_database(dsn: str, expected: str) -> None:
    assert region_dsn(dsn, "JS") == expected


def test_seeding_creates_four_databases_with_the_dataset_counts(seeded: Seeded) -> None:
    data = seeded.dataset
    for region in DELTA_REGIONS:
        expected = {
            entity: sum(1 for _ in getattr(data, stream)(region))
            for entity, stream in STREAMS.items()
        }
        assert seeded.report.rows[region] == expected
        assert seeded.report.database_bytes[region] > 0
    assert seeded.report.elapsed > 0


async def test_tables_hold_the_reported_rows(seeded: Seeded) -> None:
    for region in DELTA_REGIONS:
        connection = await asyncpg.connect(region_dsn(seeded.dsn, region))
        try:
            for table in native_tables(mapping(region)):
                count = await connection.fetchval(f"SELECT count(*) FROM {table.name}")
                assert count == seeded.report.tables[region][table.name]
        finally:
            await connection.close()


async def test_mappings_read_back_exactly_the_dataset_rows(
    seeded: Seeded, sources: dict[str, PostgresSource]
) -> None:
    data = seeded.dataset
    persons = [p["id_number"] for r in DELTA_REGIONS for p in data.persons(r)]
    enterprises = [e["uscc"] for r in DELTA_REGIONS for e in data.enterprises(r)]
    lookups = {
        ("person", "id_number"): persons,
        ("residence", "person_id"): persons,
        ("social_insurance", "person_id"): persons,
        ("enterprise", "uscc"): enterprises,
        ("enterprise", "legal_rep_id"): persons,
        ("credit_record", "subject_id"): persons + enterprises,
    }
    for region, source in sources.items():
        for (entity, field), values in lookups.items():
            got = await source.fetch(entity, field, values)
            expected = list(getattr(data, STREAMS[entity])(region))
            assert got, (region, entity, field)
            assert sorted(got, key=key) == sorted(expected, key=key), (region, entity, field)
            for row in got:
                assert tuple(row) == ENTITY_FIELDS[entity]
                for money in MONEY_FIELDS & set(row):
                    if row[money] is not None:
                        assert row[money].as_tuple().exponent == -4


async def test_reading_one_cross_region_person_gathers_every_region(
    seeded: Seeded, sources: dict[str, PostgresSource]
) -> None:
    data = seeded.dataset
    person = data.cross_region_person("AH")
    id_number = person["id_number"]
    assert await sources["AH"].fetch("person", "id_number", [id_number]) == [person]
    for entity, expected in (
        ("residence", data.residences_of(id_number)),
        ("social_insurance", data.social_insurance_of(id_number)),
    ):
        got = []
        for region in DELTA_REGIONS:
            got += await sources[region].fetch(entity, "person_id", [id_number])
        assert sorted(got, key=key) == sorted(expected, key=key)


async def test_enterprise_name_search_pages_in_code_point_order(
    seeded: Seeded, sources: dict[str, PostgresSource]
) -> None:
    for region in DELTA_REGIONS:
        enterprises = list(seeded.dataset.enterprises(region))
        prefix = enterprises[0]["name"][:2]
        expected = sorted(
            (e for e in enterprises if e["name"].startswith(prefix)),
            key=lambda e: (e["name"], e["uscc"]),
        )
        page = await sources[region].search("enterprise", "name", prefix, after=None, limit=5)
        assert page == expected[:5]


LOOKUPS = [
    ("person", "id_number"),
    ("residence", "person_id"),
    ("social_insurance", "person_id"),
    ("enterprise", "uscc"),
    ("enterprise", "legal_rep_id"),
    ("credit_record", "subject_id"),
]


@pytest.mark.parametrize("region", DELTA_REGIONS)
async def test_every_lookup_the_mapping_compiles_is_served_by_an_index(
    seeded: Seeded, region: str
) -> None:
    compiled = mapping(region)
    connection = await asyncpg.connect(region_dsn(seeded.dsn, region))
    try:
        # With sequential scans priced out, a plan still shows one only if no index fits.
        await connection.execute("SET enable_seqscan = off")
        for entity, field in LOOKUPS:
            statement = await connection.prepare(compiled.compile_fetch(entity, field))
            plan = await statement.explain(["x"])
            assert "Seq Scan" not in str(plan), (region, entity, field)
        search = await connection.prepare(compiled.compile_search("enterprise", "name", after=True))
        plan = await search.explain("上海", "上浸", "上海a", "9", 20)
        assert "Seq Scan" not in str(plan), (region, plan)
        assert "Sort" not in str(plan), (region, plan)  # the index gives the order
    finally:
        await connection.close()


async def test_unknown_regions_and_sizes_are_refused_before_anything_is_dropped() -> None:
    # No server is contacted: the DSN points nowhere.
    with pytest.raises(ValueError, match="XX"):
        await seed_regions("postgresql://nobody@127.0.0.1:1/postgres", 100, 1, ("SH", "XX"))
    with pytest.raises(ValueError, match="persons_per_region"):
        await seed_regions("postgresql://nobody@127.0.0.1:1/postgres", 2, 1)


async def test_reseeding_replaces_a_region_database(seeded: Seeded) -> None:
    dsn = region_dsn(seeded.dsn, "ZJ")
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute("CREATE TABLE leftover (x int)")
    finally:
        await connection.close()

    # Same dataset, so the session's databases are unchanged afterwards; in this process.
    report = await seed_regions(
        seeded.dsn, seeded.dataset.persons_per_region, seeded.dataset.seed, ("ZJ",), processes=1
    )

    assert set(report.rows) == {"ZJ"}
    assert report.rows["ZJ"] == seeded.report.rows["ZJ"]
    connection = await asyncpg.connect(dsn)
    try:
        assert await connection.fetchval("SELECT to_regclass('leftover')") is None
        assert await connection.fetchval("SELECT current_database()") == database_name("ZJ")
    finally:
        await connection.close()
