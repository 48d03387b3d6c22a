"""The root Query: look-ups by identifier, enterprise search, a subject's credit records, and
(from ``schema.resource_catalog``, ``schema.audit`` and ``schema.entities``) the resource
catalog, the audit log and federation's ``_entities``."""

from __future__ import annotations

from collections.abc import Awaitable

import strawberry

from gateway.core.types import Row
from resolvers import credit
from resolvers.arguments import DEFAULT_PAGE, check_page
from resolvers.roots import (
    LEGAL_PERSON,
    LEGAL_PERSONS,
    NATURAL_PERSON,
    NATURAL_PERSONS,
    SEARCH,
    root,
)
from schema.audit import AuditQuery
from schema.console import ConsoleQuery
from schema.entities import EntitiesQuery
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


async def _person(row: Awaitable[Row | None]) -> NaturalPerson | None:
    return NaturalPerson.maybe(await row)


async def _company(row: Awaitable[Row | None]) -> LegalPerson | None:
    return LegalPerson.maybe(await row)


@strawberry.type
class Query(CatalogQuery, AuditQuery, EntitiesQuery, ConsoleQuery):
    @strawberry.field(
        description="A natural person by citizen ID number (GB 11643).",
        metadata=root(NATURAL_PERSON),
    )
    async def natural_person(self, info: Info, id_number: strawberry.ID) -> NaturalPerson | None:
        info.context.record_selection(info)
        [row] = NATURAL_PERSON.records(info.context, id_number)
        return NaturalPerson.maybe(await row)

    @strawberry.field(
        description="Natural persons by ID number, in the order asked; null if unknown.",
        metadata=root(NATURAL_PERSONS),
    )
    async def natural_persons(
        self, info: Info, id_numbers: list[strawberry.ID]
    ) -> list[NaturalPerson | None]:
        rows = NATURAL_PERSONS.records(info.context, id_numbers)
        info.context.record_selection(info)
        # graphql-core awaits each item of a list; the annotation is the schema's type.
        return [_person(row) for row in rows]  # type: ignore[misc]

    @strawberry.field(
        description="A legal person by unified social credit code (GB 32100).",
        metadata=root(LEGAL_PERSON),
    )
    async def legal_person(self, info: Info, uscc: strawberry.ID) -> LegalPerson | None:
        info.context.record_selection(info)
        [row] = LEGAL_PERSON.records(info.context, uscc)
        return LegalPerson.maybe(await row)

    @strawberry.field(
        description="Legal persons by USCC, in the order asked; null if unknown.",
        metadata=root(LEGAL_PERSONS),
    )
    async def legal_persons(
        self, info: Info, usccs: list[strawberry.ID]
    ) -> list[LegalPerson | None]:
        rows = LEGAL_PERSONS.records(info.context, usccs)
        info.context.record_selection(info)
        # graphql-core awaits each item of a list; the annotation is the schema's type.
        return [_company(row) for row in rows]  # type: ignore[misc]

    @strawberry.field(
        description="Legal persons whose name starts with `name`, in one region or all.",
        metadata=root(SEARCH),
    )
    async def search_legal_persons(
        self,
        info: Info,
        name: str,
        region: Region | None = None,
        first: int = DEFAULT_PAGE,
        after: str | None = None,
    ) -> LegalPersonConnection:
        found = SEARCH.page(
            info.context, info.path, name=name, region=region, first=first, after=after
        )
        info.context.record_selection(info)
        pairs, more = await found
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
        check_page(first)
        info.context.record_selection(info)
        found = await credit.page(info.context, subject_id, kinds, first, after, info.path)
        if found is None:
            return None  # withheld: no edges, cursors or page info either
        pairs, more = found
        edges = [CreditRecordEdge(cursor=c, node=CreditRecord.from_row(row)) for c, row in pairs]
        return CreditRecordConnection(
            edges=edges,
            page_info=PageInfo(has_next_page=more, end_cursor=edges[-1].cursor if edges else None),
        )
