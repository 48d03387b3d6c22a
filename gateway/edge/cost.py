"""The cost of an operation, and the sizes of its batches and pages.

Cost counts the fields a response can hold: every field costs 1, and the
selection under a field is counted as many times as the field can return
items: the length of a batch argument (``idNumbers``, ``usccs``, a literal or
a variable), ``first`` for a paged field (its whole selection, ``pageInfo``
included: a small overcount, on the safe side), ``list_size`` for any other
list. A page's ``edges`` are not multiplied again. For example, 50
enterprises with five fields, a four-field representative and four-field
credit records cost ``1 + 50 * (5 + (1 + 4) + (1 + 10 * 4)) = 2551``.

Each fragment is counted once, after the fragments it spreads, and added at
each spread. Counting runs on a validated document (no cycles, every field
known), once per operation and per size of its sizing variables.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    NullValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValueNode,
    VariableNode,
    get_named_type,
    value_from_ast_untyped,
)

from gateway.core.errors import BatchTooLarge
from gateway.edge.query_limits import INTROSPECTION, Limits, dependency_order

#: Arguments that name the keys of a batch look-up; the list's length sizes the result.
#: Federation's ``_entities(representations:)`` is one too: a key per representation.
BATCH_ARGUMENTS = frozenset({"idNumbers", "usccs", "representations"})
#: The argument that sizes a page.
PAGE_ARGUMENT = "first"


def size_variables(
    operation: OperationDefinitionNode, fragments: Mapping[str, FragmentDefinitionNode]
) -> dict[str, bool]:
    """The variables whose values size a list, each with whether it holds batch keys.

    ``first: $n`` sizes a page (False), ``idNumbers: $ids`` a batch (True).
    Validation keeps one variable from standing in both kinds of position.
    """
    names: dict[str, bool] = {}
    sets = [operation.selection_set]
    sets += [fragments[name].selection_set for name, _ in dependency_order(operation, fragments)]
    while sets:
        for node in sets.pop().selections:
            if isinstance(node, FieldNode):
                for argument in node.arguments or ():
                    name = argument.name.value
                    if isinstance(argument.value, VariableNode) and (
                        name in BATCH_ARGUMENTS or name == PAGE_ARGUMENT
                    ):
                        names[argument.value.name.value] = name in BATCH_ARGUMENTS
            if isinstance(node, (FieldNode, InlineFragmentNode)) and node.selection_set is not None:
                sets.append(node.selection_set)
    return names


def variable_size(value: Any, *, batch: bool) -> int | None:
    """How many items a variable's raw JSON value asks for (``None``: not given, or null).

    Raw values, not coerced ones: coercion keeps a list's length and turns a single
    key into a list of one, and a value it would refuse never executes anyway.
    """
    if value is None:
        return None
    if batch:
        return len(value) if isinstance(value, list) else 1
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return _graphql_int(value)


#: GraphQL's ``Int`` is a signed 32-bit integer; coercion refuses anything outside it.
_INT_RANGE = range(-(2**31), 2**31)


def _graphql_int(value: int | float | str) -> int | None:
    """``value`` as a GraphQL ``Int``, or None where coercion will refuse it anyway.

    A size outside the range would only be echoed in a refusal: ``1e300`` as an int
    is more than JSON encoders write, and 5,000 digits more than ``int()`` reads.
    """
    if isinstance(value, str):
        if len(value) > 11:  # "-2147483648"
            return None
        value = int(value)
    elif isinstance(value, float):
        if not value.is_integer():
            return None
        if not -(2.0**31) <= value < 2.0**31:
            return None
        value = int(value)
    return value if value in _INT_RANGE else None


class CostCounter:
    """Counts the cost of one validated operation for given variable sizes.

    Args:
        schema: the schema the operation was validated against.
        operation, fragments: the operation and the document's fragments.
        limits: list size and the batch and page maxima (checked on the way).
        sizes: ``variable_size`` of each variable, by name (defaults filled in).
    """

    def __init__(
        self,
        schema: GraphQLSchema,
        operation: OperationDefinitionNode,
        fragments: Mapping[str, FragmentDefinitionNode],
        limits: Limits,
        sizes: Mapping[str, int | None],
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.limits = limits
        self.sizes = sizes
        self.operation = operation
        self._fragment_costs: dict[str, int] = {}

    def count(self) -> int:
        """The operation's cost; ``BatchTooLarge`` for a batch or page over its maximum."""
        for name, _ in dependency_order(self.operation, self.fragments):
            fragment = self.fragments[name]
            parent = self.schema.get_type(fragment.type_condition.name.value)
            self._fragment_costs[name] = self._selection(fragment.selection_set, parent)
        root = self.schema.get_root_type(self.operation.operation)
        return self._selection(self.operation.selection_set, root, root=True)

    def _selection(self, selection_set: SelectionSetNode, parent: Any, root: bool = False) -> int:
        cost = 0
        for node in selection_set.selections:
            if isinstance(node, FieldNode):
                if root and node.name.value in INTROSPECTION:
                    continue
                cost += self._field(node, parent)
            elif isinstance(node, InlineFragmentNode):
                condition = node.type_condition
                target = parent if condition is None else self.schema.get_type(condition.name.value)
                cost += self._selection(node.selection_set, target, root)
            elif isinstance(node, FragmentSpreadNode):
                cost += self._fragment_costs.get(node.name.value, 0)
        return cost

    def _field(self, node: FieldNode, parent: Any) -> int:
        definition = parent.fields.get(node.name.value) if hasattr(parent, "fields") else None
        if definition is None:
            return 1  # __typename
        items = self._items(node, definition, parent)
        if node.selection_set is None:
            return max(items, 1)
        inner = self._selection(node.selection_set, get_named_type(definition.type))
        return 1 + items * inner

    def _items(self, node: FieldNode, definition: Any, parent: Any) -> int:
        for argument in node.arguments or ():
            name = argument.name.value
            if name in BATCH_ARGUMENTS:
                keys = self._value_size(argument.value, batch=True) or 0
                if keys > self.limits.max_batch_keys:
                    raise _batch(name, keys, self.limits.max_batch_keys, "keys")
                return keys
        page = next((a for a in node.arguments or () if a.name.value == PAGE_ARGUMENT), None)
        if PAGE_ARGUMENT in definition.args:
            size = None if page is None else self._value_size(page.value, batch=False)
            if size is None:
                default = definition.args[PAGE_ARGUMENT].default_value
                size = default if isinstance(default, int) else self.limits.max_page_size
            if size > self.limits.max_page_size:
                raise _batch(PAGE_ARGUMENT, size, self.limits.max_page_size, "items")
            return max(size, 0)
        field_type = definition.type
        if isinstance(field_type, GraphQLNonNull):
            field_type = field_type.of_type
        if not isinstance(field_type, GraphQLList):
            return 1
        if node.name.value == "edges" and _is_connection(parent):
            return 1  # the page's size is counted on the paged field
        return self.limits.list_size

    def _value_size(self, value: ValueNode, *, batch: bool) -> int | None:
        if isinstance(value, VariableNode):
            return self.sizes.get(value.name.value)
        if isinstance(value, NullValueNode):
            return None
        if batch:
            return len(value.values) if isinstance(value, ListValueNode) else 1
        return _graphql_int(value.value) if isinstance(value, IntValueNode) else None


def default_sizes(operation: OperationDefinitionNode, names: tuple[str, ...]) -> dict[str, Any]:
    """The default values of the sizing variables that declare one."""
    defaults = {}
    for definition in operation.variable_definitions or ():
        name = definition.variable.name.value
        if name in names and definition.default_value is not None:
            defaults[name] = value_from_ast_untyped(definition.default_value)
    return defaults


def _batch(argument: str, found: int, maximum: int, what: str) -> BatchTooLarge:
    return BatchTooLarge(
        f"{argument} asks for {found} {what}; at most {maximum} are allowed",
        limit="pageSize" if argument == PAGE_ARGUMENT else "batchKeys",
        argument=argument,
        found=found,
        maximum=maximum,
    )


def _is_connection(parent: Any) -> bool:
    return isinstance(parent, GraphQLObjectType) and parent.name.endswith("Connection")
