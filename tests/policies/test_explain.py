"""``policy explain``: the decision and the policy lines behind it, pointing at real lines."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway.core.errors import PolicyError
from policies import SHIPPED_POLICY_DIR, PolicyEngine, explain
from tests.policies.conftest import MASK_SECRET, append

POLICY_LINES = (SHIPPED_POLICY_DIR / "policy.csv").read_text(encoding="utf-8").splitlines()


def cited_lines(text: str) -> list[tuple[int, str]]:
    """Every ``policy.csv:N: rule`` the explanation cites."""
    return [(int(n), rule) for n, rule in re.findall(r"policy\.csv:(\d+): ([^\n]+)", text)]


def assert_citations_are_real(text: str) -> None:
    cited = cited_lines(text)
    assert cited
    for number, rule in cited:
        assert POLICY_LINES[number - 1].strip() == rule


def test_masked_phone_is_explained_by_the_l2_grant(engine: PolicyEngine) -> None:
    text = explain(
        engine,
        app="counter-01",
        region="SH",
        roles="one_stop_app",
        matter="OS-ENTERPRISE-OPENING",
        coordinate="NaturalPerson.phone",
        owner="JS",
    )
    first = text.splitlines()[0]
    assert first.startswith("decision: MASKED")
    assert "rule PHONE" in first
    assert "grade L3" in text
    assert "no grant of L3" in text
    assert "p, one_stop_app, *, *, *, L2, allow" in text
    assert "企业开办" in text
    assert_citations_are_real(text)


def test_negative_list_is_cited(engine: PolicyEngine) -> None:
    text = explain(
        engine,
        app="officer",
        region="JS",
        roles=["joint_handling_officer"],
        matter="JH-HUKOU-MIGRATION",
        coordinate="NaturalPerson.ethnicity",
        owner="AH",
    )
    assert text.startswith("decision: WITHHELD")
    assert "NEGATIVE_LIST" in text
    assert "p2, AH, NaturalPerson.ethnicity" in text
    assert_citations_are_real(text)


def test_auditor_deny_is_cited(engine: PolicyEngine) -> None:
    text = explain(
        engine,
        app="audit",
        region="NATIONAL",
        roles="auditor",
        matter=None,
        coordinate="NaturalPerson.name",
        owner="SH",
    )
    assert "DENIED" in text.splitlines()[0]
    assert "denied by policy.csv:" in text
    assert_citations_are_real(text)


def test_missing_matter_is_named_as_the_reason(engine: PolicyEngine) -> None:
    text = explain(
        engine,
        app="counter-01",
        region="SH",
        roles="one_stop_app",
        matter=None,
        coordinate="NaturalPerson.phone",
        owner="SH",
    )
    assert "NO_MATTER" in text.splitlines()[0]
    assert "needs a matter" in text
    assert "matter: none" in text


def test_natural_person_credit_record_floor_is_shown(engine: PolicyEngine) -> None:
    text = explain(
        engine,
        app="portal",
        region="AH",
        roles="public_portal",
        matter=None,
        coordinate="CreditRecord.title",
        owner="JS",
        subject_type="NATURAL_PERSON",
    )
    assert "about a natural person: at least L3" in text
    assert text.startswith("decision: WITHHELD")


def test_baseline_clearance_is_named(engine: PolicyEngine) -> None:
    text = explain(
        engine,
        app="portal",
        region="AH",
        roles="public_portal",
        matter=None,
        coordinate="LegalPerson.uscc",
        owner="JS",
    )
    assert text.startswith("decision: CLEAR")
    assert "every authenticated caller" in text


def test_forbidden_matter_is_explained_not_raised(engine: PolicyEngine) -> None:
    text = explain(
        engine,
        app="portal",
        region="AH",
        roles="public_portal",
        matter="JH-HUKOU-MIGRATION",
        coordinate="NaturalPerson.name",
        owner="AH",
    )
    assert text.startswith("decision: FORBIDDEN")
    assert "may not handle" in text


def test_unknown_field_is_withheld(engine: PolicyEngine) -> None:
    text = explain(
        engine,
        app="a",
        region="SH",
        roles="one_stop_app",
        matter=None,
        coordinate="NaturalPerson.shoeSize",
        owner="SH",
    )
    assert text.startswith("decision: WITHHELD")
    assert "not in catalog.toml" in text


def test_explain_without_a_valid_policy_raises(policy_dir: Path) -> None:
    append(policy_dir / "policy.csv", "garbage\n")
    engine = PolicyEngine.from_directory(policy_dir, mask_secret=MASK_SECRET)
    with pytest.raises(PolicyError):
        explain(
            engine,
            app="a",
            region="SH",
            roles="one_stop_app",
            matter=None,
            coordinate="NaturalPerson.name",
            owner="SH",
        )
