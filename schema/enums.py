"""Enums of the unified schema. Values equal names, so unified row strings serialise as they are."""

from __future__ import annotations

from enum import StrEnum

import strawberry


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
