"""The unified schema seen from above: the GraphQL a ``gateway`` source sends, and its rows back.

A lower gateway speaks the same unified schema, so no mapping is needed: an
entity's GraphQL fields are its unified field names (``gateway/core/entities.py``)
in camelCase. Two kinds of unified field are not fields of the GraphQL type:

- a row's link to its parent (``person_id`` of a residence): it is the key the
  parent was asked by, written into the row here;
- ``legal_rep_id`` of an enterprise: the ``idNumber`` of its ``legalRepresentative``.

Every fetch is one list field of the lower (``naturalPersons(idNumbers:)``,
``legalPersons(usccs:)``), directly or through one of its links
(``residences``, ``socialInsurance``, ``enterprises``, ``creditRecords``). The
answer of a list field is in the order of its keys, ``null`` where the lower
has nothing to show (unknown, or not released), so each item is matched to its
key by position, never by a value the lower may have masked.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from gateway.core.entities import ENTITY_FIELDS, MONEY_FIELDS
from gateway.core.identifiers import is_valid_id_number, is_valid_uscc
from gateway.core.types import Row

__all__ = [
    "CHUNK",
    "Route",
    "fetch_document",
    "routes_for",
    "row_from",
    "search_document",
    "selection",
]

#: Keys per list argument: the lower's batch limit (``max_batch_keys``, at most 100). A
#: larger call is split into several aliased fields of the same single request.
CHUNK = 100

#: Unified fields read through a nested selection rather than a scalar of their own.
_NESTED = {("enterprise", "legal_rep_id"): ("legalRepresentative", "idNumber")}
#: Unified fields that hold the parent's key (written from the key, never selected).
_FROM_PARENT = {"residence": "person_id", "social_insurance": "person_id"}


def camel(name: str) -> str:
    """``household_address`` -> ``householdAddress``: the GraphQL name of a unified field."""
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _selection(entity: str, columns: Collection[str] | None = None) -> str:
    parts = []
    for field in ENTITY_FIELDS[entity]:
        if _FROM_PARENT.get(entity) == field or (columns is not None and field not in columns):
            continue
        nested = _NESTED.get((entity, field))
        parts.append(f"{nested[0]} {{ {nested[1]} }}" if nested else camel(field))
    # A selection cannot be empty; a row of only its parent's key still needs one field.
    return " ".join(parts) or "__typename"


#: The selection of every unified field of each entity, built once from ENTITY_FIELDS.
SELECTIONS: Mapping[str, str] = {entity: _selection(entity) for entity in ENTITY_FIELDS}


@functools.lru_cache(maxsize=256)
def selection(entity: str, columns: frozenset[str] | None) -> str:
    """The lower's selection for rows of ``entity`` holding ``columns`` (None: every field).

    Bounded: the column sets come from the gateway's planned documents, but a cache
    keyed by them must not grow without bound.

    >>> selection("enterprise", frozenset({"uscc", "name", "legal_rep_id"}))
    'uscc name legalRepresentative { idNumber }'
    """
    if columns is None:
        return SELECTIONS[entity]
    unknown = columns.difference(ENTITY_FIELDS[entity])
    if unknown:
        raise ValueError(f"entity {entity!r} has no field {sorted(unknown)[0]!r}")
    return _selection(entity, columns)


@dataclass(frozen=True, slots=True)
class Route:
    """One way to reach rows of an entity by a field: a list field of the lower, maybe a link.

    Attributes:
        root: the lower's list field (``naturalPersons``).
        argument: its list argument (``idNumbers``).
        accepts: whether a key can be asked there: the lower refuses a whole list
            with one malformed key (``INVALID_ID``), and a key the lower itself
            masked (``320102********``) names nobody, so such keys are not sent.
        link: the link of the root's type that holds the rows, or None for the root's own.
    """

    root: str
    argument: str
    accepts: Callable[[str], bool]
    link: str | None = None


_PERSONS = ("naturalPersons", "idNumbers", is_valid_id_number)
_ENTERPRISES = ("legalPersons", "usccs", is_valid_uscc)

_ROUTES: Mapping[tuple[str, str], tuple[Route, ...]] = {
    ("person", "id_number"): (Route(*_PERSONS),),
    ("enterprise", "uscc"): (Route(*_ENTERPRISES),),
    ("enterprise", "legal_rep_id"): (Route(*_PERSONS, link="enterprises"),),
    ("residence", "person_id"): (Route(*_PERSONS, link="residences"),),
    ("social_insurance", "person_id"): (Route(*_PERSONS, link="socialInsurance"),),
    # A subject is a person or an enterprise; the kind of a key is not known from the
    # call, so it goes to each list whose check it passes (GB 11643 or GB 32100).
    ("credit_record", "subject_id"): (
        Route(*_PERSONS, link="creditRecords"),
        Route(*_ENTERPRISES, link="creditRecords"),
    ),
}


def routes_for(entity: str, field: str) -> tuple[Route, ...]:
    """The routes of ``entity`` by ``field``; ``ValueError`` for a pair no loader asks for."""
    routes = _ROUTES.get((entity, field))
    if routes is None:
        raise ValueError(f"a gateway source cannot fetch {entity} by {field}")
    return routes


#: What one fetch asks: per alias, the route and the keys asked there (in order).
Asked = list[tuple[str, Route, list[str]]]


def fetch_document(
    parts: Sequence[tuple[str, Sequence[Route], Sequence[str]]],
    columns: Sequence[frozenset[str] | None] | None = None,
) -> tuple[str, dict[str, list[str]], list[Asked]]:
    """One operation asking every key of every part, in chunks of ``CHUNK`` per aliased
    list field: a part is one fetch, ``(entity, routes, keys)``, selecting every field of
    its entity, or only the fields at its position in ``columns`` (``selection``).

    Returns the document, its variables, and for each part, per alias, the route
    and the keys it asked (in order), to read the answer with. A part with no key
    the lower could take asks nothing (its list is empty).
    """
    fields: list[str] = []
    variables: dict[str, list[str]] = {}
    asked: list[Asked] = []
    wanted = columns if columns is not None else [None] * len(parts)
    for (entity, routes, keys), own in zip(parts, wanted, strict=True):
        selected = selection(entity, own)
        mine: Asked = []
        for route in routes:
            accepted = [key for key in keys if route.accepts(key)]
            for start in range(0, len(accepted), CHUNK):
                alias = f"k{len(variables)}"
                chunk = accepted[start : start + CHUNK]
                inner = selected if route.link is None else f"{route.link} {{ {selected} }}"
                fields.append(f"{alias}: {route.root}({route.argument}: ${alias}) {{ {inner} }}")
                variables[alias] = chunk
                mine.append((alias, route, chunk))
        asked.append(mine)
    declared = ", ".join(f"${alias}: [ID!]!" for alias in variables)
    document = f"query DeltagateFetch({declared}) {{ {' '.join(fields)} }}"
    return document, variables, asked


def search_document(entity: str) -> str:
    """The lower's name search, one page of it; variables ``name``, ``region``, ``first``,
    ``after`` (the lower's own cursor)."""
    if entity != "enterprise":
        raise ValueError(f"entity {entity!r} cannot be searched")
    return (
        "query DeltagateSearch($name: String!, $region: Region, $first: Int!, $after: String) {"
        " searchLegalPersons(name: $name, region: $region, first: $first, after: $after) {"
        f" edges {{ node {{ {SELECTIONS[entity]} }} }} pageInfo {{ hasNextPage endCursor }} }} }}"
    )


def row_from(entity: str, item: Mapping[str, Any]) -> Row:
    """A lower's GraphQL object as a unified row: snake_case keys, the values as released.

    A masked value stays masked and a withheld one ``None``; only the type of a
    money value changes (JSON text or number to ``Decimal``), as the unified
    vocabulary has it.
    """
    row: Row = {}
    for field in ENTITY_FIELDS[entity]:
        nested = _NESTED.get((entity, field))
        if nested is not None:
            parent = item.get(nested[0])
            value = parent.get(nested[1]) if isinstance(parent, Mapping) else None
        else:
            value = item.get(camel(field))
        if field in MONEY_FIELDS and value is not None:
            value = Decimal(str(value))
        row[field] = value
    return row
