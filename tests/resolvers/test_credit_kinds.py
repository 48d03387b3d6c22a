"""A `kinds` filter works on the records themselves, whatever the operation selects: the
enterprise-opening check must not read "no dishonest-executee record" because it did not ask
for `kind`."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.client import serve
from tests.conftest import Seeded, gateway_settings, token

OFFICER = token("JS", "joint_handling_officer")
MATTER = "JH-HUKOU-MIGRATION"


def subject_with_kinds(seeded: Seeded, subject_type: str) -> tuple[str, Counter[str]]:
    for region in ("SH", "JS", "ZJ", "AH"):
        subject = seeded.dataset.multi_region_credit_subject(region, subject_type)
        kinds = Counter(r["kind"] for r in seeded.dataset.credit_records_of(subject))
        if len(kinds) > 1:
            return subject, kinds
    raise AssertionError("no subject with records of two kinds")


@pytest.mark.parametrize("subject_type", ["NATURAL_PERSON", "LEGAL_PERSON"])
async def test_kinds_filters_records_whether_or_not_kind_is_selected(
    seeded: Seeded, subject_type: str
) -> None:
    subject, kinds = subject_with_kinds(seeded, subject_type)
    root, argument = (
        ("naturalPerson", "idNumber")
        if subject_type == "NATURAL_PERSON"
        else ("legalPerson", "uscc")
    )
    async with serve(gateway_settings(seeded.dsn)) as client:
        for kind, expected in kinds.items():
            for selection in ("title", "kind title"):
                link = await client.query(
                    f"query($s: ID!, $k: [CreditKind!]) {{ {root}({argument}: $s) "
                    f"{{ creditRecords(kinds: $k) {{ {selection} }} }} }}",
                    {"s": subject, "k": [kind]}, token=OFFICER, matter=MATTER,
                )  # fmt: skip
                page = await client.query(
                    "query($s: ID!, $k: [CreditKind!]) { creditRecords(subjectId: $s, kinds: $k) "
                    f"{{ edges {{ node {{ {selection} }} }} }} }}",
                    {"s": subject, "k": [kind]}, token=OFFICER, matter=MATTER,
                )  # fmt: skip
                assert len(link["data"][root]["creditRecords"]) == expected, selection
                assert len(page["data"]["creditRecords"]["edges"]) == expected, selection
