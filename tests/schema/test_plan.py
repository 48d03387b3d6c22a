"""The planner reads what it plans from the schema: no field is named in the executor.

A scalar field added to an object type (its mapping entries, its grade, the
Strawberry attribute and the SDL snapshot) is planned with nothing changed in
``schema/plan.py`` or ``schema/direct.py``: these tests select every field of
every object type reachable from the planned roots, found by walking the schema.
"""

from __future__ import annotations

import re
from pathlib import Path

from graphql import (
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    OperationDefinitionNode,
    get_named_type,
    parse,
)

from resolvers.roots import described
from schema import build_schema
from schema.plan import Link, ObjectPlan, OperationPlan, plan_operation

SCHEMA: GraphQLSchema = build_schema()._schema
EXECUTOR = Path(__file__).parents[2] / "schema"


def planned_roots() -> list[str]:
    """The root fields whose Strawberry metadata describes how they are answered."""
    query = SCHEMA.query_type
    assert query is not None
    found = []
    for name, field in query.fields.items():
        definition = (field.extensions or {}).get("strawberry-definition")
        if described(getattr(definition, "metadata", None)) is not None:
            found.append(name)
    return found


def every_field(type_: GraphQLObjectType, path: frozenset[str], reached: dict[str, set[str]]
                ) -> str:  # fmt: skip
    """A selection of every field of ``type_``, following object fields (each type once per
    path, so that a cycle ends); ``reached`` collects the coordinates selected."""
    names = reached.setdefault(type_.name, set())
    parts = ["__typename"]
    for name, field in type_.fields.items():
        named = get_named_type(field.type)
        if isinstance(named, GraphQLObjectType):
            if named.name in path:
                continue
            names.add(name)
            parts.append(f"{name} {{ {every_field(named, path | {named.name}, reached)} }}")
        else:
            names.add(name)
            parts.append(name)
    return " ".join(parts)


def whole_operation() -> tuple[str, dict[str, set[str]]]:
    query = SCHEMA.query_type
    assert query is not None
    variables, roots = [], []
    reached: dict[str, set[str]] = {}
    for index, name in enumerate(planned_roots()):
        field = query.fields[name]
        required = [
            (a, arg) for a, arg in field.args.items() if isinstance(arg.type, GraphQLNonNull)
        ]
        arguments = ", ".join(f"{a}: $v{index}{a}" for a, _ in required)
        variables += [f"$v{index}{a}: {arg.type}" for a, arg in required]
        child = get_named_type(field.type)
        assert isinstance(child, GraphQLObjectType)
        selection = every_field(child, frozenset({child.name}), reached)
        roots.append(f"r{index}: {name}({arguments}) {{ {selection} }}")
    return f"query Whole({', '.join(variables)}) {{ {' '.join(roots)} }}", reached


def planned(plan: OperationPlan) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}

    def visit(object_plan: ObjectPlan) -> None:
        names = found.setdefault(object_plan.type_name, set())
        for entry in object_plan.entries:
            names.add(entry.field if isinstance(entry, Link) else entry.key)
            if isinstance(entry, Link):
                visit(entry.child)

    for root in plan.roots:
        visit(root.child)
    return found


def test_the_lookups_and_the_search_are_planned_roots() -> None:
    assert set(planned_roots()) == {
        "naturalPerson", "naturalPersons", "legalPerson", "legalPersons", "searchLegalPersons",
    }  # fmt: skip


def test_every_field_of_every_type_reachable_from_a_planned_root_is_planned() -> None:
    document, reached = whole_operation()
    [operation] = parse(document).definitions
    assert isinstance(operation, OperationDefinitionNode)
    plan = plan_operation(SCHEMA, operation, {})
    assert plan is not None
    got = planned(plan)
    for type_name, names in reached.items():
        assert got.get(type_name, set()) >= names | {"__typename"}, type_name


def test_the_executor_names_no_field_of_the_entity_types() -> None:
    # Connections, edges and page info follow the cursor connections convention and are
    # built in memory; every other type's fields must come from the schema.
    _, reached = whole_operation()
    page = re.compile(r"(Connection|Edge|PageInfo)$")
    entity_fields = {
        name for type_name, names in reached.items() if not page.search(type_name) for name in names
    }
    roots = set(planned_roots())
    for module in ("plan.py", "direct.py"):
        source = (EXECUTOR / module).read_text(encoding="utf-8")
        named = {
            name
            for name in entity_fields | roots
            if re.search(rf"[\"']{name}[\"']", source)
            or re.search(rf"[\"']{_snake(name)}[\"']", source)
        }
        assert not named, f"{module} names {sorted(named)}"


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()
