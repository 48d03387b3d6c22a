"""The gateway end to end over HTTP: one schema over four regions, batched, heterogeneity hidden."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any

import pytest

from gateway.core.identifiers import make_id_number, make_uscc
from gateway.core.types import DELTA_REGIONS
from tests.client import serve
from tests.conftest import Seeded, gateway_settings, token

# A caller that sees everything a region keeps: an officer of that region under a matter.
MATTER = "JH-HUKOU-MIGRATION"

PERSON_FIELDS = """
    idNumber name gender birthDate ethnicity householdRegion householdAddress phone
    residences { region address since }
    socialInsurance { region insuranceType status since }
    creditRecords { id subjectId subjectType kind title documentNumber authority decidedOn
                    validUntil amount region detail }
"""
ENTERPRISE_FIELDS = """
    uscc name entityType status registeredCapital establishedOn registrationAuthority region
    address businessScope
    legalRepresentative { idNumber name householdRegion }
    creditRecords { id kind decidedOn region amount }
"""


def officer(region: str) -> str:
    return token(region, "joint_handling_officer", app=f"jh-{region.lower()}")


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def unified(row: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    """A generator row as the gateway must show it (money as a decimal string in 万元)."""
    out = {}
    for name in fields:
        value = row[name]
        out[camel(name)] = str(value) if isinstance(value, Decimal) else value
    return out


@pytest.mark.parametrize("region", DELTA_REGIONS)
async def test_a_person_reads_back_as_the_generator_made_them(seeded: Seeded, region: str) -> None:
    dataset = seeded.dataset
    person = dataset.cross_region_person(region)
    async with serve(gateway_settings(seeded.dsn)) as client:
        body = await client.query(
            f"query($id: ID!) {{ naturalPerson(idNumber: $id) {{ {PERSON_FIELDS} }} }}",
            {"id": person["id_number"]},
            token=officer(region),
            matter=MATTER,
        )
    assert "errors" not in body
    got = body["data"]["naturalPerson"]
    base = [
        "id_number", "name", "gender", "birth_date", "ethnicity",
        "household_region", "household_address", "phone",
    ]  # fmt: skip
    assert {camel(key): got[camel(key)] for key in base} == unified(person, base)
    residences = dataset.residences_of(person["id_number"])
    assert sorted(map(tuple_of, got["residences"])) == sorted(
        tuple_of(unified(row, ["region", "address", "since"])) for row in residences
    )
    insurance = dataset.social_insurance_of(person["id_number"])
    assert sorted(map(tuple_of, got["socialInsurance"])) == sorted(
        tuple_of(unified(row, ["region", "insurance_type", "status", "since"])) for row in insurance
    )
    # The person keeps records in another region than their own, and they come back.
    assert any(r["region"] != region for r in got["residences"] + got["socialInsurance"])


@pytest.mark.parametrize("region", DELTA_REGIONS)
async def test_an_enterprise_reads_back_with_a_representative_from_another_region(
    seeded: Seeded, region: str
) -> None:
    dataset = seeded.dataset
    company = dataset.cross_region_enterprise(region)
    async with serve(gateway_settings(seeded.dsn)) as client:
        body = await client.query(
            f"query($u: ID!) {{ legalPerson(uscc: $u) {{ {ENTERPRISE_FIELDS} }} }}",
            {"u": company["uscc"]},
            token=officer(region),
            matter=MATTER,
        )
    assert "errors" not in body
    got = body["data"]["legalPerson"]
    scalars = [
        "uscc", "name", "entity_type", "status", "registered_capital", "established_on",
        "registration_authority", "region", "address", "business_scope",
    ]  # fmt: skip
    assert {camel(key): got[camel(key)] for key in scalars} == unified(company, scalars)
    rep = got["legalRepresentative"]
    assert rep["idNumber"] == company["legal_rep_id"]
    assert rep["householdRegion"] != region  # read from the representative's own region
    located = dataset.locate_person(company["legal_rep_id"])
    assert located is not None
    assert rep["name"] == dataset.person(*located)["name"]
    expected = dataset.credit_records_of(company["uscc"])
    assert sorted(r["id"] for r in got["creditRecords"]) == sorted(r["id"] for r in expected)


async def test_credit_records_come_from_every_region_newest_first(seeded: Seeded) -> None:
    dataset = seeded.dataset
    uscc = dataset.multi_region_credit_subject("ZJ", "LEGAL_PERSON")
    async with serve(gateway_settings(seeded.dsn)) as client:
        body = await client.query(
            "query($u: ID!) { legalPerson(uscc: $u) { creditRecords { id decidedOn region } } }",
            {"u": uscc},
            token=officer("ZJ"),
            matter=MATTER,
        )
    records = body["data"]["legalPerson"]["creditRecords"]
    assert len({r["region"] for r in records}) >= 2
    dates = [r["decidedOn"] for r in records]
    assert dates == sorted(dates, reverse=True)
    assert sorted(r["id"] for r in records) == sorted(
        r["id"] for r in dataset.credit_records_of(uscc)
    )


async def test_credit_records_filter_by_kind(seeded: Seeded) -> None:
    uscc = seeded.dataset.multi_region_credit_subject("SH", "LEGAL_PERSON")
    kinds = Counter(r["kind"] for r in seeded.dataset.credit_records_of(uscc))
    wanted = next(iter(kinds))
    async with serve(gateway_settings(seeded.dsn)) as client:
        body = await client.query(
            "query($u: ID!, $k: [CreditKind!]) {"
            " legalPerson(uscc: $u) { creditRecords(kinds: $k) { kind } } }",
            {"u": uscc, "k": [wanted]},
            token=officer("SH"),
        )
    records = body["data"]["legalPerson"]["creditRecords"]
    assert [r["kind"] for r in records] == [wanted] * kinds[wanted]


def tuple_of(row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(sorted(row.items()))


# -- batching --------------------------------------------------------------------------------

LIST = """
query($usccs: [ID!]!) {
  legalPersons(usccs: $usccs) {
    uscc name region registeredCapital
    legalRepresentative { idNumber name householdRegion creditRecords { kind decidedOn } }
    creditRecords { kind title decidedOn region }
  }
}
"""


def enterprises_across_regions(seeded: Seeded, count: int) -> list[str]:
    dataset = seeded.dataset
    usccs = []
    index = 0
    while len(usccs) < count:
        region = DELTA_REGIONS[len(usccs) % len(DELTA_REGIONS)]
        usccs.append(dataset.uscc(region, index))
        if region == DELTA_REGIONS[-1]:
            index += 1
    return usccs


async def test_a_list_costs_one_query_per_entity_region_and_level(seeded: Seeded) -> None:
    counts = {}
    for size in (5, 50, 100):
        queries: list[tuple[str, str, str, int]] = []

        def observe(region, entity, field, keys, rows, seconds, seen=queries):  # type: ignore[no-untyped-def]
            seen.append((region, entity, field, keys))

        async with serve(gateway_settings(seeded.dsn), observer=observe) as client:
            usccs = enterprises_across_regions(seeded, size)
            body = await client.query(LIST, {"usccs": usccs}, token=officer("AH"), matter=MATTER)
        assert "errors" not in body
        got = body["data"]["legalPersons"]
        assert [row["uscc"] for row in got] == usccs
        assert all(row["legalRepresentative"]["name"] for row in got)
        # Levels: enterprises; representatives and enterprise credit; representatives' credit.
        # What a level reads from a region goes in one query (entities joined by "+").
        per_key = Counter((region, entity, field) for region, entity, field, _ in queries)
        assert per_key[max(per_key, key=per_key.__getitem__)] <= 2, per_key
        assert all(
            n == 1 for (region, entity, field), n in per_key.items() if entity != "credit_record"
        )
        per_region = Counter(region for region, *_ in queries)
        assert all(n <= 3 for n in per_region.values()), per_region  # one per level
        assert len(queries) <= 3 * 4  # 3 levels x 4 regions
        assert body["extensions"]["backendQueries"] == len(queries)
        counts[size] = len(queries)
    assert counts[5] <= counts[50] == counts[100]


# -- identifiers -----------------------------------------------------------------------------


def corrupt(key: str) -> str:
    """The same key with a wrong check character."""
    last = "0" if key[-1] != "0" else "1"
    return key[:-1] + last


async def test_a_wrong_check_character_is_invalid_id_naming_the_argument(seeded: Seeded) -> None:
    person = seeded.dataset.person("SH", 0)["id_number"]
    company = seeded.dataset.uscc("JS", 0)
    async with serve(gateway_settings(seeded.dsn)) as client:
        body = await client.query(
            "query($id: ID!) { naturalPerson(idNumber: $id) { name } }",
            {"id": corrupt(person)},
            token=officer("SH"),
        )
        assert body["data"] == {"naturalPerson": None}
        [error] = body["errors"]
        assert error["extensions"] == {"code": "INVALID_ID", "argument": "idNumber"}
        assert error["path"] == ["naturalPerson"]

        body = await client.query(
            "query($u: [ID!]!) { legalPersons(usccs: $u) { name } }",
            {"u": [company, corrupt(company)]},
            token=officer("JS"),
        )
        [error] = body["errors"]
        assert error["extensions"]["code"] == "INVALID_ID"
        assert error["extensions"]["argument"] == "usccs"


async def test_an_unknown_valid_key_is_null(seeded: Seeded) -> None:
    unknown_person = make_id_number("310101", "19000101", 999)
    outside_delta = make_id_number("110105", "19491231", 2)
    unknown_company = make_uscc("9", "1", "320106", "99999999")
    async with serve(gateway_settings(seeded.dsn)) as client:
        body = await client.query(
            "query($a: [ID!]!, $u: ID!) { naturalPersons(idNumbers: $a) { name }"
            " legalPerson(uscc: $u) { name } }",
            {"a": [unknown_person, outside_delta], "u": unknown_company},
            token=officer("SH"),
        )
    assert "errors" not in body
    assert body["data"] == {"naturalPersons": [None, None], "legalPerson": None}


async def test_without_batching_the_answer_is_the_same_at_one_query_per_key(
    seeded: Seeded,
) -> None:
    usccs = enterprises_across_regions(seeded, 20)
    answers = {}
    for batching in (True, False):
        async with serve(gateway_settings(seeded.dsn, batching=batching)) as client:
            answers[batching] = await client.query(
                LIST, {"usccs": usccs}, token=officer("AH"), matter=MATTER
            )
    assert answers[False]["data"] == answers[True]["data"]
    assert answers[False]["extensions"]["backendQueries"] > 3 * len(usccs)
    assert answers[True]["extensions"]["backendQueries"] <= 12
