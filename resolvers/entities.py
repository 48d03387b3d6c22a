"""Apollo Federation's ``_entities``: representations checked, then answered as look-ups by key.

A supergraph's gateway asks this subgraph for the entities it keys
(``NaturalPerson @key(fields: "idNumber")``, ``LegalPerson @key(fields:
"uscc")``) with a list of representations such as ``{"__typename":
"LegalPerson", "uscc": "…"}``. Each one is a look-up by key, and is answered
exactly as ``naturalPersons(idNumbers:)`` and ``legalPersons(usccs:)`` answer
theirs (``resolvers.roots``): every representation is checked before anything
is read, the list is capped like a batch argument, each key is read from its
home region only through the request's loaders (one query per entity and
region, whatever the number of representations), the look-up itself is
decided by the policy (``OperationPolicy.looks_up``: null where the caller may
not see the key in clear, the same null as a key nobody holds), and the rows
come back masked for what the operation selects. The audit event is the
operation's, as for any other field.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.core.errors import InvalidId, InvalidInput
from gateway.core.types import Row
from resolvers.arguments import check_batch
from resolvers.context import GatewayContext
from resolvers.persons import home_record
from resolvers.roots import LEGAL_PERSON, NATURAL_PERSON, Lookup

#: The argument of ``_entities``, as errors name it.
ARGUMENT = "representations"


@dataclass(frozen=True, slots=True)
class EntityKey:
    """An entity type of this subgraph and the field that keys it (its ``@key``).

    Attributes:
        type_name: the GraphQL type (a representation's ``__typename``).
        field: the key field, as the representation names it.
        lookup: the root look-up by that key whose rules a representation follows.
    """

    type_name: str
    field: str
    lookup: Lookup


#: The entities a supergraph may resolve here, by ``__typename``.
ENTITIES: Mapping[str, EntityKey] = {
    "NaturalPerson": EntityKey("NaturalPerson", "idNumber", NATURAL_PERSON),
    "LegalPerson": EntityKey("LegalPerson", "uscc", LEGAL_PERSON),
}


def entity_keys(representations: Any) -> list[tuple[EntityKey, str]]:
    """Each representation's entity and checked key, in order (all checked before any is read).

    Raises:
        BatchTooLarge: more representations than a batch argument may hold.
        InvalidInput: a representation is not an object, names no entity of this subgraph,
            or lacks its key as a string.
        InvalidId: a key is malformed (as the look-up by that key would say).
    """
    if not isinstance(representations, list):
        raise InvalidInput(f"{ARGUMENT} must be a list of objects", argument=ARGUMENT)
    check_batch(representations, ARGUMENT)
    found = []
    for index, representation in enumerate(representations):
        where = f"{ARGUMENT}[{index}]"
        if not isinstance(representation, dict):
            raise InvalidInput(f"{where} is not an object", argument=ARGUMENT)
        typename = representation.get("__typename")
        entity = ENTITIES.get(typename) if isinstance(typename, str) else None
        if entity is None:
            names = " or ".join(ENTITIES)
            raise InvalidInput(f"{where}: __typename must be {names}", argument=ARGUMENT)
        value = representation.get(entity.field)
        if not isinstance(value, str):
            raise InvalidInput(
                f"{where}: a {entity.type_name} is keyed by {entity.field}, a string",
                argument=ARGUMENT,
            )
        try:
            key = entity.lookup.require(value, f"{where}.{entity.field}")
        except InvalidId as error:  # named as the other errors here: the argument, then where
            raise InvalidId(str(error), argument=ARGUMENT) from None
        found.append((entity, key))
    return found


def records(
    ctx: GatewayContext, representations: Any
) -> list[tuple[EntityKey, Awaitable[Row | None]]]:
    """The record of each representation, each its own awaitable (a region that is down nulls
    only its own items); None where the key is unknown or its look-up is withheld."""
    return [
        (entity, home_record(ctx, entity.lookup.load, key))
        for entity, key in entity_keys(representations)
    ]
