"""Regional mappings: load a mapping file and check it against the unified vocabulary.

A mapping (format in ``gateway/sources/mappings/README.md``) says how one region's
native tables become rows of the unified vocabulary (``gateway/core/entities.py``).
Loading checks it strictly, so a typo fails at start-up with the file, entity
and field named, never at query time; ``gateway.sources.sql`` turns it into SQL.

>>> mapping = load_mapping("gateway/sources/mappings/zj.toml")  # doctest: +SKIP
>>> mapping.compile_fetch("person", "id_number")  # doctest: +SKIP
'SELECT ("sfzh")::text AS "id_number", ... FROM "t_rk_jbxx" WHERE ("sfzh")::text = ANY($1::text[])'

Beyond the shape of the file, the checks hold the value conventions: a date
field must say how its value holds a date, only money fields are numeric,
constants of date and money fields must parse, and code tables and constants
of closed sets (gender, credit-record kind, subject type) must use the
unified values.

A mapping also describes its native tables well enough to create and fill
them (``gateway.synthetic`` seeds demo databases from it): a column's SQL
type where it cannot be inferred (``type``), and the indexes the gateway's
look-ups rely on (``indexes``).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal

from gateway.core.entities import CREDIT_KINDS, DATE_FIELDS, ENTITY_FIELDS, MONEY_FIELDS
from gateway.core.errors import ConfigError
from gateway.sources.sql import SEARCH_KEYS, Combined, combined_fetch_sql, fetch_sql, search_sql

#: The mapping files shipped with the gateway, one per delta region (``sh.toml``, ...).
SHIPPED_MAPPINGS = Path(__file__).with_name("mappings")

__all__ = [
    "EntityMapping",
    "FieldSpec",
    "Part",
    "RegionMapping",
    "load_mapping",
    "parse_mapping",
]

DateFormat = Literal["date", "YYYYMMDD", "iso"]
IndexKind = Literal["unique", "lookup", "search"]

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TABLE = re.compile(r"(?:[A-Za-z_][A-Za-z0-9_]*\.)?[A-Za-z_][A-Za-z0-9_]*")
_PATH_SEGMENT = re.compile(r"[A-Za-z0-9_]+")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DATE_FORMATS: tuple[str, ...] = ("date", "YYYYMMDD", "iso")
_FIELD_KEYS = frozenset({"column", "path", "const", "codes", "date", "numeric", "scale", "type"})
_INDEX_KINDS: tuple[str, ...] = ("unique", "lookup", "search")
# A column type: a type name with optional modifiers and NOT NULL, never a
# second statement (it is written into CREATE TABLE as is).
_SQL_TYPE = re.compile(r"[A-Za-z][A-Za-z ]*(?:\([0-9]+(?:, ?[0-9]+)?\))?(?: NOT NULL)?")
# Closed value sets of the unified vocabulary (gateway/core/entities.py): a code
# table or constant outside them would leak a native code into the schema.
_DOMAINS: Mapping[str, tuple[str, ...]] = {
    "gender": ("MALE", "FEMALE"),
    "kind": CREDIT_KINDS,
    "subject_type": ("NATURAL_PERSON", "LEGAL_PERSON"),
}
_Fail = Callable[[str], ConfigError]


@dataclass(frozen=True, kw_only=True)
class FieldSpec:
    """How one unified field is read from a native row.

    Attributes:
        name: the unified field name.
        column: a column of the part's table, or
        path: key path inside the part's JSONB ``document`` column, or
        const: a constant (exactly one of the three is set).
        codes: code table (native code, unified value); unlisted codes become null.
        date: how the native value holds a date (date fields only).
        scale: factor applied before rounding (money fields only, e.g. yuan -> 万元).
        sql_type: the native column's SQL type when given (``type`` in the file);
            otherwise :attr:`column_type` infers it.
    """

    name: str
    column: str | None = None
    path: tuple[str, ...] | None = None
    const: str | None = None
    codes: tuple[tuple[str, str], ...] | None = None
    date: DateFormat | None = None
    scale: Decimal | None = None
    sql_type: str | None = None

    @property
    def column_type(self) -> str | None:
        """The SQL type of the native column (None for a path or a constant).

        Given by ``type``, or inferred: ``date = "date"`` is ``date``,
        ``date = "YYYYMMDD"`` is ``varchar(8)``, money is ``numeric``, anything
        else ``text``.
        """
        if self.column is None:
            return None
        if self.sql_type is not None:
            return self.sql_type
        if self.date == "date":
            return "date"
        if self.date == "YYYYMMDD":
            return "varchar(8)"
        if self.name in MONEY_FIELDS:
            return "numeric"
        return "text"


@dataclass(frozen=True, kw_only=True)
class Part:
    """One native table an entity is read from.

    Attributes:
        table: the table, optionally schema-qualified (``from`` in the file).
        document: the JSONB column that ``path`` fields read, if any.
        fields: every unified field of the entity, in vocabulary order.
        indexes: unified field -> the index a look-up on it needs: ``unique``,
            ``lookup``, or ``search`` (prefix search paged by the entity's key).
    """

    table: str
    document: str | None
    fields: Mapping[str, FieldSpec]
    indexes: Mapping[str, IndexKind] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class EntityMapping:
    """An entity read from one table, or from several as UNION ALL.

    Attributes:
        entity: the unified entity name.
        parts: one part per native table.
    """

    entity: str
    parts: tuple[Part, ...]


@dataclass(frozen=True, kw_only=True)
class RegionMapping:
    """A region's whole mapping; an entity it leaves out is one the region does not hold.

    Attributes:
        region: the region code the source owns.
        entities: entity name -> its mapping.
        source: where the mapping came from (named in errors).
    """

    region: str
    entities: dict[str, EntityMapping]
    source: str = "<mapping>"

    def compile_fetch(self, entity: str, field: str, columns: Collection[str] | None = None) -> str:
        """SQL for the rows of ``entity`` whose ``field`` is one of ``$1::text[]``: every
        field, or only ``columns`` (and ``field``).

        See :func:`gateway.sources.sql.fetch_sql` for the statement's shape.
        """
        return fetch_sql(self._entity(entity), field, columns)

    def compile_combined(
        self,
        lookups: Sequence[tuple[str, str]],
        columns: Sequence[Collection[str] | None] | None = None,
    ) -> Combined:
        """One statement for several (entity, field) look-ups, each with its own ``text[]``
        (and, given ``columns``, each selecting only its own columns).

        See :func:`gateway.sources.sql.combined_fetch_sql` for the statement's shape.
        """
        return combined_fetch_sql(
            [(self._entity(entity), field) for entity, field in lookups], columns
        )

    def compile_search(self, entity: str, field: str, *, after: bool) -> str:
        """SQL for one page of rows whose ``field`` starts with a prefix.

        See :func:`gateway.sources.sql.search_sql` for the statement and its parameters.
        """
        return search_sql(self._entity(entity), field, after=after)

    def _entity(self, entity: str) -> EntityMapping:
        if entity not in ENTITY_FIELDS:
            raise ValueError(f"unknown entity {entity!r}")
        try:
            return self.entities[entity]
        except KeyError:
            raise ValueError(f"region {self.region} does not map entity {entity!r}") from None


def load_mapping(path: str | Path) -> RegionMapping:
    """Read and check a mapping file; :class:`ConfigError` names what is wrong and where."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"{path.name}: cannot read mapping ({exc.strerror})", file=path.name
        ) from None
    return parse_mapping(text, source=path.name)


def parse_mapping(text: str, *, source: str = "<mapping>") -> RegionMapping:
    """Check a mapping given as TOML text (``source`` names it in errors)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML ({exc})", file=source) from None
    _only_keys(data, {"region", "entity"}, source, None, None)
    region = data.get("region")
    if not isinstance(region, str) or not re.fullmatch(r"[A-Z][A-Z0-9_]*", region):
        raise ConfigError(f"{source}: 'region' must be a region code such as \"SH\"", file=source)
    tables = data.get("entity", {})
    if not isinstance(tables, dict) or not tables:
        raise ConfigError(f"{source}: no [entity.*] tables", file=source)
    entities: dict[str, EntityMapping] = {}
    for entity, raw in tables.items():
        if entity not in ENTITY_FIELDS:
            known = ", ".join(ENTITY_FIELDS)
            raise _error(source, entity, None, f"unknown entity (known: {known})")
        entities[entity] = _entity_mapping(raw, source, entity)
    return RegionMapping(region=region, entities=entities, source=source)


def _entity_mapping(raw: Any, source: str, entity: str) -> EntityMapping:
    if not isinstance(raw, dict):
        raise _error(source, entity, None, "must be a table")
    _only_keys(raw, {"from", "document", "fields", "parts", "indexes"}, source, entity, None)
    document = raw.get("document")
    indexes = raw.get("indexes")
    if "parts" in raw:
        if "from" in raw or "fields" in raw:
            raise _error(source, entity, None, "give either 'from' + 'fields' or 'parts', not both")
        raw_parts = raw["parts"]
        if not isinstance(raw_parts, list) or not raw_parts:
            raise _error(source, entity, None, "'parts' must be a non-empty array of tables")
        parts = []
        for index, raw_part in enumerate(raw_parts):
            where = f"{entity}.parts[{index}]"
            if not isinstance(raw_part, dict):
                raise _error(source, where, None, "must be a table")
            _only_keys(raw_part, {"from", "document", "fields", "indexes"}, source, where, None)
            parts.append(
                _part(
                    raw_part,
                    source,
                    entity,
                    where,
                    raw_part.get("document", document),
                    raw_part.get("indexes", indexes),
                )
            )
        return EntityMapping(entity=entity, parts=tuple(parts))
    part = _part(raw, source, entity, entity, document, indexes)
    return EntityMapping(entity=entity, parts=(part,))


def _part(
    raw: dict[str, Any], source: str, entity: str, where: str, document: Any, indexes: Any
) -> Part:
    table = raw.get("from")
    if not isinstance(table, str) or not _TABLE.fullmatch(table):
        raise _error(source, where, None, "'from' must be a table name, optionally schema.table")
    if document is not None and (not isinstance(document, str) or not _IDENT.fullmatch(document)):
        raise _error(source, where, None, "'document' must be a column name")
    fields = raw.get("fields")
    if not isinstance(fields, dict):
        raise _error(source, where, None, "missing [fields] table")
    unknown = sorted(set(fields) - set(ENTITY_FIELDS[entity]))
    if unknown:
        raise _error(source, where, unknown[0], "unknown field")
    specs = {}
    for name in ENTITY_FIELDS[entity]:
        if name not in fields:
            raise _error(source, where, name, "not mapped (every field must be)")
        specs[name] = _field(fields[name], source, where, name, document)
    return Part(
        table=table,
        document=document,
        fields=specs,
        indexes=_indexes(indexes, source, entity, where, specs),
    )


def _indexes(
    raw: Any, source: str, entity: str, where: str, specs: Mapping[str, FieldSpec]
) -> Mapping[str, IndexKind]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise _error(source, where, None, "'indexes' must be a table of field = kind")
    for name, kind in raw.items():
        if name not in specs:
            raise _error(source, where, name, "'indexes' names an unknown field")
        if kind not in _INDEX_KINDS:
            raise _error(source, where, name, 'an index is "unique", "lookup" or "search"')
        if specs[name].const is not None:
            raise _error(source, where, name, "a constant cannot be indexed")
        if kind == "search" and entity not in SEARCH_KEYS:
            raise _error(source, where, name, f"entity {entity!r} cannot be searched")
    return dict(raw)


def _field(raw: Any, source: str, where: str, name: str, document: str | None) -> FieldSpec:
    def fail(problem: str) -> ConfigError:
        return _error(source, where, name, problem)

    if isinstance(raw, str):
        raw = {"column": raw}
    if not isinstance(raw, dict):
        raise fail("must be a column name or an inline table")
    unknown = sorted(set(raw) - _FIELD_KEYS)
    if unknown:
        raise fail(f"unknown key {unknown[0]!r}")
    forms = [key for key in ("column", "path", "const") if key in raw]
    if len(forms) != 1:
        raise fail("give exactly one of 'column', 'path', 'const'")
    spec: dict[str, Any] = {"name": name}

    if "type" in raw:
        sql_type = raw["type"]
        if "column" not in raw:
            raise fail("'type' applies to a column")
        if not isinstance(sql_type, str) or not _SQL_TYPE.fullmatch(sql_type):
            raise fail("'type' must be an SQL type such as \"varchar(32)\"")
        if raw.get("date") == "date":
            raise fail("date = \"date\" is a DATE column; it takes no 'type'")
        spec["sql_type"] = sql_type
    if "const" in raw:
        if set(raw) != {"const"}:
            raise fail("a constant takes no transforms")
        spec["const"] = _const(raw["const"], name, fail)
        return FieldSpec(**spec)
    if "column" in raw:
        column = raw["column"]
        if not isinstance(column, str) or not _IDENT.fullmatch(column):
            raise fail("'column' must be a column name ([A-Za-z_][A-Za-z0-9_]*)")
        spec["column"] = column
    else:
        if document is None:
            raise fail("'path' needs 'document' on the entity or part")
        path = raw["path"]
        segments = path.split(".") if isinstance(path, str) else []
        if not segments or not all(_PATH_SEGMENT.fullmatch(s) for s in segments):
            raise fail("'path' must be dot-separated keys of [A-Za-z0-9_]")
        spec["path"] = tuple(segments)

    if "codes" in raw:
        if name in DATE_FIELDS or name in MONEY_FIELDS:
            raise fail("'codes' applies to text fields only")
        codes = raw["codes"]
        if not isinstance(codes, dict) or not codes:
            raise fail("'codes' must be a non-empty table of code = value")
        for value in codes.values():
            _check_text_value(value, name, fail)
        spec["codes"] = tuple(codes.items())

    if name in DATE_FIELDS:
        date = raw.get("date")
        if date not in _DATE_FORMATS:
            raise fail('a date field needs date = "date", "YYYYMMDD" or "iso"')
        if date == "date" and "path" in raw:
            raise fail('date = "date" is for DATE columns; a JSON value is "iso" or "YYYYMMDD"')
        spec["date"] = date
    elif "date" in raw:
        raise fail("'date' applies to date fields only")

    if name in MONEY_FIELDS:
        # Money is always numeric (value convention); `numeric = true` is optional.
        if raw.get("numeric", True) is not True:
            raise fail("a money field is always numeric")
        if "scale" in raw:
            scale = raw["scale"]
            if isinstance(scale, bool) or not isinstance(scale, int | float) or scale <= 0:
                raise fail("'scale' must be a positive number")
            spec["scale"] = Decimal(repr(scale))
    elif "numeric" in raw or "scale" in raw:
        raise fail("'numeric' and 'scale' apply to money fields only")
    return FieldSpec(**spec)


def _const(value: Any, name: str, fail: _Fail) -> str:
    if not isinstance(value, str):
        raise fail("'const' must be a string")
    if name in DATE_FIELDS and not _ISO_DATE.fullmatch(value):
        raise fail("a date constant must be YYYY-MM-DD")
    if name in MONEY_FIELDS:
        try:
            if not Decimal(value).is_finite():
                raise InvalidOperation
        except InvalidOperation:
            raise fail("a money constant must be a decimal number") from None
    _check_text_value(value, name, fail)
    return value


def _check_text_value(value: Any, name: str, fail: _Fail) -> None:
    if not isinstance(value, str) or "\x00" in value:
        raise fail("values must be strings")
    domain = _DOMAINS.get(name)
    if domain is not None and value not in domain:
        raise fail(f"{value!r} is not one of {', '.join(domain)}")


def _only_keys(
    raw: dict[str, Any], allowed: set[str], source: str, where: str | None, field: str | None
) -> None:
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise _error(source, where, field, f"unknown key {unknown[0]!r}")


def _error(source: str, entity: str | None, field: str | None, problem: str) -> ConfigError:
    place = source
    if entity is not None:
        place += f": entity {entity!r}"
    if field is not None:
        place += f", field {field!r}"
    return ConfigError(f"{place}: {problem}", file=source, entity=entity, field=field)
