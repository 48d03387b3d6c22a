"""Native tables made from mapping files: a new region needs a mapping, not Python.

A city platform (Nanjing, prefix ``3201``) whose system has Jiangsu's schema
shape is seeded from a copy of ``js.toml`` with its own region code, and read
back through ``PostgresSource`` and that same mapping.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from gateway.core.types import Row
from gateway.sources.mapping import SHIPPED_MAPPINGS, RegionMapping, parse_mapping
from gateway.sources.postgres import PostgresSource
from gateway.synthetic import Dataset, database_name, region_dsn, seed_regions
from gateway.synthetic.divisions import DEFAULT_PREFIXES, divisions_for
from gateway.synthetic.native import native_tables

PREFIXES = {**DEFAULT_PREFIXES, "NJ": ("3201",)}
PERSONS = 60
SEED = 5


def nanjing_mapping() -> RegionMapping:
    """``js.toml`` as a Nanjing platform would copy it: same shape, its own region code."""
    text = (SHIPPED_MAPPINGS / "js.toml").read_text(encoding="utf-8")
    return parse_mapping(text.replace('"JS"', '"NJ"'), source="nj.toml")


def key(row: Row) -> tuple[str, ...]:
    return tuple(str(value) for value in row.values())


@pytest.fixture
async def nanjing(admin_dsn: str) -> AsyncIterator[PostgresSource]:
    await seed_regions(
        admin_dsn,
        PERSONS,
        SEED,
        ["NJ"],
        processes=1,
        mappings={"NJ": nanjing_mapping()},
        prefixes=PREFIXES,
    )
    source = PostgresSource(
        "NJ", region_dsn(admin_dsn, "NJ"), nanjing_mapping(), min_size=0, max_size=2
    )
    yield source
    await source.close()
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'DROP DATABASE "{database_name("NJ")}" WITH (FORCE)')
    finally:
        await admin.close()


def test_a_city_prefix_takes_that_citys_districts() -> None:
    nanjing = divisions_for(("3201",))

    assert nanjing
    assert all(d.code.startswith("3201") for d in nanjing)
    assert {d.city for d in nanjing} == {"南京市"}
    assert set(nanjing) < set(divisions_for(("32",)))


async def test_a_city_platform_is_seeded_and_read_with_a_copied_mapping_only(
    nanjing: PostgresSource,
) -> None:
    data = Dataset(PERSONS, SEED, PREFIXES)
    person = data.person("NJ", 0)
    assert person["id_number"].startswith("3201")
    assert person["household_address"].startswith("江苏省南京市")

    got = await nanjing.fetch("person", "id_number", [person["id_number"]])

    assert got == [person]
    assert data.locate_person(person["id_number"]) == ("NJ", 0)
    persons = [p["id_number"] for p in data.persons("NJ")]
    enterprises = [e["uscc"] for e in data.enterprises("NJ")]
    everyone = await nanjing.fetch("person", "id_number", persons)
    assert sorted(everyone, key=key) == sorted(data.persons("NJ"), key=key)
    firms = await nanjing.fetch("enterprise", "uscc", enterprises)
    assert sorted(firms, key=key) == sorted(data.enterprises("NJ"), key=key)


def test_every_shipped_mapping_makes_tables_with_indexes_for_its_look_ups() -> None:
    for region in DEFAULT_PREFIXES:
        tables = native_tables(
            parse_mapping((SHIPPED_MAPPINGS / f"{region.lower()}.toml").read_text("utf-8"))
        )
        assert tables
        for table in tables:
            assert table.indexes, (region, table.name)
