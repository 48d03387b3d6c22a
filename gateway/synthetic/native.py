"""A region's native tables, created and filled from its mapping file.

The mapping (``gateway/sources/mappings/*.toml``) says how a native row is read
into the unified vocabulary; writing is the same description run backwards, so
a region's native schema is described once. Each field's transform is
inverted: a code table maps the unified value back to the first native code
that reads as it, a unit scale divides instead of multiplying, a date is
written the way ``date`` says it is read, a JSON path puts the value at that
path in the part's document, and a constant is not written at all (it is what
every row of the part reads as). Column types come from the field (``type``,
or inferred; see :attr:`FieldSpec.column_type`), and indexes from the part's
``indexes``, compiled to exactly the expressions the gateway's statements
compare.

A part whose ``kind`` is a constant (one table per credit catalogue) holds
only the records of that kind.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from operator import itemgetter
from typing import Any

import orjson

from gateway.core.entities import MONEY_FIELDS
from gateway.core.types import Entity, Row
from gateway.sources.mapping import FieldSpec, Part, RegionMapping
from gateway.sources.sql import index_sql

__all__ = ["NativeTable", "native_tables"]

_Convert = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class NativeTable:
    """One table of a region's native schema, ready to create and fill.

    Attributes:
        name: the table name (optionally schema-qualified, as in the mapping).
        entity: which unified entity's rows fill it.
        columns: (name, SQL type) pairs, in the order ``convert`` returns values.
        convert: a unified row -> the tuple ``COPY`` writes (native codes, units, types).
        indexes: ``CREATE INDEX`` statements for the look-ups the mapping declares.
        kinds: for credit records, only these kinds go into this table (None: all).
    """

    name: str
    entity: Entity
    columns: tuple[tuple[str, str], ...]
    convert: Callable[[Row], tuple[Any, ...]]
    indexes: tuple[str, ...] = ()
    kinds: frozenset[str] | None = None

    @property
    def column_names(self) -> tuple[str, ...]:
        """The columns in ``COPY`` order."""
        return tuple(name for name, _ in self.columns)

    @property
    def quoted_name(self) -> str:
        """The table name quoted for SQL (``"rk_jbxx"``, ``"ods"."rk_jbxx"``)."""
        return ".".join(f'"{part}"' for part in self.name.split("."))

    @property
    def create_sql(self) -> str:
        """``CREATE TABLE`` for this table."""
        body = ",\n    ".join(f'"{name}" {sql_type}' for name, sql_type in self.columns)
        return f"CREATE TABLE {self.quoted_name} (\n    {body}\n)"


def native_tables(mapping: RegionMapping) -> tuple[NativeTable, ...]:
    """The native tables of a region, in the mapping's entity and part order."""
    return tuple(
        _table(entity.entity, part)  # type: ignore[arg-type]
        for entity in mapping.entities.values()
        for part in entity.parts
    )


def _table(entity: Entity, part: Part) -> NativeTable:
    columns: dict[str, str] = {}
    fields: list[str] = []  # per column, the unified field whose value it is written from
    steps: list[tuple[int, _Convert]] = []  # (column, unified value -> native value)
    paths: list[tuple[tuple[str, ...], str, _Convert | None]] = []
    document = -1
    for spec in part.fields.values():
        if spec.const is not None:
            continue
        if spec.path is not None:
            if document < 0:
                document = len(columns)
                columns[part.document or ""] = "jsonb NOT NULL"
                fields.append(spec.name)  # a placeholder: the document is built whole
            paths.append((spec.path, spec.name, _inverse(spec, json=True)))
        elif spec.column not in columns:
            step = _inverse(spec, json=False)
            if step is not None:
                steps.append((len(columns), step))
            columns[spec.column or ""] = spec.column_type or "text"
            fields.append(spec.name)
    kind = part.fields["kind"].const if entity == "credit_record" else None
    return NativeTable(
        name=part.table,
        entity=entity,
        columns=tuple(columns.items()),
        convert=_row_converter(fields, steps, document, _document(paths) if paths else None),
        indexes=tuple(
            index_sql(entity, part, field, index) for field, index in part.indexes.items()
        ),
        kinds=None if kind is None else frozenset({kind}),
    )


def _row_converter(
    fields: list[str],
    steps: list[tuple[int, _Convert]],
    document: int,
    build: Callable[[Row], str] | None,
) -> Callable[[Row], tuple[Any, ...]]:
    """One unified row -> the native tuple, running Python only for transformed values.

    Seeding converts millions of rows, so the values are picked in one
    ``itemgetter`` call and only the columns with a transform are touched.
    """
    pick: Callable[[Row], tuple[Any, ...]] = itemgetter(*fields)
    if len(fields) == 1:
        one = itemgetter(fields[0])
        pick = lambda row: (one(row),)  # noqa: E731 (itemgetter of one name is not a tuple)
    if not steps and build is None:
        return pick

    def convert(row: Row) -> tuple[Any, ...]:
        values = list(pick(row))
        for slot, step in steps:
            values[slot] = step(values[slot])
        if build is not None:
            values[document] = build(row)
        return tuple(values)

    return convert


def _document(paths: list[tuple[tuple[str, ...], str, _Convert | None]]) -> _Convert:
    """A unified row -> the JSON text of its document.

    A value that is None is left out rather than written as null: a document
    store leaves out what it does not know (and ``#>>`` reads both as null).
    """

    def build(row: Row) -> str:
        doc: dict[str, Any] = {}
        for path, name, step in paths:
            value = row[name]
            if step is not None:
                value = step(value)
            if value is None:
                continue
            node = doc
            for key in path[:-1]:
                node = node.setdefault(key, {})
            node[path[-1]] = value
        return orjson.dumps(doc).decode()

    return build


def _inverse(spec: FieldSpec, *, json: bool) -> _Convert | None:
    """The unified value -> the native value, or None when it is written as is."""
    if spec.codes is not None:
        return _codes(spec)
    if spec.date == "date":
        return _to_date
    if spec.date == "YYYYMMDD":
        return _compact_date
    if spec.name in MONEY_FIELDS:
        return _money(spec, json=json)
    return None


def _codes(spec: FieldSpec) -> _Convert:
    inverse: dict[str, str] = {}
    for native, unified in spec.codes or ():
        inverse.setdefault(unified, native)  # several codes may read as one value: the first

    def code(value: str | None) -> str | None:
        try:
            return inverse[value]  # type: ignore[index]
        except KeyError:
            if value is None:
                return None
            raise ValueError(f"field {spec.name!r}: no native code reads as {value!r}") from None

    return code


def _money(spec: FieldSpec, *, json: bool) -> _Convert:
    scale = spec.scale
    text = not json and not (spec.column_type or "").lower().startswith(("numeric", "decimal"))

    def money(value: Decimal | None) -> Any:
        if value is None:
            return None
        if scale is not None:
            value = value / scale  # 万元 -> the native unit, exactly
        if json:
            return orjson.Fragment(format(value, "f"))  # a JSON number, never a float
        return _plain(value) if text else value

    return money


def _to_date(value: str | None) -> dt.date | None:
    # Binary COPY into a DATE column wants a date, not its text.
    return None if value is None else dt.date.fromisoformat(value)


def _compact_date(value: str | None) -> str | None:
    return None if value is None else value.replace("-", "")


def _plain(value: Decimal) -> str:
    """A Decimal as plain text without trailing zeros: ``200``, ``12.5``."""
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text
