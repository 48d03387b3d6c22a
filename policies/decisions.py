"""How one field of one owning region is decided for one caller.

The rule (DESIGN.md, "Policy"): for a field of grade g owned by region R, the
caller's effective clearance c decides: g <= c clear, g = c + 1 masked,
otherwise withheld. In order, the steps are:

1. A coordinate missing from the catalog, or an owner that is not a delta
   region, is withheld: the gateway fails closed.
2. A credit record about a natural person counts as at least the catalog's
   ``natural_person_min_grade`` (L3), and as personal data.
3. The owner's negative list (负面清单) withholds the field from callers of
   other regions, whatever anyone is granted.
4. For each of the caller's roles, Casbin is asked whether the role holds
   clearance g, then g-1, ... down to L2 for (owner, matter, field). A deny
   line for any role withholds the field: deny wins. Every authenticated
   caller holds L1 without a grant.
5. Personal data of grade ``purpose_required_from`` (L3) and above counts for a
   role only under a matter that role may use; without one it is withheld.
6. The best role decides; a masked decision for a field without a mask rule
   becomes withheld.

Casbin is consulted at most ``1 + 3 x roles`` times per field coordinate and
owner, never per row; ``OperationPolicy`` memoises the result per operation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple

from policies.grades import LOWEST_GRADE, grade_name
from policies.rules import PolicyLine
from policies.snapshot import PolicySnapshot

#: Every authenticated caller holds this clearance everywhere, without a grant.
BASELINE_CLEARANCE = LOWEST_GRADE


class Decision(StrEnum):
    """What happens to a field's value."""

    CLEAR = "CLEAR"
    MASKED = "MASKED"
    WITHHELD = "WITHHELD"


class Reason(StrEnum):
    """Why: one code per step above, stable for clients and audit records."""

    WITHIN_CLEARANCE = "WITHIN_CLEARANCE"  # clear: g <= c
    ONE_ABOVE_CLEARANCE = "ONE_ABOVE_CLEARANCE"  # masked: g = c + 1
    ABOVE_CLEARANCE = "ABOVE_CLEARANCE"  # withheld: g > c + 1
    NO_MASK_RULE = "NO_MASK_RULE"  # withheld: g = c + 1 but the field cannot be masked
    NO_MATTER = "NO_MATTER"  # withheld: personal data L3+ without a matter the role may use
    DENIED = "DENIED"  # withheld: a deny line matched
    NEGATIVE_LIST = "NEGATIVE_LIST"  # withheld: the owner never releases it to other regions
    NOT_IN_CATALOG = "NOT_IN_CATALOG"  # withheld: unknown coordinate
    UNKNOWN_OWNER = "UNKNOWN_OWNER"  # withheld: owner is not a delta region
    DECIDED_BELOW = "DECIDED_BELOW"  # masked or withheld by the lower gateway (the cascade)


@dataclass(frozen=True, slots=True, kw_only=True)
class FieldDecision:
    """The decision for one (field coordinate, owning region) in one operation.

    Attributes:
        decision: clear, masked or withheld.
        grade: the field's effective grade (None for an unknown coordinate).
        clearance: the caller's effective clearance for it (None where it was not
            needed: negative list, deny, no matter, unknown field or owner).
        rule: the mask rule applied when masked, else None.
        reason: why, as a stable code.
        basis: the file line or rule that decided, for explanations and logs
            (e.g. ``policy.csv:27``).
    """

    decision: Decision
    grade: int | None
    clearance: int | None
    rule: str | None
    reason: Reason
    basis: str

    @property
    def released(self) -> bool:
        """True if the value (clear or masked) is returned; for a link, if it is followed."""
        return self.decision is not Decision.WITHHELD

    def describe(self) -> str:
        """One line for a person: ``MASKED (grade L3, clearance L2, rule PHONE, ...)``."""
        parts = []
        if self.grade is not None:
            parts.append(f"grade {grade_name(self.grade)}")
        if self.clearance is not None:
            parts.append(f"clearance {grade_name(self.clearance)}")
        if self.rule:
            parts.append(f"rule {self.rule}")
        parts.append(self.reason.value)
        return f"{self.decision.value} ({', '.join(parts)})"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, grades as ``L1``..``L4``."""
        return {
            "decision": self.decision.value,
            "grade": None if self.grade is None else grade_name(self.grade),
            "clearance": None if self.clearance is None else grade_name(self.clearance),
            "rule": self.rule,
            "reason": self.reason.value,
        }


_RANK = {Decision.WITHHELD: 0, Decision.MASKED: 1, Decision.CLEAR: 2}


def evaluate(
    snapshot: PolicySnapshot,
    *,
    home: str,
    roles: Sequence[tuple[str, str]],
    coordinate: str,
    owner: str,
    natural_person: bool = False,
    trace: list[str] | None = None,
) -> FieldDecision:
    """Decide one field of one owner for one caller (the steps in the module docstring).

    Args:
        snapshot: the policy in force.
        home: the caller's region.
        roles: each of the caller's roles with the matter code it may use (``""`` if none).
        coordinate: ``Type.field``.
        owner: the region that keeps the data.
        natural_person: the record is about a natural person (credit records).
        trace: if given, one line per step is appended (for ``explain``).
    """
    note = trace.append if trace is not None else _ignore
    spec = snapshot.catalog.fields.get(coordinate)
    if spec is None:
        note(f"{coordinate} is not in catalog.toml: withheld (fail closed)")
        return _withheld(None, None, Reason.NOT_IN_CATALOG, "catalog.toml")
    if owner not in snapshot.regions:
        note(f"owner {owner!r} is not one of {', '.join(snapshot.regions.codes)}: withheld")
        return _withheld(spec.grade, None, Reason.UNKNOWN_OWNER, "region registry")

    grade, personal = spec.grade, spec.personal
    type_spec = snapshot.catalog.types[spec.type_name]
    note(f"grade {grade_name(grade)}, mask {spec.mask or 'none'} (catalog.toml {coordinate})")
    if natural_person and type_spec.natural_person_min_grade is not None:
        personal = True
        if type_spec.natural_person_min_grade > grade:
            grade = type_spec.natural_person_min_grade
            note(f"about a natural person: at least {grade_name(grade)} (catalog.toml)")

    rules = snapshot.rules
    enforce = rules.enforcer.enforce_ex
    listed, found = enforce(rules.enforcer.new_enforce_context("2"), home, owner, coordinate)
    if listed:
        line = rules.line_for("p2", found)
        note(f"on {owner}'s negative list for callers from other regions: {line}")
        if found[0] == "*":
            # A line for every region reads, for this owner, as the owner's own line.
            note(f"(`*` is every region: here p2, {owner}, {found[1]})")
        return _withheld(grade, None, Reason.NEGATIVE_LIST, _ref(line))
    note(f"not on {owner}'s negative list for a caller from {home}")

    needs_matter = personal and grade >= snapshot.catalog.purpose_required_from
    best = _Outcome(
        Decision.WITHHELD,
        None,
        Reason.NO_MATTER if needs_matter else Reason.ABOVE_CLEARANCE,
        "catalog.toml [rules] purpose_required_from" if needs_matter else "no grant",
    )
    for role, matter in roles or (("", ""),):
        # Without a matter, personal data of this grade is withheld for this role
        # whatever it is granted; one question is still asked, to find deny lines.
        purpose_missing = needs_matter and not matter
        outcome = _role_outcome(
            snapshot, home, role, matter, coordinate, owner, grade, note, deny_only=purpose_missing
        )
        if outcome.reason is Reason.DENIED:
            return _withheld(grade, None, Reason.DENIED, outcome.basis)
        if purpose_missing:
            note(
                f"role {role}: personal data of {grade_name(grade)} needs a matter the role may use"
            )
            continue
        if (_RANK[outcome.decision], outcome.clearance or 0) > (
            _RANK[best.decision],
            best.clearance or 0,
        ):
            best = outcome

    if best.decision is Decision.MASKED and spec.mask is None:
        note("masked, but the field has no mask rule: withheld")
        return _withheld(grade, best.clearance, Reason.NO_MASK_RULE, best.basis)
    note(f"decision: {best.decision.value}")
    return FieldDecision(
        decision=best.decision,
        grade=grade,
        clearance=best.clearance,
        rule=spec.mask if best.decision is Decision.MASKED else None,
        reason=best.reason,
        basis=best.basis,
    )


class _Outcome(NamedTuple):
    decision: Decision
    clearance: int | None
    reason: Reason
    basis: str


def _role_outcome(
    snapshot: PolicySnapshot,
    home: str,
    role: str,
    matter: str,
    coordinate: str,
    owner: str,
    grade: int,
    note: Callable[[str], None],
    *,
    deny_only: bool,
) -> _Outcome:
    """One role's best outcome: ask for clearance g, g-1, ... down to L2.

    A deny line matches at any level, so the first question finds it. With
    ``deny_only`` only that first question is asked.
    """
    rules = snapshot.rules
    shown = f"role {role or '(none)'} under matter {matter or '(none)'}"
    # Grade L1 still asks once: a deny line may cover it.
    levels = range(grade, BASELINE_CLEARANCE, -1) if grade > BASELINE_CLEARANCE else (grade,)
    for level in levels:
        granted, found = rules.enforcer.enforce_ex(
            role, home, owner, matter, coordinate, grade_name(level)
        )
        line = rules.line_for("p", found) if found else None
        if line is not None and line.is_deny:
            note(f"{shown}: denied by {line}")
            return _Outcome(Decision.WITHHELD, None, Reason.DENIED, _ref(line))
        if granted:
            clearance = (line.level if line is not None else None) or level
            note(f"{shown}: clearance {grade_name(clearance)} from {line}")
            return _outcome(grade, clearance, _ref(line))
        note(f"{shown}: no grant of {grade_name(level)}")
        if deny_only:
            return _Outcome(Decision.WITHHELD, None, Reason.NO_MATTER, "")
    note(f"{shown}: clearance {grade_name(BASELINE_CLEARANCE)} (every authenticated caller)")
    return _outcome(grade, BASELINE_CLEARANCE, "baseline L1")


def _outcome(grade: int, clearance: int, basis: str) -> _Outcome:
    if grade <= clearance:
        return _Outcome(Decision.CLEAR, clearance, Reason.WITHIN_CLEARANCE, basis)
    if grade == clearance + 1:
        return _Outcome(Decision.MASKED, clearance, Reason.ONE_ABOVE_CLEARANCE, basis)
    return _Outcome(Decision.WITHHELD, clearance, Reason.ABOVE_CLEARANCE, basis)


def _withheld(
    grade: int | None, clearance: int | None, reason: Reason, basis: str
) -> FieldDecision:
    return FieldDecision(
        decision=Decision.WITHHELD,
        grade=grade,
        clearance=clearance,
        rule=None,
        reason=reason,
        basis=basis,
    )


def _ref(line: PolicyLine | None) -> str:
    return line.ref if line is not None else "policy.csv"


def _ignore(_: str) -> None:
    return None
