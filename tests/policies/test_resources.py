"""The resource catalog: every field, its grade, and this caller's decisions per region."""

from __future__ import annotations

import json

import pytest

from gateway.core.errors import Forbidden
from gateway.core.types import DELTA_REGIONS
from policies import PolicyEngine, catalog_entries, matter_entries
from tests.policies.conftest import caller


def test_every_field_is_listed_with_decisions_per_region(engine: PolicyEngine) -> None:
    entries = catalog_entries(engine, caller("SH", "one_stop_app"), "OS-ENTERPRISE-OPENING")
    coordinates = {e.coordinate for e in entries}
    assert coordinates == set(engine.snapshot.catalog.fields)
    phone = next(e for e in entries if e.coordinate == "NaturalPerson.phone")
    assert (phone.grade, phone.mask, phone.regions) == ("L3", "PHONE", DELTA_REGIONS)
    by_region = {d.region: d for d in phone.decisions}
    assert by_region["SH"].with_matter is not None
    assert by_region["SH"].with_matter.decision.value == "CLEAR"
    assert by_region["JS"].with_matter is not None
    assert by_region["JS"].with_matter.decision.value == "MASKED"
    assert by_region["SH"].without_matter.reason.value == "NO_MATTER"


def test_credit_record_fields_are_listed_for_both_kinds_of_subject(engine: PolicyEngine) -> None:
    entries = catalog_entries(engine, caller("AH", "public_portal"), None)
    titles = {e.subject_type: e for e in entries if e.coordinate == "CreditRecord.title"}
    assert titles["LEGAL_PERSON"].grade == "L1"
    assert titles["NATURAL_PERSON"].grade == "L3"
    assert titles["NATURAL_PERSON"].personal
    assert titles["LEGAL_PERSON"].decisions[0].without_matter.decision.value == "CLEAR"
    assert titles["NATURAL_PERSON"].decisions[0].without_matter.decision.value == "WITHHELD"


def test_without_a_matter_there_is_no_with_matter_decision(engine: PolicyEngine) -> None:
    entries = catalog_entries(engine, caller("AH", "public_portal"), None)
    assert all(d.with_matter is None for e in entries for d in e.decisions)


def test_entries_serialise_to_json(engine: PolicyEngine) -> None:
    entries = catalog_entries(engine, caller("JS", "joint_handling_officer"), "JH-HUKOU-MIGRATION")
    data = json.loads(json.dumps([e.as_dict() for e in entries], ensure_ascii=False))
    ethnicity = next(e for e in data if e["coordinate"] == "NaturalPerson.ethnicity")
    decisions = {d["region"]: d for d in ethnicity["decisions"]}
    assert decisions["JS"]["withMatter"]["decision"] == "CLEAR"
    assert decisions["AH"]["withMatter"]["reason"] == "NEGATIVE_LIST"


def test_catalog_with_a_forbidden_matter_is_refused(engine: PolicyEngine) -> None:
    with pytest.raises(Forbidden):
        catalog_entries(engine, caller("AH", "public_portal"), "OS-ENTERPRISE-OPENING")


def test_matters_are_listed_with_whether_the_caller_may_use_them(engine: PolicyEngine) -> None:
    usable = {m["code"]: m["usable"] for m in matter_entries(engine, caller("SH", "one_stop_app"))}
    assert usable == {"OS-ENTERPRISE-OPENING": True, "JH-HUKOU-MIGRATION": False}
