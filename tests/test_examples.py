"""The example operations in examples/ work against seeded data, as the callers named there."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from schema import schema
from tests.client import serve
from tests.conftest import Seeded, gateway_settings, token

EXAMPLES = Path(__file__).parents[1] / "examples"


def document(name: str) -> str:
    return (EXAMPLES / name).read_text(encoding="utf-8")


async def run(seeded: Seeded, name: str, variables: dict[str, Any], caller: str,
              matter: str | None = None) -> dict[str, Any]:  # fmt: skip
    async with serve(gateway_settings(seeded.dsn)) as client:
        body = await client.query(document(name), variables, token=caller, matter=matter)
    assert "errors" not in body, body["errors"]
    return body["data"]


async def test_counter_lookup(seeded: Seeded) -> None:
    person = seeded.dataset.cross_region_person("SH")
    data = await run(seeded, "counter-lookup.graphql", {"idNumber": person["id_number"]},
                     token("SH", "one_stop_app"), "OS-ENTERPRISE-OPENING")  # fmt: skip
    got = data["naturalPerson"]
    # Its own region's person under the matter: in clear.
    assert got["name"] == person["name"]
    assert got["phone"] == person["phone"]
    assert got["residences"] is not None
    assert got["socialInsurance"] is not None


async def test_enterprise_opening_check(seeded: Seeded) -> None:
    subject = seeded.dataset.multi_region_credit_subject("ZJ", "NATURAL_PERSON")
    data = await run(seeded, "enterprise-opening-check.graphql", {"idNumber": subject},
                     token("ZJ", "one_stop_app"), "OS-ENTERPRISE-OPENING")  # fmt: skip
    got = data["naturalPerson"]
    expected = [r for r in seeded.dataset.credit_records_of(subject)
                if r["kind"] in ("DISHONEST_EXECUTEE", "ADMIN_PENALTY")]  # fmt: skip
    assert len(got["creditRecords"]) == len(expected)
    assert {r["region"] for r in got["creditRecords"]} == {r["region"] for r in expected}


async def test_hukou_migration(seeded: Seeded) -> None:
    person = seeded.dataset.cross_region_person("AH")
    data = await run(seeded, "hukou-migration.graphql", {"idNumber": person["id_number"]},
                     token("JS", "joint_handling_officer"), "JH-HUKOU-MIGRATION")  # fmt: skip
    got = data["naturalPerson"]
    assert got["idNumber"] == person["id_number"]
    assert got["ethnicity"] is None  # AH's negative list, for a caller from JS
    assert any(r["region"] != "AH" for r in got["residences"] + got["socialInsurance"])


async def test_joint_handling_list(seeded: Seeded) -> None:
    usccs = [
        seeded.dataset.uscc(region, i) for i in range(13) for region in ("SH", "JS", "ZJ", "AH")
    ]
    data = await run(seeded, "joint-handling-list.graphql", {"usccs": usccs[:50]},
                     token("AH", "joint_handling_officer"), "JH-HUKOU-MIGRATION")  # fmt: skip
    rows = data["legalPersons"]
    assert len(rows) == 50
    assert all(row["legalRepresentative"]["name"] for row in rows)
    assert {row["region"] for row in rows} == {"SH", "JS", "ZJ", "AH"}


async def test_credit_check(seeded: Seeded) -> None:
    uscc = seeded.dataset.multi_region_credit_subject("SH", "LEGAL_PERSON")
    data = await run(seeded, "credit-check.graphql", {"uscc": uscc}, token("JS", "public_portal"))
    got = data["legalPerson"]
    assert len({r["region"] for r in got["creditRecords"]}) >= 2
    # The public sees the registry, and a natural person's name one grade up: masked.
    located = seeded.dataset.locate_enterprise(uscc)
    assert located is not None
    rep = seeded.dataset.locate_person(seeded.dataset.enterprise(*located)["legal_rep_id"])
    assert rep is not None
    assert got["legalRepresentative"]["name"] != seeded.dataset.person(*rep)["name"]


def has_root_field(name: str) -> bool:
    return name in schema._schema.query_type.fields  # type: ignore[union-attr]


@pytest.mark.skipif(not has_root_field("auditEvents"), reason="the audit API is not built yet")
async def test_auditor_who_saw(seeded: Seeded) -> None:
    person = seeded.dataset.person("SH", 1)
    data = await run(seeded, "auditor-who-saw.graphql", {"subjectId": person["id_number"]},
                     token("NATIONAL", "auditor"))  # fmt: skip
    assert "edges" in data["auditEvents"]


@pytest.mark.skipif(not has_root_field("accessHistory"), reason="the audit API is not built yet")
async def test_citizen_history(seeded: Seeded) -> None:
    person = seeded.dataset.person("SH", 1)
    data = await run(seeded, "citizen-history.graphql", {"idNumber": person["id_number"]},
                     token("SH", "citizen", subject=person["id_number"]))  # fmt: skip
    assert isinstance(data["accessHistory"], list)
