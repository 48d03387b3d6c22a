"""Federation's ``_entities``: a supergraph's look-ups by key, answered as the list fields answer
theirs. Batched per entity and region, masked and decided by the same policy (a look-up by ID
number only where the caller may see the number in clear, null alike for refused and absent),
audited, and refused with a clear error for a representation that is not one of ours."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from gateway.core.types import DELTA_REGIONS
from tests.client import serve
from tests.conftest import Seeded, gateway_settings, token
from tests.gateway.audit.test_api import events, unique_app

MIGRATION = "JH-HUKOU-MIGRATION"
OPENING = "OS-ENTERPRISE-OPENING"

PERSON = "idNumber name gender birthDate ethnicity householdRegion phone"
COMPANY = f"uscc name address region legalRepresentative {{ {PERSON} }} creditRecords {{ kind }}"
ENTITIES = f"""
query($r: [_Any!]!) {{
  _entities(representations: $r) {{
    __typename
    ... on NaturalPerson {{ {PERSON} }}
    ... on LegalPerson {{ {COMPANY} }}
  }}
}}
"""
PERSONS = f"query($ids: [ID!]!) {{ naturalPersons(idNumbers: $ids) {{ {PERSON} }} }}"
COMPANIES = f"query($u: [ID!]!) {{ legalPersons(usccs: $u) {{ {COMPANY} }} }}"


def person(key: str) -> dict[str, str]:
    return {"__typename": "NaturalPerson", "idNumber": key}


def company(key: str) -> dict[str, str]:
    return {"__typename": "LegalPerson", "uscc": key}


def without_typename(items: list[Any]) -> list[Any]:
    return [None if item is None else {k: v for k, v in item.items() if k != "__typename"}
            for item in items]  # fmt: skip


FLAT = """
query($r: [_Any!]!) {
  _entities(representations: $r) {
    __typename ... on NaturalPerson { idNumber name } ... on LegalPerson { uscc name }
  }
}
"""


async def test_entities_cost_one_query_per_entity_and_region_whatever_their_number(
    seeded: Seeded,
) -> None:
    data = seeded.dataset
    officer = token("AH", "joint_handling_officer")
    counts = {}
    for per_region in (1, 10):
        ids = [data.person_id(region, i) for i in range(per_region) for region in DELTA_REGIONS]
        usccs = [data.uscc(region, i) for i in range(per_region) for region in DELTA_REGIONS]
        pairs = zip(map(person, ids), map(company, usccs), strict=True)
        asked = [r for pair in pairs for r in pair]
        queries: list[tuple[str, str, str]] = []

        def observe(region, entity, field, keys, rows, seconds, seen=queries):  # type: ignore[no-untyped-def]
            seen.append((region, entity, field))

        async with serve(gateway_settings(seeded.dsn), observer=observe) as client:
            body = await client.query(FLAT, {"r": asked}, token=officer, matter=MIGRATION)
        assert "errors" not in body, body["errors"]
        got = body["data"]["_entities"]
        assert [item["__typename"] for item in got] == ["NaturalPerson", "LegalPerson"] * len(ids)
        assert [item.get("idNumber") or item.get("uscc") for item in got] == [
            key for pair in zip(ids, usccs, strict=True) for key in pair
        ]
        assert all(item["name"] for item in got)
        # One query per (entity, region), whatever the number of representations.
        assert Counter(queries) == {
            (region, entity, field): 1
            for region in DELTA_REGIONS
            for entity, field in (("person", "id_number"), ("enterprise", "uscc"))
        }
        assert body["extensions"]["backendQueries"] == len(queries)
        counts[per_region] = len(queries)
    assert counts[1] == counts[10] == 8


async def test_entities_with_links_cost_one_query_per_entity_region_and_level(
    seeded: Seeded,
) -> None:
    data = seeded.dataset
    usccs = [data.uscc(region, i) for i in range(10) for region in DELTA_REGIONS]
    queries: list[tuple[str, str, str]] = []

    def observe(region, entity, field, keys, rows, seconds):  # type: ignore[no-untyped-def]
        queries.append((region, entity, field))

    officer = token("AH", "joint_handling_officer")
    async with serve(gateway_settings(seeded.dsn), observer=observe) as client:
        body = await client.query(
            ENTITIES, {"r": [company(u) for u in usccs]}, token=officer, matter=MIGRATION
        )
    assert "errors" not in body, body["errors"]
    assert all(item["legalRepresentative"]["name"] for item in body["data"]["_entities"])
    # Levels: the enterprises; their representatives and credit records.
    assert max(Counter(queries).values()) == 1, Counter(queries)
    assert len(queries) <= 3 * 4


@pytest.mark.parametrize(
    ("caller", "matter"),
    [
        (token("ZJ", "one_stop_app"), OPENING),  # other regions' persons masked
        (token("JS", "public_portal"), None),  # public data only
        (token("AH", "joint_handling_officer"), MIGRATION),
        (token("NATIONAL", "auditor"), None),  # no personal data at all
    ],
)
async def test_entities_are_masked_and_refused_exactly_as_the_list_fields(
    seeded: Seeded, caller: str, matter: str | None
) -> None:
    data = seeded.dataset
    ids = [data.person_id(region, 1) for region in DELTA_REGIONS]
    usccs = [data.cross_region_enterprise(region)["uscc"] for region in DELTA_REGIONS]
    async with serve(gateway_settings(seeded.dsn)) as client:
        entities = await client.query(
            ENTITIES, {"r": [*map(person, ids), *map(company, usccs)]}, token=caller, matter=matter
        )
        persons = await client.query(PERSONS, {"ids": ids}, token=caller, matter=matter)
        companies = await client.query(COMPANIES, {"u": usccs}, token=caller, matter=matter)
    assert "errors" not in entities
    got = without_typename(entities["data"]["_entities"])
    assert got == persons["data"]["naturalPersons"] + companies["data"]["legalPersons"]
    # Some of it is masked for the counter app: the masks are in force here too.
    if matter == OPENING:
        masked = [rep["legalRepresentative"]["idNumber"] for rep in got[4:]]
        assert any(key is not None and key.endswith("*" * 12) for key in masked), masked


async def test_a_refused_look_up_is_null_like_a_key_nobody_holds(seeded: Seeded) -> None:
    known = seeded.dataset.person_id("JS", 1)
    unknown = seeded.dataset.person_id("JS", 10_001)  # valid, and nobody's
    assert seeded.dataset.locate_person(unknown) is None
    asked = {"r": [person(known), person(unknown)]}
    callers = [
        (token("JS", "public_portal"), None),
        (token("NATIONAL", "auditor"), None),
        (token("SH", "one_stop_app"), OPENING),  # would see a JS number masked: still nothing
    ]
    async with serve(gateway_settings(seeded.dsn)) as client:
        for caller, matter in callers:
            body = await client.query(ENTITIES, asked, token=caller, matter=matter)
            assert body["data"] == {"_entities": [None, None]}, (caller, matter)
            assert "errors" not in body
            [entry] = [e for e in body["extensions"]["policy"]["fields"]
                       if e["field"] == "NaturalPerson.idNumber"]  # fmt: skip
            assert entry["decision"] != "CLEAR"
            assert entry["count"] == 2
        # The counter app's own region, in clear under its matter: the register answers.
        own = seeded.dataset.person_id("SH", 1)
        body = await client.query(
            "query($r: [_Any!]!) { _entities(representations: $r) { __typename } }",
            {"r": [person(own), person(known)]},
            token=token("SH", "one_stop_app"),
            matter=OPENING,
        )
    assert body["data"] == {"_entities": [{"__typename": "NaturalPerson"}, None]}


async def test_entities_leave_the_audit_event_of_their_caller(seeded: Seeded) -> None:
    app = unique_app("supergraph")
    data = seeded.dataset
    key, uscc = data.person_id("ZJ", 2), data.uscc("SH", 2)
    async with serve(gateway_settings(seeded.dsn)) as client:
        body = await client.query(
            ENTITIES,
            {"r": [person(key), company(uscc)]},
            token=token("ZJ", "joint_handling_officer", app=app),
            matter=MIGRATION,
        )
        assert body["data"]["_entities"][0]["idNumber"] == key
        [event] = await events(client, callerApp=app)
    assert {key, uscc} <= set(event["subjects"])
    assert event["matterCode"] == MIGRATION
    fields = {(d["field"], d["decision"]) for d in event["decisions"]}
    assert ("NaturalPerson.idNumber", "CLEAR") in fields
    assert ("LegalPerson.address", "CLEAR") in fields


BAD = [
    (["91320106P4N67XT072"], "BAD_REQUEST", "is not an object"),
    ([{"uscc": "91320106P4N67XT072"}], "BAD_REQUEST", "__typename must be"),
    ([{"__typename": "CreditRecord", "id": "1"}], "BAD_REQUEST", "__typename must be"),
    ([{"__typename": ["LegalPerson"]}], "BAD_REQUEST", "__typename must be"),
    ([{"__typename": "LegalPerson"}], "BAD_REQUEST", "keyed by uscc"),
    ([{"__typename": "NaturalPerson", "idNumber": 310101}], "BAD_REQUEST", "keyed by idNumber"),
    ([{"__typename": "NaturalPerson", "uscc": "91320106P4N67XT072"}], "BAD_REQUEST", "idNumber"),
    ([person("310101199001011230")], "INVALID_ID", "not a valid citizen ID number"),
]


@pytest.mark.parametrize(("representations", "code", "message"), BAD)
async def test_a_representation_that_is_not_ours_is_refused_with_a_code(
    seeded: Seeded, representations: list[Any], code: str, message: str
) -> None:
    good = company(seeded.dataset.uscc("JS", 0))
    async with serve(gateway_settings(seeded.dsn)) as client:
        body = await client.query(
            "query($r: [_Any!]!) { _entities(representations: $r) { __typename } }",
            {"r": [good, *representations]},
            token=token("JS", "joint_handling_officer"),
            matter=MIGRATION,
        )
    # The whole field fails before anything is read, as a bad key of a batch argument does.
    assert body["data"] is None  # _entities is non-null: the error nulls the response
    [error] = body["errors"]
    assert error["extensions"]["code"] == code
    assert message in error["message"]
    assert error["message"].startswith("representations[1]")
    assert error["extensions"]["argument"] == "representations"
    assert "Traceback" not in str(body)
    assert ".py" not in str(body)
    assert body["extensions"]["backendQueries"] == 0


async def test_too_many_representations_are_refused_before_anything_runs(seeded: Seeded) -> None:
    usccs = [seeded.dataset.uscc(DELTA_REGIONS[i % 4], i // 4) for i in range(101)]
    officer = token("JS", "joint_handling_officer")
    async with serve(gateway_settings(seeded.dsn)) as client:
        response = await client.post(
            "query($r: [_Any!]!) { _entities(representations: $r) { __typename } }",
            {"r": [company(u) for u in usccs]},
            token=officer,
            matter=MIGRATION,
        )
        [error] = response.json()["errors"]
        assert error["extensions"]["code"] == "BATCH_TOO_LARGE"
        assert error["extensions"]["argument"] == "representations"
        assert error["extensions"]["maximum"] == 100
        # A hundred is the most, as for idNumbers and usccs.
        body = await client.query(
            "query($r: [_Any!]!) { _entities(representations: $r) { __typename } }",
            {"r": [company(u) for u in usccs[:100]]},
            token=officer,
            matter=MIGRATION,
        )
    assert "errors" not in body
    assert len(body["data"]["_entities"]) == 100
