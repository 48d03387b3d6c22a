"""The root Query: look-ups by identifier, enterprise search, a subject's credit records, and
(from ``schema.resource_catalog`` and ``schema.audit``) the resource catalog and the audit log."""

from __future__ import annotations

from collections.abc import Awaitable

import strawberry

from gateway.core.errors import BatchTooLarge, InvalidInput
from gateway.core.types import Row
from resolvers import credit, enterprises, persons
from schema.audit import AuditQuery
from schema.enums import CreditKind, Region
from schema.resource_catalog import CatalogQuery
from schema.types import (
    CreditRecord,
    CreditRecordConnection,
    CreditRecordEdge,
    Info,
    LegalPerson,
    LegalPersonConnection,
    LegalPersonEdge,
    NaturalPerson,
    PageInfo,
)

#: Most keys one batch argument (idNumbers, usccs) and one page (first) may ask for.
MAX_KEYS = 100
DEFAULT_PAGE = 20


def _check_batch(values: list[strawberry.ID], argument: str) -> None:
    if len(values) > MAX_KEYS:
        raise BatchTooLarge(
            f"{argument} has {len(values)} keys; at most {MAX_KEYS} are allowed",
            argument=argument,
            found=len(values),
            maximum=MAX_KEYS,
        )


def _check_page(first: int) -> None:
    if first > MAX_KEYS:
        raise BatchTooLarge(
            f"first is {first}; at most {MAX_KEYS} are allowed",
            argument="first",
            found=first,
            maximum=MAX_KEYS,
        )
    if first < 1:
        raise InvalidInput("first must be at least 1", argument="first")


async def _person(row: Awaitable[Row | None]) -> NaturalPerson | None:
    return NaturalPerson.maybe(await row)


async def _company(row: Awaitable[Row | None]) -> LegalPerson | None:
    return LegalPerson.maybe(await row)


@strawberry.type
class Query(CatalogQuery, AuditQuery):
    @strawberry.field(description="A natural person by citizen ID number (GB 11643).")
    async def natural_person(self, info: Info, id_number: strawberry.ID) -> NaturalPerson | None:
        info.context.plan(info)
        return NaturalPerson.maybe(await persons.person(info.context, id_number))

    @strawberry.field(
        description="Natural persons by ID number, in the order asked; null if unknown."
    )
    async def natural_persons(
        self, info: Info, id_numbers: list[strawberry.ID]
    ) -> list[NaturalPerson | None]:
        _check_batch(id_numbers, "idNumbers")
        info.context.plan(info)
        # graphql-core awaits each item of a list; the annotation is the schema's type.
        return [_person(row) for row in persons.persons(info.context, id_numbers)]  # type: ignore[misc]

    @strawberry.field(description="A legal person by unified social credit code (GB 32100).")
    async def legal_person(self, info: Info, uscc: strawberry.ID) -> LegalPerson | None:
        info.context.plan(info)
        return LegalPerson.maybe(await enterprises.enterprise(info.context, uscc))

    @strawberry.field(description="Legal persons by USCC, in the order asked; null if unknown.")
    async def legal_persons(
        self, info: Info, usccs: list[strawberry.ID]
    ) -> list[LegalPerson | None]:
        _check_batch(usccs, "usccs")
        info.context.plan(info)
        return [_company(row) for row in enterprises.enterprises(info.context, usccs)]  # type: ignore[misc]

    @strawberry.field(
        description="Legal persons whose name starts with `name`, in one region or all."
    )
    async def search_legal_persons(
        self,
        info: Info,
        name: str,
        region: Region | None = None,
        first: int = DEFAULT_PAGE,
        after: str | None = None,
    ) -> LegalPersonConnection:
        _check_page(first)
        info.context.plan(info)
        pairs, more = await enterprises.search(
            info.context, name, None if region is None else region.value, first, after, info.path
        )
        edges = [LegalPersonEdge(cursor=c, node=LegalPerson.from_row(row)) for c, row in pairs]
        return LegalPersonConnection(
            edges=edges,
            page_info=PageInfo(has_next_page=more, end_cursor=edges[-1].cursor if edges else None),
        )

    @strawberry.field(
        description="Credit records about a person or an enterprise, newest first; "
        "null where the policy withholds them."
    )
    async def credit_records(
        self,
        info: Info,
        subject_id: strawberry.ID,
        kinds: list[CreditKind] | None = None,
        first: int = DEFAULT_PAGE,
        after: str | None = None,
    ) -> CreditRecordConnection | None:
        _check_page(first)
        info.context.plan(info)
        found = await credit.page(info.context, subject_id, kinds, first, after, info.path)
        if found is None:
            return None  # withheld: no edges, cursors or page info either
        pairs, more = found
        edges = [CreditRecordEdge(cursor=c, node=CreditRecord.from_row(row)) for c, row in pairs]
        return CreditRecordConnection(
            edges=edges,
            page_info=PageInfo(has_next_page=more, end_cursor=edges[-1].cursor if edges else None),
        )
