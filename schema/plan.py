"""Operation plans: a validated query compiled once into what to read and where to put it.

Per-field execution (a resolver call, a resolve-info object and an awaitable
check for every field of every row) costs more than the work it does: a
50-enterprise list has about 900 fields. For the operations callers send most
(look-ups of persons and enterprises with their linked records) the plan lists,
per object type, the scalar fields to copy from the (already masked) rows and
the links to follow, with response keys and aliases resolved and fragments
merged, so ``schema.direct`` can build the response level by level from rows.

Anything outside that shape (other root fields, directives, abstract types)
has no plan and runs on the ordinary executor; both give the same response.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLEnumType,
    GraphQLField,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    InlineFragmentNode,
    NamedTypeNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    get_named_type,
)

from policies.grades import snake_case
from resolvers.selection import Selection, selected_fields

#: Root fields the direct executor answers.
ROOTS = frozenset(
    {"naturalPerson", "naturalPersons", "legalPerson", "legalPersons", "searchLegalPersons"}
)

#: Link fields per type, each answered by a resolver function (see ``schema.direct``).
LINKS = {
    "NaturalPerson": frozenset({"residences", "socialInsurance", "enterprises", "creditRecords"}),
    "LegalPerson": frozenset({"legalRepresentative", "creditRecords"}),
}
PLAIN_TYPES = frozenset({"CreditRecord", "Residence", "SocialInsurance"})
#: The search's page: built in memory from the rows the search returned.
PAGE_LINKS = {
    "LegalPersonConnection": frozenset({"edges", "pageInfo"}),
    "LegalPersonEdge": frozenset({"node"}),
}
PAGE_TYPES = frozenset({"LegalPersonConnection", "LegalPersonEdge", "PageInfo"})


@dataclass(frozen=True, slots=True)
class Scalar:
    """Copy ``row[row_key]`` to ``key``; ``kind`` says how it serialises."""

    key: str
    row_key: str
    kind: str  # "plain", "decimal", "enum" or "typename"
    allowed: frozenset[str] | None = None  # an enum's values
    constant: str | None = None  # __typename's value


@dataclass(frozen=True, slots=True)
class Link:
    """Follow a link field; ``nodes`` carry its arguments and its location for errors."""

    key: str
    field: str
    field_def: GraphQLField
    nodes: tuple[FieldNode, ...]
    many: bool
    child: ObjectPlan
    parent: str  # the type the link hangs off


@dataclass(frozen=True, slots=True)
class ObjectPlan:
    """The selection on one object type, in response order."""

    type_name: str
    entries: tuple[Scalar | Link, ...]


@dataclass(frozen=True, slots=True)
class RootPlan:
    key: str
    field: str
    field_def: GraphQLField
    nodes: tuple[FieldNode, ...]
    child: ObjectPlan

    @property
    def many(self) -> bool:
        return self.field in ("naturalPersons", "legalPersons")

    @property
    def non_null(self) -> bool:
        """An error here nulls the whole response."""
        return isinstance(self.field_def.type, GraphQLNonNull)


@dataclass(frozen=True, slots=True)
class OperationPlan:
    roots: tuple[RootPlan, ...]
    selection: Selection


class Unsupported(Exception):
    """The operation is outside the planned shape; the ordinary executor runs it."""


def plan_operation(
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    fragments: Mapping[str, FragmentDefinitionNode],
) -> OperationPlan | None:
    """The plan of a validated query, or None if it is outside the planned shape."""
    if operation.operation is not OperationType.QUERY:
        return None
    if any(f.variable_definitions for f in fragments.values()):
        return None  # fragment variables: experimental, left to the executor
    try:
        root_type = schema.query_type
        if root_type is None:
            return None
        roots = []
        for key, nodes in _collect(schema, root_type, [operation.selection_set], fragments).items():
            name = nodes[0].name.value
            if name not in ROOTS:
                raise Unsupported(name)
            field_def = root_type.fields[name]
            child_type = get_named_type(field_def.type)
            if not isinstance(child_type, GraphQLObjectType):
                raise Unsupported(name)
            child = _object_plan(schema, child_type, nodes, fragments)
            roots.append(RootPlan(key, name, field_def, tuple(nodes), child))
    except Unsupported:
        return None
    return OperationPlan(tuple(roots), selected_fields(schema, operation, fragments))


def _object_plan(
    schema: GraphQLSchema,
    object_type: GraphQLObjectType,
    parents: list[FieldNode],
    fragments: Mapping[str, FragmentDefinitionNode],
) -> ObjectPlan:
    sets = [node.selection_set for node in parents if node.selection_set is not None]
    entries: list[Scalar | Link] = []
    for key, nodes in _collect(schema, object_type, sets, fragments).items():
        name = nodes[0].name.value
        if name == "__typename":
            entries.append(Scalar(key, "", "typename", constant=object_type.name))
            continue
        if name.startswith("__"):
            raise Unsupported(name)
        field_def = object_type.fields[name]
        named = get_named_type(field_def.type)
        if isinstance(named, GraphQLObjectType):
            allowed = LINKS.get(object_type.name) or PAGE_LINKS.get(object_type.name, frozenset())
            if name not in allowed:
                raise Unsupported(f"{object_type.name}.{name}")
            if named.name not in LINKS and named.name not in PLAIN_TYPES | PAGE_TYPES:
                raise Unsupported(named.name)
            child = _object_plan(schema, named, nodes, fragments)
            many = isinstance(_unwrap_non_null(field_def.type), GraphQLList)
            entries.append(Link(key, name, field_def, tuple(nodes), many, child, object_type.name))
        elif isinstance(named, GraphQLEnumType):
            entries.append(Scalar(key, snake_case(name), "enum", frozenset(named.values)))
        elif isinstance(named, GraphQLScalarType) and named.name == "Decimal":
            entries.append(Scalar(key, snake_case(name), "decimal"))
        elif isinstance(named, GraphQLScalarType) and named.name in ("String", "ID", "Boolean"):
            entries.append(Scalar(key, snake_case(name), "plain"))
        else:
            raise Unsupported(f"{object_type.name}.{name}")
    return ObjectPlan(object_type.name, tuple(entries))


def _collect(
    schema: GraphQLSchema,
    object_type: GraphQLObjectType,
    selection_sets: list[SelectionSetNode],
    fragments: Mapping[str, FragmentDefinitionNode],
) -> dict[str, list[FieldNode]]:
    """Fields by response key, in first-seen order, as the spec's CollectFields does."""
    grouped: dict[str, list[FieldNode]] = {}
    visited: set[str] = set()

    def visit(selection_set: SelectionSetNode) -> None:
        for node in selection_set.selections:
            if node.directives:
                raise Unsupported("directives")
            if isinstance(node, FieldNode):
                key = node.alias.value if node.alias else node.name.value
                grouped.setdefault(key, []).append(node)
            elif isinstance(node, InlineFragmentNode):
                if _matches(schema, node.type_condition, object_type):
                    visit(node.selection_set)
            elif isinstance(node, FragmentSpreadNode):
                name = node.name.value
                if name in visited:
                    continue
                visited.add(name)
                fragment = fragments.get(name)
                if fragment is None:
                    raise Unsupported(name)
                if _matches(schema, fragment.type_condition, object_type):
                    visit(fragment.selection_set)

    for selection_set in selection_sets:
        visit(selection_set)
    return grouped


def _matches(
    schema: GraphQLSchema, condition: NamedTypeNode | None, object_type: GraphQLObjectType
) -> bool:
    if condition is None:
        return True
    named = schema.get_type(condition.name.value)
    if named is object_type:
        return True
    if isinstance(named, GraphQLObjectType):
        return False  # another object type: never this one
    raise Unsupported("abstract type condition")


def _unwrap_non_null(type_: object) -> object:
    return type_.of_type if isinstance(type_, GraphQLNonNull) else type_
