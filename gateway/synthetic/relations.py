"""Who relates to whom in the synthetic delta, answerable in both directions.

Every relation is a function of record indexes, arranged through invertible
permutations (``plan.RegionPlan``) so that it can be answered backwards
without scanning: the enterprises a person represents, the credit records
about a subject, the regions holding a person's residence records.

- A person's base record lives in the region of the ID prefix (一数一源).
  About 20% also have a residence and/or insurance record kept by one other
  region, about 10% a residence in their home region, and about 88%
  insurance in their home region.
- An enterprise's legal representative is a person of its own region, or of
  another region for about 25% of enterprises. Enterprise ``j`` with
  ``j % 20 == 9`` shares the representative of ``j - 1``, and ``j % 20`` in
  {18, 19} that of ``j - j % 20 + 17``, so some persons represent several.
- Credit records are kept by the region where the event happened; 80% are
  about a subject of that region. Record ``k`` with ``k % 25 == 24`` (an
  echo) is about the subject of record ``k - 1`` of the next region, so some
  subjects have records in two regions.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import partial

from gateway.core.types import RegionCode
from gateway.synthetic.hashing import draw
from gateway.synthetic.plan import LEGAL, NATURAL, RegionPlan

#: enterprise index % 20 -> how far back the enterprise whose representative it shares is.
_SHARES_WITH = {9: 1, 18: 1, 19: 2}
_SHARERS = {8: (1,), 17: (1, 2)}
#: every ECHO-th credit record repeats the subject of the next region's previous record.
ECHO = 25
#: credit slots per subject: how many primary records one region can keep about it.
_WIDTH = {LEGAL: 3, NATURAL: 2}


@dataclass(frozen=True)
class Relations:
    """The relations of one dataset, over its region plans (in the dataset's region order)."""

    plans: Mapping[RegionCode, RegionPlan]

    # -- residences and social insurance --------------------------------------

    def profile(self, plan: RegionPlan, index: int) -> tuple[bool, bool, RegionCode | None, int]:
        """(residence at home, insurance at home, the other region or None, cross mode)."""
        r = draw(plan.k_profile, index)
        local, home, cross, r = r % 10 == 0, (r // 10) % 100 < 88, (r // 1000) % 5 == 0, r // 5000
        return local, home, plan.others[r % 3] if cross else None, (r // 3) % 10

    def residence_regions(self, plan: RegionPlan, index: int) -> tuple[RegionCode, ...]:
        """The regions that keep a residence record of this person, home first."""
        local, _, other, mode = self.profile(plan, index)
        held = (plan.code,) if local else ()
        return (*held, other) if other is not None and mode < 7 else held

    def insurance_regions(self, plan: RegionPlan, index: int) -> tuple[RegionCode, ...]:
        """The regions that keep social-insurance records of this person, home first."""
        _, home, other, mode = self.profile(plan, index)
        held = (plan.code,) if home else ()
        return (*held, other) if other is not None and (mode < 4 or mode >= 7) else held

    def holders(self, store: RegionPlan, *, residence: bool) -> Iterator[tuple[RegionPlan, int]]:
        """(plan, index) of every person with a residence (or insurance) record in ``store``.

        The same decisions as ``profile``, written out: this scans every person
        of every region once per stored region and entity.
        """
        for plan in self.plans.values():
            draw_profile = partial(draw, plan.k_profile)
            if plan is store:
                for index in range(plan.persons):
                    r = draw_profile(index)
                    if (r % 10 == 0) if residence else ((r // 10) % 100 < 88):
                        yield plan, index
                continue
            wanted = plan.others.index(store.code)
            for index in range(plan.persons):
                r = draw_profile(index)
                if (r // 1000) % 5 or (r // 5000) % 3 != wanted:
                    continue
                mode = (r // 15000) % 10
                if (mode < 7) if residence else (mode < 4 or mode >= 7):
                    yield plan, index

    # -- legal representatives -------------------------------------------------

    def representative(self, plan: RegionPlan, index: int) -> tuple[RegionPlan, int]:
        """(plan, index) of the person who represents enterprise ``index`` of ``plan``."""
        base = index - _SHARES_WITH.get(index % 20, 0)
        r = draw(plan.k_representative, base)
        rep_plan = plan if r % 4 else self.plans[plan.others[(r // 4) % 3]]
        return rep_plan, plan.rep_perm[rep_plan.code](base)

    def represented(self, region: RegionCode, index: int) -> list[tuple[RegionPlan, int]]:
        """(plan, index) of every enterprise person ``index`` of ``region`` represents."""
        found = []
        for plan in self.plans.values():
            base = plan.rep_perm[region].inverse(index)
            if base >= plan.enterprises or base % 20 in _SHARES_WITH:
                continue
            rep_plan, rep_index = self.representative(plan, base)
            if rep_plan.code != region or rep_index != index:
                continue
            for offset in (0, *_SHARERS.get(base % 20, ())):
                if base + offset < plan.enterprises:
                    found.append((plan, base + offset))
        return found

    # -- credit subjects ---------------------------------------------------------

    def credit_subject(self, plan: RegionPlan, index: int) -> tuple[str, RegionPlan, int, int]:
        """(subject type, subject's plan, subject index, random bits left for the kind)."""
        if index % ECHO == ECHO - 1:
            source = self.plans[plan.next]
            subject_type, subject_plan, subject, _ = self.credit_subject(source, index - 1)
            return subject_type, subject_plan, subject, draw(plan.k_credit, index)
        r = draw(plan.k_credit, index)
        subject_type = LEGAL if r % 10 < 6 else NATURAL
        subject_plan = plan if (r // 10) % 5 else self.plans[plan.others[(r // 50) % 3]]
        slot = plan.credit_perm[(subject_plan.code, subject_type)](index)
        return subject_type, subject_plan, slot // _WIDTH[subject_type], r // 150

    def credit_records_about(
        self, subject_type: str, region: RegionCode, subject: int
    ) -> list[tuple[RegionPlan, int]]:
        """(plan, index) of every credit record about a subject, in region then record order."""
        plans = list(self.plans.values())
        width = _WIDTH[subject_type]
        hits: list[tuple[int, int]] = []
        for position, plan in enumerate(plans):
            perm = plan.credit_perm[(region, subject_type)]
            for slot in range(subject * width, subject * width + width):
                index = perm.inverse(slot)
                if index >= plan.credits or index % ECHO == ECHO - 1:
                    continue
                found_type, subject_plan, found, _ = self.credit_subject(plan, index)
                if (found_type, subject_plan.code, found) != (subject_type, region, subject):
                    continue
                hits.append((position, index))
                if (index + 1) % ECHO == ECHO - 1 and index + 1 < plan.credits:
                    hits.append(((position - 1) % len(plans), index + 1))
        return [(plans[position], index) for position, index in sorted(hits)]

    def echoes(self, plan: RegionPlan) -> range:
        """Indexes of the records ``plan`` keeps about a subject another region also records."""
        return range(ECHO - 1, plan.credits, ECHO)
