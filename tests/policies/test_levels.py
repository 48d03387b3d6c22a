"""The cascade's records: of the upper's decision and the lower's, the stricter is recorded."""

from __future__ import annotations

from policies.levels import stricter


def entry(field: str, owner: str, decision: str) -> dict[str, object]:
    return {
        "field": field, "owner": owner, "decision": decision, "grade": "L3",
        "rule": "PHONE" if decision == "MASKED" else None, "reason": "WITHIN_CLEARANCE",
        "count": 2,
    }  # fmt: skip


def test_the_stricter_of_the_two_levels_is_recorded_per_field_and_owner() -> None:
    upper = [
        entry("NaturalPerson.phone", "JS", "CLEAR"),
        entry("NaturalPerson.name", "JS", "MASKED"),
        entry("NaturalPerson.phone", "SH", "CLEAR"),
        entry("NaturalPerson.householdAddress", "JS", "WITHHELD"),
    ]
    below = [
        {"field": "NaturalPerson.phone", "owner": "JS", "decision": "MASKED"},
        {"field": "NaturalPerson.name", "owner": "JS", "decision": "WITHHELD"},
        {"field": "NaturalPerson.householdAddress", "owner": "JS", "decision": "MASKED"},
        {"field": "NaturalPerson.phone", "owner": "JS", "decision": "BOGUS"},
    ]
    phone_js, name_js, phone_sh, address_js = stricter(upper, below)
    # Masked below, clear above: recorded masked, by the lower, with no mask rule of the upper's.
    assert (phone_js["decision"], phone_js["reason"], phone_js["rule"]) == (
        "MASKED", "DECIDED_BELOW", None,
    )  # fmt: skip
    assert phone_js["count"] == 2
    assert (name_js["decision"], name_js["reason"]) == ("WITHHELD", "DECIDED_BELOW")
    assert phone_sh == upper[2]  # another owner: the lower did not decide it
    assert address_js == upper[3]  # the upper's own decision was the stricter
