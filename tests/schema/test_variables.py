"""Plain variables are coerced as graphql-core coerces them, or left to graphql-core."""

from __future__ import annotations

from typing import Any

from graphql import OperationDefinitionNode, build_schema, parse
from graphql.execution.values import get_variable_values
from hypothesis import given, settings
from hypothesis import strategies as st

from schema.variables import plain_variables

SCHEMA = build_schema(
    """
    scalar Date
    enum Kind { A B }
    input Filter { name: String }
    type Query { f(a: ID, b: [ID!], c: Int, d: String, e: Boolean): Int }
    """
)

PLAIN = (
    "query Q($a: ID!, $b: [ID!]!, $c: Int, $d: String, $e: Boolean, $f: [[ID]], $g: [String])"
    " { f(a: $a) }"
)


def _definitions(text: str) -> Any:
    [operation] = parse(text).definitions
    assert isinstance(operation, OperationDefinitionNode)
    return operation.variable_definitions


def _graphql_core(text: str, values: dict[str, Any]) -> Any:
    return get_variable_values(SCHEMA, _definitions(text), values)


def _readable(variables: Any) -> Any:
    """Coerced values and their sources, with each type by name (graphql-core makes new
    wrapping type objects for every request)."""
    sources = {
        name: (str(source.signature.type), source.signature.default_value, source.value)
        for name, source in variables.sources.items()
    }
    return variables.coerced, sources


values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**33), max_value=2**33)
    | st.floats(allow_nan=False)
    | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=2), inner),
    max_leaves=6,
)


TYPES = ("ID", "ID!", "[ID!]!", "[ID]", "[[ID]]", "Int", "Int!", "String", "[String!]", "Boolean")


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(TYPES), values | st.none())
def test_a_coerced_value_is_what_graphql_core_makes_of_it(kind: str, value: Any) -> None:
    text = f"query Q($v: {kind}) {{ f }}"
    check = plain_variables(SCHEMA, _definitions(text))
    assert check is not None
    fast = check({"v": value})
    if fast is not None:  # otherwise graphql-core coerces: nothing to compare
        assert _readable(fast) == _readable(_graphql_core(text, {"v": value}))


def test_valid_plain_values_take_the_fast_way() -> None:
    check = plain_variables(SCHEMA, _definitions(PLAIN))
    assert check is not None
    request = {"a": 310, "b": "x", "c": None, "d": "s", "e": True, "f": "y", "g": ["p", None]}
    coerced = check(request)
    assert coerced is not None
    assert coerced.coerced == {
        "a": "310", "b": ["x"], "c": None, "d": "s", "e": True, "f": [["y"]], "g": ["p", None],
    }  # fmt: skip
    assert _readable(coerced) == _readable(_graphql_core(PLAIN, request))


def test_a_value_graphql_core_refuses_is_never_passed() -> None:
    check = plain_variables(SCHEMA, _definitions(PLAIN))
    assert check is not None
    full = {"a": "1", "b": [], "c": 1, "d": "", "e": False, "f": None, "g": None}
    for name, bad in [
        ("a", None), ("a", True), ("a", 1.5), ("b", [None]), ("c", 2**31), ("c", "1"),
        ("d", 1), ("e", 0), ("f", [[{}]]),
    ]:  # fmt: skip
        request = {**full, name: bad}
        assert check(request) is None
        assert isinstance(_graphql_core(PLAIN, request), list)  # graphql-core's errors
    missing = {k: v for k, v in full.items() if k != "c"}
    assert check(missing) is None  # absent: left to graphql-core


def test_other_kinds_of_variables_are_left_to_graphql_core() -> None:
    for text in (
        "query Q($a: Date) { f }",
        "query Q($a: Kind) { f }",
        "query Q($a: Filter) { f }",
        "query Q($a: Float) { f }",
        'query Q($a: ID = "1") { f }',
    ):
        assert plain_variables(SCHEMA, _definitions(text)) is None
