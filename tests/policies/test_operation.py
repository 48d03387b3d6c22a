"""Per-operation policy: rows masked in bulk, the summary, Casbin asked per field, not per row."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.core.errors import PolicyError
from gateway.core.types import Row
from policies import SHIPPED_POLICY_DIR, OperationPolicy, PolicyEngine
from tests.policies.conftest import MASK_SECRET, append, caller


def person(n: int) -> Row:
    return {
        "id_number": f"3201021990010{n:04d}"[:17] + "X",
        "name": "王小明",
        "gender": "MALE",
        "birth_date": "1990-01-01",
        "ethnicity": "汉族",
        "household_region": "JS",
        "household_address": "江苏省南京市玄武区中山路123号4幢502室",
        "phone": "13812345678",
        "internal_key": n,
    }


def enterprise(n: int) -> Row:
    return {
        "uscc": f"91320100MA{n:07d}X",
        "name": "南京某某科技有限公司",
        "registered_capital": "100.0000",
        "address": "江苏省南京市玄武区中山路1号",
        "legal_rep_id": "11010519491231002X",
    }


@pytest.fixture
def counting_engine(monkeypatch: pytest.MonkeyPatch) -> tuple[PolicyEngine, list[Any]]:
    """A fresh engine whose Casbin enforcer records every question asked."""
    engine = PolicyEngine.from_directory(SHIPPED_POLICY_DIR, mask_secret=MASK_SECRET, strict=True)
    enforcer = engine.snapshot.rules.enforcer
    calls: list[Any] = []
    original = enforcer.enforce_ex

    def spy(*rvals: Any) -> Any:
        calls.append(rvals)
        return original(*rvals)

    monkeypatch.setattr(enforcer, "enforce_ex", spy)
    return engine, calls


def run_operation(engine: PolicyEngine, rows: int) -> OperationPolicy:
    """What the resolvers of a counter lookup do with ``rows`` people and enterprises per region."""
    policy = engine.begin(caller("SH", "one_stop_app"), "OS-ENTERPRISE-OPENING")
    for region in ("SH", "JS"):
        if policy.allows("NaturalPerson.residences", region):
            policy.apply("NaturalPerson", region, [person(i) for i in range(rows)])
        policy.apply("LegalPerson", region, [enterprise(i) for i in range(rows)])
        policy.apply(
            "CreditRecord",
            region,
            [{"id": str(i), "subject_type": "NATURAL_PERSON", "kind": "X"} for i in range(rows)],
        )
    return policy


def test_casbin_calls_for_100_rows_equal_those_for_1_row(
    counting_engine: tuple[PolicyEngine, list[Any]],
) -> None:
    engine, calls = counting_engine
    run_operation(engine, 1)
    one_row = len(calls)
    calls.clear()
    run_operation(engine, 100)
    assert len(calls) == one_row
    assert one_row > 0


def test_each_field_and_owner_is_decided_once_per_operation(
    counting_engine: tuple[PolicyEngine, list[Any]],
) -> None:
    engine, calls = counting_engine
    policy = engine.begin(caller("SH", "one_stop_app"), "OS-ENTERPRISE-OPENING")
    policy.decide("NaturalPerson.phone", "JS")
    asked = len(calls)
    for _ in range(10):
        policy.decide("NaturalPerson.phone", "JS")
        policy.apply("NaturalPerson", "JS", [person(1)], fields=["phone"])
    assert len(calls) == asked
    assert asked <= 4  # negative list + at most 3 clearance questions per role


def test_shared_cache_answers_later_operations_without_casbin(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = PolicyEngine.from_directory(
        SHIPPED_POLICY_DIR, mask_secret=MASK_SECRET, strict=True, shared_cache_size=1000
    )
    calls: list[Any] = []
    enforcer = engine.snapshot.rules.enforcer
    original: Callable[..., Any] = enforcer.enforce_ex
    monkeypatch.setattr(enforcer, "enforce_ex", lambda *r: calls.append(r) or original(*r))
    first = run_operation(engine, 3)
    asked = len(calls)
    second = run_operation(engine, 3)
    assert len(calls) == asked
    assert (
        first.summary(include_clear=True)["fields"] == second.summary(include_clear=True)["fields"]
    )


def test_apply_keeps_masks_and_withholds_without_touching_the_input(engine: PolicyEngine) -> None:
    policy = engine.begin(caller("SH", "one_stop_app"), "OS-ENTERPRISE-OPENING")
    rows = [person(1), person(2)]
    before = copy.deepcopy(rows)
    out = policy.apply("NaturalPerson", "JS", rows)
    assert rows == before
    assert out[0] is not rows[0]
    got = out[0]
    assert got["name"] == "王小明"  # L2 at clearance L2
    assert got["phone"] == "138****5678"  # L3 at L2: masked
    assert got["id_number"].startswith("320102")
    assert "*" in got["id_number"]
    assert got["birth_date"] == "1990-**-**"
    assert got["household_address"] == "江苏省南京市玄武区***"
    assert got["ethnicity"] is None  # negative list
    assert got["internal_key"] == 1  # not graded: passes through


def test_apply_in_own_region_releases_in_clear(engine: PolicyEngine) -> None:
    policy = engine.begin(caller("SH", "one_stop_app"), "OS-ENTERPRISE-OPENING")
    row = person(1)
    out = policy.apply("NaturalPerson", "SH", [row])[0]
    assert out["phone"] == row["phone"]
    assert out["ethnicity"] is None  # L4 at clearance L3 and not maskable


def test_apply_with_selected_fields_withholds_the_rest_without_deciding(
    engine: PolicyEngine,
) -> None:
    policy = engine.begin(caller("SH", "one_stop_app"), "OS-ENTERPRISE-OPENING")
    out = policy.apply("NaturalPerson", "SH", [person(1)], fields=["name", "phone"])[0]
    assert out["name"] == "王小明"
    assert out["phone"] == "13812345678"
    assert out["id_number"] is None
    assert out["internal_key"] == 1
    decided = {entry["field"] for entry in policy.summary(include_clear=True)["fields"]}
    assert decided == {"NaturalPerson.name", "NaturalPerson.phone"}


def test_apply_withholds_a_selected_field_the_catalog_does_not_know(engine: PolicyEngine) -> None:
    policy = engine.begin(caller("SH", "one_stop_app"), "OS-ENTERPRISE-OPENING")
    out = policy.apply("NaturalPerson", "SH", [{**person(1), "shoe_size": 42}], fields=["shoeSize"])
    assert out[0]["shoe_size"] is None
    entry = policy.summary()["fields"][0]
    assert (entry["field"], entry["reason"]) == ("NaturalPerson.shoeSize", "NOT_IN_CATALOG")


def test_apply_refuses_a_type_without_grades(engine: PolicyEngine) -> None:
    policy = engine.begin(caller("SH", "one_stop_app"), None)
    with pytest.raises(PolicyError):
        policy.apply("Vehicle", "SH", [{"plate": "沪A12345"}])


def test_natural_person_credit_records_masked_with_pseudonyms_joinable_across_regions(
    policy_dir: Path,
) -> None:
    # A clerk with L2 under a matter sees a person's credit records (L3) masked.
    append(
        policy_dir / "matters.toml",
        '\n[[matter]]\ncode = "TEST-L2"\nname = "测试"\nroles = ["clerk"]\n',
    )
    append(policy_dir / "policy.csv", "p, clerk, *, TEST-L2, *, L2, allow\n")
    engine = PolicyEngine.from_directory(policy_dir, mask_secret=MASK_SECRET, strict=True)
    policy = engine.begin(caller("SH", "clerk"), "TEST-L2")
    row = {
        "id": "JS-CE-000001",
        "subject_type": "NATURAL_PERSON",
        "subject_id": "11010519491231002X",
        "document_number": "苏市监罚〔2024〕12号",
        "decided_on": "2024-03-05",
        "kind": "ADMIN_PENALTY",
    }
    sh, js = (policy.apply("CreditRecord", region, [row])[0] for region in ("SH", "JS"))
    assert js["subject_id"] == "110105************"
    assert js["decided_on"] == "2024-**-**"
    assert js["kind"] is None  # an enum cannot be masked
    assert js["document_number"] != row["document_number"]
    assert js["document_number"] == sh["document_number"]  # the same pseudonym everywhere
    other = PolicyEngine.from_directory(policy_dir, mask_secret=b"another-secret", strict=True)
    elsewhere = other.begin(caller("SH", "clerk"), "TEST-L2").apply("CreditRecord", "JS", [row])
    assert elsewhere[0]["document_number"] != js["document_number"]


def test_summary_lists_masked_and_withheld_fields_with_counts(engine: PolicyEngine) -> None:
    policy = engine.begin(caller("SH", "one_stop_app"), "OS-ENTERPRISE-OPENING")
    policy.apply("NaturalPerson", "JS", [person(i) for i in range(5)])
    policy.allows("NaturalPerson.residences", "JS")
    summary = policy.summary()
    assert summary["matter"] == "OS-ENTERPRISE-OPENING"
    assert summary["policyVersion"] == engine.snapshot.version
    by_field = {(e["field"], e["owner"]): e for e in summary["fields"]}
    assert by_field[("NaturalPerson.phone", "JS")] == {
        "field": "NaturalPerson.phone",
        "owner": "JS",
        "decision": "MASKED",
        "grade": "L3",
        "clearance": "L2",
        "rule": "PHONE",
        "reason": "ONE_ABOVE_CLEARANCE",
        "count": 5,
    }
    assert by_field[("NaturalPerson.ethnicity", "JS")]["reason"] == "NEGATIVE_LIST"
    assert by_field[("NaturalPerson.residences", "JS")]["count"] == 1
    assert ("NaturalPerson.name", "JS") not in by_field  # clear: only with include_clear
    everything = {(e["field"], e["owner"]) for e in policy.summary(include_clear=True)["fields"]}
    assert ("NaturalPerson.name", "JS") in everything


def test_summary_marks_decisions_about_natural_persons(engine: PolicyEngine) -> None:
    policy = engine.begin(caller("AH", "public_portal"), None)
    policy.apply("CreditRecord", "SH", [{"id": "1", "subject_type": "NATURAL_PERSON"}])
    entries = policy.summary()["fields"]
    assert entries
    assert all(e["subjectType"] == "NATURAL_PERSON" for e in entries)


def test_evaluation_failure_fails_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    policy = PolicyEngine.from_directory(
        SHIPPED_POLICY_DIR, mask_secret=MASK_SECRET, strict=True
    ).begin(caller("SH", "one_stop_app"), None)

    def broken(*_: Any) -> Any:
        raise RuntimeError("matcher exploded")

    monkeypatch.setattr(policy.snapshot.rules.enforcer, "enforce_ex", broken)
    with pytest.raises(PolicyError):
        policy.apply("NaturalPerson", "SH", [person(1)])
