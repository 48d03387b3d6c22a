"""What a caller without clearance learns about a person: nothing it could not learn about
somebody who does not exist. Masks leave too little to guess from, a look-up by ID number
answers a known and an unknown number alike, a withheld list has no count or page info, and
an explanation never names what its decision withheld. Every attempt is in the audit log."""

from __future__ import annotations

import calendar
from dataclasses import replace
from typing import Any

from gateway.core.identifiers import is_valid_id_number, make_id_number
from gateway.core.types import Row
from tests.client import GatewayClient, serve
from tests.conftest import Seeded, gateway_settings, token
from tests.gateway.audit.test_api import events, unique_app

OPENING = "OS-ENTERPRISE-OPENING"

REPRESENTATIVES = """
query($u: [ID!]!) {
  legalPersons(usccs: $u) { legalRepresentative { idNumber birthDate gender name phone } }
}
"""
LOOKUP = """
query($ids: [ID!]!) {
  naturalPersons(idNumbers: $ids) { __typename idNumber name phone birthDate }
}
"""
CREDIT_PAGE = """
query($s: ID!) {
  creditRecords(subjectId: $s) { edges { cursor node { title } } pageInfo { hasNextPage } }
}
"""


def represented_from(seeded: Seeded, region: str, home: str, count: int) -> list[tuple[Row, Row]]:
    """Enterprises of ``region`` whose representatives' base records ``home`` keeps."""
    found = []
    dataset = seeded.dataset
    for index in range(dataset.enterprise_count(region)):
        rep_home, rep = dataset.representative_of(region, index)
        if rep_home == home:
            found.append((dataset.enterprise(region, index), dataset.person(rep_home, rep)))
        if len(found) == count:
            return found
    raise AssertionError(f"too few enterprises of {region} with representatives from {home}")


def candidates(masked_id: str, masked_birth: str, gender: str, limit: int) -> list[str]:
    """Every ID number the mask, the masked birth date and the gender leave possible (the
    first ``limit``), and how many there are in all."""
    area, year = masked_id[:6], int(masked_birth[:4])
    parity = 1 if gender == "MALE" else 0
    found = []
    for month in range(1, 13):
        for day in range(1, calendar.monthrange(year, month)[1] + 1):
            for sequence in range(parity, 1000, 2):
                if len(found) < limit:
                    found.append(make_id_number(area, f"{year}{month:02}{day:02}", sequence))
    return found


def possible(masked_birth: str) -> int:
    year = int(masked_birth[:4])
    return (366 if calendar.isleap(year) else 365) * 500


def policy_entries(body: dict[str, Any]) -> list[tuple[Any, ...]]:
    """The explanation, without counts (which only say how many keys were asked)."""
    return sorted(
        (e["field"], e["owner"], e["decision"], e["reason"])
        for e in body["extensions"]["policy"]["fields"]
    )


async def test_a_masked_representative_cannot_be_rebuilt_by_looking_candidates_up(
    seeded: Seeded,
) -> None:
    # The review's attacker: a Zhejiang counter app under its matter sees Shanghai
    # representatives masked, and tries to confirm their ID numbers by looking them up.
    app = unique_app("rebuild")
    clerk = token("ZJ", "one_stop_app", app=app)
    sample = represented_from(seeded, "SH", "SH", 5)
    async with serve(gateway_settings(seeded.dsn)) as client:
        shown = await client.query(
            REPRESENTATIVES, {"u": [c["uscc"] for c, _ in sample]}, token=clerk, matter=OPENING
        )
        asked: list[str] = []
        for company, (_, person) in zip(shown["data"]["legalPersons"], sample, strict=True):
            rep = company["legalRepresentative"]
            assert rep["idNumber"] == person["id_number"][:6] + "*" * 12
            assert rep["birthDate"] == person["birth_date"][:4] + "-**-**"
            # The mask leaves the area code, the year and the gender: far too many numbers
            # to try, and no check character to narrow them.
            assert possible(rep["birthDate"]) > 100_000
            decoys = [
                c
                for c in candidates(rep["idNumber"], rep["birthDate"], rep["gender"], 400)
                if seeded.dataset.locate_person(c) is None
            ][:99]
            assert all(is_valid_id_number(c) for c in decoys)
            # Even handed the right number among decoys, the look-up cannot tell which it is.
            tried = [person["id_number"], *decoys]
            body = await client.query(LOOKUP, {"ids": tried}, token=clerk, matter=OPENING)
            assert body["data"]["naturalPersons"] == [None] * len(tried)
            assert "errors" not in body
            real = await client.query(
                CREDIT_PAGE, {"s": person["id_number"]}, token=clerk, matter=OPENING
            )
            decoy = await client.query(CREDIT_PAGE, {"s": decoys[0]}, token=clerk, matter=OPENING)
            assert real["data"] == decoy["data"] == {"creditRecords": None}
            assert policy_entries(real) == policy_entries(decoy)
            asked.extend(tried)
        recorded = await events(client, callerApp=app)
    # Every attempt is on record, with the numbers it tried.
    subjects = {s for event in recorded for s in event["subjects"]}
    assert set(asked) <= subjects


async def test_a_look_up_answers_a_known_and_an_unknown_number_alike_without_clearance(
    seeded: Seeded,
) -> None:
    known = seeded.dataset.person_id("JS", 1)
    unknown = seeded.dataset.person_id("JS", 10_001)  # valid, and nobody's
    assert seeded.dataset.locate_person(unknown) is None
    typename = "query($ids: [ID!]!) { naturalPersons(idNumbers: $ids) { __typename } }"
    callers = [
        (token("JS", "public_portal"), None),
        (token("NATIONAL", "auditor"), None),
        (token("SH", "citizen", subject=known), None),
        (token("SH", "one_stop_app"), None),
        (token("SH", "one_stop_app"), OPENING),  # masked for another region: still nothing
    ]
    async with serve(gateway_settings(seeded.dsn)) as client:
        for caller, matter in callers:
            body = await client.query(typename, {"ids": [known, unknown]}, token=caller,
                                      matter=matter)  # fmt: skip
            assert body["data"]["naturalPersons"] == [None, None], (caller, matter)
            [entry] = [e for e in body["extensions"]["policy"]["fields"]
                       if e["field"] == "NaturalPerson.idNumber"]  # fmt: skip
            assert entry["decision"] != "CLEAR"
            assert entry["count"] == 2
        # With clearance the register answers: the one it holds, and null for the other.
        officer = token("AH", "joint_handling_officer")
        body = await client.query(typename, {"ids": [known, unknown]}, token=officer,
                                  matter="JH-HUKOU-MIGRATION")  # fmt: skip
    assert body["data"]["naturalPersons"] == [{"__typename": "NaturalPerson"}, None]


async def test_a_look_up_by_id_number_is_audited_and_fails_closed_like_a_field(
    seeded: Seeded,
) -> None:
    app = unique_app("exists")
    known = seeded.dataset.person_id("AH", 2)
    typename = "query($ids: [ID!]!) { naturalPersons(idNumbers: $ids) { __typename } }"
    async with serve(gateway_settings(seeded.dsn)) as client:
        await client.query(typename, {"ids": [known]}, token=token("AH", "auditor", app=app))
        [event] = await events(client, callerApp=app)
    assert event["subjects"] == [known]
    [entry] = [d for d in event["decisions"] if d["field"] == "NaturalPerson.idNumber"]
    assert (entry["decision"], entry["reason"]) == ("WITHHELD", "DENIED")
    # With the audit log down, not even the existence of a record is answered.
    down = gateway_settings(seeded.dsn, audit_dsn="postgresql://nobody@127.0.0.1:9/none")
    async with serve(down) as client:
        response = await client.post(
            typename, {"ids": [known]}, token=token("JS", "joint_handling_officer"),
            matter="JH-HUKOU-MIGRATION",
        )  # fmt: skip
    assert response.json()["errors"][0]["extensions"]["code"] == "AUDIT_UNAVAILABLE"
    assert "data" not in response.json() or response.json()["data"] is None


async def credit_page(client: GatewayClient, subject: str, caller: str, matter: str | None,
                      selection: str) -> dict[str, Any]:  # fmt: skip
    document = f"query($s: ID!) {{ creditRecords(subjectId: $s) {{ {selection} }} }}"
    return await client.query(document, {"s": subject}, token=caller, matter=matter)


async def test_a_withheld_credit_history_has_no_edges_cursors_or_page_info(
    seeded: Seeded,
) -> None:
    subject = seeded.dataset.multi_region_credit_subject("SH", "NATURAL_PERSON")
    assert len(seeded.dataset.credit_records_of(subject)) > 1
    app = unique_app("history")
    portal = token("SH", "public_portal", app=app)
    async with serve(gateway_settings(seeded.dsn)) as client:
        for selection in ("edges { cursor }", "pageInfo { hasNextPage endCursor }",
                          "edges { node { title } } pageInfo { hasNextPage }"):  # fmt: skip
            body = await credit_page(client, subject, portal, None, selection)
            assert body["data"] == {"creditRecords": None}
        recorded = await events(client, callerApp=app)
        # The officer under the matter gets the history, pages and all.
        officer = token("JS", "joint_handling_officer")
        body = await credit_page(client, subject, officer, "JH-HUKOU-MIGRATION",
                                 "edges { cursor } pageInfo { hasNextPage }")  # fmt: skip
    assert len(body["data"]["creditRecords"]["edges"]) == len(
        seeded.dataset.credit_records_of(subject)
    )
    # Each attempt is recorded, even one that asked only for cursors or page info.
    assert len(recorded) == 3
    assert all(event["subjects"] == [subject] for event in recorded)


async def test_an_explanation_does_not_name_the_owner_of_a_withheld_household_region(
    seeded: Seeded,
) -> None:
    [(company, person)] = represented_from(seeded, "AH", "SH", 1)
    document = """query($u: ID!) { legalPerson(uscc: $u) {
        legalRepresentative { name householdRegion phone } } }"""
    async with serve(gateway_settings(seeded.dsn)) as client:
        portal = await client.query(document, {"u": company["uscc"]},
                                    token=token("AH", "public_portal"))  # fmt: skip
        clerk = await client.query(document, {"u": company["uscc"]},
                                   token=token("AH", "one_stop_app"))  # fmt: skip
    # The public portal may not see the household region (L2, no mask rule) ...
    assert portal["data"]["legalPerson"]["legalRepresentative"]["householdRegion"] is None
    entries = portal["extensions"]["policy"]["fields"]
    withheld = [e for e in entries if e["field"] == "NaturalPerson.householdRegion"]
    assert withheld
    assert all(e["decision"] == "WITHHELD" for e in withheld)
    # ... so no explanation names the region that keeps the person's record.
    assert all(e["owner"] is None for e in entries if e["field"].startswith("NaturalPerson."))
    assert "SH" not in str(portal["extensions"]["policy"])
    # A caller who may see the household region is told whose decision it is (the phone
    # needs a matter).
    assert clerk["data"]["legalPerson"]["legalRepresentative"]["householdRegion"] == "SH"
    assert {e["owner"] for e in clerk["extensions"]["policy"]["fields"]} == {"SH"}
    assert person["household_region"] == "SH"


async def test_an_outage_names_a_representatives_home_region_only_to_who_may_know_it(
    seeded: Seeded,
) -> None:
    [(company, _)] = represented_from(seeded, "AH", "ZJ", 1)
    settings = gateway_settings(seeded.dsn)
    down = tuple(
        replace(s, dsn="postgresql://nobody@127.0.0.1:9/none", timeout=1.0)
        if s.region == "ZJ"
        else s
        for s in settings.sources
    )
    document = "query($u: ID!) { legalPerson(uscc: $u) { name legalRepresentative { name } } }"
    async with serve(replace(settings, sources=down)) as client:
        portal = await client.query(document, {"u": company["uscc"]},
                                    token=token("AH", "public_portal"))  # fmt: skip
        clerk = await client.query(document, {"u": company["uscc"]},
                                   token=token("AH", "one_stop_app"))  # fmt: skip
    for body in (portal, clerk):
        assert body["data"]["legalPerson"]["legalRepresentative"] is None
        [error] = body["errors"]
        assert error["path"] == ["legalPerson", "legalRepresentative"]
    # The portal may not see the representative's household region: the outage is not
    # named, or it would say it.
    assert portal["errors"][0]["extensions"] == {"code": "SOURCE_UNAVAILABLE"}
    assert "ZJ" not in str(portal)
    assert clerk["errors"][0]["extensions"] == {"code": "SOURCE_UNAVAILABLE", "region": "ZJ"}
