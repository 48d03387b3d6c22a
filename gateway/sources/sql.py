"""SQL compiled from a regional mapping: one statement per (entity, look-up field[, columns]).

Every transform runs inside PostgreSQL, so rows arrive already in the value
conventions of ``gateway/core/entities.py``: ISO date text for date fields,
``numeric`` rounded to four places (a ``Decimal`` through asyncpg) for money,
text for everything else. Constants, code tables and table names come from a
checked mapping (``gateway.sources.mapping``); caller values only ever travel as
parameters.

A look-up may name the columns it needs (``columns``): the statement then
selects only those, plus the field looked up by, in vocabulary order. The
gateway names them per planned document (``schema.plan``), so that PostgreSQL
computes, sends and asyncpg decodes only what the operation reads.

Look-ups compare as text. A plain column is compared as ``("col")::text``:
for a text or varchar column the planner sees through that cast, so an
ordinary index on the column serves the batch, and a column of another type
(a bigint id) still compares, served by an expression index ``((col::text))``.
Any other field is compared as its compiled expression. For a JSON path that
is ``("doc" #>> '{idNumber}')``: a native expression index must be written
with exactly that operator and path (``doc ->> 'idNumber'`` is a different
expression and will not be used).

Prefix search compares in the "C" collation (code-point order, which is how
Python sorts strings, so pages from several regions merge without
re-collating) over the range ``>= prefix AND < successor`` rather than
``LIKE $1``: PostgreSQL turns a LIKE into an index range only when the pattern
is a constant, and once a prepared statement switches to its generic plan a
``LIKE $1`` scans the whole index (measured: 80 ms against 0.03 ms on 200k
rows). A first page and a following page are separate statements because a
"from the start" cursor such as ``('', '')`` makes the scan begin at the start
of the index. The index that serves a search on (name, key) is
``(name COLLATE "C", uscc COLLATE "C")``, or for a document
``((("doc" #>> '{name}') COLLATE "C"), (("doc" #>> '{uscc}') COLLATE "C"))``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.core.entities import ENTITY_FIELDS, ENTITY_KEYS, MONEY_FIELDS

if TYPE_CHECKING:
    from gateway.sources.mapping import EntityMapping, FieldSpec, Part

__all__ = [
    "SEARCH_KEYS",
    "Combined",
    "combined_fetch_sql",
    "fetch_sql",
    "index_sql",
    "prefix_bounds",
    "projected",
    "search_sql",
]

#: The tie-breaking key of a search page: ENTITY_KEYS, except that a credit
#: record's subject is not unique (a keyset on it would skip or repeat rows), so
#: records page by their own id. Residences and social insurance have no unique
#: field and cannot be searched.
SEARCH_KEYS: Mapping[str, str] = {
    "person": ENTITY_KEYS["person"],
    "enterprise": ENTITY_KEYS["enterprise"],
    "credit_record": "id",
}


# The largest code point: a noncharacter, so no real name starts with it.
_MAX_CHAR = "\U0010ffff"


def prefix_bounds(prefix: str) -> tuple[str, str]:
    """The ``[lower, upper)`` range of strings that start with ``prefix``, in code-point order.

    >>> prefix_bounds("上海")
    ('上海', '上浸')
    """
    stem = prefix.rstrip(_MAX_CHAR)
    if not stem:
        return prefix, _MAX_CHAR * (len(prefix) + 1)
    last = ord(stem[-1]) + 1
    if 0xD800 <= last <= 0xDFFF:  # surrogates cannot be stored; skip past them
        last = 0xE000
    return prefix, stem[:-1] + chr(last)


def projected(entity: str, field: str, columns: Collection[str] | None) -> tuple[str, ...]:
    """The fields a look-up on ``field`` selects: every field of ``entity`` (``columns`` None),
    or those of ``columns`` and ``field`` itself, in vocabulary order.

    >>> projected("person", "id_number", {"phone", "name"})
    ('id_number', 'name', 'phone')

    Raises:
        ValueError: a column or the field is not one of the entity's.
    """
    _check_field(entity, field)
    every = ENTITY_FIELDS[entity]
    if columns is None:
        return every
    unknown = set(columns).difference(every)
    if unknown:
        raise ValueError(f"entity {entity!r} has no field {sorted(unknown)[0]!r}")
    return tuple(name for name in every if name == field or name in columns)


def fetch_sql(mapping: EntityMapping, field: str, columns: Collection[str] | None = None) -> str:
    """The rows whose ``field`` is one of ``$1::text[]``: every field, or ``columns`` only
    (``projected``).

    Each part filters its own table, so each can use its own index::

        SELECT <fields> FROM "a" WHERE ("k")::text = ANY($1::text[])
        UNION ALL SELECT <fields> FROM "b" WHERE ("doc" #>> '{k}') = ANY($1::text[])
    """
    names = projected(mapping.entity, field, columns)
    return " UNION ALL ".join(
        f"SELECT {_select_list(part, names)} FROM {_quote_table(part.table)}"
        f" WHERE {_lookup_expr(part, field)} = ANY($1::text[])"
        for part in mapping.parts
    )


#: The column of a combined statement that says which look-up a row answers.
LOOKUP_COLUMN = "_lookup"


@dataclass(frozen=True, slots=True)
class Combined:
    """One statement answering several look-ups in one round trip (``combined_fetch_sql``).

    Attributes:
        sql: the statement; ``$1``, ``$2``, ... are the look-ups' ``text[]`` keys, in order.
        fields: per look-up, the fields it selects (``projected``), in vocabulary order.
        columns: per look-up, the result column of each of those fields.
    """

    sql: str
    fields: tuple[tuple[str, ...], ...]
    columns: tuple[tuple[int, ...], ...]


def combined_fetch_sql(
    lookups: Sequence[tuple[EntityMapping, str]],
    columns: Sequence[Collection[str] | None] | None = None,
) -> Combined:
    """Several look-ups (each as ``fetch_sql``, with the columns of the same position in
    ``columns``, if given) as one statement, one round trip for all.

    The rows of every look-up come back in one result: the first column,
    ``_lookup``, is the look-up's position, then the union of their fields by
    name (a field of the same name has the same type in every entity: text, or
    ``numeric`` for money), null where a look-up's entity has no such field.
    Each look-up compares with its own parameter, so each part still uses its
    own index::

        SELECT 0 AS "_lookup", "a" AS "person_id", ..., NULL::text AS "insurance_type"
          FROM "rk_jzxx" WHERE ("gmsfhm")::text = ANY($1::text[])
        UNION ALL SELECT 1, NULL::text, ..., CASE ... END FROM "sb_cbxx" WHERE ... = ANY($2::text[])
    """
    if columns is None:
        columns = [None] * len(lookups)
    elif len(columns) != len(lookups):
        raise ValueError("one set of columns per look-up")
    fields = tuple(
        projected(mapping.entity, field, own)
        for (mapping, field), own in zip(lookups, columns, strict=True)
    )
    names: dict[str, None] = {}
    for own in fields:
        names.update(dict.fromkeys(own))
    position = {name: index + 1 for index, name in enumerate(names)}
    branches = []
    for number, (mapping, field) in enumerate(lookups):
        for part in mapping.parts:
            values = []
            for name in names:
                spec = part.fields.get(name)
                if spec is not None:
                    values.append(f"{_value_expr(part, spec)} AS {_quote(name)}")
                else:
                    null = "NULL::numeric" if name in MONEY_FIELDS else "NULL::text"
                    values.append(f"{null} AS {_quote(name)}")
            branches.append(
                f"SELECT {number} AS {_quote(LOOKUP_COLUMN)}, {', '.join(values)}"
                f" FROM {_quote_table(part.table)}"
                f" WHERE {_lookup_expr(part, field)} = ANY(${number + 1}::text[])"
            )
    positions = tuple(tuple(position[name] for name in own) for own in fields)
    return Combined(" UNION ALL ".join(branches), fields, positions)


def search_sql(mapping: EntityMapping, field: str, *, after: bool) -> str:
    """One page of rows whose ``field`` starts with a prefix, by (field, key) in "C" order.

    The key is ``SEARCH_KEYS[entity]``. Parameters: ``$1``, ``$2`` the bounds
    from :func:`prefix_bounds`; with ``after``, ``$3``, ``$4`` the (field, key)
    of the last row of the previous page; last, the page size::

        SELECT <fields> FROM "e" WHERE ("name")::text COLLATE "C" >= $1
          AND ("name")::text COLLATE "C" < $2
          AND (("name")::text COLLATE "C", ("uscc")::text COLLATE "C") > ($3::text, $4::text)
          ORDER BY ("name")::text COLLATE "C", ("uscc")::text COLLATE "C" LIMIT $5

    Several parts each take their own page, and the union is cut to one page.
    """
    entity = mapping.entity
    _check_field(entity, field)
    key = SEARCH_KEYS.get(entity)
    if key is None:
        raise ValueError(f"entity {entity!r} has no unique key to page by")
    limit = "$5" if after else "$3"

    def one(part: Part) -> str:
        f = f'{_lookup_expr(part, field)} COLLATE "C"'
        k = f'{_lookup_expr(part, key)} COLLATE "C"'
        where = f"{f} >= $1 AND {f} < $2"
        if after:
            where += f" AND ({f}, {k}) > ($3::text, $4::text)"
        return (
            f"SELECT {_select_list(part, ENTITY_FIELDS[entity])} FROM {_quote_table(part.table)}"
            f" WHERE {where} ORDER BY {f}, {k} LIMIT {limit}"
        )

    if len(mapping.parts) == 1:
        return one(mapping.parts[0])
    columns = ", ".join(_quote(name) for name in ENTITY_FIELDS[entity])
    union = " UNION ALL ".join(f"({one(part)})" for part in mapping.parts)
    return (
        f"SELECT {columns} FROM ({union}) AS u"
        f' ORDER BY {_quote(field)} COLLATE "C", {_quote(key)} COLLATE "C" LIMIT {limit}'
    )


def index_sql(entity: str, part: Part, field: str, kind: str) -> str:
    """``CREATE INDEX`` for the look-up ``fetch_sql`` or ``search_sql`` does on ``field``.

    ``kind`` is ``unique`` or ``lookup`` (a batch look-up by value), or
    ``search`` (prefix search on ``field`` paged by the entity's search key,
    in the "C" collation). The indexed expression is exactly the one the
    statements compare, so the planner can use it::

        CREATE UNIQUE INDEX "person_doc_id_number" ON "person_doc" ((("doc" #>> '{idNumber}')))
    """
    _check_field(entity, field)
    name = _quote(f"{part.table.rsplit('.', 1)[-1]}_{field}")
    if kind == "search":
        key = SEARCH_KEYS[entity]
        items = ", ".join(f'{_index_item(part, f)} COLLATE "C"' for f in (field, key))
        return f"CREATE INDEX {name} ON {_quote_table(part.table)} ({items})"
    unique = "UNIQUE " if kind == "unique" else ""
    return f"CREATE {unique}INDEX {name} ON {_quote_table(part.table)} ({_index_item(part, field)})"


def _index_item(part: Part, field: str) -> str:
    """A plain column by name (the planner sees through its ``::text``), else the expression."""
    spec = part.fields[field]
    if spec.column is not None and _lookup_expr(part, field) == _as_text(part, spec):
        return _quote(spec.column)
    return f"({_lookup_expr(part, field)})"


def _check_field(entity: str, field: str) -> None:
    if field not in ENTITY_FIELDS[entity]:
        raise ValueError(f"entity {entity!r} has no field {field!r}")


def _quote(identifier: str) -> str:
    # Only names matching _IDENT reach here, so quoting is just the delimiters;
    # quoted names match case exactly.
    return f'"{identifier}"'


def _quote_table(table: str) -> str:
    return ".".join(_quote(part) for part in table.split("."))


def _literal(value: str) -> str:
    quoted = value.replace("'", "''")
    if "\\" in value:
        # E'' reads the same whatever standard_conforming_strings says.
        return "E'" + quoted.replace("\\", "\\\\") + "'"
    return f"'{quoted}'"


def _source_expr(part: Part, spec: FieldSpec) -> str:
    """The native value, before any transform."""
    if spec.const is not None:
        return _literal(spec.const)
    if spec.path is not None:
        return f"({_quote(part.document or '')} #>> '{{{','.join(spec.path)}}}')"
    return _quote(spec.column or "")


def _as_text(part: Part, spec: FieldSpec) -> str:
    value = _source_expr(part, spec)
    return value if spec.path is not None else f"({value})::text"


def _value_expr(part: Part, spec: FieldSpec) -> str:
    """The unified value, by the value conventions of gateway/core/entities.py."""
    name = spec.name
    if spec.const is not None:
        if name in MONEY_FIELDS:
            return f"round({_literal(spec.const)}::numeric, 4)"
        return _literal(spec.const)
    if name in MONEY_FIELDS:
        # '' (a blank text amount) is no amount, not an error that fails the batch.
        value = f"nullif({_as_text(part, spec)}, '')::numeric"
        if spec.scale is not None:
            value += f" * {format(spec.scale, 'f')}"
        return f"round({value}, 4)"
    if spec.date == "date":
        return f"to_char(({_source_expr(part, spec)})::date, 'YYYY-MM-DD')"
    if spec.date == "YYYYMMDD":
        v = _as_text(part, spec)
        # Anything but eight digits becomes null rather than a malformed date.
        return (
            f"CASE WHEN {v} ~ '^[0-9]{{8}}$' THEN substr({v}, 1, 4) || '-'"
            f" || substr({v}, 5, 2) || '-' || substr({v}, 7, 2) END"
        )
    if spec.codes is not None:
        whens = " ".join(f"WHEN {_literal(k)} THEN {_literal(v)}" for k, v in spec.codes)
        return f"CASE {_as_text(part, spec)} {whens} END"
    return _as_text(part, spec)


def _lookup_expr(part: Part, field: str) -> str:
    """The text expression a look-up compares, parenthesised for COLLATE."""
    spec = part.fields[field]
    value = _value_expr(part, spec)
    if field in MONEY_FIELDS:
        return f"({value})::text"
    if spec.path is not None or (spec.column is not None and value == _as_text(part, spec)):
        return value  # already ("doc" #>> '{...}') or ("col")::text
    return f"({value})"


def _select_list(part: Part, names: Sequence[str]) -> str:
    fields = part.fields
    return ", ".join(f"{_value_expr(part, fields[name])} AS {_quote(name)}" for name in names)
