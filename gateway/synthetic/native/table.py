"""A native table: how one region stores one unified entity, and how to fill it.

Each region module lists its tables; the seeder creates them, streams the
dataset's unified rows through ``convert`` into ``COPY``, then builds the
indexes (after loading, which is several times faster than maintaining them
row by row).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from gateway.core.types import Entity, Row


@dataclass(frozen=True, slots=True)
class NativeTable:
    """One table of a region's native schema.

    Attributes:
        name: the table name.
        entity: which unified entity's rows fill it.
        columns: (name, SQL type) pairs, in the order ``convert`` returns values.
        convert: a unified row -> the tuple ``COPY`` writes (native codes, units, types).
        indexes: ``CREATE INDEX`` statements for every look-up the region's mapping does.
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
        return tuple(name for name, _ in self.columns)

    @property
    def create_sql(self) -> str:
        """``CREATE TABLE`` for this table."""
        body = ",\n    ".join(f"{name} {sql_type}" for name, sql_type in self.columns)
        return f"CREATE TABLE {self.name} (\n    {body}\n)"


def to_date(value: str | None) -> dt.date | None:
    """An ISO date string as a ``date`` for a DATE column (binary COPY wants the type)."""
    return None if value is None else dt.date.fromisoformat(value)


def compact_date(value: str | None) -> str | None:
    """An ISO date as ``YYYYMMDD`` text."""
    return None if value is None else value.replace("-", "")


def yuan(value: Decimal | None) -> Decimal | None:
    """万元 -> yuan."""
    return None if value is None else value.scaleb(4).quantize(Decimal(1))


def plain(value: Decimal | None) -> str | None:
    """A Decimal as plain text without trailing zeros: ``200``, ``12.5``."""
    if value is None:
        return None
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text
