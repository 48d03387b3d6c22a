"""Text a caller sends: refused at the edge when no source could store or compare it.

PostgreSQL's ``text`` cannot hold U+0000 (NUL), and a UTF-8 database cannot
hold a lone surrogate (U+D800–U+DFFF): sent as a parameter, either makes the
backend raise a data error (SQLSTATE 22021) or the driver fail to encode it.
Such a value is the caller's error, so it is refused before any SQL, in every
position a string can take: literals in the document (a validation rule, run
once per distinct document), variables (every string in them, at any depth),
and each free-text argument with its own length (``require_text``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from graphql import GraphQLError, StringValueNode, ValidationRule

from gateway.core.errors import InvalidInput

__all__ = ["StorableStringsRule", "check_variables", "require_text", "unstorable"]

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def unstorable(value: str) -> str | None:
    """The first character of ``value`` no source can store, as ``U+XXXX``; None if none."""
    found = _UNSTORABLE.search(value)
    return None if found is None else f"U+{ord(found.group()):04X}"


def require_text(value: str, argument: str, *, max_length: int) -> str:
    """``value`` stripped, if it is 1 to ``max_length`` characters that a source can store.

    Raises:
        InvalidInput: naming ``argument`` (``BAD_REQUEST``).
    """
    char = unstorable(value)
    if char is not None:
        raise InvalidInput(f"{argument} contains {char}, which no text can hold", argument=argument)
    text = value.strip()
    if not text or len(text) > max_length:
        raise InvalidInput(f"{argument} must be 1 to {max_length} characters", argument=argument)
    return text


def check_variables(variables: Mapping[str, Any] | None) -> None:
    """Refuse variables holding a string (at any depth) that no source can store.

    Raises:
        InvalidInput: naming the variable (``BAD_REQUEST``); nothing has run.
    """
    # An explicit stack: nesting is bounded by the body size, not by Python's recursion limit.
    stack: list[tuple[str, Any]] = [(name, value) for name, value in (variables or {}).items()]
    while stack:
        name, value = stack.pop()
        if isinstance(value, str):
            char = unstorable(value)
            if char is not None:
                raise InvalidInput(
                    f"variable ${name} contains {char}, which no text can hold", variable=name
                )
        elif isinstance(value, dict):
            stack.extend((name, item) for item in value.values())
            stack.extend((name, key) for key in value)
        elif isinstance(value, list):
            stack.extend((name, item) for item in value)


class StorableStringsRule(ValidationRule):
    """A validation rule: no string literal in the document holds an unstorable character."""

    def enter_string_value(self, node: StringValueNode, *_: Any) -> None:
        char = unstorable(node.value)
        if char is not None:
            self.report_error(
                GraphQLError(f"a string literal contains {char}, which no text can hold", node)
            )
