"""The resource catalog (资源目录) and the registered matters, as the caller sees them.

A frontend asks these before asking for data: every field coordinate with its
grade, mask rule and providing regions, and what this caller would get for it
per region, under the current matter and without one.
"""

from __future__ import annotations

from enum import StrEnum

import strawberry

from policies import catalog_entries, matter_entries
from policies.decisions import FieldDecision as PolicyDecision
from policies.engine import PolicyEngine
from resolvers.context import GatewayContext
from schema.enums import Region, SubjectType
from schema.types import Info


@strawberry.enum(description="What a caller gets for a field.")
class Decision(StrEnum):
    CLEAR = "CLEAR"
    MASKED = "MASKED"
    WITHHELD = "WITHHELD"


@strawberry.type(description="One decision: the outcome, and the grade and clearance behind it.")
class FieldDecision:
    decision: Decision
    grade: str | None = strawberry.field(description="L1..L4.")
    clearance: str | None = strawberry.field(description="The caller's clearance, L1..L4.")
    rule: str | None = strawberry.field(description="The mask rule applied when masked.")
    reason: str = strawberry.field(description="A stable code, e.g. ONE_ABOVE_CLEARANCE.")

    @classmethod
    def of(cls, found: PolicyDecision) -> FieldDecision:
        shown = found.as_dict()
        return cls(
            decision=Decision(shown["decision"]),
            grade=shown["grade"],
            clearance=shown["clearance"],
            rule=shown["rule"],
            reason=shown["reason"],
        )


@strawberry.type(description="The caller's decisions for a field kept by one region.")
class RegionDecision:
    region: Region
    with_matter: FieldDecision | None = strawberry.field(
        description="Under the request's X-Matter-Code; null without one."
    )
    without_matter: FieldDecision


@strawberry.type(description="One field coordinate of the unified schema, graded.")
class CatalogField:
    coordinate: str = strawberry.field(description="Type.field, e.g. NaturalPerson.phone.")
    type_name: str
    field: str
    grade: str
    mask: str | None
    link: bool = strawberry.field(description="The field leads to other records.")
    personal: bool = strawberry.field(description="Personal data: L3+ needs a matter.")
    subject_type: SubjectType | None = strawberry.field(
        description="For credit records: which kind of subject this entry is about."
    )
    note: str
    regions: list[Region]
    decisions: list[RegionDecision]


@strawberry.type(description="A registered administrative matter (事项).")
class Matter:
    code: str
    name: str
    basis: str
    description: str | None
    usable: bool = strawberry.field(description="Whether one of the caller's roles may use it.")


@strawberry.type
class CatalogQuery:
    @strawberry.field(description="Every field coordinate with its grade and your decisions.")
    def catalog(self, info: Info) -> list[CatalogField]:
        ctx = info.context
        entries = catalog_entries(_engine(ctx), ctx.caller, ctx.policy.matter_code)
        return [
            CatalogField(
                coordinate=entry.coordinate,
                type_name=entry.type_name,
                field=entry.field,
                grade=entry.grade,
                mask=entry.mask,
                link=entry.link,
                personal=entry.personal,
                subject_type=SubjectType(entry.subject_type) if entry.subject_type else None,
                note=entry.note,
                regions=[Region(region) for region in entry.regions],
                decisions=[
                    RegionDecision(
                        region=Region(d.region),
                        with_matter=(
                            FieldDecision.of(d.with_matter) if d.with_matter is not None else None
                        ),
                        without_matter=FieldDecision.of(d.without_matter),
                    )
                    for d in entry.decisions
                ],
            )
            for entry in entries
        ]

    @strawberry.field(description="The registered matters, marked usable or not by you.")
    def matters(self, info: Info) -> list[Matter]:
        return [Matter(**m) for m in matter_entries(_engine(info.context), info.context.caller)]


def _engine(ctx: GatewayContext) -> PolicyEngine:
    # The app always passes its engine; a context built without one has no catalog.
    if ctx.engine is None:
        raise RuntimeError("the resource catalog needs the policy engine")
    return ctx.engine
