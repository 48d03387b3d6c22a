"""Loading, checking and compiling regional mappings (the SQL itself runs in sources tests)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from gateway.core.errors import ConfigError
from gateway.sources.mapping import SHIPPED_MAPPINGS as SHIPPED
from gateway.sources.mapping import RegionMapping, load_mapping, parse_mapping
from gateway.sources.sql import index_sql, prefix_bounds

PERSON = """
region = "ZJ"
[entity.person]
from = "rk.t_rk_jbxx"
[entity.person.fields]
id_number = "sfzh"
name = "xm"
gender = { column = "xb", codes = { "男" = "MALE", "女" = "FEMALE" } }
birth_date = { column = "csrq", date = "YYYYMMDD" }
ethnicity = "mz"
household_region = { const = "ZJ" }
household_address = "hjdz"
phone = "lxdh"
"""

CORP_DOC = """
region = "AH"
[entity.enterprise]
from = "corp_doc"
document = "doc"
[entity.enterprise.fields]
uscc = { path = "uscc" }
name = { path = "name" }
entity_type = { path = "type" }
status = { path = "status" }
registered_capital = { path = "capital.amount", numeric = true, scale = 0.0001 }
established_on = { path = "establishedOn", date = "iso" }
registration_authority = { path = "authority" }
region = { const = "AH" }
address = { path = "address" }
business_scope = { path = "scope" }
legal_rep_id = { path = "legalRep.idNumber" }
"""


def credit_part(table: str, kind: str) -> str:
    return f"""
[[entity.credit_record.parts]]
from = "{table}"
[entity.credit_record.parts.fields]
id = "id"
subject_id = "subject"
subject_type = {{ const = "LEGAL_PERSON" }}
kind = {{ const = "{kind}" }}
title = "title"
document_number = "doc_no"
authority = "authority"
decided_on = {{ column = "decided", date = "date" }}
valid_until = {{ column = "valid", date = "date" }}
amount = {{ column = "amount_yuan", scale = 0.0001 }}
region = {{ const = "SH" }}
detail = "detail"
"""


CREDIT = (
    'region = "SH"\n'
    + credit_part("xy_xzcf", "ADMIN_PENALTY")
    + credit_part("xy_xzxk", "ADMIN_LICENSE")
)


def error_for(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse_mapping(text, source="zj.toml")
    return caught.value


def test_a_complete_mapping_loads_into_frozen_specs() -> None:
    mapping = parse_mapping(PERSON, source="zj.toml")

    assert mapping.region == "ZJ"
    [part] = mapping.entities["person"].parts
    assert part.table == "rk.t_rk_jbxx"
    assert list(part.fields)[:3] == ["id_number", "name", "gender"]
    assert part.fields["gender"].codes == (("男", "MALE"), ("女", "FEMALE"))
    assert part.fields["birth_date"].date == "YYYYMMDD"
    with pytest.raises(AttributeError):
        part.fields["name"].column = "other"  # type: ignore[misc]


def test_scale_is_kept_as_an_exact_decimal() -> None:
    part = parse_mapping(CORP_DOC).entities["enterprise"].parts[0]

    assert part.fields["registered_capital"].scale == Decimal("0.0001")
    assert part.fields["legal_rep_id"].path == ("legalRep", "idNumber")


def test_load_mapping_reads_a_file_and_names_it_in_errors(tmp_path: Path) -> None:
    good = tmp_path / "zj.toml"
    good.write_text(PERSON, encoding="utf-8")
    bad = tmp_path / "broken.toml"
    bad.write_text(PERSON.replace('phone = "lxdh"\n', ""), encoding="utf-8")

    assert isinstance(load_mapping(good), RegionMapping)
    with pytest.raises(ConfigError, match=r"^broken\.toml: entity 'person', field 'phone'"):
        load_mapping(bad)
    with pytest.raises(ConfigError, match=r"missing\.toml"):
        load_mapping(tmp_path / "missing.toml")


def test_missing_field_names_file_entity_and_field() -> None:
    error = error_for(PERSON.replace('phone = "lxdh"\n', ""))

    assert error.extensions == {"file": "zj.toml", "entity": "person", "field": "phone"}
    assert "not mapped" in error.message


def test_a_text_field_may_have_a_code_table_of_its_own_values() -> None:
    text = PERSON.replace(
        'ethnicity = "mz"', 'ethnicity = { column = "mz", codes = { "01" = "汉族" } }'
    )

    spec = parse_mapping(text).entities["person"].parts[0].fields["ethnicity"]

    assert spec.codes == (("01", "汉族"),)


def test_missing_field_in_one_part_names_that_part() -> None:
    text = CREDIT.replace('detail = "detail"\n', "", 1)

    error = error_for(text)

    assert error.extensions["entity"] == "credit_record.parts[0]"
    assert error.extensions["field"] == "detail"


@pytest.mark.parametrize(
    ("change", "field", "problem"),
    [
        (('phone = "lxdh"', 'phone = "lxdh"\nmobile = "sj"'), "mobile", "unknown field"),
        (('name = "xm"', 'name = { column = "xm", upper = true }'), "name", "unknown key 'upper'"),
        (('name = "xm"', 'name = "xm; DROP TABLE x"'), "name", "column name"),
        (('name = "xm"', 'name = { column = "xm", const = "x" }'), "name", "exactly one"),
        (('name = "xm"', 'name = { path = "name" }'), "name", "needs 'document'"),
        (('name = "xm"', "name = 7"), "name", "column name or an inline table"),
        (('"女" = "FEMALE"', '"女" = "F"'), "gender", "not one of MALE, FEMALE"),
        ((', date = "YYYYMMDD"', ""), "birth_date", "date field needs"),
        ((', date = "YYYYMMDD"', ', date = "DD.MM.YYYY"'), "birth_date", "date field needs"),
        (('phone = "lxdh"', 'phone = { column = "lxdh", date = "iso" }'), "phone", "date fields"),
        (('phone = "lxdh"', 'phone = { column = "lxdh", numeric = true }'), "phone", "money"),
        (('{ const = "ZJ" }', '{ const = "ZJ", codes = { "a" = "b" } }'), "household_region",
         "takes no transforms"),
        (('{ const = "ZJ" }', "{ const = 33 }"), "household_region", "must be a string"),
    ],
)  # fmt: skip
def test_bad_field_forms_are_named_with_the_reason(
    change: tuple[str, str], field: str, problem: str
) -> None:
    old, new = change
    assert old in PERSON
    text = PERSON.replace(old, new, 1)

    error = error_for(text)

    assert error.extensions["field"] == field
    assert problem in error.message
    assert error.message.startswith(f"zj.toml: entity 'person', field '{field}': ")


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ('from = "rk.t_rk_jbxx"', 'from = "rk.t_rk_jbxx;--"', "'from' must be a table name"),
        ('from = "rk.t_rk_jbxx"', 'from = "a.b.c"', "'from' must be a table name"),
        ('from = "rk.t_rk_jbxx"', 'from = "t"\ndocument = "doc\'"', "'document' must be"),
        ('from = "rk.t_rk_jbxx"', 'from = "t"\nwhere = "1=1"', "unknown key 'where'"),
        ('from = "rk.t_rk_jbxx"', 'from = "t"\nparts = []', "not both"),
        ("[entity.person.fields]", "[entity.person.columns]", "unknown key 'columns'"),
    ],
)
def test_bad_entity_tables_are_named(old: str, new: str, problem: str) -> None:
    error = error_for(PERSON.replace(old, new, 1))

    assert error.extensions["entity"] == "person"
    assert problem in error.message


def test_unknown_entity_region_and_broken_toml_are_refused() -> None:
    assert "unknown entity" in error_for(PERSON.replace("entity.person", "entity.people")).message
    assert "'region'" in error_for(PERSON.replace('region = "ZJ"', 'region = "zj"')).message
    assert "unknown key 'version'" in error_for("version = 2\n" + PERSON).message
    assert "not valid TOML" in error_for(PERSON + "\n[entity.person\n").message
    assert "no [entity.*]" in error_for('region = "ZJ"\n').message


def test_path_segments_must_be_plain_keys() -> None:
    error = error_for(CORP_DOC.replace('"legalRep.idNumber"', '"legalRep.id\'Number"'))

    assert error.extensions["field"] == "legal_rep_id"
    assert "'path'" in error.message


def test_date_column_form_is_refused_for_a_json_value() -> None:
    error = error_for(CORP_DOC.replace('date = "iso"', 'date = "date"'))

    assert error.extensions["field"] == "established_on"


def test_money_constants_and_scales_must_be_numbers() -> None:
    text = CORP_DOC.replace(
        '{ path = "capital.amount", numeric = true, scale = 0.0001 }', '{ const = "abc" }'
    )
    assert "decimal number" in error_for(text).message
    text = CORP_DOC.replace("scale = 0.0001", "scale = -1")
    assert "positive number" in error_for(text).message
    text = CORP_DOC.replace("numeric = true", "numeric = false")
    assert "always numeric" in error_for(text).message


def test_fetch_compares_a_plain_column_as_text_so_its_index_serves() -> None:
    sql = parse_mapping(PERSON).compile_fetch("person", "id_number")

    assert sql.startswith('SELECT ("sfzh")::text AS "id_number", ("xm")::text AS "name", ')
    assert sql.endswith(' FROM "rk"."t_rk_jbxx" WHERE ("sfzh")::text = ANY($1::text[])')
    assert (
        "CASE (\"xb\")::text WHEN '男' THEN 'MALE' WHEN '女' THEN 'FEMALE' END AS \"gender\"" in sql
    )
    assert "'ZJ' AS \"household_region\"" in sql


def test_fetch_by_a_path_uses_the_expression_an_index_must_match() -> None:
    sql = parse_mapping(CORP_DOC).compile_fetch("enterprise", "legal_rep_id")

    assert sql.endswith("WHERE (\"doc\" #>> '{legalRep,idNumber}') = ANY($1::text[])")
    assert (
        "round(nullif((\"doc\" #>> '{capital,amount}'), '')::numeric * 0.0001, 4)"
        ' AS "registered_capital"'
    ) in sql


def test_dates_are_converted_inside_postgresql() -> None:
    person = parse_mapping(PERSON).compile_fetch("person", "id_number")
    credit = parse_mapping(CREDIT).compile_fetch("credit_record", "subject_id")

    assert 'CASE WHEN ("csrq")::text ~ \'^[0-9]{8}$\' THEN substr(("csrq")::text, 1, 4)' in person
    assert 'to_char(("decided")::date, \'YYYY-MM-DD\') AS "decided_on"' in credit


def test_parts_are_a_union_filtering_each_table_on_its_own() -> None:
    sql = parse_mapping(CREDIT).compile_fetch("credit_record", "subject_id")

    first, second = sql.split(" UNION ALL ")
    assert ' FROM "xy_xzcf" WHERE ("subject")::text = ANY($1::text[])' in first
    assert ' FROM "xy_xzxk" WHERE ("subject")::text = ANY($1::text[])' in second
    assert "'ADMIN_LICENSE' AS \"kind\"" in second


def test_constants_are_quoted_as_sql_literals() -> None:
    text = PERSON.replace('{ const = "ZJ" }', '{ const = "Z\'J\\\\" }')

    sql = parse_mapping(text).compile_fetch("person", "id_number")

    assert "E'Z''J\\\\' AS \"household_region\"" in sql


def test_search_pages_by_field_then_key_in_the_c_collation() -> None:
    mapping = parse_mapping(CORP_DOC)

    first = mapping.compile_search("enterprise", "name", after=False)
    later = mapping.compile_search("enterprise", "name", after=True)

    name = '("doc" #>> \'{name}\') COLLATE "C"'
    uscc = '("doc" #>> \'{uscc}\') COLLATE "C"'
    assert first.endswith(f"WHERE {name} >= $1 AND {name} < $2 ORDER BY {name}, {uscc} LIMIT $3")
    assert later.endswith(
        f"WHERE {name} >= $1 AND {name} < $2 AND ({name}, {uscc}) > ($3::text, $4::text)"
        f" ORDER BY {name}, {uscc} LIMIT $5"
    )


def test_search_over_parts_cuts_the_union_to_one_page() -> None:
    sql = parse_mapping(CREDIT).compile_search("credit_record", "title", after=True)

    assert sql.count("LIMIT $5") == 3
    assert sql.endswith(') AS u ORDER BY "title" COLLATE "C", "id" COLLATE "C" LIMIT $5')


def test_entities_without_a_unique_key_cannot_be_searched() -> None:
    text = """
region = "ZJ"
[entity.residence]
from = "t_jzxx"
[entity.residence.fields]
person_id = "sfzh"
region = { const = "ZJ" }
address = "dz"
since = { column = "qsrq", date = "YYYYMMDD" }
"""
    with pytest.raises(ValueError, match="no unique key"):
        parse_mapping(text).compile_search("residence", "address", after=False)


def test_compiling_an_unmapped_entity_or_field_is_a_programming_error() -> None:
    mapping = parse_mapping(PERSON)

    with pytest.raises(ValueError, match="does not map"):
        mapping.compile_fetch("enterprise", "uscc")
    with pytest.raises(ValueError, match="no field"):
        mapping.compile_fetch("person", "uscc")


def test_prefix_bounds_cover_exactly_the_strings_with_the_prefix() -> None:
    lower, upper = prefix_bounds("上海")

    assert (lower, upper) == ("上海", "上浸")
    inside = ["上海", "上海市", "上海\U0010ffff"]
    outside = ["上浸", "上浩", "上", "上\U0010ffff", "上海"[::-1]]
    assert all(lower <= s < upper for s in inside)
    assert not any(lower <= s < upper for s in outside)


def test_prefix_bounds_skip_surrogates_and_the_last_code_point() -> None:
    assert prefix_bounds("a\ud7ff") == ("a\ud7ff", "a\ue000")
    assert prefix_bounds("a\U0010ffff") == ("a\U0010ffff", "b")
    assert prefix_bounds("")[0] == ""


# -- what a mapping says about writing its native tables --------------------------------


def test_column_types_are_inferred_from_the_read_transform_or_given() -> None:
    text = PERSON.replace('ethnicity = "mz"', 'ethnicity = { column = "mz", type = "varchar(2)" }')
    fields = parse_mapping(text).entities["person"].parts[0].fields

    assert fields["birth_date"].column_type == "varchar(8)"
    assert fields["ethnicity"].column_type == "varchar(2)"
    assert fields["name"].column_type == "text"
    assert fields["household_region"].column_type is None
    money = load_mapping(SHIPPED / "js.toml").entities["enterprise"].parts[0].fields
    assert money["registered_capital"].column_type == "numeric"
    assert money["established_on"].column_type == "date"


def test_indexes_compile_to_the_expressions_the_look_ups_compare() -> None:
    text = CORP_DOC.replace(
        'document = "doc"',
        'document = "doc"\nindexes = { uscc = "unique", name = "search" }',
    )
    part = parse_mapping(text).entities["enterprise"].parts[0]

    assert dict(part.indexes) == {"uscc": "unique", "name": "search"}
    assert index_sql("enterprise", part, "uscc", "unique") == (
        'CREATE UNIQUE INDEX "corp_doc_uscc" ON "corp_doc" ((("doc" #>> \'{uscc}\')))'
    )
    assert index_sql("enterprise", part, "name", "search") == (
        'CREATE INDEX "corp_doc_name" ON "corp_doc" ((("doc" #>> \'{name}\')) COLLATE "C",'
        ' (("doc" #>> \'{uscc}\')) COLLATE "C")'
    )
    person = parse_mapping(
        PERSON.replace(
            "[entity.person.fields]", 'indexes = { id_number = "lookup" }\n[entity.person.fields]'
        )
    )
    part = person.entities["person"].parts[0]
    assert index_sql("person", part, "id_number", "lookup") == (
        'CREATE INDEX "t_rk_jbxx_id_number" ON "rk"."t_rk_jbxx" ("sfzh")'
    )


@pytest.mark.parametrize(
    ("change", "field", "problem"),
    [
        (('name = "xm"', 'name = { column = "xm", type = "text; DROP TABLE x" }'), "name",
         "SQL type"),
        (('household_region = { const = "ZJ" }',
          'household_region = { const = "ZJ", type = "text" }'), "household_region",
         "applies to a column"),
        (('from = "rk.t_rk_jbxx"', 'from = "t"\nindexes = { phone = "hash" }'), "phone",
         '"unique", "lookup" or "search"'),
        (('from = "rk.t_rk_jbxx"', 'from = "t"\nindexes = { mobile = "lookup" }'), "mobile",
         "unknown field"),
        (('from = "rk.t_rk_jbxx"', 'from = "t"\nindexes = { household_region = "lookup" }'),
         "household_region", "constant cannot be indexed"),
    ],
)  # fmt: skip
def test_bad_types_and_indexes_are_named(change: tuple[str, str], field: str, problem: str) -> None:
    old, new = change
    assert old in PERSON
    error = error_for(PERSON.replace(old, new, 1))

    assert error.extensions["field"] == field
    assert problem in error.message
