"""Query limits: how much one request may ask of the gateway, measured before anything runs.

Every limit is measured on the parsed document, never by executing it, so a
refusal costs no backend query. Fragments are followed at every spread (a
fragment spread ten times counts ten times, which is what defeats "fragment
bombs"), each fragment is measured once and reused, and a spread that closes a
cycle adds nothing (validation then refuses the document), so neither a cycle
nor a long chain of fragments can make the measuring itself expensive.

Two of the limits bound what validation costs, since a new document is
validated before it can be cached and every distinct text is new: graphql-core's
rule for overlapping fields compares every pair of same-named fields that land
in one selection set, recursively, so its cost grows with the square of the
widest merged selection set. ``selections`` bounds the whole document once every
fragment is expanded, and ``selectionFields`` the widest set once fields of the
same name are merged (as execution merges them), which keeps that square small
whatever the document repeats.

Cost and the sizes of batches and pages depend on the variables too; they are
counted in ``gateway.edge.cost``.

Each refusal names the limit, the value found and the maximum::

    {"message": "the query is 12 levels deep; at most 10 are allowed",
     "extensions": {"code": "QUERY_TOO_DEEP", "limit": "depth", "found": 12, "maximum": 10}}
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)

from gateway.core.errors import ConfigError, LimitExceeded, QueryTooDeep

#: Introspection root fields: bounded by graphql-core's own introspection-depth rule, and refused
#: altogether in production mode, so they are left out of depth and cost (GraphiQL needs them).
INTROSPECTION = frozenset({"__schema", "__type"})
#: The most keys a loader batch or page is built for; configuration may lower it, not raise it.
KEYS_CEILING = 100


@dataclass(frozen=True, kw_only=True)
class Limits:
    """What one request may ask for (the ``[limits]`` section of the configuration).

    Attributes:
        max_body_bytes: size of the HTTP request body (document plus variables).
        max_document_bytes: size of the GraphQL document, in UTF-8 bytes.
        max_tokens: lexical tokens of the document (names, punctuation, values; not comments).
        max_depth: nesting of fields, root fields being at depth 1, through fragments.
        max_aliases: aliased fields, a fragment counting at each spread.
        max_root_fields: fields at the root of the operation, a fragment counting at each spread.
        max_directives: directive uses (``@include``, ``@skip``), a fragment at each spread.
        max_selections: selections (fields, inline fragments, spreads), a fragment at each spread.
        max_selection_fields: fields in one selection set, fragments expanded and the
            selections of same-named fields merged, as execution collects them.
        max_cost: fields the response can hold (see ``gateway.edge.cost``).
        list_size: how many items cost assumes for a list field with no size argument.
        max_batch_keys: keys in one batch argument (``idNumbers``, ``usccs``); at most 100.
        max_page_size: ``first`` of a paged field; at most 100.
        body_timeout: seconds to receive the whole request body (a slow body gets 408).
        max_unauthenticated_per_client: requests of one client address in flight before
            they are admitted (token verified and body read); more get 429 at once.
        document_cache_bytes: what the cache of parsed and validated documents may hold, in
            bytes as estimated from their text and tokens (``gateway.edge.documents``).
        validation_ms_per_second: time one app may spend per second on documents not yet
            known (parse and validation), in milliseconds (``gateway.edge.validation_budget``).
    """

    max_body_bytes: int = 256 * 1024
    max_document_bytes: int = 16 * 1024
    max_tokens: int = 2000
    max_depth: int = 10
    max_aliases: int = 30
    max_root_fields: int = 10
    max_directives: int = 20
    max_selections: int = 1000
    max_selection_fields: int = 50
    max_cost: int = 10_000
    list_size: int = 10
    max_batch_keys: int = KEYS_CEILING
    max_page_size: int = KEYS_CEILING
    body_timeout: int = 10
    max_unauthenticated_per_client: int = 16
    document_cache_bytes: int = 64 * 1024 * 1024
    validation_ms_per_second: int = 100

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"limits.{item.name} must be a positive integer, not {value!r}")
        for name in ("max_batch_keys", "max_page_size"):
            if getattr(self, name) > KEYS_CEILING:
                raise ConfigError(f"limits.{name} is at most {KEYS_CEILING}")

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> Limits:
        """Limits from a ``[limits]`` table; unknown keys are a ``ConfigError``."""
        known = {item.name for item in fields(cls)}
        unknown = set(table) - known
        if unknown:
            raise ConfigError(f"[limits]: unknown keys {', '.join(sorted(unknown))}")
        return cls(**table)


def refuse(limit: str, found: int, maximum: int, what: str) -> LimitExceeded:
    """The error for a limit: ``what`` completes "the query ..." (e.g. "has 31 aliases")."""
    kind = QueryTooDeep if limit == "depth" else LimitExceeded
    return kind(
        f"the query {what}; at most {maximum} are allowed",
        limit=limit,
        found=found,
        maximum=maximum,
    )


# -- shape: depth, aliases, root fields, directives ------------------------------------------


@dataclass(frozen=True, slots=True)
class Shape:
    """What an operation looks like once every fragment spread is counted where it stands."""

    depth: int
    aliases: int
    root_fields: int
    directives: int
    selections: int

    def check(self, limits: Limits) -> None:
        """Raise the first limit this shape exceeds."""
        if self.depth > limits.max_depth:
            raise refuse("depth", self.depth, limits.max_depth, f"is {self.depth} levels deep")
        for limit, found, maximum in (
            ("aliases", self.aliases, limits.max_aliases),
            ("rootFields", self.root_fields, limits.max_root_fields),
            ("directives", self.directives, limits.max_directives),
            ("selections", self.selections, limits.max_selections),
        ):
            if found > maximum:
                words = {"rootFields": "root fields"}.get(limit, limit)
                raise refuse(limit, found, maximum, f"has {found} {words}")


@dataclass(slots=True)
class _Local:
    """One definition measured on its own, with the fragments it spreads and where."""

    depth: int = 0
    aliases: int = 0
    root_fields: int = 0
    directives: int = 0
    selections: int = 0
    spreads: list[tuple[str, int]] | None = None  # (fragment, fields above the spread)


def _measure_local(selection_set: SelectionSetNode) -> _Local:
    spreads: list[tuple[str, int]] = []
    local = _Local(spreads=spreads)
    stack = [(selection_set, 0)]
    while stack:  # no recursion: nesting is bounded by the parser, not by Python's stack
        node_set, level = stack.pop()
        for node in node_set.selections:
            local.selections += 1
            local.directives += len(node.directives or ())
            if isinstance(node, FieldNode):
                if level == 0:
                    local.root_fields += 1
                if node.alias is not None:
                    local.aliases += 1
                if level == 0 and node.name.value in INTROSPECTION:
                    continue
                local.depth = max(local.depth, level + 1)
                if node.selection_set is not None:
                    stack.append((node.selection_set, level + 1))
            elif isinstance(node, InlineFragmentNode):
                stack.append((node.selection_set, level))
            elif isinstance(node, FragmentSpreadNode):
                spreads.append((node.name.value, level))
    return local


def dependency_order(
    operation: OperationDefinitionNode, fragments: Mapping[str, FragmentDefinitionNode]
) -> Iterator[tuple[str, list[str]]]:
    """The fragments ``operation`` reaches, each after the ones it spreads, with those spreads.

    A spread that closes a cycle, or names no fragment, is left out.
    """
    done: set[str] = set()
    for root in _spread_names(operation.selection_set):
        if root in done or root not in fragments:
            continue
        path = [(root, iter(_spread_names(fragments[root].selection_set)))]
        on_path = {root}
        while path:
            name, pending = path[-1]
            for child in pending:
                if child in fragments and child not in done and child not in on_path:
                    path.append((child, iter(_spread_names(fragments[child].selection_set))))
                    on_path.add(child)
                    break
            else:
                path.pop()
                on_path.discard(name)
                done.add(name)
                spreads = _spread_names(fragments[name].selection_set)
                yield name, [s for s in dict.fromkeys(spreads) if s in done and s != name]


def _spread_names(selection_set: SelectionSetNode) -> list[str]:
    names = []
    stack = [selection_set]
    while stack:
        for node in stack.pop().selections:
            if isinstance(node, FragmentSpreadNode):
                names.append(node.name.value)
            elif (
                isinstance(node, (FieldNode, InlineFragmentNode)) and node.selection_set is not None
            ):
                stack.append(node.selection_set)
    return names


def measure(
    operation: OperationDefinitionNode, fragments: Mapping[str, FragmentDefinitionNode]
) -> Shape:
    """The shape of ``operation``, every fragment measured once and counted at each spread."""
    totals: dict[str, _Local] = {}
    for name, _ in dependency_order(operation, fragments):
        fragment = fragments[name]
        local = _measure_local(fragment.selection_set)
        local.directives += len(fragment.directives or ())
        totals[name] = _combine(local, totals)
    own = _measure_local(operation.selection_set)
    own.directives += len(operation.directives or ())
    own.directives += sum(len(v.directives or ()) for v in operation.variable_definitions or ())
    total = _combine(own, totals)
    return Shape(total.depth, total.aliases, total.root_fields, total.directives, total.selections)


def _combine(local: _Local, totals: Mapping[str, _Local]) -> _Local:
    for name, level in local.spreads or ():
        inner = totals.get(name)
        if inner is None:
            continue  # a cycle or an unknown fragment: validation refuses the document
        local.depth = max(local.depth, level + inner.depth)
        local.aliases += inner.aliases
        local.directives += inner.directives
        local.selections += inner.selections
        if level == 0:
            local.root_fields += inner.root_fields
    local.spreads = None
    return local


# -- width: fields of one selection set, as execution merges them ---------------------------


def check_width(
    operation: OperationDefinitionNode,
    fragments: Mapping[str, FragmentDefinitionNode],
    limits: Limits,
) -> None:
    """Refuse ``operation`` if a merged selection set holds more than ``max_selection_fields``.

    Run after ``Shape.check``: the walk expands every fragment where it is spread,
    so it is only as long as the ``selections`` that check allowed (and is cut
    short past that, should a fragment cycle make the expansion longer).
    """
    widths: dict[int, int] = {}
    merged: dict[tuple[int, str], int] = {}  # (set, response name) -> the set under that name
    stack: list[tuple[SelectionSetNode, int, frozenset[str]]] = [
        (operation.selection_set, 0, frozenset())
    ]
    visited = 0
    while stack:
        node_set, into, path = stack.pop()
        visited += len(node_set.selections)
        if visited > limits.max_selections:
            found = visited
            raise refuse("selections", found, limits.max_selections, f"has {found} selections")
        for node in node_set.selections:
            if isinstance(node, FieldNode):
                widths[into] = widths.get(into, 0) + 1
                if node.selection_set is not None:
                    name = (node.alias or node.name).value
                    under = merged.setdefault((into, name), len(merged) + 1)
                    stack.append((node.selection_set, under, path))
            elif isinstance(node, InlineFragmentNode):
                stack.append((node.selection_set, into, path))
            elif isinstance(node, FragmentSpreadNode):
                name = node.name.value
                if name in fragments and name not in path:  # a cycle: validation refuses it
                    stack.append((fragments[name].selection_set, into, path | {name}))
    widest = max(widths.values(), default=0)
    if widest > limits.max_selection_fields:
        maximum = limits.max_selection_fields
        raise refuse(
            "selectionFields", widest, maximum, f"has {widest} fields in one selection set"
        )
