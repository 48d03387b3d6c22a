"""Which fields an operation selects on each GraphQL type, computed once per operation.

The policy decides and masks a type's fields in bulk when its rows arrive
(``OperationPolicy.apply(..., fields=...)``), so it needs to know up front
which fields of that type the operation can read anywhere in the document.
Fragments are followed once each: validation has already refused cycles, and
the visited set keeps a pathological document from costing more than its size.
"""

from __future__ import annotations

from collections.abc import Mapping

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLUnionType,
    InlineFragmentNode,
    NamedTypeNode,
    OperationDefinitionNode,
    SelectionSetNode,
    get_named_type,
)

Selection = Mapping[str, frozenset[str]]
#: What a selection set can be on: an object type, or a union of them.
_Parent = GraphQLObjectType | GraphQLUnionType
_PARENTS = (GraphQLObjectType, GraphQLUnionType)


def selected_fields(
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    fragments: Mapping[str, FragmentDefinitionNode],
) -> Selection:
    """Map each object type name to the names of the fields the operation selects on it."""
    root = schema.get_root_type(operation.operation)
    found: dict[str, set[str]] = {}
    if root is None:
        return {}
    seen: set[tuple[str, str]] = set()
    pending: list[tuple[_Parent, SelectionSetNode]] = [(root, operation.selection_set)]
    while pending:
        parent, selection_set = pending.pop()
        names = found.setdefault(parent.name, set())
        # A union (federation's ``_Entity``) has no fields but __typename: its members'
        # fields are selected in fragments on them.
        fields = parent.fields if isinstance(parent, GraphQLObjectType) else {}
        for node in selection_set.selections:
            if isinstance(node, FieldNode):
                name = node.name.value
                field = fields.get(name)
                if field is None:
                    continue  # __typename and other meta fields
                names.add(name)
                child = get_named_type(field.type)
                if node.selection_set is not None and isinstance(child, _PARENTS):
                    pending.append((child, node.selection_set))
            elif isinstance(node, InlineFragmentNode):
                target = _condition(schema, node.type_condition, parent)
                if target is not None:
                    pending.append((target, node.selection_set))
            elif isinstance(node, FragmentSpreadNode):
                fragment = fragments.get(node.name.value)
                key = (node.name.value, parent.name)
                if fragment is None or key in seen:
                    continue
                seen.add(key)
                target = _condition(schema, fragment.type_condition, parent)
                if target is not None:
                    pending.append((target, fragment.selection_set))
    return {name: frozenset(fields) for name, fields in found.items()}


def _condition(
    schema: GraphQLSchema, condition: NamedTypeNode | None, parent: _Parent
) -> _Parent | None:
    if condition is None:
        return parent
    named: GraphQLNamedType | None = schema.get_type(condition.name.value)
    # The schema has no interfaces; a condition names the parent type itself, or, under a
    # union, one of its members (or the union again).
    return named if isinstance(named, _PARENTS) else None
