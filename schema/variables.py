"""Variables of the plain kinds coerced without graphql-core's general machinery.

graphql-core coerces a request's variables by walking each definition's type
through its generic input coercion (type lookups from the AST, per-value
dispatch, error-collecting callbacks) — a tenth of a single-record look-up's
CPU. Nearly every operation callers send declares its variables as ``ID``,
``String``, ``Int`` or ``Boolean``, non-null or not, or lists of them, and sends
valid values. For such a document a checker is built once, with its plan; it
returns the coerced values when every value is of the plain, valid kind, and
None otherwise, so that graphql-core coerces (and words every error) exactly as
before. It never decides a value graphql-core would refuse: where in doubt
(a missing variable, a default, a float for an ``Int``), it declines.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from graphql import (
    GraphQLBoolean,
    GraphQLError,
    GraphQLID,
    GraphQLInt,
    GraphQLSchema,
    GraphQLString,
    ListTypeNode,
    NamedTypeNode,
    NonNullTypeNode,
    TypeNode,
    VariableDefinitionNode,
)
from graphql.execution.get_variable_signature import get_variable_signature
from graphql.execution.values import VariableValues, VariableValueSource

__all__ = ["VariablesChecker", "plain_variables"]

#: The coerced variables (as graphql-core's ``get_variable_values`` gives them), or None:
#: graphql-core must coerce them.
VariablesChecker = Callable[[Mapping[str, Any]], VariableValues | None]

_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1


class _Decline(Exception):
    """A value outside the plain kinds: graphql-core coerces the variables."""


_Coerce = Callable[[Any], Any]


def _id(value: Any) -> Any:
    if type(value) is str:
        return value
    if type(value) is int:  # not bool: graphql-core refuses True for an ID
        return str(value)
    raise _Decline


def _string(value: Any) -> Any:
    if type(value) is str:
        return value
    raise _Decline


def _int(value: Any) -> Any:
    if type(value) is int and _INT_MIN <= value <= _INT_MAX:
        return value
    raise _Decline


def _boolean(value: Any) -> Any:
    if type(value) is bool:
        return value
    raise _Decline


def _coercer(schema: GraphQLSchema, node: TypeNode) -> _Coerce | None:
    if isinstance(node, NonNullTypeNode):
        inner = _coercer(schema, node.type)
        if inner is None:
            return None

        def non_null(value: Any) -> Any:
            if value is None:
                raise _Decline
            return inner(value)

        return non_null
    if isinstance(node, ListTypeNode):
        item = _coercer(schema, node.type)
        if item is None:
            return None

        def as_list(value: Any) -> Any:
            if value is None:
                return None
            if type(value) is list:
                return [item(one) for one in value]
            return [item(value)]  # a single value stands for a list of one

        return as_list
    if isinstance(node, NamedTypeNode):
        named = schema.get_type(node.name.value)
        # Only graphql-core's own scalars (a custom scalar of the same name parses otherwise).
        scalar = {
            id(GraphQLID): _id,
            id(GraphQLString): _string,
            id(GraphQLInt): _int,
            id(GraphQLBoolean): _boolean,
        }.get(id(named))
        if scalar is None:
            return None

        def nullable(value: Any) -> Any:
            return None if value is None else scalar(value)

        return nullable
    return None


def plain_variables(
    schema: GraphQLSchema, definitions: Sequence[VariableDefinitionNode]
) -> VariablesChecker | None:
    """A checker for ``definitions``, or None where any is not of the plain kinds (or has a
    default value or directives): graphql-core then coerces every request's variables."""
    coercers: list[tuple[str, Any, _Coerce]] = []
    for definition in definitions:
        if definition.default_value is not None or definition.directives:
            return None
        coerce = _coercer(schema, definition.type)
        # The signature graphql-core would work out per request, worked out once.
        signature = get_variable_signature(schema, definition)
        if coerce is None or isinstance(signature, GraphQLError):
            return None
        coercers.append((signature.name, signature, coerce))

    def check(values: Mapping[str, Any]) -> VariableValues | None:
        sources: dict[str, VariableValueSource] = {}
        coerced: dict[str, Any] = {}
        try:
            for name, signature, coerce in coercers:
                if name not in values:
                    return None  # absent: null or an error, as graphql-core says
                value = values[name]
                coerced[name] = coerce(value)
                sources[name] = VariableValueSource(signature, value)
        except _Decline:
            return None
        return VariableValues(sources, coerced)

    return check
