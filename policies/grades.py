"""The field grade catalog: every field coordinate's grade and mask rule.

Loaded from ``catalog.toml`` (read that file for the grades and the reasons
behind them). A coordinate is ``Type.field`` with the GraphQL names of the
unified schema; the row key the sources use is the field name in snake_case
(``NaturalPerson.householdAddress`` → ``household_address``).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.core.errors import ConfigError
from policies.masks import RULE_NAMES

#: Grades are 1..4; written L1..L4 in files and responses.
LOWEST_GRADE = 1
HIGHEST_GRADE = 4

#: The ``subject_type`` of a credit record about a natural person.
NATURAL_PERSON = "NATURAL_PERSON"

_GRADE_RE = re.compile(r"^L([1-4])$")
_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")


def parse_grade(text: object, *, where: str) -> int:
    """``"L3"`` → 3; anything else is a ``ConfigError`` naming ``where``."""
    match = _GRADE_RE.match(text) if isinstance(text, str) else None
    if match is None:
        raise ConfigError(f"{where}: grade must be one of L1..L4, not {text!r}")
    return int(match.group(1))


def grade_name(grade: int) -> str:
    """3 → ``"L3"``."""
    return f"L{grade}"


def snake_case(name: str) -> str:
    """``householdAddress`` → ``household_address``: the row key of a GraphQL field."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


@dataclass(frozen=True, slots=True, kw_only=True)
class FieldSpec:
    """One field coordinate of the catalog.

    Attributes:
        coordinate: ``Type.field`` (GraphQL names).
        type_name: the GraphQL type.
        name: the GraphQL field name.
        key: the row key (snake_case of ``name``).
        grade: 1..4.
        mask: the mask rule's name, or None if the field cannot be masked.
        link: True for a field that leads to other records rather than holding a value.
        personal: True if the field is a natural person's data (needs a matter from
            the catalog's ``purpose_required_from`` grade up).
        note: the catalog's reason or remark, for the resource catalog and explanations.
    """

    coordinate: str
    type_name: str
    name: str
    key: str
    grade: int
    mask: str | None
    link: bool
    personal: bool
    note: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TypeSpec:
    """One type of the catalog and its fields, in file order.

    Attributes:
        name: the GraphQL type.
        personal: its records are a natural person's data.
        natural_person_min_grade: for records that may be about either kind of
            subject (credit records): the least grade of every field when the
            record is about a natural person; None for other types.
        fields: the type's fields by GraphQL name.
        note: the catalog's remark.
        owner_field: the field whose value is the region that keeps a record
            (``householdRegion`` of a person: the home region is where the base
            record is kept). Where the caller may not see that field in clear,
            explanations do not name the owner either; None: the owner is never
            named to the caller.
    """

    name: str
    personal: bool
    natural_person_min_grade: int | None
    fields: Mapping[str, FieldSpec]
    note: str
    owner_field: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Catalog:
    """The whole catalog.

    Attributes:
        types: by GraphQL type name, in file order.
        fields: every field by coordinate.
        purpose_required_from: personal data of this grade or above needs a matter.
    """

    types: Mapping[str, TypeSpec]
    fields: Mapping[str, FieldSpec]
    purpose_required_from: int

    def covers(self, pattern: str) -> bool:
        """Whether a policy's field pattern (``*``, ``Type.*``, ``Type.field``) names
        anything in the catalog; a pattern that names nothing is a typo."""
        if pattern == "*":
            return True
        if pattern.endswith(".*"):
            return pattern[:-2] in self.types
        return pattern in self.fields


def load_catalog(path: Path) -> Catalog:
    """Read and check ``catalog.toml``; any problem is a ``ConfigError`` naming it."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path.name}: {exc}") from exc
    rules = _table(data.get("rules", {}), f"{path.name} [rules]")
    purpose = parse_grade(
        rules.get("purpose_required_from", "L3"), where=f"{path.name} rules.purpose_required_from"
    )
    types: dict[str, TypeSpec] = {}
    fields: dict[str, FieldSpec] = {}
    for type_name, raw in _table(data.get("types"), f"{path.name} [types]").items():
        spec = _load_type(type_name, _table(raw, f"{path.name} types.{type_name}"), path.name)
        types[type_name] = spec
        fields.update({f.coordinate: f for f in spec.fields.values()})
    if not fields:
        raise ConfigError(f"{path.name}: the catalog grades no field")
    return Catalog(types=types, fields=fields, purpose_required_from=purpose)


def _load_type(type_name: str, raw: Mapping[str, Any], file: str) -> TypeSpec:
    where = f"{file} types.{type_name}"
    if not _NAME_RE.match(type_name):
        raise ConfigError(f"{where}: not a GraphQL type name")
    personal = raw.get("personal", False)
    if not isinstance(personal, bool):
        raise ConfigError(f"{where}.personal: must be true or false")
    min_raw = raw.get("natural_person_min_grade")
    min_grade = (
        None if min_raw is None else parse_grade(min_raw, where=f"{where}.natural_person_min_grade")
    )
    fields: dict[str, FieldSpec] = {}
    for name, entry in _table(raw.get("fields"), f"{where}.fields").items():
        fields[name] = _load_field(
            type_name, name, _table(entry, f"{where}.fields.{name}"), personal
        )
    owner_field = raw.get("owner_field")
    if owner_field is not None and owner_field not in fields:
        raise ConfigError(f"{where}.owner_field: {owner_field!r} is not a field of the type")
    unknown = set(raw) - {"personal", "natural_person_min_grade", "fields", "note", "owner_field"}
    if unknown:
        raise ConfigError(f"{where}: unknown settings {sorted(unknown)}")
    return TypeSpec(
        name=type_name,
        personal=personal,
        natural_person_min_grade=min_grade,
        fields=fields,
        note=str(raw.get("note", "")),
        owner_field=owner_field,
    )


def _load_field(type_name: str, name: str, raw: Mapping[str, Any], personal: bool) -> FieldSpec:
    coordinate = f"{type_name}.{name}"
    where = f"catalog field {coordinate}"
    if not _NAME_RE.match(name):
        raise ConfigError(f"{where}: not a GraphQL field name")
    unknown = set(raw) - {"grade", "mask", "link", "note"}
    if unknown:
        raise ConfigError(f"{where}: unknown settings {sorted(unknown)}")
    mask = raw.get("mask")
    if mask is not None and mask not in RULE_NAMES:
        raise ConfigError(f"{where}: unknown mask rule {mask!r} (known: {sorted(RULE_NAMES)})")
    link = raw.get("link", False)
    if not isinstance(link, bool):
        raise ConfigError(f"{where}: link must be true or false")
    if link and mask is not None:
        raise ConfigError(f"{where}: a link field has no value to mask")
    return FieldSpec(
        coordinate=coordinate,
        type_name=type_name,
        name=name,
        key=snake_case(name),
        grade=parse_grade(raw.get("grade"), where=where),
        mask=mask,
        link=link,
        personal=personal,
        note=str(raw.get("note", "")),
    )


def _table(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected a table")
    return value
