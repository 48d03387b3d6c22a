"""Each error class has one code and one status, and the README's status table says so.

The codes belong to the error tree (``gateway.core.errors``), the statuses to
the edge's one mapping (``gateway.edge.responses.REFUSALS``); a class added to
the tree without its own entry there, or a README row that drifts from it,
fails here.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from gateway.core import errors
from gateway.core.errors import GatewayError
from gateway.edge.responses import GRAPHQL_RESPONSE, JSON, REFUSALS, error_code, refusal_of

README = Path(__file__).parents[3] / "README.md"
#: The one row that is no refusal: an operation that ran is 200 whatever its field errors.
EXECUTED = "executed (data, perhaps with field errors such as `INVALID_ID` or `SOURCE_UNAVAILABLE`)"

TREE = [
    cls
    for _, cls in inspect.getmembers(errors, inspect.isclass)
    if issubclass(cls, GatewayError) and cls.__module__ == errors.__name__
]


def readme_statuses() -> dict[str, tuple[int, int]]:
    """The rows of the README's status table: what happened → (graphql-response, json)."""
    text = README.read_text(encoding="utf-8")
    table = text[text.index("| what happened |") :].split("\n\n", 1)[0].splitlines()
    rows = {}
    for line in table[2:]:
        what, modern, legacy = (cell.strip() for cell in line.strip("| ").rsplit("|", 2))
        rows[what] = (int(modern), int(legacy))
    return rows


@pytest.mark.parametrize("cls", TREE, ids=lambda cls: cls.__name__)
def test_every_error_class_has_its_own_code_and_status(cls: type[GatewayError]) -> None:
    assert cls in REFUSALS  # its own entry, not one inherited from its parent
    assert re.fullmatch(r"[A-Z]+(_[A-Z]+)*", cls.code)
    refusal = REFUSALS[cls]
    assert refusal_of(cls) is refusal
    assert 400 <= refusal.status_for(GRAPHQL_RESPONSE) < 600
    assert refusal.status_for(JSON) in (200, refusal.status_for(GRAPHQL_RESPONSE))


def test_the_mapping_holds_only_classes_of_the_tree() -> None:
    assert set(REFUSALS) == set(TREE)


def test_the_readme_status_table_is_the_mapping() -> None:
    rows = readme_statuses()
    assert rows.pop(EXECUTED) == (200, 200)
    assert rows == {r.what: (r.status, r.json_status) for r in REFUSALS.values()}


def test_the_tree_drawn_in_the_docstring_gives_each_class_its_code() -> None:
    drawn = dict(re.findall(r"(\w+)\s+([A-Z_]+)\b", errors.__doc__ or ""))
    assert {cls.__name__: drawn.get(cls.__name__) for cls in TREE} == {
        cls.__name__: cls.code for cls in TREE
    }


def test_anything_outside_the_tree_is_internal_and_500() -> None:
    assert error_code(RuntimeError("a bug")) == "INTERNAL"
    assert refusal_of(RuntimeError("a bug")).status_for(JSON) == 500
    assert refusal_of(KeyError).status_for(GRAPHQL_RESPONSE) == 500
