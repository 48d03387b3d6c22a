"""Work kept across operations (masking plans, summary layouts, owner visibility) answers every
caller exactly as a fresh policy would: never another caller's answer, never an old policy's,
never a failure's."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import policies.operation
from gateway.core.errors import PolicyError
from gateway.core.types import Caller, Row
from policies import SHIPPED_POLICY_DIR, OperationPolicy, PolicyEngine
from tests.policies.conftest import MASK_SECRET, append, caller
from tests.policies.test_operation import enterprise, person

#: From the lowest token (a citizen through the public portal, no matter) to an officer's.
CALLERS = [
    (caller("AH", "citizen"), None),
    (caller("AH", "public_portal"), None),
    (caller("SH", "one_stop_app"), None),
    (caller("SH", "one_stop_app"), "OS-ENTERPRISE-OPENING"),
    (caller("JS", "joint_handling_officer"), "JH-HUKOU-MIGRATION"),
    (caller("JS", "joint_handling_officer", "one_stop_app"), "OS-ENTERPRISE-OPENING"),
    (caller("ZJ", "auditor"), None),
]
SELECTIONS = [None, frozenset({"name", "phone", "idNumber"}), frozenset({"householdRegion"})]


def credit(n: int, subject_type: str) -> Row:
    return {
        "id": f"R{n}",
        "subject_type": subject_type,
        "subject_id": "11010519491231002X",
        "kind": "ADMIN_PENALTY",
        "document_number": f"罚{n}号",
        "decided_on": "2024-03-05",
    }


def operation(policy: OperationPolicy, region: str, fields: frozenset[str] | None) -> Any:
    """What an operation's policy tells of one caller: rows shown, summaries, explanation."""
    shown = [
        policy.apply("NaturalPerson", region, [person(1), person(2)], fields=fields),
        policy.apply("LegalPerson", region, [enterprise(1)]),
        policy.apply(
            "CreditRecord",
            region,
            [credit(1, "NATURAL_PERSON"), credit(2, "LEGAL_PERSON"), credit(3, "NATURAL_PERSON")],
        ),
        policy.allows("LegalPerson.legalRepresentative", region),
        policy.looks_up("NaturalPerson.idNumber", region),
        policy.names_owner("NaturalPerson", region),
    ]
    summary = policy.summary(include_clear=True)
    return shown, summary, policy.summary(), policy.explained(summary)


def every_case() -> Iterator[tuple[Caller, str | None, str, frozenset[str] | None]]:
    for (who, matter), region, fields in itertools.product(CALLERS, ("SH", "JS"), SELECTIONS):
        yield who, matter, region, fields


def test_kept_work_answers_every_caller_as_a_fresh_policy_would() -> None:
    kept = PolicyEngine.from_directory(
        SHIPPED_POLICY_DIR, mask_secret=MASK_SECRET, strict=True, shared_cache_size=1000
    )
    cases = list(every_case())
    # Twice, the second time backwards: every case then follows work kept for other callers.
    for who, matter, region, fields in [*cases, *reversed(cases)]:
        fresh = PolicyEngine.from_directory(
            SHIPPED_POLICY_DIR, mask_secret=MASK_SECRET, strict=True
        )
        expected = operation(fresh.begin(who, matter), region, fields)
        assert operation(kept.begin(who, matter), region, fields) == expected, (who, matter)


def test_the_lowest_token_is_not_answered_from_an_officers_work() -> None:
    engine = PolicyEngine.from_directory(
        SHIPPED_POLICY_DIR, mask_secret=MASK_SECRET, strict=True, shared_cache_size=1000
    )
    officer = engine.begin(caller("SH", "one_stop_app"), "OS-ENTERPRISE-OPENING")
    seen = officer.apply("NaturalPerson", "SH", [person(1)])[0]
    assert seen["phone"] == "13812345678"
    citizen = engine.begin(caller("SH", "citizen"), None)
    shown = citizen.apply("NaturalPerson", "SH", [person(1)])[0]
    assert shown["phone"] != "13812345678"
    assert shown["id_number"] != person(1)["id_number"]


def touch_later(path: Path) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_a_reloaded_policy_is_never_answered_from_the_old_ones_work(policy_dir: Path) -> None:
    engine = PolicyEngine.from_directory(
        policy_dir, mask_secret=MASK_SECRET, reload_interval=3600, shared_cache_size=1000
    )
    who = caller("SH", "one_stop_app")
    before = engine.begin(who, "OS-ENTERPRISE-OPENING")
    phone = {"phone"}
    assert (
        before.apply("NaturalPerson", "SH", [person(1)], fields=phone)[0]["phone"] == "13812345678"
    )
    assert before.summary()["fields"] == []
    # The phone is taken away from the role: the next operation must not see it.
    append(policy_dir / "policy.csv", "p, one_stop_app, *, *, NaturalPerson.phone, *, deny\n")
    touch_later(policy_dir / "policy.csv")
    assert engine.reload_if_changed()
    after = engine.begin(who, "OS-ENTERPRISE-OPENING")
    assert after.apply("NaturalPerson", "SH", [person(1)], fields=phone)[0]["phone"] is None
    [entry] = after.summary()["fields"]
    assert (entry["field"], entry["decision"], entry["reason"]) == (
        "NaturalPerson.phone", "WITHHELD", "DENIED"
    )  # fmt: skip
    assert after.summary()["policyVersion"] != before.summary()["policyVersion"]


def test_a_failed_evaluation_is_not_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = PolicyEngine.from_directory(
        SHIPPED_POLICY_DIR, mask_secret=MASK_SECRET, strict=True, shared_cache_size=1000
    )
    who = caller("SH", "one_stop_app")
    original = policies.operation.evaluate

    def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("matcher exploded")

    monkeypatch.setattr(policies.operation, "evaluate", broken)
    with pytest.raises(PolicyError):
        engine.begin(who, None).apply("LegalPerson", "JS", [enterprise(1)])
    with pytest.raises(PolicyError):  # refused again: nothing of the failure was kept
        engine.begin(who, None).apply("LegalPerson", "JS", [enterprise(1)])
    monkeypatch.setattr(policies.operation, "evaluate", original)
    shown = engine.begin(who, None).apply("LegalPerson", "JS", [enterprise(1)])[0]
    assert shown["name"] == enterprise(1)["name"]


def test_kept_work_stays_within_its_bound() -> None:
    engine = PolicyEngine.from_directory(
        SHIPPED_POLICY_DIR, mask_secret=MASK_SECRET, strict=True, shared_cache_size=4
    )
    # A caller choosing its selections freely (one plan each) fills no table past the bound.
    names = ["name", "phone", "gender", "birthDate", "ethnicity", "householdAddress"]
    for n in range(1, len(names) + 1):
        for fields in itertools.combinations(names, n):
            policy = engine.begin(caller("AH", "citizen"), None)
            policy.apply("NaturalPerson", "SH", [person(1)], fields=fields)
            policy.explained(policy.summary(include_clear=True))
    memo = engine._memo_for(engine.snapshot)  # the engine's own tables, to measure them
    assert memo is not None
    assert 0 < len(memo.plans) <= 4
    assert 0 < len(memo.layouts) <= 4


def test_record_and_changes_decide_count_and_mask_as_apply_does() -> None:
    engine = PolicyEngine.from_directory(
        SHIPPED_POLICY_DIR, mask_secret=MASK_SECRET, strict=True, shared_cache_size=1000
    )
    rows = [credit(1, "NATURAL_PERSON"), credit(2, "LEGAL_PERSON"), credit(3, "OTHER")]
    for who, matter in CALLERS:
        applying = engine.begin(who, matter)
        masked = applying.apply("CreditRecord", "JS", rows, fields={"kind", "subjectId", "id"})
        recording = engine.begin(who, matter)
        recording.record("CreditRecord", "JS", rows, fields={"kind", "subjectId", "id"})
        for row, expected in zip(rows, masked, strict=True):
            changes = recording.changes(
                "CreditRecord", "JS", row, fields={"kind", "subjectId", "id"}
            )
            copied = dict(row)
            for key, mask in changes.by_key.items():
                if copied.get(key) is not None:
                    copied[key] = None if mask is None else mask(copied[key])
            assert copied == expected
        assert recording.summary(include_clear=True) == applying.summary(include_clear=True)
