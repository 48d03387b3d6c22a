"""The resource catalog (资源目录): what exists, how it is graded, and what this
caller would get, with and without the matter in hand.

Backs the ``catalog`` query: a frontend lists every field coordinate with its
grade, mask rule and the regions that provide it, and, per providing region,
the caller's decision under the current matter and without one, so a caller
can see what a matter unlocks before asking for data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.core.types import Caller
from policies.decisions import FieldDecision
from policies.engine import PolicyEngine
from policies.grades import NATURAL_PERSON, grade_name


@dataclass(frozen=True, slots=True, kw_only=True)
class RegionDecision:
    """The caller's decision for a field kept by one region.

    Attributes:
        region: the owning region.
        with_matter: the decision under the request's matter (None without one).
        without_matter: the decision with no matter.
    """

    region: str
    with_matter: FieldDecision | None
    without_matter: FieldDecision

    def as_dict(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "withMatter": self.with_matter.as_dict() if self.with_matter else None,
            "withoutMatter": self.without_matter.as_dict(),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class CatalogEntry:
    """One field coordinate of the resource catalog.

    Attributes:
        coordinate: ``Type.field``.
        type_name: the GraphQL type.
        field: the GraphQL field.
        grade: ``L1``..``L4`` (for a credit record about a natural person, the raised grade).
        mask: the mask rule, or None if the field is never shown masked.
        link: the field leads to other records.
        personal: a natural person's data (L3+ needs a matter).
        subject_type: for credit records, which kind of subject this entry is about.
        note: the catalog's reason or remark.
        regions: the regions that provide it.
        decisions: per region, what this caller gets.
    """

    coordinate: str
    type_name: str
    field: str
    grade: str
    mask: str | None
    link: bool
    personal: bool
    subject_type: str | None
    note: str
    regions: tuple[str, ...]
    decisions: tuple[RegionDecision, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "coordinate": self.coordinate,
            "type": self.type_name,
            "field": self.field,
            "grade": self.grade,
            "mask": self.mask,
            "link": self.link,
            "personal": self.personal,
            "subjectType": self.subject_type,
            "note": self.note,
            "regions": list(self.regions),
            "decisions": [d.as_dict() for d in self.decisions],
        }


def catalog_entries(engine: PolicyEngine, caller: Caller, matter: str | None) -> list[CatalogEntry]:
    """Every field coordinate with this caller's decisions, in catalog order.

    Credit-record fields appear twice, once about an enterprise and once about
    a natural person, since their grades differ.

    Raises:
        Forbidden: the matter is not registered or the caller may not use it.
        PolicyError: no valid policy is loaded.
    """
    without = engine.begin(caller, None)
    within = engine.begin(caller, matter) if matter else None
    catalog = without.snapshot.catalog
    regions = without.snapshot.regions.codes
    entries: list[CatalogEntry] = []
    for type_spec in catalog.types.values():
        subjects: tuple[str | None, ...] = (None,)
        if type_spec.natural_person_min_grade is not None:
            subjects = ("LEGAL_PERSON", NATURAL_PERSON)
        for subject in subjects:
            about_person = subject == NATURAL_PERSON
            for spec in type_spec.fields.values():
                decisions = tuple(
                    RegionDecision(
                        region=region,
                        with_matter=(
                            within.decide(spec.coordinate, region, subject_type=subject)
                            if within
                            else None
                        ),
                        without_matter=without.decide(
                            spec.coordinate, region, subject_type=subject
                        ),
                    )
                    for region in regions
                )
                grade = spec.grade
                if about_person and type_spec.natural_person_min_grade is not None:
                    grade = max(grade, type_spec.natural_person_min_grade)
                entries.append(
                    CatalogEntry(
                        coordinate=spec.coordinate,
                        type_name=spec.type_name,
                        field=spec.name,
                        grade=grade_name(grade),
                        mask=spec.mask,
                        link=spec.link,
                        personal=spec.personal or about_person,
                        subject_type=subject,
                        note=spec.note,
                        regions=regions,
                        decisions=decisions,
                    )
                )
    return entries


def matter_entries(engine: PolicyEngine, caller: Caller) -> list[dict[str, Any]]:
    """The registered matters, each marked usable or not by this caller's roles."""
    snap = engine.snapshot
    roles = frozenset().union(*(snap.rules.inherited_roles(r) for r in caller.roles))
    return [
        {
            "code": m.code,
            "name": m.name,
            "basis": m.basis,
            "description": m.description,
            "usable": not m.roles.isdisjoint(roles),
        }
        for m in snap.matters.matters.values()
    ]
