"""The direct executor answers exactly as Strawberry's per-field executor does.

Random operations over seeded data (aliases, fragments, __typename, several
roots, kinds filters, bad and unknown keys, callers with different clearances)
run through both; data, errors and the policy's account must be the same.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from graphql import (
    ExecutionResult,
    FragmentDefinitionNode,
    OperationDefinitionNode,
    parse,
    validate,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.core.identifiers import make_id_number
from gateway.core.types import DELTA_REGIONS, Caller
from gateway.edge.app import Gateway
from resolvers.context import GatewayContext
from schema import build_schema
from schema.plan import plan_operation
from tests.conftest import Seeded, gateway_settings

DIRECT = build_schema()
PER_FIELD = build_schema(direct=False)

PERSON = ("idNumber", "name", "gender", "birthDate", "ethnicity", "householdRegion",
          "householdAddress", "phone", "__typename")  # fmt: skip
COMPANY = ("uscc", "name", "entityType", "status", "registeredCapital", "establishedOn",
           "registrationAuthority", "region", "address", "businessScope")  # fmt: skip
CREDIT = ("id", "subjectId", "subjectType", "kind", "title", "documentNumber", "decidedOn",
          "amount", "region")  # fmt: skip
KINDS = ("ADMIN_PENALTY", "ADMIN_LICENSE", "DISHONEST_EXECUTEE", "COMMENDATION")
CALLERS = [
    (Caller(app="a", region="AH", roles=("joint_handling_officer",)), "JH-HUKOU-MIGRATION"),
    (Caller(app="b", region="SH", roles=("one_stop_app",)), "OS-ENTERPRISE-OPENING"),
    (Caller(app="c", region="JS", roles=("one_stop_app",)), None),
    (Caller(app="d", region="ZJ", roles=("public_portal",)), None),
]


def fields(names: tuple[str, ...]) -> st.SearchStrategy[str]:
    @st.composite
    def draw(d: st.DrawFn) -> str:
        chosen = d(st.lists(st.sampled_from(names), min_size=1, max_size=5, unique=True))
        return " ".join(
            f"{name}{index}: {name}" if d(st.booleans()) and name != "__typename" else name
            for index, name in enumerate(chosen)
        )

    return draw()


@st.composite
def credit(draw: st.DrawFn) -> str:
    kinds = draw(st.one_of(st.none(), st.lists(st.sampled_from(KINDS), max_size=2)))
    argument = "" if kinds is None else f"(kinds: [{', '.join(kinds)}])"
    return f"creditRecords{argument} {{ {draw(fields(CREDIT))} }}"


@st.composite
def person(draw: st.DrawFn, depth: int = 0) -> str:
    parts = [draw(fields(PERSON))]
    if draw(st.booleans()):
        parts.append("residences { region address since }")
    if draw(st.booleans()):
        parts.append("...Insurance")
    if draw(st.booleans()):
        parts.append(draw(credit()))
    if depth == 0 and draw(st.booleans()):
        parts.append(f"enterprises {{ {draw(company(1))} }}")
    return " ".join(parts)


@st.composite
def company(draw: st.DrawFn, depth: int = 0) -> str:
    parts = [draw(fields(COMPANY))]
    if draw(st.booleans()):
        parts.append(f"... on LegalPerson {{ {draw(credit())} }}")
    if depth == 0 and draw(st.booleans()):
        parts.append(f"legalRepresentative {{ {draw(person(1))} }}")
    return " ".join(parts)


ROOTS = ("person", "persons", "company", "companies", "search")
FRAGMENT = "fragment Insurance on NaturalPerson { socialInsurance { region insuranceType since } }"


@pytest.fixture(scope="module")
def gateway(seeded: Seeded, loop: asyncio.AbstractEventLoop) -> Iterator[Gateway]:
    gateway = Gateway.from_settings(gateway_settings(seeded.dsn))
    yield gateway
    loop.run_until_complete(gateway.close())


async def run(gateway: Gateway, schema: Any, document: str, caller: Caller, matter: str | None
              ) -> dict[str, Any]:  # fmt: skip
    policy = gateway.policy.begin(caller, matter)
    ctx = GatewayContext(caller, policy, gateway.sources, gateway.cursors, gateway.policy)
    parsed = parse(document)
    invalid = validate(schema._schema, parsed)
    if schema is DIRECT and invalid:
        result = ExecutionResult(None, invalid)  # as Strawberry answers an invalid document
    elif schema is DIRECT:
        # As the gateway runs it: the document's plan made once, handed to the executor.
        operation = parsed.definitions[0]
        assert isinstance(operation, OperationDefinitionNode)
        fragments = {
            d.name.value: d for d in parsed.definitions if isinstance(d, FragmentDefinitionNode)
        }
        plan = plan_operation(schema._schema, operation, fragments)
        assert plan is not None, document  # every generated operation is in the planned shape
        result = await schema.execute_prepared(
            parsed, variable_values=None, context_value=ctx, operation_name=None, plan=plan
        )
    else:
        result = await schema.execute(document, context_value=ctx)
    errors = sorted(
        (e.message, tuple(e.path or ()), getattr(e.original_error, "code", None))
        for e in result.errors or ()
    )
    partial = sorted((e["message"], tuple(e["path"])) for e in ctx.errors)
    data = opened(result.data, gateway)
    # The audit event's subjects too: the direct executor reads only the columns it needs.
    subjects = sorted(ctx.loaders.subjects)
    return {"data": data, "errors": errors, "partial": partial, "policy": policy.summary(),
            "subjects": subjects}  # fmt: skip


def opened(value: Any, gateway: Gateway) -> Any:
    """Cursors decrypted: each encryption differs, what they hold must not."""
    if isinstance(value, dict):
        return {
            k: gateway.cursors.decode(v)
            if k in ("cursor", "endCursor") and v
            else opened(v, gateway)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [opened(v, gateway) for v in value]
    return value


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    roots=st.lists(st.sampled_from(ROOTS), min_size=1, max_size=3),
    index=st.integers(0, 60),
    region=st.sampled_from(DELTA_REGIONS),
    caller=st.sampled_from(CALLERS),
    odd_key=st.sampled_from([None, "bad", "unknown"]),
    data=st.data(),
)
def test_both_executors_give_the_same_response(
    seeded: Seeded,
    gateway: Gateway,
    loop: asyncio.AbstractEventLoop,
    roots: list[str],
    index: int,
    region: str,
    caller: tuple[Caller, str | None],
    odd_key: str | None,
    data: st.DataObject,
) -> None:
    dataset = seeded.dataset
    person_id = dataset.person_id(region, index)
    uscc = dataset.uscc(region, index)
    extra = {None: None, "bad": person_id[:-1] + ("0" if person_id[-1] != "0" else "1"),
             "unknown": make_id_number("310101", "19000101", 998)}[odd_key]  # fmt: skip
    parts = []
    for n, root in enumerate(roots):
        if root == "person":
            parts.append(
                f'p{n}: naturalPerson(idNumber: "{extra or person_id}") {{ {data.draw(person())} }}'
            )
        elif root == "persons":
            keys = [person_id, dataset.person_id(DELTA_REGIONS[index % 4], index + 1)]
            listed = ", ".join(f'"{k}"' for k in keys)
            parts.append(
                f"ps{n}: naturalPersons(idNumbers: [{listed}]) {{ {data.draw(person())} }}"
            )
        elif root == "company":
            parts.append(f'c{n}: legalPerson(uscc: "{uscc}") {{ {data.draw(company())} }}')
        elif root == "search":
            prefix = dataset.enterprise(region, index)["name"][: data.draw(st.integers(1, 3))]
            first = data.draw(st.integers(1, 4))
            where = data.draw(st.sampled_from(["", ", region: ZJ", f", region: {region}"]))
            parts.append(
                f'ss{n}: searchLegalPersons(name: "{prefix}", first: {first}{where}) {{'
                f" edges {{ cursor node {{ {data.draw(company())} }} }}"
                " pageInfo { hasNextPage endCursor __typename } __typename }"
            )
        else:
            keys = [uscc, dataset.uscc(DELTA_REGIONS[(index + 1) % 4], index), uscc]
            listed = ", ".join(f'"{k}"' for k in keys)
            parts.append(f"cs{n}: legalPersons(usccs: [{listed}]) {{ {data.draw(company())} }}")
    document = "query { " + " ".join(parts) + " } " + FRAGMENT
    who, matter = caller
    direct = loop.run_until_complete(run(gateway, DIRECT, document, who, matter))
    per_field = loop.run_until_complete(run(gateway, PER_FIELD, document, who, matter))
    assert direct == per_field


def test_the_example_lookups_are_planned() -> None:
    from pathlib import Path

    from graphql import OperationDefinitionNode, parse

    examples = Path(__file__).parents[2] / "examples"
    for name in ("counter-lookup", "hukou-migration", "joint-handling-list", "credit-check",
                 "enterprise-opening-check"):  # fmt: skip
        document = parse((examples / f"{name}.graphql").read_text(encoding="utf-8"))
        [operation] = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        assert plan_operation(DIRECT._schema, operation, {}) is not None, name
    search = parse('{ searchLegalPersons(name: "上") { edges { cursor node { name } } } }')
    assert plan_operation(DIRECT._schema, search.definitions[0], {}) is not None  # type: ignore[arg-type]


def test_other_operations_are_left_to_the_per_field_executor() -> None:
    from graphql import parse

    for document in (
        "{ catalog { coordinate } }",
        '{ naturalPerson(idNumber: "x") { name @include(if: true) } }',
        '{ creditRecords(subjectId: "x") { edges { node { id } } } }',
    ):
        operation = parse(document).definitions[0]
        assert plan_operation(DIRECT._schema, operation, {}) is None  # type: ignore[arg-type]
