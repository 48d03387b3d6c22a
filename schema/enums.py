"""Enums of the unified schema. Values equal names, so unified row strings serialise as they are."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

import strawberry
from graphql import GraphQLEnumType, GraphQLEnumValue

if TYPE_CHECKING:
    from graphql import GraphQLSchema

    from gateway.core.regions import RegionRegistry


@strawberry.enum(description="A region of the Yangtze River Delta, by its data-owning platform.")
class Region(StrEnum):
    SH = "SH"
    JS = "JS"
    ZJ = "ZJ"
    AH = "AH"


@strawberry.enum(description="Sex as recorded in the household register (GB/T 2261.1).")
class Gender(StrEnum):
    MALE = "MALE"
    FEMALE = "FEMALE"


@strawberry.enum(description="The kind of a credit record.")
class CreditKind(StrEnum):
    ADMIN_PENALTY = "ADMIN_PENALTY"
    ADMIN_LICENSE = "ADMIN_LICENSE"
    DISHONEST_EXECUTEE = "DISHONEST_EXECUTEE"
    COMMENDATION = "COMMENDATION"


@strawberry.enum(description="Whether a credit record is about a natural or a legal person.")
class SubjectType(StrEnum):
    NATURAL_PERSON = "NATURAL_PERSON"
    LEGAL_PERSON = "LEGAL_PERSON"


def use_regions(schema: GraphQLSchema, regions: RegionRegistry) -> None:
    """Give the schema's ``Region`` enum the registry's codes, before its first use.

    The Strawberry type above is the shipped four, so the SDL snapshot of the
    shipped configuration is the schema as built. A registry with other regions
    replaces the enum's values (in registry order) and the Python enum its input
    values are read into; resolvers treat regions as plain strings, and both
    executors read the values from the GraphQL type.
    """
    enum_type = schema.type_map["Region"]
    if not isinstance(enum_type, GraphQLEnumType):
        raise TypeError("the schema's Region is not an enum")
    codes = regions.codes
    if tuple(enum_type.values) == codes:
        return
    # ``values`` and ``_value_lookup`` are cached properties: set the one, drop the other.
    enum_type.values = {code: GraphQLEnumValue(code) for code in codes}
    enum_type.__dict__.pop("_value_lookup", None)
    # The functional form with codes known only now; mypy cannot see its members.
    members: dict[str, str] = {code: code for code in codes}
    enum_type.wrapped_cls = StrEnum("Region", members)  # type: ignore[attr-defined,misc]
