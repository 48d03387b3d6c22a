"""Per-region constants of a dataset: sizes, random streams and permutations.

Computed once per ``Dataset`` so that building a record only does arithmetic.
Each stream key names what it drives (``"person"``, ``"residence:JS"``), so
adding a stream never shifts the values of another.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gateway.core.types import RegionCode
from gateway.synthetic import keys
from gateway.synthetic.divisions import (
    DEFAULT_PREFIXES,
    Division,
    abbreviation_for,
    divisions_for,
    streets_for,
)
from gateway.synthetic.hashing import Affine, stream_key

LEGAL = "LEGAL_PERSON"
NATURAL = "NATURAL_PERSON"


@dataclass(frozen=True, eq=False, slots=True)
class RegionPlan:
    """Everything about one region that does not depend on a record index.

    Attributes:
        code: the region.
        prefixes: its admin-division prefixes (``32``, or ``3201`` for a city).
        persons / enterprises / credits: how many base records of each it keeps.
        others: the other regions, for choosing a cross-region counterpart.
        next: the region whose credit subjects this one's echo records repeat.
        k_*: 64-bit stream keys (see ``hashing.draw``).
        id_perm: index -> ID slot (birth day and sequence), a bijection.
        uscc_perm: index -> USCC organisation-code body, a bijection.
        rep_perm: per representative's region, base enterprise -> person index.
        credit_perm: per (subject region, subject type), record -> subject slot.
    """

    code: RegionCode
    prefixes: tuple[str, ...]
    persons: int
    enterprises: int
    credits: int
    divisions: tuple[Division, ...]
    streets: tuple[str, ...]
    abbreviation: str
    others: tuple[RegionCode, ...]
    next: RegionCode
    k_person: int
    k_person_detail: int
    k_profile: int
    k_residence: Mapping[RegionCode, int]
    k_insurance: Mapping[RegionCode, int]
    k_enterprise: int
    k_enterprise_detail: int
    k_enterprise_address: int
    k_representative: int
    k_credit: int
    k_credit_detail: int
    id_perm: Affine
    uscc_perm: Affine
    rep_perm: Mapping[RegionCode, Affine]
    credit_perm: Mapping[tuple[RegionCode, str], Affine]


def make_plans(
    seed: int, persons: int, regions: Mapping[RegionCode, Sequence[str]] = DEFAULT_PREFIXES
) -> dict[RegionCode, RegionPlan]:
    """The plans of ``regions`` (code -> admin-division prefixes), in their order.

    A region's divisions are every division its prefixes cover, so a city
    platform (prefix ``3201``) places its people in that city's districts.
    """
    enterprises, credits = persons // 4, persons // 2
    codes = tuple(regions)
    plans = {}
    for position, code in enumerate(codes):
        prefixes = regions[code]

        def key(name: str, code: str = code) -> int:
            return stream_key(seed, code, name)

        plans[code] = RegionPlan(
            code=code,
            persons=persons,
            enterprises=enterprises,
            credits=credits,
            prefixes=tuple(prefixes),
            divisions=divisions_for(prefixes),
            streets=streets_for(prefixes),
            abbreviation=abbreviation_for(prefixes),
            others=tuple(r for r in codes if r != code),
            next=codes[(position + 1) % len(codes)],
            k_person=key("person"),
            k_person_detail=key("person-detail"),
            k_profile=key("profile"),
            k_residence={r: key(f"residence:{r}") for r in codes},
            k_insurance={r: key(f"insurance:{r}") for r in codes},
            k_enterprise=key("enterprise"),
            k_enterprise_detail=key("enterprise-detail"),
            k_enterprise_address=key("enterprise-address"),
            k_representative=key("representative"),
            k_credit=key("credit"),
            k_credit_detail=key("credit-detail"),
            id_perm=Affine.from_key(keys.MAX_PERSONS, key("id-slots")),
            uscc_perm=Affine.from_key(keys.USCC_BODY_SPACE, key("uscc-bodies")),
            rep_perm={r: Affine.from_key(persons, key(f"representative:{r}")) for r in codes},
            credit_perm={
                (r, kind): Affine.from_key(
                    3 * enterprises if kind == LEGAL else 2 * persons, key(f"credit:{r}:{kind}")
                )
                for r in codes
                for kind in (LEGAL, NATURAL)
            },
        )
    return plans
