"""Release decisions: the demo roles, deny, grants, matters and natural-person credit."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.core.errors import Forbidden
from gateway.core.types import DELTA_REGIONS
from policies import Decision, PolicyEngine, Reason
from tests.policies.conftest import MASK_SECRET, append, caller

NATURAL_PERSON_SCALARS = (
    "idNumber",
    "name",
    "gender",
    "birthDate",
    "ethnicity",
    "householdRegion",
    "householdAddress",
    "phone",
)
NATURAL_PERSON_LINKS = ("residences", "socialInsurance", "enterprises", "creditRecords")


# One row per line of the demo table: caller region, role, matter, field, owner, decision.
DEMO_TABLE = [
    ("SH", "one_stop_app", None, "LegalPerson.name", "JS", Decision.CLEAR),
    ("SH", "one_stop_app", None, "NaturalPerson.name", "JS", Decision.CLEAR),
    ("SH", "one_stop_app", None, "NaturalPerson.phone", "SH", Decision.WITHHELD),
    ("SH", "one_stop_app", "OS-ENTERPRISE-OPENING", "NaturalPerson.phone", "SH", Decision.CLEAR),
    ("SH", "one_stop_app", "OS-ENTERPRISE-OPENING", "NaturalPerson.phone", "JS", Decision.MASKED),
    (
        "JS",
        "joint_handling_officer",
        "JH-HUKOU-MIGRATION",
        "NaturalPerson.phone",
        "AH",
        Decision.CLEAR,
    ),
    ("JS", "joint_handling_officer", None, "NaturalPerson.name", "AH", Decision.MASKED),
    (
        "JS",
        "joint_handling_officer",
        "JH-HUKOU-MIGRATION",
        "NaturalPerson.ethnicity",
        "AH",
        Decision.WITHHELD,
    ),
    *(
        ("AH", "public_portal", None, "NaturalPerson.idNumber", owner, Decision.WITHHELD)
        for owner in DELTA_REGIONS
    ),
    ("AH", "public_portal", None, "LegalPerson.uscc", "JS", Decision.CLEAR),
    ("AH", "public_portal", None, "LegalPerson.registeredCapital", "ZJ", Decision.CLEAR),
    *(
        ("NATIONAL", "auditor", None, f"NaturalPerson.{name}", owner, Decision.WITHHELD)
        for name in NATURAL_PERSON_SCALARS + NATURAL_PERSON_LINKS
        for owner in DELTA_REGIONS
    ),
]


@pytest.mark.parametrize(
    ("region", "role", "matter", "coordinate", "owner", "expected"), DEMO_TABLE
)
def test_demo_table(
    engine: PolicyEngine,
    region: str,
    role: str,
    matter: str | None,
    coordinate: str,
    owner: str,
    expected: Decision,
) -> None:
    policy = engine.begin(caller(region, role), matter)
    assert policy.decide(coordinate, owner).decision is expected


def test_phone_is_withheld_without_a_matter_because_of_the_purpose_rule(
    engine: PolicyEngine,
) -> None:
    decision = engine.begin(caller("SH", "one_stop_app"), None).decide("NaturalPerson.phone", "SH")
    assert decision.reason is Reason.NO_MATTER


def test_phone_is_masked_for_one_stop_app_in_other_region(engine: PolicyEngine) -> None:
    policy = engine.begin(caller("SH", "one_stop_app"), "OS-ENTERPRISE-OPENING")
    decision = policy.decide("NaturalPerson.phone", "JS")
    assert (decision.grade, decision.clearance, decision.rule) == (3, 2, "PHONE")


def test_ethnicity_is_withheld_by_the_owners_negative_list(engine: PolicyEngine) -> None:
    policy = engine.begin(caller("JS", "joint_handling_officer"), "JH-HUKOU-MIGRATION")
    assert policy.decide("NaturalPerson.ethnicity", "AH").reason is Reason.NEGATIVE_LIST
    # The negative list binds other regions only: the officer's own region grants L4.
    assert policy.decide("NaturalPerson.ethnicity", "JS").decision is Decision.CLEAR


def test_auditor_is_denied_natural_person_data(engine: PolicyEngine) -> None:
    policy = engine.begin(caller("NATIONAL", "auditor"), None)
    assert policy.decide("NaturalPerson.name", "JS").reason is Reason.DENIED
    assert policy.decide("Residence.region", "JS").reason is Reason.DENIED
    assert policy.decide("SocialInsurance.region", "JS").reason is Reason.DENIED
    person_credit = policy.decide("CreditRecord.kind", "JS", subject_type="NATURAL_PERSON")
    assert person_credit.decision is Decision.WITHHELD
    # What auditors do see: registry data, and follow links to find the people.
    assert policy.decide("LegalPerson.name", "JS").decision is Decision.CLEAR
    assert policy.allows("LegalPerson.legalRepresentative", "JS")


def test_public_portal_sees_enterprise_credit_and_a_masked_representative(
    engine: PolicyEngine,
) -> None:
    policy = engine.begin(caller("AH", "public_portal"), None)
    assert policy.allows("LegalPerson.creditRecords", "JS")
    assert policy.allows("LegalPerson.legalRepresentative", "JS")
    assert policy.decide("CreditRecord.title", "SH").decision is Decision.CLEAR
    assert policy.decide("NaturalPerson.name", "ZJ").decision is Decision.MASKED
    assert policy.decide("LegalPerson.address", "JS").decision is Decision.MASKED


def test_citizen_is_treated_like_the_public_portal(engine: PolicyEngine) -> None:
    citizen = engine.begin(caller("SH", "citizen"), None)
    portal = engine.begin(caller("SH", "public_portal"), None)
    for coordinate in ("NaturalPerson.name", "NaturalPerson.idNumber", "LegalPerson.address"):
        assert citizen.decide(coordinate, "JS") == portal.decide(coordinate, "JS")


# -- credit records about natural persons --------------------------------------


def test_natural_person_credit_record_counts_as_at_least_l3(engine: PolicyEngine) -> None:
    policy = engine.begin(caller("AH", "public_portal"), None)
    enterprise = policy.decide("CreditRecord.title", "JS", subject_type="LEGAL_PERSON")
    person = policy.decide("CreditRecord.title", "JS", subject_type="NATURAL_PERSON")
    assert (enterprise.grade, enterprise.decision) == (1, Decision.CLEAR)
    assert (person.grade, person.decision, person.reason) == (
        3,
        Decision.WITHHELD,
        Reason.NO_MATTER,
    )


def test_enterprise_opening_sees_dishonest_executees_in_every_region(
    engine: PolicyEngine,
) -> None:
    policy = engine.begin(caller("ZJ", "one_stop_app"), "OS-ENTERPRISE-OPENING")
    for owner in DELTA_REGIONS:
        kind = policy.decide("CreditRecord.kind", owner, subject_type="NATURAL_PERSON")
        assert kind.decision is Decision.CLEAR


def test_apply_groups_credit_rows_by_subject_type(engine: PolicyEngine) -> None:
    policy = engine.begin(caller("SH", "public_portal"), None)
    rows = [
        {
            "id": "c1",
            "subject_type": "LEGAL_PERSON",
            "subject_id": "91350100M000100Y43",
            "kind": "ADMIN_PENALTY",
        },
        {
            "id": "c2",
            "subject_type": "NATURAL_PERSON",
            "subject_id": "11010519491231002X",
            "kind": "ADMIN_PENALTY",
        },
        {"id": "c3", "subject_type": None, "subject_id": "x", "kind": "COMMENDATION"},
    ]
    out = policy.apply("CreditRecord", "JS", rows)
    assert out[0] == rows[0]
    # About a natural person (or of unknown kind: the safe side), everything is L3 and withheld.
    assert out[1]["subject_id"] is None
    assert out[1]["kind"] is None
    assert out[2]["kind"] is None


# -- grants, deny and their absence ------------------------------------------------


def test_deny_wins_over_a_grant(policy_dir: Path) -> None:
    append(policy_dir / "policy.csv", "p, one_stop_app, JS, *, NaturalPerson.phone, *, deny\n")
    engine = PolicyEngine.from_directory(policy_dir, mask_secret=MASK_SECRET, strict=True)
    policy = engine.begin(caller("JS", "one_stop_app"), "OS-ENTERPRISE-OPENING")
    assert policy.decide("NaturalPerson.phone", "JS").reason is Reason.DENIED
    assert policy.decide("NaturalPerson.idNumber", "JS").decision is Decision.CLEAR


def test_deny_of_one_role_wins_over_another_roles_grant(engine: PolicyEngine) -> None:
    policy = engine.begin(caller("SH", "one_stop_app", "auditor"), "OS-ENTERPRISE-OPENING")
    assert policy.decide("NaturalPerson.phone", "SH").reason is Reason.DENIED
    assert policy.decide("NaturalPerson.name", "SH").decision is Decision.WITHHELD


def test_best_role_decides_when_none_denies(engine: PolicyEngine) -> None:
    policy = engine.begin(caller("SH", "public_portal", "one_stop_app"), None)
    assert policy.decide("NaturalPerson.name", "JS").decision is Decision.CLEAR


def test_no_grant_means_withheld(policy_dir: Path) -> None:
    # A matter for a role that holds no grant at all: only the L1 every caller has.
    append(
        policy_dir / "matters.toml",
        '\n[[matter]]\ncode = "TEST-NO-GRANT"\nname = "测试"\nroles = ["clerk"]\n',
    )
    engine = PolicyEngine.from_directory(policy_dir, mask_secret=MASK_SECRET, strict=True)
    policy = engine.begin(caller("SH", "clerk"), "TEST-NO-GRANT")
    phone = policy.decide("NaturalPerson.phone", "SH")
    assert (phone.decision, phone.reason, phone.clearance) == (
        Decision.WITHHELD,
        Reason.ABOVE_CLEARANCE,
        1,
    )
    assert policy.decide("NaturalPerson.name", "SH").decision is Decision.MASKED
    assert policy.decide("LegalPerson.uscc", "SH").decision is Decision.CLEAR


def test_masked_field_without_mask_rule_is_withheld(engine: PolicyEngine) -> None:
    policy = engine.begin(caller("AH", "public_portal"), None)
    gender = policy.decide("NaturalPerson.gender", "AH")  # L2 at clearance L1, no rule
    assert (gender.decision, gender.reason) == (Decision.WITHHELD, Reason.NO_MASK_RULE)


def test_unknown_coordinate_and_owner_fail_closed(engine: PolicyEngine) -> None:
    policy = engine.begin(caller("SH", "one_stop_app"), "OS-ENTERPRISE-OPENING")
    assert policy.decide("NaturalPerson.shoeSize", "SH").reason is Reason.NOT_IN_CATALOG
    assert policy.decide("NaturalPerson.name", "BJ").reason is Reason.UNKNOWN_OWNER
    assert not policy.allows("NaturalPerson.friends", "SH")


# -- matters -----------------------------------------------------------------------


def test_unregistered_matter_is_forbidden(engine: PolicyEngine) -> None:
    with pytest.raises(Forbidden, match="not registered"):
        engine.begin(caller("SH", "one_stop_app"), "NO-SUCH-MATTER")


def test_unregistered_matter_text_is_not_echoed(engine: PolicyEngine) -> None:
    with pytest.raises(Forbidden) as raised:
        engine.begin(caller("SH", "one_stop_app"), "<script>")
    assert "<script>" not in raised.value.message


def test_matter_the_role_may_not_use_is_forbidden(engine: PolicyEngine) -> None:
    with pytest.raises(Forbidden, match="may not handle"):
        engine.begin(caller("SH", "one_stop_app"), "JH-HUKOU-MIGRATION")


def test_blank_matter_means_none(engine: PolicyEngine) -> None:
    assert engine.begin(caller("SH", "one_stop_app"), "  ").matter is None


def test_matter_counts_only_for_the_roles_that_may_use_it(engine: PolicyEngine) -> None:
    policy = engine.begin(caller("SH", "public_portal", "one_stop_app"), "OS-ENTERPRISE-OPENING")
    assert policy.role_matters == (
        ("public_portal", ""),
        ("one_stop_app", "OS-ENTERPRISE-OPENING"),
    )
