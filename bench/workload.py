"""The benchmark's operations, as callers send them, and the requests that carry them.

Each operation is a GraphQL document, a realistic caller (role, region, matter)
and a way to draw its variables from the synthetic dataset. The same request
bodies go to every server in a run: the gateway answers the document, the
floor answers by ``operationName`` (it knows the three operations by heart and
parses no GraphQL).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.core.types import DELTA_REGIONS
from gateway.synthetic import Dataset


@dataclass(frozen=True, kw_only=True)
class BenchCaller:
    """Who sends an operation: the token's claims and the ``X-Matter-Code`` header."""

    app: str
    region: str
    roles: tuple[str, ...]
    matter: str | None


#: A 一网通办 counter in Shanghai, registering an enterprise (examples/counter-lookup.graphql).
COUNTER_SH = BenchCaller(
    app="bench-counter-sh", region="SH", roles=("one_stop_app",), matter="OS-ENTERPRISE-OPENING"
)
#: A 跨省通办 officer in Anhui handling a household-registration move
#: (examples/joint-handling-list.graphql).
OFFICER_AH = BenchCaller(
    app="bench-jh-ah", region="AH", roles=("joint_handling_officer",), matter="JH-HUKOU-MIGRATION"
)

#: Q1, the counter look-up: one person, every scalar field, residences and social insurance.
#: ``ethnicity`` (L4) is asked for as "all fields" asks, and withheld by the policy.
COUNTER_LOOKUP = """\
query CounterLookup($idNumber: ID!) {
  naturalPerson(idNumber: $idNumber) {
    idNumber
    name
    gender
    birthDate
    ethnicity
    householdRegion
    householdAddress
    phone
    residences { region address since }
    socialInsurance { region insuranceType status since }
  }
}
"""

#: Q2, the joint-handling list: enterprises with their legal representatives, and the
#: credit records of both (examples/joint-handling-list.graphql, with the representatives'
#: credit records added).
JOINT_HANDLING_LIST = """\
query JointHandlingList($usccs: [ID!]!) {
  legalPersons(usccs: $usccs) {
    uscc
    name
    status
    region
    registeredCapital
    legalRepresentative {
      idNumber
      name
      phone
      householdRegion
      creditRecords { kind title decidedOn region }
    }
    creditRecords { kind title decidedOn region }
  }
}
"""

#: Q3, a name search at the counter before an enterprise is registered: one page of 20.
SEARCH_LEGAL_PERSONS = """\
query SearchLegalPersons($name: String!) {
  searchLegalPersons(name: $name, first: 20) {
    edges {
      cursor
      node { uscc name entityType status registeredCapital establishedOn region address }
    }
    pageInfo { hasNextPage endCursor }
  }
}
"""

Variables = Callable[[Dataset, random.Random, int], dict[str, Any]]


@dataclass(frozen=True, kw_only=True)
class Operation:
    """One benchmarked operation.

    Attributes:
        key: ``Q1``, ``Q2``, ``Q3``.
        title: what it is, for the tables.
        operation_name: the document's operation name (the floor routes by it).
        document: the GraphQL document.
        caller: who sends it.
        variables: draws one request's variables: ``(dataset, rng, size)``.
        size: the number of entities asked for (Q2's list length; 1 otherwise).
        variants: the only variants it runs on (None: every variant of the run).
    """

    key: str
    title: str
    operation_name: str
    document: str
    caller: BenchCaller
    variables: Variables
    size: int = 1
    variants: tuple[str, ...] | None = None

    def bodies(
        self, dataset: Dataset, count: int, seed: int, size: int | None = None
    ) -> list[bytes]:
        """``count`` request bodies with variables drawn from ``dataset`` (deterministic)."""
        rng = random.Random(f"{self.key}:{size or self.size}:{seed}")
        return [
            orjson.dumps(
                {
                    "query": self.document,
                    "operationName": self.operation_name,
                    "variables": self.variables(dataset, rng, size or self.size),
                }
            )
            for _ in range(count)
        ]


def _counter_person(dataset: Dataset, rng: random.Random, _: int) -> dict[str, Any]:
    # A person registered in the counter's own region: the matter releases their
    # residences and social insurance (kept by any region; a fifth of them have
    # records elsewhere). For a person of another region the policy withholds both
    # links, and the look-up would be one query instead of nine.
    region = COUNTER_SH.region
    return {"idNumber": dataset.person_id(region, rng.randrange(dataset.person_count(region)))}


def _enterprise_list(dataset: Dataset, rng: random.Random, size: int) -> dict[str, Any]:
    # A case list spans the delta: enterprises of every region, in no particular order.
    chosen: dict[str, None] = {}
    while len(chosen) < size:
        region = rng.choice(DELTA_REGIONS)
        chosen[dataset.uscc(region, rng.randrange(dataset.enterprise_count(region)))] = None
    return {"usccs": list(chosen)}


def _name_prefix(dataset: Dataset, rng: random.Random, _: int) -> dict[str, Any]:
    # What a clerk types: the place name and the first character of a trade name
    # (e.g. 上海凯), a few hundred matches in one region, none in the others.
    region = rng.choice(DELTA_REGIONS)
    name = dataset.enterprise(region, rng.randrange(dataset.enterprise_count(region)))["name"]
    return {"name": name[:3]}


Q1 = Operation(
    key="Q1",
    title="counter look-up: 1 person, residences, social insurance",
    operation_name="CounterLookup",
    document=COUNTER_LOOKUP,
    caller=COUNTER_SH,
    variables=_counter_person,
)
Q2 = Operation(
    key="Q2",
    title="joint-handling list: 50 enterprises, representatives, credit records",
    operation_name="JointHandlingList",
    document=JOINT_HANDLING_LIST,
    caller=OFFICER_AH,
    variables=_enterprise_list,
    size=50,
)
Q3 = Operation(
    key="Q3",
    title="searchLegalPersons by name prefix, first 20",
    operation_name="SearchLegalPersons",
    document=SEARCH_LEGAL_PERSONS,
    caller=COUNTER_SH,
    variables=_name_prefix,
)


# -- single-region look-ups, measured against a peer (bench/postgraphile.py) -----------------

#: A public credit portal in Shanghai (双公示): public data only, no matter.
PORTAL_SH = BenchCaller(app="bench-portal-sh", region="SH", roles=("public_portal",), matter=None)

#: L1: one enterprise by USCC, four public (L1) fields: nothing audited.
ENTERPRISE_LOOKUP = """\
query EnterpriseLookup($uscc: ID!) {
  legalPerson(uscc: $uscc) { uscc name status registeredCapital }
}
"""

#: L2: one person by ID number, five fields of grade L2-L3 under a matter: audited.
PERSON_LOOKUP = """\
query PersonLookup($idNumber: ID!) {
  naturalPerson(idNumber: $idNumber) { idNumber name gender birthDate phone }
}
"""

#: The look-ups run on the gateway, the floor and the peer only (``--variants`` still
#: decides which of those start).
LOOKUP_VARIANTS = ("gateway", "floor", "postgraphile")


def _sh_enterprise(dataset: Dataset, rng: random.Random, _: int) -> dict[str, Any]:
    # One region's API: the peer serves Shanghai's database, so every key is Shanghai's.
    return {"uscc": dataset.uscc("SH", rng.randrange(dataset.enterprise_count("SH")))}


L1 = Operation(
    key="L1",
    title="enterprise by USCC, 4 public fields (not audited), Shanghai",
    operation_name="EnterpriseLookup",
    document=ENTERPRISE_LOOKUP,
    caller=PORTAL_SH,
    variables=_sh_enterprise,
    variants=LOOKUP_VARIANTS,
)
L2 = Operation(
    key="L2",
    title="person by ID number, 5 fields, counter with matter (audited), Shanghai",
    operation_name="PersonLookup",
    document=PERSON_LOOKUP,
    caller=COUNTER_SH,
    variables=_counter_person,
    variants=LOOKUP_VARIANTS,
)

OPERATIONS = {op.key: op for op in (Q1, Q2, Q3, L1, L2)}
