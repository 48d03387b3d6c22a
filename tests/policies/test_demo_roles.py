"""The shipped policy's demo roles, asked over HTTP: each row of the table in the README holds."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.core.types import Row
from policies.masks import mask_name
from tests.client import serve
from tests.conftest import Seeded, gateway_settings, token

PERSON = "query($id: ID!) { naturalPerson(idNumber: $id) { idNumber name phone ethnicity } }"
COMPANY = "query($u: ID!) { legalPerson(uscc: $u) { uscc name registeredCapital } }"
REPRESENTATIVE = (
    "query($u: ID!) { legalPerson(uscc: $u) "
    "{ legalRepresentative { idNumber name phone ethnicity } } }"
)


async def ask(
    seeded: Seeded, document: str, key: str, region: str, role: str, matter: str | None
) -> dict[str, Any]:
    async with serve(gateway_settings(seeded.dsn)) as client:
        body = await client.query(
            document, {"id": key, "u": key}, token=token(region, role), matter=matter
        )
    assert "errors" not in body
    return body


def withheld(body: dict[str, Any], coordinate: str, owner: str | None) -> dict[str, Any]:
    [entry] = [
        e for e in body["extensions"]["policy"]["fields"]
        if e["field"] == coordinate and e["owner"] == owner
    ]  # fmt: skip
    assert entry["decision"] == "WITHHELD"
    return entry


def represented_by_own_region(seeded: Seeded, region: str) -> tuple[Row, Row]:
    """An enterprise of ``region`` whose legal representative lives there too, and that person."""
    dataset = seeded.dataset
    for index in range(dataset.enterprise_count(region)):
        home, person = dataset.representative_of(region, index)
        if home == region:
            return dataset.enterprise(region, index), dataset.person(home, person)
    raise AssertionError(f"no enterprise of {region} has a representative from {region}")


async def test_one_stop_app_sees_names_in_another_region_without_a_matter(
    seeded: Seeded,
) -> None:
    company, person = represented_by_own_region(seeded, "JS")
    body = await ask(seeded, COMPANY, company["uscc"], "SH", "one_stop_app", None)
    assert body["data"]["legalPerson"]["name"] == company["name"]
    body = await ask(seeded, REPRESENTATIVE, company["uscc"], "SH", "one_stop_app", None)
    got = body["data"]["legalPerson"]["legalRepresentative"]
    assert got["name"] == person["name"]
    # Sensitive data needs a matter: withheld, and the reason is given.
    assert got["phone"] is None
    assert withheld(body, "NaturalPerson.phone", "JS")["reason"] == "NO_MATTER"


async def test_without_a_matter_nobody_looks_a_person_up_by_id_number(seeded: Seeded) -> None:
    person = seeded.dataset.person("JS", 3)
    body = await ask(seeded, PERSON, person["id_number"], "SH", "one_stop_app", None)
    assert body["data"]["naturalPerson"] is None
    assert withheld(body, "NaturalPerson.idNumber", "JS")["reason"] == "NO_MATTER"


async def test_joint_handling_officer_under_the_matter(seeded: Seeded) -> None:
    person = seeded.dataset.person("AH", 5)
    body = await ask(seeded, PERSON, person["id_number"], "JS", "joint_handling_officer",
                     "JH-HUKOU-MIGRATION")  # fmt: skip
    got = body["data"]["naturalPerson"]
    assert got["phone"] == person["phone"]
    assert got["ethnicity"] is None
    assert withheld(body, "NaturalPerson.ethnicity", "AH")["reason"] == "NEGATIVE_LIST"


async def test_joint_handling_officer_without_a_matter_gets_masked_names(seeded: Seeded) -> None:
    company, person = represented_by_own_region(seeded, "AH")
    body = await ask(seeded, REPRESENTATIVE, company["uscc"], "JS", "joint_handling_officer", None)
    got = body["data"]["legalPerson"]["legalRepresentative"]
    assert got["name"] == mask_name(person["name"])
    assert got["name"] != person["name"]
    [entry] = [e for e in body["extensions"]["policy"]["fields"]
               if e["field"] == "NaturalPerson.name"]  # fmt: skip
    assert entry["decision"] == "MASKED"
    assert entry["rule"] == "NAME"


@pytest.mark.parametrize("owner", ["SH", "JS", "ZJ", "AH"])
async def test_public_portal_never_sees_id_numbers(seeded: Seeded, owner: str) -> None:
    company, person = represented_by_own_region(seeded, owner)
    body = await ask(seeded, PERSON, person["id_number"], "AH", "public_portal", None)
    assert body["data"]["naturalPerson"] is None
    body = await ask(seeded, REPRESENTATIVE, company["uscc"], "AH", "public_portal", None)
    assert body["data"]["legalPerson"]["legalRepresentative"]["idNumber"] is None


async def test_public_portal_sees_the_registry(seeded: Seeded) -> None:
    company = seeded.dataset.enterprise("ZJ", 2)
    body = await ask(seeded, COMPANY, company["uscc"], "AH", "public_portal", None)
    got = body["data"]["legalPerson"]
    assert got["uscc"] == company["uscc"]
    assert got["registeredCapital"] == str(company["registered_capital"])


async def test_the_auditor_sees_no_natural_person_field(seeded: Seeded) -> None:
    company, person = represented_by_own_region(seeded, "SH")
    body = await ask(seeded, PERSON, person["id_number"], "NATIONAL", "auditor", None)
    assert body["data"]["naturalPerson"] is None
    # Not even the owner: a person's home region is their household region, denied too.
    assert withheld(body, "NaturalPerson.idNumber", None)["reason"] == "DENIED"
    body = await ask(seeded, REPRESENTATIVE, company["uscc"], "NATIONAL", "auditor", None)
    assert body["data"]["legalPerson"]["legalRepresentative"] == {
        "idNumber": None, "name": None, "phone": None, "ethnicity": None,
    }  # fmt: skip
    reasons = {e["field"]: e["reason"] for e in body["extensions"]["policy"]["fields"]}
    assert reasons["NaturalPerson.name"] == "DENIED"


async def casbin_calls(seeded: Seeded, usccs: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    calls: list[Any] = []
    async with serve(gateway_settings(seeded.dsn)) as client:
        enforcer = client.gateway.policy.snapshot.rules.enforcer
        original = enforcer.enforce_ex
        monkeypatch.setattr(enforcer, "enforce_ex", lambda *r: calls.append(r) or original(*r))
        body = await client.query(
            "query($u: [ID!]!) { legalPersons(usccs: $u) { uscc name address status } }",
            {"u": usccs},
            token=token("SH", "one_stop_app"),
        )
    assert len(body["data"]["legalPersons"]) == len(usccs)
    return len(calls)


async def test_casbin_is_asked_per_field_and_region_not_per_row(
    seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    one = await casbin_calls(seeded, [seeded.dataset.uscc("JS", 0)], monkeypatch)
    hundred = await casbin_calls(
        seeded, [seeded.dataset.uscc("JS", i) for i in range(100)], monkeypatch
    )
    assert one > 0
    assert hundred == one
