"""Object types of the unified schema, built from (already masked) unified rows.

Scalar fields are plain attributes on the default resolver: no per-field
wrapper, which is where stock per-field execution spends its time. Only link
fields have resolvers; they hand the raw keys kept in private attributes to
the loaders. Every field is nullable because the policy may withhold it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, cast

import strawberry

from gateway.core.types import Row
from resolvers import links
from resolvers.context import GatewayContext
from resolvers.loaders import KEY, OWNER
from schema.enums import CreditKind, Gender, Region, SubjectType

Info = strawberry.Info[GatewayContext, None]

RESIDENCES = links.LINKS["NaturalPerson.residences"]
INSURANCE = links.LINKS["NaturalPerson.socialInsurance"]
REPRESENTED = links.LINKS["NaturalPerson.enterprises"]
PERSON_CREDIT = links.LINKS["NaturalPerson.creditRecords"]
REPRESENTATIVE = links.LINKS["LegalPerson.legalRepresentative"]
COMPANY_CREDIT = links.LINKS["LegalPerson.creditRecords"]


@strawberry.type(
    description="A residence registration (居住登记), kept by the region of residence."
)
class Residence:
    region: Region | None
    address: str | None
    since: str | None = strawberry.field(description="ISO date; a masked date keeps the year.")

    @classmethod
    def from_row(cls, row: Row) -> Residence:
        return cls(region=row["region"], address=row["address"], since=row["since"])


@strawberry.type(
    description="A social-insurance enrolment (社保), kept by the region of enrolment."
)
class SocialInsurance:
    region: Region | None
    insurance_type: str | None
    status: str | None
    since: str | None

    @classmethod
    def from_row(cls, row: Row) -> SocialInsurance:
        return cls(
            region=row["region"],
            insurance_type=row["insurance_type"],
            status=row["status"],
            since=row["since"],
        )


@strawberry.type(
    description="A credit record (信用记录): penalty, licence, dishonest executee or commendation."
)
class CreditRecord:
    id: str | None
    subject_id: str | None = strawberry.field(description="An ID number or a USCC.")
    subject_type: SubjectType | None
    kind: CreditKind | None
    title: str | None
    document_number: str | None
    authority: str | None
    decided_on: str | None
    valid_until: str | None
    amount: Decimal | None = strawberry.field(description="In 万元 (ten thousand yuan).")
    region: Region | None = strawberry.field(description="The region that made the decision.")
    detail: str | None

    @classmethod
    def from_row(cls, row: Row) -> CreditRecord:
        return cls(
            id=row["id"],
            subject_id=row["subject_id"],
            subject_type=row["subject_type"],
            kind=row["kind"],
            title=row["title"],
            document_number=row["document_number"],
            authority=row["authority"],
            decided_on=row["decided_on"],
            valid_until=row["valid_until"],
            amount=row["amount"],
            region=row["region"],
            detail=row["detail"],
        )


def credit_list(rows: list[Row] | None) -> list[CreditRecord] | None:
    return None if rows is None else [CreditRecord.from_row(row) for row in rows]


# Entities of the federation subgraph: a supergraph reaches them by these keys (``_entities``).
@strawberry.federation.type(
    description="A natural person (自然人), kept by the region of the ID number.",
    keys=["idNumber"],
)
class NaturalPerson:
    id_number: str | None
    name: str | None
    gender: Gender | None
    birth_date: str | None = strawberry.field(description="ISO date; a masked date keeps the year.")
    ethnicity: str | None
    household_region: Region | None
    household_address: str | None
    phone: str | None
    key: strawberry.Private[str]
    home: strawberry.Private[str]

    @classmethod
    def from_row(cls, row: Row) -> NaturalPerson:
        return cls(
            id_number=row["id_number"],
            name=row["name"],
            gender=row["gender"],
            birth_date=row["birth_date"],
            ethnicity=row["ethnicity"],
            household_region=row["household_region"],
            household_address=row["household_address"],
            phone=row["phone"],
            key=row[KEY],
            home=row[OWNER],
        )

    @classmethod
    def maybe(cls, row: Row | None) -> NaturalPerson | None:
        return None if row is None else cls.from_row(row)

    def _subject(self) -> dict[str, Any]:
        return {KEY: self.key, OWNER: self.home}

    # ``links.resolve`` gives a fan-out link's rows as a list, a one-to-one link's row alone.
    @strawberry.field(description="Residence registrations in every region.")
    async def residences(self, info: Info) -> list[Residence] | None:
        rows = cast(
            "list[Row] | None",
            await links.resolve(info.context, RESIDENCES, self._subject(), info.path),
        )
        return None if rows is None else [Residence.from_row(row) for row in rows]

    @strawberry.field(description="Social-insurance enrolments in every region.")
    async def social_insurance(self, info: Info) -> list[SocialInsurance] | None:
        rows = cast(
            "list[Row] | None",
            await links.resolve(info.context, INSURANCE, self._subject(), info.path),
        )
        return None if rows is None else [SocialInsurance.from_row(row) for row in rows]

    @strawberry.field(description="Enterprises in any region whose legal representative this is.")
    async def enterprises(self, info: Info) -> list[LegalPerson] | None:
        rows = cast(
            "list[Row] | None",
            await links.resolve(info.context, REPRESENTED, self._subject(), info.path),
        )
        return None if rows is None else [LegalPerson.from_row(row) for row in rows]

    @strawberry.field(description="Credit records about this person in every region, newest first.")
    async def credit_records(
        self, info: Info, kinds: list[CreditKind] | None = None
    ) -> list[CreditRecord] | None:
        rows = cast(
            "list[Row] | None",
            await links.resolve(info.context, PERSON_CREDIT, self._subject(), info.path, kinds),
        )
        return credit_list(rows)


@strawberry.federation.type(
    description="A legal person (法人), kept by the region of the USCC.", keys=["uscc"]
)
class LegalPerson:
    uscc: str | None
    name: str | None
    entity_type: str | None
    status: str | None
    registered_capital: Decimal | None = strawberry.field(
        description="In 万元 (ten thousand yuan)."
    )
    established_on: str | None
    registration_authority: str | None
    region: Region | None
    address: str | None
    business_scope: str | None
    key: strawberry.Private[str]
    home: strawberry.Private[str]
    legal_rep_id: strawberry.Private[str | None]

    @classmethod
    def from_row(cls, row: Row) -> LegalPerson:
        return cls(
            uscc=row["uscc"],
            name=row["name"],
            entity_type=row["entity_type"],
            status=row["status"],
            registered_capital=row["registered_capital"],
            established_on=row["established_on"],
            registration_authority=row["registration_authority"],
            region=row["region"],
            address=row["address"],
            business_scope=row["business_scope"],
            key=row[KEY],
            home=row[OWNER],
            legal_rep_id=row.get("legal_rep_id"),
        )

    @classmethod
    def maybe(cls, row: Row | None) -> LegalPerson | None:
        return None if row is None else cls.from_row(row)

    def _subject(self) -> dict[str, Any]:
        return {KEY: self.key, OWNER: self.home, "legal_rep_id": self.legal_rep_id}

    @strawberry.field(description="The legal representative, read from their own home region.")
    async def legal_representative(self, info: Info) -> NaturalPerson | None:
        row = cast(
            "Row | None",
            await links.resolve(info.context, REPRESENTATIVE, self._subject(), info.path),
        )
        return NaturalPerson.maybe(row)

    @strawberry.field(
        description="Credit records about this enterprise in every region, newest first."
    )
    async def credit_records(
        self, info: Info, kinds: list[CreditKind] | None = None
    ) -> list[CreditRecord] | None:
        rows = cast(
            "list[Row] | None",
            await links.resolve(info.context, COMPANY_CREDIT, self._subject(), info.path, kinds),
        )
        return credit_list(rows)


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class LegalPersonEdge:
    cursor: str
    node: LegalPerson


@strawberry.type(description="A page of legal persons, ordered by name then USCC.")
class LegalPersonConnection:
    edges: list[LegalPersonEdge]
    page_info: PageInfo


@strawberry.type
class CreditRecordEdge:
    cursor: str
    node: CreditRecord


@strawberry.type(description="A page of credit records, newest first.")
class CreditRecordConnection:
    edges: list[CreditRecordEdge]
    page_info: PageInfo
