"""The postgres source against a real PostgreSQL, with native tables of every shape."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest

from gateway.core.entities import ENTITY_FIELDS
from gateway.core.errors import ConfigError, SourceUnavailable
from gateway.sources import PostgresSource, Source, build_source, postgres
from gateway.sources.mapping import RegionMapping, parse_mapping
from tests.gateway.sources.database import dsn_for, execute_sql

# One region's native tables, deliberately in every style the mappings meet:
# SH-like pinyin tables with DATE columns and numeric gender codes, ZJ-like
# YYYYMMDD strings and text amounts, JS-like yuan, AH-like JSONB documents.
NATIVE_SQL = r"""
CREATE TABLE rk_jbxx (
    sfzh varchar(18) PRIMARY KEY, xm text, xb smallint, csrq date,
    mz text, hjdz text, lxdh text
);
INSERT INTO rk_jbxx VALUES
    ('310101199001011234', '张三', 1, '1990-01-01', '汉族', '上海市黄浦区南京东路1号',
     '13800000001'),
    ('310101198505054321', '李四', 2, '1985-05-05', '回族', '上海市徐汇区漕溪北路2号',
     '13900000002'),
    ('310101200001019999', '王五', 9, NULL, NULL, NULL, NULL);

CREATE TABLE t_jzxx (gmsfhm varchar(18), jzdz text, djrq varchar(8));
INSERT INTO t_jzxx VALUES
    ('310101199001011234', '浙江省杭州市西湖区文三路3号', '20200315'),
    ('310101199001011234', '浙江省宁波市海曙区中山路4号', ''),
    ('310101198505054321', '浙江省温州市鹿城区人民路5号', '2021013');

CREATE TABLE si_doc (id serial PRIMARY KEY, doc jsonb NOT NULL);
CREATE INDEX ON si_doc ((doc #>> '{person,idNumber}'));
INSERT INTO si_doc (doc) VALUES
    ('{"person": {"idNumber": "310101199001011234"},
       "insurance": {"type": "PENSION", "status": "ACTIVE"}, "since": "2015-07-01"}');

CREATE TABLE enterprise (
    uscc varchar(18) PRIMARY KEY, name text, type text, status text,
    capital_yuan numeric(18, 2), established date, authority text,
    address text, scope text, legal_rep varchar(18)
);
CREATE INDEX ON enterprise (name COLLATE "C", uscc COLLATE "C");
INSERT INTO enterprise VALUES
    ('91310000MA1FL0001X', '上海甲科技有限公司', '有限责任公司', '存续', 1234567.89,
     '2015-03-01', '上海市市场监督管理局', '上海市浦东新区张江路6号', '软件开发',
     '310101199001011234'),
    ('91310000MA1FL0002X', 'A_B贸易有限公司', '有限责任公司', '存续', 500000,
     '2018-06-30', '上海市市场监督管理局', '上海市静安区7号', '贸易', '310101198505054321'),
    ('91310000MA1FL0003X', 'AxB贸易有限公司', '有限责任公司', '注销', NULL,
     '2019-01-02', '上海市市场监督管理局', '上海市静安区8号', '贸易', '310101198505054321');
INSERT INTO enterprise
SELECT '9131000PAGE' || lpad(i::text, 6, '0') || 'X', '浦江' || (i % 7) || '号企业',
       '有限责任公司', '存续', i * 10000, '2020-01-01', '上海市市场监督管理局',
       '上海市', '服务', NULL
FROM generate_series(1, 23) AS i;

CREATE TABLE xy_xzcf (
    xh text PRIMARY KEY, xdrdm varchar(18), cfmc text, wsh text, jg text,
    cfrq date, gsjzq date, fkje numeric(18, 2), xq text
);
INSERT INTO xy_xzcf VALUES
    ('CF-1', '91310000MA1FL0001X', '未按规定公示年报', '沪市监罚〔2023〕1号',
     '上海市市场监督管理局', '2023-04-01', '2026-04-01', 12345.67, '罚款'),
    ('CF-2', '91310000MA1FL0001X', '虚假宣传', '沪市监罚〔2023〕2号', '上海市市场监督管理局',
     '2023-05-01', NULL, 1, NULL);

CREATE TABLE xy_xzxk (
    xkbh text, xdrdm varchar(18), xkmc text, xkwh text, jg text,
    xkrq varchar(8), yxqz varchar(8), je text, xq text
);
INSERT INTO xy_xzxk VALUES
    ('XK-1', '91310000MA1FL0001X', '食品经营许可', '沪食许〔2022〕9号', '浦东新区市场监督管理局',
     '20220110', '20270109', '', NULL);

CREATE TABLE credit_doc (doc jsonb NOT NULL);
INSERT INTO credit_doc VALUES
    ('{"id": "JSON-1", "subject": {"id": "310101199001011234", "type": "P"}, "kind": "dishonest",
       "title": "拒不履行生效判决", "decision": {"no": "(2021)沪0101执1号", "by": "黄浦区人民法院",
       "date": "20210601", "amount": "3.5"}, "validUntil": "2024-06-01", "detail": "失信"}'),
    ('{"id": "JSON-2", "subject": {"id": "91310000MA1FL0001X", "type": "E"}, "kind": "honor",
       "title": "守合同重信用",
       "decision": {"no": "沪工商〔2020〕5号", "by": "上海市市场监督管理局", "date": "20200101"},
       "detail": "表彰"}');
"""

MAPPING_TOML = r"""
region = "SH"

[entity.person]
from = "public.rk_jbxx"
[entity.person.fields]
id_number = "sfzh"
name = "xm"
gender = { column = "xb", codes = { "1" = "MALE", "2" = "FEMALE" } }
birth_date = { column = "csrq", date = "date" }
ethnicity = "mz"
household_region = { const = "SH" }
household_address = "hjdz"
phone = "lxdh"

[entity.residence]
from = "t_jzxx"
[entity.residence.fields]
person_id = "gmsfhm"
region = { const = "ZJ" }
address = "jzdz"
since = { column = "djrq", date = "YYYYMMDD" }

[entity.social_insurance]
from = "si_doc"
document = "doc"
[entity.social_insurance.fields]
person_id = { path = "person.idNumber" }
region = { const = "AH" }
insurance_type = { path = "insurance.type" }
status = { path = "insurance.status" }
since = { path = "since", date = "iso" }

[entity.enterprise]
from = "enterprise"
[entity.enterprise.fields]
uscc = "uscc"
name = "name"
entity_type = "type"
status = "status"
registered_capital = { column = "capital_yuan", numeric = true, scale = 0.0001 }
established_on = { column = "established", date = "date" }
registration_authority = "authority"
region = { const = "SH" }
address = "address"
business_scope = "scope"
legal_rep_id = "legal_rep"

[[entity.credit_record.parts]]
from = "xy_xzcf"
[entity.credit_record.parts.fields]
id = "xh"
subject_id = "xdrdm"
subject_type = { const = "LEGAL_PERSON" }
kind = { const = "ADMIN_PENALTY" }
title = "cfmc"
document_number = "wsh"
authority = "jg"
decided_on = { column = "cfrq", date = "date" }
valid_until = { column = "gsjzq", date = "date" }
amount = { column = "fkje", numeric = true, scale = 0.0001 }
region = { const = "SH" }
detail = "xq"

[[entity.credit_record.parts]]
from = "xy_xzxk"
[entity.credit_record.parts.fields]
id = "xkbh"
subject_id = "xdrdm"
subject_type = { const = "LEGAL_PERSON" }
kind = { const = "ADMIN_LICENSE" }
title = "xkmc"
document_number = "xkwh"
authority = "jg"
decided_on = { column = "xkrq", date = "YYYYMMDD" }
valid_until = { column = "yxqz", date = "YYYYMMDD" }
amount = { column = "je", numeric = true }
region = { const = "SH" }
detail = "xq"

[[entity.credit_record.parts]]
from = "credit_doc"
document = "doc"
[entity.credit_record.parts.fields]
id = { path = "id" }
subject_id = { path = "subject.id" }
subject_type = { path = "subject.type", codes = { "P" = "NATURAL_PERSON", "E" = "LEGAL_PERSON" } }
kind = { path = "kind", codes = { "dishonest" = "DISHONEST_EXECUTEE", "honor" = "COMMENDATION" } }
title = { path = "title" }
document_number = { path = "decision.no" }
authority = { path = "decision.by" }
decided_on = { path = "decision.date", date = "YYYYMMDD" }
valid_until = { path = "validUntil", date = "iso" }
amount = { path = "decision.amount" }
region = { const = "SH" }
detail = { path = "detail" }
"""

ZHANG = "310101199001011234"
LI = "310101198505054321"
WANG = "310101200001019999"
FIRM = "91310000MA1FL0001X"

Queries = list[tuple[str, str, str, int, int]]


@pytest.fixture(scope="module")
def dsn(make_database: Callable[[str, str], str]) -> str:
    return make_database("deltagate_test_sources", NATIVE_SQL)


@pytest.fixture(scope="module")
def mapping() -> RegionMapping:
    return parse_mapping(MAPPING_TOML, source="sh-test.toml")


@pytest.fixture
def queries() -> Queries:
    return []


@pytest.fixture
async def source(dsn: str, mapping: RegionMapping, queries: Queries) -> PostgresSource:
    def observe(region: str, entity: str, field: str, keys: int, rows: int, seconds: float) -> None:
        assert seconds >= 0
        queries.append((region, entity, field, keys, rows))

    source = PostgresSource("SH", dsn, mapping, min_size=1, max_size=4, timeout=5, observer=observe)
    await source.start()
    yield source
    await source.close()


def by(rows: list[dict[str, object]], field: str) -> dict[object, dict[str, object]]:
    return {row[field]: row for row in rows}


async def test_person_rows_are_unified_from_date_column_and_numeric_codes(
    source: PostgresSource,
) -> None:
    rows = by(await source.fetch("person", "id_number", [ZHANG, WANG]), "id_number")

    assert rows == {
        ZHANG: {
            "id_number": ZHANG,
            "name": "张三",
            "gender": "MALE",
            "birth_date": "1990-01-01",
            "ethnicity": "汉族",
            "household_region": "SH",
            "household_address": "上海市黄浦区南京东路1号",
            "phone": "13800000001",
        },
        WANG: {
            "id_number": WANG,
            "name": "王五",
            "gender": None,  # an unlisted code is no value, not a native code
            "birth_date": None,
            "ethnicity": None,
            "household_region": "SH",
            "household_address": None,
            "phone": None,
        },
    }


async def test_yyyymmdd_strings_become_iso_dates_and_malformed_ones_null(
    source: PostgresSource,
) -> None:
    rows = await source.fetch("residence", "person_id", [ZHANG, LI])

    assert sorted(rows, key=lambda r: r["address"]) == sorted(
        [
            {"person_id": ZHANG, "region": "ZJ", "address": "浙江省杭州市西湖区文三路3号",
             "since": "2020-03-15"},
            {"person_id": ZHANG, "region": "ZJ", "address": "浙江省宁波市海曙区中山路4号",
             "since": None},
            {"person_id": LI, "region": "ZJ", "address": "浙江省温州市鹿城区人民路5号",
             "since": None},
        ],
        key=lambda r: r["address"],
    )  # fmt: skip


async def test_json_document_paths_are_read_and_looked_up(source: PostgresSource) -> None:
    rows = await source.fetch("social_insurance", "person_id", [ZHANG, LI])

    assert rows == [
        {
            "person_id": ZHANG,
            "region": "AH",
            "insurance_type": "PENSION",
            "status": "ACTIVE",
            "since": "2015-07-01",
        }
    ]


async def test_capital_in_yuan_becomes_wan_yuan_with_four_places(source: PostgresSource) -> None:
    [row] = await source.fetch("enterprise", "uscc", [FIRM])

    assert row == {
        "uscc": FIRM,
        "name": "上海甲科技有限公司",
        "entity_type": "有限责任公司",
        "status": "存续",
        "registered_capital": Decimal("123.4568"),
        "established_on": "2015-03-01",
        "registration_authority": "上海市市场监督管理局",
        "region": "SH",
        "address": "上海市浦东新区张江路6号",
        "business_scope": "软件开发",
        "legal_rep_id": ZHANG,
    }
    assert row["registered_capital"].as_tuple().exponent == -4


async def test_enterprises_are_found_by_legal_representative(source: PostgresSource) -> None:
    rows = await source.fetch("enterprise", "legal_rep_id", [LI])

    assert sorted(row["uscc"] for row in rows) == ["91310000MA1FL0002X", "91310000MA1FL0003X"]
    assert by(rows, "uscc")["91310000MA1FL0003X"]["registered_capital"] is None


async def test_credit_records_from_three_parts_come_back_as_one_list(
    source: PostgresSource, queries: Queries
) -> None:
    rows = by(await source.fetch("credit_record", "subject_id", [FIRM, ZHANG]), "id")

    assert rows == {
        "CF-1": {
            "id": "CF-1", "subject_id": FIRM, "subject_type": "LEGAL_PERSON",
            "kind": "ADMIN_PENALTY", "title": "未按规定公示年报",
            "document_number": "沪市监罚〔2023〕1号", "authority": "上海市市场监督管理局",
            "decided_on": "2023-04-01", "valid_until": "2026-04-01",
            "amount": Decimal("1.2346"), "region": "SH", "detail": "罚款",
        },
        "CF-2": {
            "id": "CF-2", "subject_id": FIRM, "subject_type": "LEGAL_PERSON",
            "kind": "ADMIN_PENALTY", "title": "虚假宣传",
            "document_number": "沪市监罚〔2023〕2号", "authority": "上海市市场监督管理局",
            "decided_on": "2023-05-01", "valid_until": None,
            "amount": Decimal("0.0001"), "region": "SH", "detail": None,
        },
        "XK-1": {
            "id": "XK-1", "subject_id": FIRM, "subject_type": "LEGAL_PERSON",
            "kind": "ADMIN_LICENSE", "title": "食品经营许可",
            "document_number": "沪食许〔2022〕9号", "authority": "浦东新区市场监督管理局",
            "decided_on": "2022-01-10", "valid_until": "2027-01-09",
            "amount": None, "region": "SH", "detail": None,
        },
        "JSON-1": {
            "id": "JSON-1", "subject_id": ZHANG, "subject_type": "NATURAL_PERSON",
            "kind": "DISHONEST_EXECUTEE", "title": "拒不履行生效判决",
            "document_number": "(2021)沪0101执1号", "authority": "黄浦区人民法院",
            "decided_on": "2021-06-01", "valid_until": "2024-06-01",
            "amount": Decimal("3.5000"), "region": "SH", "detail": "失信",
        },
        "JSON-2": {
            "id": "JSON-2", "subject_id": FIRM, "subject_type": "LEGAL_PERSON",
            "kind": "COMMENDATION", "title": "守合同重信用",
            "document_number": "沪工商〔2020〕5号", "authority": "上海市市场监督管理局",
            "decided_on": "2020-01-01", "valid_until": None,
            "amount": None, "region": "SH", "detail": "表彰",
        },
    }  # fmt: skip
    assert all(
        row["amount"] is None or row["amount"].as_tuple().exponent == -4 for row in rows.values()
    )
    assert queries == [("SH", "credit_record", "subject_id", 2, 5)]


async def test_a_batch_of_a_hundred_keys_is_one_query(
    source: PostgresSource, queries: Queries
) -> None:
    keys = [ZHANG, LI] + [f"3101011990{i:08d}" for i in range(98)]

    rows = await source.fetch("person", "id_number", [*keys, ZHANG, LI])

    assert sorted(row["id_number"] for row in rows) == [LI, ZHANG]
    assert queries == [("SH", "person", "id_number", 100, 2)]  # duplicates read once


async def test_no_keys_means_no_query(source: PostgresSource, queries: Queries) -> None:
    assert await source.fetch("person", "id_number", []) == []
    assert queries == []


async def test_several_lookups_asked_together_are_one_query_with_the_same_rows(
    source: PostgresSource, queries: Queries
) -> None:
    lookups = [
        ("residence", "person_id", [ZHANG, LI]),
        ("social_insurance", "person_id", [ZHANG]),
        ("person", "id_number", [LI, LI]),
        ("credit_record", "subject_id", [FIRM, ZHANG]),  # three parts, money as numeric
    ]
    one_by_one = [await source.fetch(entity, field, keys) for entity, field, keys in lookups]
    queries.clear()

    together = await source.fetch_many(lookups)

    def canonical(rows: list[dict[str, object]]) -> list[str]:
        return sorted(repr(sorted(row.items())) for row in rows)

    assert [canonical(rows) for rows in together] == [canonical(rows) for rows in one_by_one]
    assert all(rows for rows in together)
    # Each row has exactly its own entity's fields, in the same order as a single look-up's.
    assert [[list(row) for row in rows] for rows in together] == [
        [list(row) for row in rows] for rows in one_by_one
    ]
    credit = by(together[3], "id")
    assert credit["CF-1"]["amount"] == Decimal("1.2346")
    assert credit["XK-1"]["amount"] is None
    assert queries == [
        (
            "SH",
            "residence+social_insurance+person+credit_record",
            "person_id+person_id+id_number+subject_id",
            2 + 1 + 1 + 2,  # duplicates read once
            sum(len(rows) for rows in together),
        )
    ]


async def test_lookups_asked_together_skip_those_without_keys_or_table(
    dsn: str, mapping: RegionMapping, source: PostgresSource, queries: Queries
) -> None:
    assert await source.fetch_many(
        [("person", "id_number", []), ("residence", "person_id", [])]
    ) == [
        [],
        [],
    ]
    assert queries == []
    [none, persons] = await source.fetch_many(
        [("residence", "person_id", []), ("person", "id_number", [ZHANG])]
    )
    assert none == []
    assert [row["id_number"] for row in persons] == [ZHANG]
    assert queries == [("SH", "person", "id_number", 1, 1)]  # a single look-up as ``fetch``
    with pytest.raises(ValueError, match="unknown field"):
        await source.fetch_many([("person", "id_number", [ZHANG]), ("person", "nonsense", [LI])])
    only_persons = MAPPING_TOML.split("[entity.residence]")[0]
    async with PostgresSource("SH", dsn, parse_mapping(only_persons), timeout=5) as narrow:
        rows = await narrow.fetch_many(
            [("residence", "person_id", [ZHANG]), ("person", "id_number", [ZHANG])]
        )
        assert rows[0] == []
        assert [row["id_number"] for row in rows[1]] == [ZHANG]


def projection(rows: list[dict[str, object]], columns: set[str]) -> list[dict[str, object]]:
    """Full rows cut to ``columns``, in a canonical order, to compare with projected ones."""
    return sorted(({k: v for k, v in row.items() if k in columns} for row in rows), key=repr)


async def test_a_lookup_with_columns_selects_those_and_its_key_only(
    source: PostgresSource, queries: Queries
) -> None:
    cases = [
        ("person", "id_number", [ZHANG, LI], {"name", "phone", "birth_date"}),
        ("residence", "person_id", [ZHANG, LI], {"since"}),
        ("social_insurance", "person_id", [ZHANG], {"status"}),  # a JSON document
        ("enterprise", "uscc", [FIRM], {"registered_capital", "status"}),  # money
        ("credit_record", "subject_id", [FIRM, ZHANG], {"id", "subject_type", "amount"}),
    ]
    for entity, field, keys, columns in cases:
        full = await source.fetch(entity, field, keys)
        queries.clear()

        rows = await source.fetch(entity, field, keys, columns=frozenset(columns))

        wanted = columns | {field}
        assert rows, entity
        # Only those columns come back (the row's keys are the statement's select list).
        assert all(set(row) == wanted for row in rows), entity
        assert projection(rows, wanted) == projection(full, wanted), entity
        assert queries == [("SH", entity, field, len(keys), len(full))]


async def test_lookups_asked_together_each_select_their_own_columns(
    source: PostgresSource, queries: Queries
) -> None:
    lookups = [
        ("residence", "person_id", [ZHANG, LI]),
        ("person", "id_number", [LI]),
        ("credit_record", "subject_id", [FIRM, ZHANG]),
    ]
    columns = [frozenset({"address"}), None, frozenset({"kind", "decided_on"})]
    full = await source.fetch_many(lookups)
    queries.clear()

    together = await source.fetch_many(lookups, columns=columns)

    assert len(queries) == 1  # still one round trip
    for (entity, field, _), own, rows, every in zip(lookups, columns, together, full, strict=True):
        wanted = set(ENTITY_FIELDS[entity]) if own is None else own | {field}
        assert rows, entity
        assert all(set(row) == wanted for row in rows), entity
        assert projection(rows, wanted) == projection(every, wanted), entity


def test_every_column_asked_is_the_statement_of_no_columns(mapping: RegionMapping) -> None:
    # The same SQL text, so the same prepared statement on each connection.
    for entity, fields in ENTITY_FIELDS.items():
        field = fields[0]
        assert mapping.compile_fetch(entity, field, fields) == mapping.compile_fetch(entity, field)


async def test_a_column_the_entity_lacks_is_refused(source: PostgresSource) -> None:
    with pytest.raises(ValueError, match="no field 'salary'"):
        await source.fetch("person", "id_number", [ZHANG], columns={"name", "salary"})
    with pytest.raises(ValueError, match="no field 'salary'"):
        await source.fetch_many(
            [("person", "id_number", [ZHANG]), ("residence", "person_id", [ZHANG])],
            columns=[{"salary"}, None],
        )


async def test_projected_statements_are_kept_up_to_a_bound(
    source: PostgresSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(postgres, "STATEMENT_CACHE", 3)
    names = [name for name in ENTITY_FIELDS["person"] if name != "id_number"]
    for name in names:  # seven column sets, one after another, each answered right
        [row] = await source.fetch("person", "id_number", [ZHANG], columns=frozenset({name}))
        assert set(row) == {"id_number", name}
        for pair in (("residence", "person_id"), ("person", "id_number")):
            await source.fetch_many(
                [("residence", "person_id", [ZHANG]), (*pair, [ZHANG])],
                columns=[frozenset({"since"}), frozenset({name} if pair[0] == "person" else ())],
            )
    assert len(source._projected) <= 3
    assert len(source._combined) <= 3


async def test_search_pages_by_name_then_uscc_in_code_point_order(
    source: PostgresSource, queries: Queries
) -> None:
    pages = []
    after = None
    while True:
        page = await source.search("enterprise", "name", "浦江", after=after, limit=10)
        if not page:
            break
        pages.append(page)
        after = (page[-1]["name"], page[-1]["uscc"])

    assert [len(page) for page in pages] == [10, 10, 3]
    seen = [(row["name"], row["uscc"]) for page in pages for row in page]
    assert seen == sorted(seen)  # Python's order is code-point order, like COLLATE "C"
    assert len(set(seen)) == 23
    assert len(queries) == 4
    assert all(q[:4] == ("SH", "enterprise", "name", 1) for q in queries)


async def test_search_prefix_is_literal_not_a_like_pattern(source: PostgresSource) -> None:
    rows = await source.search("enterprise", "name", "A_", after=None, limit=10)

    assert [row["name"] for row in rows] == ["A_B贸易有限公司"]
    assert await source.search("enterprise", "name", "%", after=None, limit=10) == []


async def test_search_over_parts_merges_one_ordered_page(source: PostgresSource) -> None:
    first = await source.search("credit_record", "subject_id", FIRM, after=None, limit=2)
    rest = await source.search(
        "credit_record", "subject_id", FIRM, after=(FIRM, first[-1]["id"]), limit=10
    )

    assert [row["id"] for row in first + rest] == ["CF-1", "CF-2", "JSON-2", "XK-1"]


async def test_an_entity_the_region_does_not_hold_answers_no_rows(
    dsn: str, queries: Queries
) -> None:
    only_persons = MAPPING_TOML.split("[entity.residence]")[0]
    source = PostgresSource("SH", dsn, parse_mapping(only_persons), timeout=5)
    async with source:
        assert await source.fetch("residence", "person_id", [ZHANG]) == []
        with pytest.raises(ValueError, match="unknown field"):
            await source.fetch("residence", "nonsense", [ZHANG])


async def test_concurrent_first_uses_share_one_pool(
    dsn: str, mapping: RegionMapping, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = []
    create_pool = asyncpg.create_pool

    def counting_create_pool(*args: object, **kwargs: object) -> asyncpg.Pool:
        made.append(1)
        return create_pool(*args, **kwargs)

    monkeypatch.setattr(asyncpg, "create_pool", counting_create_pool)
    source = PostgresSource("SH", dsn, mapping, max_size=2, timeout=5)  # not started
    try:
        results = await asyncio.gather(
            *(source.fetch("person", "id_number", [ZHANG]) for _ in range(10))
        )
    finally:
        await source.close()

    assert [len(rows) for rows in results] == [1] * 10
    assert made == [1]


async def test_ping_answers_when_the_database_does(source: PostgresSource) -> None:
    await source.ping()


DEAD_DSN = "postgresql://postgres@127.0.0.1:1/nowhere"


async def test_unreachable_database_names_the_region_and_nothing_else(
    mapping: RegionMapping, caplog: pytest.LogCaptureFixture
) -> None:
    source = PostgresSource("SH", DEAD_DSN, mapping, timeout=2)
    await source.start()  # does not fail: the region may come back later

    with pytest.raises(SourceUnavailable) as caught:
        await source.fetch("person", "id_number", [ZHANG])
    with pytest.raises(SourceUnavailable):
        await source.ping()
    await source.close()

    assert caught.value.region == "SH"
    assert caught.value.code == "SOURCE_UNAVAILABLE"
    assert str(caught.value) == "source for region SH is unavailable"
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__  # no driver text when printed
    assert ZHANG not in caplog.text


async def test_a_region_that_comes_back_is_served_by_the_same_source(
    admin_dsn: str, mapping: RegionMapping
) -> None:
    name = "deltagate_test_sources_late"
    await execute_sql(admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    source = PostgresSource("SH", dsn_for(admin_dsn, name), mapping, timeout=5)
    await source.start()
    try:
        with pytest.raises(SourceUnavailable):
            await source.fetch("person", "id_number", [ZHANG])

        await execute_sql(admin_dsn, f'CREATE DATABASE "{name}"')
        await execute_sql(dsn_for(admin_dsn, name), NATIVE_SQL)

        rows = await source.fetch("person", "id_number", [ZHANG])
        assert [row["name"] for row in rows] == ["张三"]
    finally:
        await source.close()
        await execute_sql(admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_a_slow_query_times_out_as_unavailable_and_the_source_recovers(
    dsn: str,
) -> None:
    await execute_sql(
        dsn,
        "CREATE OR REPLACE VIEW slow_rk AS"
        " SELECT r.* FROM rk_jbxx AS r, LATERAL (SELECT pg_sleep(0.5)) AS s",
    )
    slow = parse_mapping(MAPPING_TOML.replace('"public.rk_jbxx"', '"slow_rk"', 1))
    source = PostgresSource("SH", dsn, slow, timeout=0.2)
    async with source:
        with pytest.raises(SourceUnavailable):
            await source.fetch("person", "id_number", [ZHANG])
        await source.ping()


async def test_a_mapping_that_does_not_match_the_tables_fails_without_leaking_sql(
    dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = parse_mapping(MAPPING_TOML.replace('name = "xm"', 'name = "xingming"', 1))
    source = PostgresSource("SH", dsn, wrong, timeout=5)
    async with source:
        with caplog.at_level(logging.ERROR), pytest.raises(SourceUnavailable) as caught:
            await source.fetch("person", "id_number", [ZHANG])

    assert "SELECT" not in str(caught.value)
    assert "xingming" not in str(caught.value)
    assert "xingming" in caplog.text  # the operator finds the cause in the log
    assert ZHANG not in caplog.text  # but never the values asked for


async def test_a_closed_source_is_unavailable(source: PostgresSource) -> None:
    await source.close()

    with pytest.raises(SourceUnavailable):
        await source.fetch("person", "id_number", [ZHANG])


def test_source_refuses_the_mapping_of_another_region(dsn: str, mapping: RegionMapping) -> None:
    with pytest.raises(ConfigError, match="region JS"):
        PostgresSource("JS", dsn, mapping)


def test_factory_builds_a_postgres_source_from_a_mapping_file(dsn: str, tmp_path: Path) -> None:
    path = tmp_path / "sh.toml"
    path.write_text(MAPPING_TOML, encoding="utf-8")

    source = build_source("postgres", dsn=dsn, mapping=path, timeout=3.0)

    assert isinstance(source, Source)
    assert source.region == "SH"


def test_factory_rejects_unknown_kinds_and_options(dsn: str, mapping: RegionMapping) -> None:
    with pytest.raises(ConfigError, match="unknown source kind 'graphql'"):
        build_source("graphql", url="https://example.org/graphql")
    with pytest.raises(ConfigError, match="'postgres'"):
        build_source("postgres", dsn=dsn, mapping=mapping, tiemout=3.0)
