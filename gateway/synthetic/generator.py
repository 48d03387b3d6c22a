"""The synthetic delta: persons, enterprises and credit records of four regions.

``Dataset(persons_per_region, seed)`` describes, without storing it, the data
every regional database is seeded with; its rows are exactly the unified rows
(``gateway/core/entities.py``) the gateway must return, so tests compare gateway
output with them. Every record is a pure function of (seed, region, index)
(see ``hashing``), so a region streams into its database in constant memory
and any record can be asked for on its own.

Who relates to whom (representatives, credit subjects, cross-region records)
is arranged in ``relations``; this module builds the field values.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property

from gateway.core.entities import CREDIT_KINDS
from gateway.core.types import Entity, RegionCode, Row
from gateway.synthetic import keys
from gateway.synthetic.divisions import DEFAULT_PREFIXES, Division
from gateway.synthetic.hashing import Weighted, draw
from gateway.synthetic.names import (
    ENTERPRISE_STATUSES,
    ENTITY_TYPES,
    ETHNICITIES,
    INDUSTRIES,
    INSURANCE_STATUSES,
    TRADE_NAME_CHARS,
)
from gateway.synthetic.plan import LEGAL, NATURAL, RegionPlan, make_plans
from gateway.synthetic.records import (
    ADULT,
    FIRST_DECISION,
    LAST_DAY,
    credit_details,
    day_between,
    iso,
    person_name,
    phone,
    street_address,
    wan_yuan,
)
from gateway.synthetic.relations import Relations

_ETHNICITIES = Weighted([(name, weight) for name, weight, _ in ETHNICITIES])
_ENTITY_TYPES = Weighted([((name, suffix), weight) for name, weight, suffix in ENTITY_TYPES])
_STATUSES = Weighted(ENTERPRISE_STATUSES)
_INSURANCE_STATUSES = Weighted(INSURANCE_STATUSES)
_KINDS = {
    LEGAL: Weighted(list(zip(CREDIT_KINDS, (35, 40, 5, 20), strict=True))),
    NATURAL: Weighted(list(zip(CREDIT_KINDS, (30, 15, 45, 10), strict=True))),
}
_NT = len(TRADE_NAME_CHARS)
_RESIDENCE_FROM = 728_659  # 1996-01-01: residence and insurance records start here
_ESTABLISHED_FROM = 727_198  # 1992-01-01
_ESTABLISHED_SPAN = LAST_DAY - _ESTABLISHED_FROM + 1


@dataclass(frozen=True)
class Dataset:
    """A deterministic synthetic dataset: the same arguments give the same rows.

    Attributes:
        persons_per_region: persons whose household registration is in each region;
            each region also holds ``persons // 4`` enterprises and ``persons // 2``
            credit records.
        seed: any integer; different seeds give unrelated data.
        regions: region code -> admin-division prefixes, in merge order (default:
            the four provinces). A city platform takes a longer prefix (``3201``)
            and places its records in that city's districts.

    Example::

        data = Dataset(persons_per_region=1000, seed=7)
        row = data.person("JS", 42)            # {"id_number": "3201…", "name": …}
        data.residences_of(row["id_number"])   # every region's residence rows for them
    """

    persons_per_region: int
    seed: int
    regions: Mapping[RegionCode, tuple[str, ...]] = field(
        default_factory=lambda: dict(DEFAULT_PREFIXES), hash=False
    )

    def __post_init__(self) -> None:
        if not 4 <= self.persons_per_region <= keys.MAX_PERSONS:
            raise ValueError(f"persons_per_region must be between 4 and {keys.MAX_PERSONS}")

    @cached_property
    def _plans(self) -> dict[RegionCode, RegionPlan]:
        return make_plans(self.seed, self.persons_per_region, self.regions)

    @cached_property
    def _relations(self) -> Relations:
        return Relations(self._plans)

    # -- sizes ---------------------------------------------------------------

    def person_count(self, region: RegionCode) -> int:
        """Persons whose base record region ``region`` keeps."""
        return self._plans[region].persons

    def enterprise_count(self, region: RegionCode) -> int:
        """Enterprises registered in ``region``."""
        return self._plans[region].enterprises

    def credit_count(self, region: RegionCode) -> int:
        """Credit records ``region`` keeps (of every kind)."""
        return self._plans[region].credits

    # -- persons -------------------------------------------------------------

    def person_id(self, region: RegionCode, index: int) -> str:
        """The ID number of person ``index`` of ``region``."""
        return self._person_key(self._plans[region], index)[0]

    def person(self, region: RegionCode, index: int) -> Row:
        """The base record of person ``index`` of ``region``."""
        plan = self._plans[region]
        id_number, day, division, r = self._person_key(plan, index)
        ethnicity = _ETHNICITIES.pick(r % _ETHNICITIES.total)
        r //= _ETHNICITIES.total
        s = draw(plan.k_person_detail, index)
        return {
            "id_number": id_number,
            "name": person_name(r),
            "gender": "MALE" if int(id_number[16]) % 2 else "FEMALE",
            "birth_date": keys.birth_iso(day),
            "ethnicity": ethnicity,
            "household_region": plan.code,
            # The low 32 bits place the address, the high 32 pick the phone number.
            "household_address": street_address(division, plan.streets, s & 0xFFFFFFFF),
            "phone": phone(s >> 32),
        }

    def persons(self, region: RegionCode) -> Iterator[Row]:
        """Every base record ``region`` keeps."""
        for index in range(self._plans[region].persons):
            yield self.person(region, index)

    def locate_person(self, id_number: str) -> tuple[RegionCode, int] | None:
        """(region, index) of the person with this ID number, or None if not in the data."""
        slot = keys.id_slot(id_number)
        if slot is None:
            return None
        for plan in self._home_plans(id_number[:6]):
            index = plan.id_perm.inverse(slot)
            if index < plan.persons and self.person_id(plan.code, index) == id_number:
                return plan.code, index
        return None

    def _home_plans(self, area: str) -> list[RegionPlan]:
        """Plans whose prefixes cover a division code, longest prefix first.

        A city platform's prefix lies inside its province's, so a key from that
        city may belong to either: each is asked in turn.
        """
        matches = []
        for plan in self._plans.values():
            length = max((len(p) for p in plan.prefixes if area.startswith(p)), default=0)
            if length:
                matches.append((-length, plan))
        return [plan for _, plan in sorted(matches, key=lambda m: m[0])]

    def _person_key(self, plan: RegionPlan, index: int) -> tuple[str, int, Division, int]:
        r = draw(plan.k_person, index)
        division = plan.divisions[r % len(plan.divisions)]
        id_number, day = keys.id_number(division.code, plan.id_perm(index))
        return id_number, day, division, r // len(plan.divisions)

    # -- residences and social insurance --------------------------------------

    def residences(self, region: RegionCode) -> Iterator[Row]:
        """Every residence record ``region`` keeps, for persons of any region."""
        store = self._plans[region]
        for plan, index in self._relations.holders(store, residence=True):
            yield self._residence(plan, index, store)

    def social_insurance(self, region: RegionCode) -> Iterator[Row]:
        """Every social-insurance record ``region`` keeps, for persons of any region."""
        store = self._plans[region]
        for plan, index in self._relations.holders(store, residence=False):
            yield from self._insurance(plan, index, store)

    def residences_of(self, id_number: str) -> list[Row]:
        """A person's residence records in every region, in region order."""
        found = self.locate_person(id_number)
        if found is None:
            return []
        plan = self._plans[found[0]]
        held = self._relations.residence_regions(plan, found[1])
        return [self._residence(plan, found[1], self._plans[r]) for r in self._plans if r in held]

    def social_insurance_of(self, id_number: str) -> list[Row]:
        """A person's social-insurance records in every region, in region order."""
        found = self.locate_person(id_number)
        if found is None:
            return []
        plan = self._plans[found[0]]
        held = self._relations.insurance_regions(plan, found[1])
        rows: list[Row] = []
        for r in self._plans:
            if r in held:
                rows.extend(self._insurance(plan, found[1], self._plans[r]))
        return rows

    def _residence(self, plan: RegionPlan, index: int, store: RegionPlan) -> Row:
        id_number, day, _, _ = self._person_key(plan, index)
        r = draw(plan.k_residence[store.code], index)
        division, r = store.divisions[r % len(store.divisions)], r // len(store.divisions)
        since = day_between(max(keys.BIRTH_START + day + ADULT, _RESIDENCE_FROM), LAST_DAY, r)
        return {
            "person_id": id_number,
            "region": store.code,
            "address": street_address(division, store.streets, r >> 20),
            "since": iso(since),
        }

    def _insurance(self, plan: RegionPlan, index: int, store: RegionPlan) -> Iterator[Row]:
        id_number, day, _, _ = self._person_key(plan, index)
        r = draw(plan.k_insurance[store.code], index)
        # Insured away from home means insured through an employer there.
        employee = store is not plan or r % 10 < 7
        schemes = ["企业职工基本养老保险" if employee else "城乡居民基本养老保险"]
        if (r // 10) % 10 < 6:
            schemes.append("职工基本医疗保险" if employee else "城乡居民基本医疗保险")
        if employee and (r // 100) % 10 < 3:
            schemes.append("失业保险")
        r //= 1000
        status = _INSURANCE_STATUSES.pick(r % _INSURANCE_STATUSES.total)
        r //= _INSURANCE_STATUSES.total
        since = iso(day_between(max(keys.BIRTH_START + day + ADULT, _RESIDENCE_FROM), LAST_DAY, r))
        for scheme in schemes:
            yield {
                "person_id": id_number,
                "region": store.code,
                "insurance_type": scheme,
                "status": status,
                "since": since,
            }

    # -- enterprises ---------------------------------------------------------

    def uscc(self, region: RegionCode, index: int) -> str:
        """The USCC of enterprise ``index`` of ``region``."""
        plan = self._plans[region]
        r = draw(plan.k_enterprise, index)
        return keys.uscc(plan.divisions[r % len(plan.divisions)].code, plan.uscc_perm(index))

    def enterprise(self, region: RegionCode, index: int) -> Row:
        """The registration record of enterprise ``index`` of ``region``."""
        plan = self._plans[region]
        r = draw(plan.k_enterprise, index)
        division, r = plan.divisions[r % len(plan.divisions)], r // len(plan.divisions)
        trade = TRADE_NAME_CHARS[r % _NT] + TRADE_NAME_CHARS[(r // _NT) % _NT]
        r //= _NT * _NT
        industry, scope = INDUSTRIES[r % len(INDUSTRIES)]
        r //= len(INDUSTRIES)
        entity_type, suffix = _ENTITY_TYPES.pick(r % _ENTITY_TYPES.total)
        r //= _ENTITY_TYPES.total
        status = _STATUSES.pick(r % _STATUSES.total)
        r //= _STATUSES.total
        level = r % 10
        s = draw(plan.k_enterprise_detail, index)
        established, s = _ESTABLISHED_FROM + s % _ESTABLISHED_SPAN, s // _ESTABLISHED_SPAN
        rep_plan, rep_index = self._relations.representative(plan, index)
        return {
            "uscc": keys.uscc(division.code, plan.uscc_perm(index)),
            "name": f"{division.place_name}{trade}{industry}{suffix}",
            "entity_type": entity_type,
            "status": status,
            "registered_capital": wan_yuan(_capital_yuan(s)),
            "established_on": iso(established),
            "registration_authority": _registrar(division, level),
            "region": plan.code,
            "address": street_address(
                division, plan.streets, draw(plan.k_enterprise_address, index)
            ),
            "business_scope": scope,
            "legal_rep_id": self._person_key(rep_plan, rep_index)[0],
        }

    def enterprises(self, region: RegionCode) -> Iterator[Row]:
        """Every enterprise registered in ``region``."""
        for index in range(self._plans[region].enterprises):
            yield self.enterprise(region, index)

    def locate_enterprise(self, uscc: str) -> tuple[RegionCode, int] | None:
        """(region, index) of the enterprise with this USCC, or None if not in the data."""
        slot = keys.uscc_slot(uscc)
        if slot is None:
            return None
        for plan in self._home_plans(uscc[2:8]):
            index = plan.uscc_perm.inverse(slot)
            if index < plan.enterprises and self.uscc(plan.code, index) == uscc:
                return plan.code, index
        return None

    def representative_of(self, region: RegionCode, index: int) -> tuple[RegionCode, int]:
        """(region, index) of the person who legally represents an enterprise."""
        rep_plan, rep_index = self._relations.representative(self._plans[region], index)
        return rep_plan.code, rep_index

    def enterprises_of(self, id_number: str) -> list[Row]:
        """Enterprises in any region whose legal representative this person is."""
        found = self.locate_person(id_number)
        if found is None:
            return []
        return [
            self.enterprise(plan.code, index) for plan, index in self._relations.represented(*found)
        ]

    def _established(self, plan: RegionPlan, index: int) -> int:
        return _ESTABLISHED_FROM + draw(plan.k_enterprise_detail, index) % _ESTABLISHED_SPAN

    # -- credit records ------------------------------------------------------

    def credit_records(
        self, region: RegionCode, kinds: Collection[str] | None = None
    ) -> Iterator[Row]:
        """Every credit record ``region`` keeps, optionally only of some kinds."""
        plan = self._plans[region]
        for index in range(plan.credits):
            subject_type, subject_plan, subject, r = self._relations.credit_subject(plan, index)
            kind = _KINDS[subject_type].pick(r % 100)
            if kinds is None or kind in kinds:
                yield self._credit(plan, index, subject_type, subject_plan, subject, kind)

    def credit_record(self, region: RegionCode, index: int) -> Row:
        """Credit record ``index`` kept by ``region``."""
        plan = self._plans[region]
        subject_type, subject_plan, subject, r = self._relations.credit_subject(plan, index)
        kind = _KINDS[subject_type].pick(r % 100)
        return self._credit(plan, index, subject_type, subject_plan, subject, kind)

    def credit_records_of(self, subject_id: str) -> list[Row]:
        """A subject's credit records in every region, in region then record order."""
        # Either kind may be all digits: ask both registers rather than judge by the look.
        subject_type, found = NATURAL, self.locate_person(subject_id)
        if found is None:
            subject_type, found = LEGAL, self.locate_enterprise(subject_id)
        if found is None:
            return []
        records = self._relations.credit_records_about(subject_type, *found)
        return [self.credit_record(plan.code, index) for plan, index in records]

    def _credit(
        self,
        plan: RegionPlan,
        index: int,
        subject_type: str,
        subject_plan: RegionPlan,
        subject: int,
        kind: str,
    ) -> Row:
        r = draw(plan.k_credit_detail, index)
        division, r = plan.divisions[r % len(plan.divisions)], r // len(plan.divisions)
        if subject_type == LEGAL:
            subject_id = self.uscc(subject_plan.code, subject)
            earliest = self._established(subject_plan, subject)
        else:
            subject_id, day, _, _ = self._person_key(subject_plan, subject)
            earliest = keys.BIRTH_START + day + ADULT
        decided = day_between(max(earliest, FIRST_DECISION), LAST_DAY, r)
        title, number, authority, until, amount, detail = credit_details(
            kind, subject_type, division, plan.abbreviation, decided, r // 4096
        )
        return {
            "id": f"{plan.code}-CR-{index:08d}",
            "subject_id": subject_id,
            "subject_type": subject_type,
            "kind": kind,
            "title": title,
            "document_number": number,
            "authority": authority,
            "decided_on": iso(decided),
            "valid_until": until,
            "amount": amount,
            "region": plan.code,
            "detail": detail,
        }

    # -- by entity -------------------------------------------------------------

    def rows(
        self, entity: Entity, region: RegionCode, kinds: Collection[str] | None = None
    ) -> Iterator[Row]:
        """Every row of ``entity`` that ``region`` keeps (``kinds``: credit records only)."""
        if entity == "credit_record":
            return self.credit_records(region, kinds)
        streams = {
            "person": self.persons,
            "residence": self.residences,
            "social_insurance": self.social_insurance,
            "enterprise": self.enterprises,
        }
        return streams[entity](region)

    # -- finding examples for tests ----------------------------------------------

    def cross_region_person(self, region: RegionCode) -> Row:
        """The first person of ``region`` with a residence or insurance record elsewhere."""
        plan = self._plans[region]
        for index in range(plan.persons):
            if self._relations.profile(plan, index)[2] is not None:
                return self.person(region, index)
        raise LookupError(f"no person of {region} has records in another region")

    def cross_region_enterprise(self, region: RegionCode) -> Row:
        """The first enterprise of ``region`` whose legal representative lives elsewhere."""
        plan = self._plans[region]
        for index in range(plan.enterprises):
            if self._relations.representative(plan, index)[0] is not plan:
                return self.enterprise(region, index)
        raise LookupError(f"no enterprise of {region} has a representative from elsewhere")

    def serial_representative(self, region: RegionCode) -> Row:
        """The first person of ``region`` who represents more than one enterprise."""
        plan = self._plans[region]
        for index in range(plan.persons):
            if len(self.enterprises_of(self.person_id(region, index))) > 1:
                return self.person(region, index)
        raise LookupError(f"no person of {region} represents several enterprises")

    def multi_region_credit_subject(self, region: RegionCode, subject_type: str) -> str:
        """A subject of ``region`` (``NATURAL_PERSON`` or ``LEGAL_PERSON``) with credit
        records kept by at least two regions."""
        for plan in self._plans.values():
            for index in self._relations.echoes(plan):
                found_type, subject_plan, subject, _ = self._relations.credit_subject(plan, index)
                if found_type == subject_type and subject_plan.code == region:
                    if subject_type == LEGAL:
                        return self.uscc(region, subject)
                    return self.person_id(region, subject)
        raise LookupError(f"no {subject_type} of {region} has credit records in two regions")


def _capital_yuan(r: int) -> int:
    """Registered capital in whole yuan, 10 to 50,000 万元, mostly round sums."""
    if r % 4:
        round_sums = (10, 30, 50, 50, 100, 100, 100, 200, 200, 300, 500, 500, 1000, 2000, 5000)
        return round_sums[(r // 4) % len(round_sums)] * 10_000
    magnitude: int = 10 ** (5 + (r // 4) % 4)
    return min(magnitude + (r // 16) % (4 * magnitude), 500_000_000)


def _registrar(division: Division, level: int) -> str:
    """The market-regulation bureau that registered an enterprise: district, city or province."""
    if level < 6:
        return f"{division.city_name}{division.district}市场监督管理局"
    if level < 9:
        return f"{division.city_name}市场监督管理局"
    return f"{division.province}市场监督管理局"
