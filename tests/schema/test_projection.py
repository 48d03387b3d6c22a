"""A planned document reads only the columns it needs, and answers as if it had read them all.

Each read of a plan names its columns (``OperationPlan.columns``): the fields the
document selects, the keys its links follow, and what the gateway reads of every
row (key, identity, audit subject, order, kind, a credit record's subject type).
The regions here are real PostgreSQL sources behind a wrapper that notes what
each look-up asked for and which fields its rows came back with (the select list
of the statement sent). Every example operation, as its own caller and as the
lowest caller, must give the same data, the same policy account (every decision
and its count, masked and withheld fields included) and the same audit subjects
with the projection as without it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from graphql import FragmentDefinitionNode, OperationDefinitionNode, parse

from gateway.core.types import Caller, Row
from gateway.edge.app import Gateway
from gateway.sources import PostgresSource, Source
from gateway.sources.mapping import load_mapping
from resolvers.context import GatewayContext
from schema import build_schema
from schema.plan import plan_operation
from tests.conftest import Seeded, gateway_settings

DIRECT = build_schema()
EXAMPLES = Path(__file__).parents[2] / "examples"

#: One look-up as a source saw it: region, entity, field, the columns asked (None: all),
#: and the fields its rows came back with.
Asked = tuple[str, str, str, frozenset[str] | None, frozenset[str]]


class Recording(Source):
    """A region's PostgreSQL source, noting each look-up's columns and its rows' fields."""

    def __init__(self, inner: PostgresSource, asked: list[Asked]) -> None:
        self.inner = inner
        self.region = inner.region
        self.asked = asked

    def note(self, entity: str, field: str, columns: Any, rows: list[Row]) -> None:
        wanted = None if columns is None else frozenset(columns)
        came = frozenset(name for row in rows for name in row)
        self.asked.append((self.region, entity, field, wanted, came))

    async def fetch(
        self,
        entity: str,
        field: str,
        values: Sequence[str],
        *,
        columns: Collection[str] | None = None,
    ) -> list[Row]:
        rows = await self.inner.fetch(entity, field, values, columns=columns)
        self.note(entity, field, columns, rows)
        return rows

    async def fetch_many(
        self,
        lookups: Sequence[tuple[str, str, Sequence[str]]],
        *,
        columns: Sequence[Collection[str] | None] | None = None,
    ) -> list[list[Row]]:
        found = await self.inner.fetch_many(lookups, columns=columns)
        wanted = columns if columns is not None else [None] * len(lookups)
        for (entity, field, _), own, rows in zip(lookups, wanted, found, strict=True):
            self.note(entity, field, own, rows)
        return found

    async def search(
        self, entity: str, field: str, prefix: str, *, after: Any, limit: int
    ) -> list[Row]:
        return await self.inner.search(entity, field, prefix, after=after, limit=limit)

    async def ping(self) -> None:
        await self.inner.ping()


@pytest.fixture(scope="module")
def gateway(seeded: Seeded, loop: asyncio.AbstractEventLoop) -> Iterator[Gateway]:
    gateway = Gateway.from_settings(gateway_settings(seeded.dsn))
    yield gateway
    loop.run_until_complete(gateway.close())


@pytest.fixture(scope="module")
def asked() -> list[Asked]:
    return []


@pytest.fixture(scope="module")
def sources(
    seeded: Seeded, loop: asyncio.AbstractEventLoop, asked: list[Asked]
) -> Iterator[dict[str, Source]]:
    inner = [
        PostgresSource(s.region, s.dsn or "", load_mapping(s.mapping or ""), timeout=10)
        for s in gateway_settings(seeded.dsn).sources
    ]
    try:
        yield {source.region: Recording(source, asked) for source in inner}
    finally:
        for source in inner:
            loop.run_until_complete(source.close())


async def run(
    gateway: Gateway,
    sources: dict[str, Source],
    document: str,
    variables: dict[str, Any],
    caller: Caller,
    matter: str | None,
    *,
    projected: bool,
) -> dict[str, Any]:
    """The operation as the gateway runs a planned document; without ``projected``, the same
    plan reading every column."""
    policy = gateway.policy.begin(caller, matter)
    ctx = GatewayContext(caller, policy, sources, gateway.cursors, gateway.policy)
    parsed = parse(document)
    [operation] = [d for d in parsed.definitions if isinstance(d, OperationDefinitionNode)]
    fragments = {
        d.name.value: d for d in parsed.definitions if isinstance(d, FragmentDefinitionNode)
    }
    plan = plan_operation(DIRECT._schema, operation, fragments)
    assert plan is not None
    if not projected:
        plan = replace(plan, columns={})
    result = await DIRECT.execute_prepared(
        parsed, variable_values=variables, context_value=ctx, operation_name=None, plan=plan
    )
    return {
        "data": result.data,
        "errors": sorted(str(error) for error in result.errors or ()),
        "partial": sorted((str(e), tuple(path)) for path, e in ctx.errors),
        "policy": policy.summary(include_clear=True),
        "subjects": sorted(ctx.loaders.subjects),
    }


def example(name: str) -> str:
    return (EXAMPLES / name).read_text(encoding="utf-8")


def officer(region: str) -> Caller:
    return Caller(app="officer", region=region, roles=("joint_handling_officer",))


def counter(region: str) -> Caller:
    return Caller(app="counter", region=region, roles=("one_stop_app",))


#: The lowest caller: public data only, no matter.
PORTAL = (Caller(app="portal", region="ZJ", roles=("public_portal",)), None)


def example_runs(seeded: Seeded) -> list[tuple[str, dict[str, Any], Caller, str | None]]:
    """Each example operation with keys that reach masked and withheld fields, as the caller
    examples/README.md names and as the lowest caller."""
    data = seeded.dataset
    usccs = [data.uscc(region, i) for i in range(5) for region in ("SH", "JS", "ZJ", "AH")]
    named = [
        ("counter-lookup.graphql", {"idNumber": data.cross_region_person("SH")["id_number"]},
         counter("SH"), "OS-ENTERPRISE-OPENING"),
        ("counter-lookup.graphql", {"idNumber": data.cross_region_person("JS")["id_number"]},
         counter("SH"), "OS-ENTERPRISE-OPENING"),
        ("enterprise-opening-check.graphql",
         {"idNumber": data.multi_region_credit_subject("ZJ", "NATURAL_PERSON")},
         counter("ZJ"), "OS-ENTERPRISE-OPENING"),
        ("hukou-migration.graphql", {"idNumber": data.cross_region_person("AH")["id_number"]},
         officer("JS"), "JH-HUKOU-MIGRATION"),
        ("joint-handling-list.graphql", {"usccs": usccs}, officer("AH"), "JH-HUKOU-MIGRATION"),
        ("credit-check.graphql", {"uscc": data.multi_region_credit_subject("SH", "LEGAL_PERSON")},
         Caller(app="portal", region="JS", roles=("public_portal",)), None),
    ]  # fmt: skip
    return named + [(name, variables, *PORTAL) for name, variables, _, _ in named]


def test_every_example_answers_the_same_with_and_without_projection(
    seeded: Seeded,
    gateway: Gateway,
    sources: dict[str, Source],
    asked: list[Asked],
    loop: asyncio.AbstractEventLoop,
) -> None:
    read = 0
    decided: set[str] = set()
    for name, variables, caller, matter in example_runs(seeded):
        document = example(name)
        asked.clear()
        full = loop.run_until_complete(
            run(gateway, sources, document, variables, caller, matter, projected=False)
        )
        assert all(columns is None for _, _, _, columns, _ in asked), name
        asked.clear()
        projected = loop.run_until_complete(
            run(gateway, sources, document, variables, caller, matter, projected=True)
        )
        what = f"{name} as {caller.roles[0]} of {caller.region}"
        assert projected == full, what
        assert full["subjects"], what  # a look-up is audited whether or not it is answered
        # Every read named its columns, and its rows held those and the key looked up by only.
        for region, entity, field, columns, came in asked:
            assert columns is not None, (what, entity)
            assert came <= columns | {field}, (what, region, entity, came - columns)
        read += bool(asked)
        decided.update(e["decision"] for e in full["policy"]["fields"] if e["count"])
    assert read >= 6  # most runs read rows (some look-ups are withheld from the caller)
    assert {"CLEAR", "MASKED", "WITHHELD"} <= decided  # every kind of decision was compared


def test_the_audit_examples_have_no_plan_and_so_no_projection() -> None:
    for name in ("auditor-who-saw.graphql", "citizen-history.graphql"):
        parsed = parse(example(name))
        [operation] = [d for d in parsed.definitions if isinstance(d, OperationDefinitionNode)]
        assert plan_operation(DIRECT._schema, operation, {}) is None, name


ENTERPRISE_LOOKUP = """query EnterpriseLookup($uscc: ID!) {
  legalPerson(uscc: $uscc) { uscc name status registeredCapital }
}"""
PERSON_LOOKUP = """query PersonLookup($idNumber: ID!) {
  naturalPerson(idNumber: $idNumber) { idNumber name gender birthDate phone }
}"""
LIST_WITH_LINKS = """query List($usccs: [ID!]!) {
  legalPersons(usccs: $usccs) {
    name
    legalRepresentative { name creditRecords { title } }
    creditRecords(kinds: [ADMIN_PENALTY]) { decidedOn }
  }
}"""


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        # An enterprise by USCC, four public fields: four of its eleven columns.
        (ENTERPRISE_LOOKUP,
         {("enterprise", "uscc"): {"uscc", "name", "status", "registered_capital"}}),
        # A person by ID number, five fields: five of eight.
        (PERSON_LOOKUP,
         {("person", "id_number"): {"id_number", "name", "gender", "birth_date", "phone"}}),
        # Links: the representative's ID is read to follow it, though not selected; a credit
        # record's identity, subject, order, kind and subject type, though only one field is.
        (LIST_WITH_LINKS, {
            ("enterprise", "uscc"): {"uscc", "name", "legal_rep_id"},
            ("person", "id_number"): {"id_number", "name"},
            ("credit_record", "subject_id"): {
                "id", "subject_id", "subject_type", "kind", "title", "decided_on"},
        }),
    ],
)  # fmt: skip
def test_a_documents_reads_select_only_the_columns_it_needs(
    seeded: Seeded,
    gateway: Gateway,
    sources: dict[str, Source],
    asked: list[Asked],
    loop: asyncio.AbstractEventLoop,
    document: str,
    expected: dict[tuple[str, str], set[str]],
) -> None:
    data = seeded.dataset
    variables = {
        "uscc": data.uscc("SH", 3),
        "idNumber": data.person_id("SH", 3),
        "usccs": [data.uscc(region, 2) for region in ("SH", "JS", "ZJ", "AH")],
    }
    caller = officer("SH")
    asked.clear()
    loop.run_until_complete(
        run(gateway, sources, document, variables, caller, "JH-HUKOU-MIGRATION", projected=True)
    )
    seen: dict[tuple[str, str], set[str]] = {}
    for _, entity, field, columns, came in asked:
        assert columns is not None
        seen.setdefault((entity, field), set()).update(columns)
        # What came back is what was asked: the statement selected those columns only.
        assert not came or came == columns | {field}, (entity, came)
    assert seen == expected
