"""What each planned root field does, described once for both executors.

A Strawberry root field carries its description in its metadata (``ROOT``):
its resolver in ``schema.query`` answers through it key by key, and the
planner (``schema.plan``) reads it from the schema to answer a whole level at
once (``schema.direct``). A root field without one is left to the per-field
executor.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.core.identifiers import require_id_number, require_uscc
from gateway.core.types import Row
from resolvers import enterprises
from resolvers.arguments import DEFAULT_PAGE, check_batch, check_page
from resolvers.context import GatewayContext
from resolvers.loaders import ENTERPRISE, PERSON, LoadSpec
from resolvers.persons import home_record

#: The key of a root field's description in its Strawberry metadata.
ROOT = "deltagate.root"


@dataclass(frozen=True, slots=True)
class Lookup:
    """A look-up by key, each record read from its key's home region only (一数一源).

    Attributes:
        load: what is read.
        argument: the GraphQL argument holding the key (or the list of keys).
        require: checks and normalises one key (``InvalidId`` otherwise).
        many: the argument is a list, answered in the order asked.
    """

    load: LoadSpec
    argument: str
    require: Callable[[str, str], str]
    many: bool = False

    def keys(self, value: Any) -> list[str]:
        """The checked keys of the argument's value (all of them checked before any is read).

        Raises:
            BatchTooLarge: a list of more keys than allowed.
            InvalidId: a key is malformed.
        """
        if not self.many:
            return [self.require(value, self.argument)]
        check_batch(value, self.argument)
        return [self.require(item, self.argument) for item in value]

    def records(self, ctx: GatewayContext, value: Any) -> list[Awaitable[Row | None]]:
        """The records of the keys, each its own awaitable: a region that is down nulls only
        its own items; None where a key is unknown or its look-up is withheld."""
        return [home_record(ctx, self.load, key) for key in self.keys(value)]


@dataclass(frozen=True, slots=True)
class Search:
    """A page of a name search across regions (``resolvers.enterprises.search``), returned
    as a connection (``edges { cursor node }``, ``pageInfo { hasNextPage endCursor }``)."""

    def page(
        self,
        ctx: GatewayContext,
        path: Any,
        *,
        name: str,
        region: Any = None,
        first: int = DEFAULT_PAGE,
        after: str | None = None,
    ) -> Awaitable[tuple[list[tuple[str, Row]], bool]]:
        """Start the search with the field's arguments (checked here, before anything is read).

        Raises:
            BatchTooLarge, InvalidInput: ``first`` is out of range.
        """
        check_page(first)
        code = None if region is None else getattr(region, "value", region)
        return enterprises.search(ctx, name, code, first, after, path)


NATURAL_PERSON = Lookup(PERSON, "idNumber", require_id_number)
NATURAL_PERSONS = Lookup(PERSON, "idNumbers", require_id_number, many=True)
LEGAL_PERSON = Lookup(ENTERPRISE, "uscc", require_uscc)
LEGAL_PERSONS = Lookup(ENTERPRISE, "usccs", require_uscc, many=True)
SEARCH = Search()


def root(description: Lookup | Search) -> dict[str, Lookup | Search]:
    """The Strawberry metadata of a root field that ``description`` describes."""
    return {ROOT: description}


def described(metadata: Mapping[Any, Any] | None) -> Lookup | Search | None:
    """The description kept in a field's Strawberry metadata, if any."""
    found = metadata.get(ROOT) if metadata else None
    return found if isinstance(found, Lookup | Search) else None
