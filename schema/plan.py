"""Operation plans: a validated query compiled once into what to read and where to put it.

Per-field execution (a resolver call, a resolve-info object and an awaitable
check for every field of every row) costs more than the work it does: a
50-enterprise list has about 900 fields. For the operations callers send most
(look-ups of persons and enterprises with their linked records) the plan lists,
per object type, the scalar fields to copy from the (already masked) rows and
the links to follow, with response keys and aliases resolved and fragments
merged, so ``schema.direct`` can build the response level by level from rows.

Nothing here names a field: what is planned is read from the schema. A root
field is planned if its Strawberry metadata describes it (``resolvers.roots``);
an object field if it is a link (``resolvers.links.LINKS``) or part of a search's
connection; a scalar field if Strawberry copies it from the row (a plain
attribute, no resolver of its own). The plan is made once per distinct document,
where the gateway keeps the parsed document (``gateway.edge.documents``).

The plan also says which fields each read needs (``OperationPlan.columns``), so
that a source sends only those (a projection): per type, the row keys of the
fields the operation selects on it anywhere in the document (the same set the
policy decides and masks by, ``resolvers.selection``), the keys its links
follow (an enterprise's ``legal_rep_id``), and what the gateway reads of every
row (``LoadSpec.needs``: the key, identity, audit subject, order, kind). A field
outside that set is one the policy would withhold and nothing reads.

Anything outside that shape (other root fields, directives, abstract types)
has no plan and runs on the ordinary executor; both give the same response.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

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
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableDefinitionNode,
    get_named_type,
)

from gateway.core.entities import ENTITY_FIELDS
from resolvers import links
from resolvers.loaders import KEY, LoadSpec
from resolvers.roots import Lookup, Search, described
from resolvers.selection import Selection, selected_fields
from schema.variables import VariablesChecker, plain_variables

#: Where Strawberry keeps a field's own definition in the graphql-core schema it builds.
_DEFINITION = "strawberry-definition"
#: Scalars copied as they are (their rows already hold what they serialise to).
_PLAIN = frozenset({"String", "ID", "Boolean"})


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
    """Follow a link field; ``nodes`` carry its arguments and its location for errors.

    ``follows`` is the link's description (``resolvers.links``); None for the parts
    of a search's page, which are built in memory.
    """

    key: str
    field: str
    field_def: GraphQLField
    nodes: tuple[FieldNode, ...]
    many: bool
    child: ObjectPlan
    follows: links.Link | None


@dataclass(frozen=True, slots=True)
class ObjectPlan:
    """The selection on one object type, in response order.

    ``views``: how the entries are filled from rows under each masking of the type
    (``schema.direct``), kept with the plan, which lives as long as its document's.
    """

    type_name: str
    entries: tuple[Scalar | Link, ...]
    views: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class RootPlan:
    """A root field: ``answer`` says how (a look-up by key or a search's page)."""

    key: str
    field: str
    field_def: GraphQLField
    nodes: tuple[FieldNode, ...]
    child: ObjectPlan
    answer: Lookup | Search

    @property
    def non_null(self) -> bool:
        """An error here nulls the whole response."""
        return isinstance(self.field_def.type, GraphQLNonNull)


@dataclass(frozen=True, slots=True)
class OperationPlan:
    """A planned operation: its root fields, the fields it selects per type, and its variable
    definitions (coerced before it runs, as graphql-core would)."""

    roots: tuple[RootPlan, ...]
    selection: Selection
    variables: tuple[VariableDefinitionNode, ...] = ()
    columns: Mapping[LoadSpec, frozenset[str]] = field(default_factory=dict)
    #: The variables' fast coercion where they are all of the plain kinds
    #: (``schema.variables``), else None.
    plain_variables: VariablesChecker | None = None


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
            field_def = root_type.fields.get(name)
            answer = None if field_def is None else described(_metadata(field_def))
            if field_def is None or answer is None:
                raise Unsupported(name)
            child_type = get_named_type(field_def.type)
            if not isinstance(child_type, GraphQLObjectType):
                raise Unsupported(name)
            if isinstance(answer, Lookup) and child_type.name != answer.load.type_name:
                raise Unsupported(name)  # rows are masked as their read's type (``schema.direct``)
            page = isinstance(answer, Search)
            child = _object_plan(schema, child_type, nodes, fragments, page=page)
            roots.append(RootPlan(key, name, field_def, tuple(nodes), child, answer))
    except Unsupported:
        return None
    selection = selected_fields(schema, operation, fragments)
    return OperationPlan(
        tuple(roots),
        selection,
        tuple(operation.variable_definitions or ()),
        _columns(schema, roots, selection),
        plain_variables(schema, operation.variable_definitions or ()),
    )


def _columns(
    schema: GraphQLSchema, roots: list[RootPlan], selection: Selection
) -> dict[LoadSpec, frozenset[str]]:
    """The fields each read of the plan needs (``OperationPlan.columns``).

    A type's fields are taken from the operation's selection on it, not from one place in
    the plan: the rows one read returns are shared by every place that reads the same keys
    (``schema.direct`` reads a key once per operation), and the policy decides every field
    selected on the type for each of its rows.
    """
    specs: dict[LoadSpec, None] = {}
    planned: dict[str, set[str]] = {}

    def walk(plan: ObjectPlan) -> None:
        keys = planned.setdefault(plan.type_name, set())
        for entry in plan.entries:
            if isinstance(entry, Scalar):
                if entry.kind != "typename":
                    keys.add(entry.row_key)
                continue
            if entry.follows is not None:
                specs[entry.follows.load] = None
            walk(entry.child)

    for root in roots:
        if isinstance(root.answer, Lookup):
            specs[root.answer.load] = None
        walk(root.child)
    out: dict[LoadSpec, frozenset[str]] = {}
    for spec in specs:
        fields = set(planned.get(spec.type_name, ()))
        object_type = schema.get_type(spec.type_name)
        for name in selection.get(spec.type_name, ()):
            follows = links.LINKS.get(f"{spec.type_name}.{name}")
            if follows is not None:
                if follows.key_field != KEY:
                    fields.add(follows.key_field)
                continue
            field_def = (
                object_type.fields.get(name) if isinstance(object_type, GraphQLObjectType) else None
            )
            row_key = None if field_def is None else _row_key(field_def)
            if row_key is not None:
                fields.add(row_key)
        # Only the entity's own fields are columns (a row has no other).
        own = ENTITY_FIELDS[spec.entity]
        out[spec] = spec.columns(name for name in fields if name in own)
    return out


def _object_plan(
    schema: GraphQLSchema,
    object_type: GraphQLObjectType,
    parents: list[FieldNode],
    fragments: Mapping[str, FragmentDefinitionNode],
    *,
    page: bool = False,
) -> ObjectPlan:
    """The plan of one object type; ``page``: a search's connection, edge or page info, built
    in memory from the page (``schema.direct``), until its ``node`` leads back to rows."""
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
        coordinate = f"{object_type.name}.{name}"
        if isinstance(named, GraphQLObjectType):
            follows = links.LINKS.get(coordinate)
            if follows is not None:
                if named.name != follows.load.type_name:
                    # The direct executor masks a raw row by its plan's type: it must be the
                    # type the row was read and counted as.
                    raise Unsupported(coordinate)
                child = _object_plan(schema, named, nodes, fragments)
            elif page:
                # Within the page: the edges and page info; an edge's node is a row again.
                child = _object_plan(schema, named, nodes, fragments, page=name != "node")
            else:
                raise Unsupported(coordinate)
            many = isinstance(_unwrap_non_null(field_def.type), GraphQLList)
            entries.append(Link(key, name, field_def, tuple(nodes), many, child, follows))
            continue
        row_key = _row_key(field_def)
        if row_key is None:
            raise Unsupported(coordinate)  # computed by a resolver of its own
        if isinstance(named, GraphQLEnumType):
            entries.append(Scalar(key, row_key, "enum", frozenset(named.values)))
        elif isinstance(named, GraphQLScalarType) and named.name == "Decimal":
            entries.append(Scalar(key, row_key, "decimal"))
        elif isinstance(named, GraphQLScalarType) and named.name in _PLAIN:
            entries.append(Scalar(key, row_key, "plain"))
        else:
            raise Unsupported(coordinate)
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


def _matches(schema: GraphQLSchema, condition: object, object_type: GraphQLObjectType) -> bool:
    if condition is None:
        return True
    named = schema.get_type(condition.name.value)  # type: ignore[attr-defined]
    if named is object_type:
        return True
    if isinstance(named, GraphQLObjectType):
        return False  # another object type: never this one
    raise Unsupported("abstract type condition")


def _metadata(field_def: GraphQLField) -> Mapping[str, object] | None:
    definition = (field_def.extensions or {}).get(_DEFINITION)
    return getattr(definition, "metadata", None)


def _row_key(field_def: GraphQLField) -> str | None:
    """The row key a plain Strawberry attribute is copied from (``from_row`` copies each
    attribute from the row key of its Python name); None for a field with a resolver."""
    definition = (field_def.extensions or {}).get(_DEFINITION)
    if definition is None or getattr(definition, "base_resolver", None) is not None:
        return None
    name = getattr(definition, "python_name", None)
    return name if isinstance(name, str) else None


def _unwrap_non_null(type_: object) -> object:
    return type_.of_type if isinstance(type_, GraphQLNonNull) else type_
