"""The Apollo Federation v2 entry point: ``_entities`` over the keyed types.

``NaturalPerson`` and ``LegalPerson`` carry ``@key`` (``schema.types``);
Strawberry's federation schema adds ``_service { sdl }`` and the ``@link``
import, and leaves ``_entities`` to this field, so that a representation is
answered as a look-up by key (``resolvers.entities``) and not by Strawberry's
generic ``resolve_reference``, which would read one row per representation and
skip the policy's look-up rule.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated

import strawberry
from strawberry.federation.schema import FederationAny

from gateway.core.types import Row
from resolvers import entities
from schema.types import Info, LegalPerson, NaturalPerson

Entity = Annotated[NaturalPerson | LegalPerson, strawberry.union("_Entity")]


async def _entity(entity: entities.EntityKey, row: Awaitable[Row | None]) -> Entity | None:
    found = await row
    if found is None:
        return None
    if entity.type_name == "NaturalPerson":
        return NaturalPerson.from_row(found)
    return LegalPerson.from_row(found)


@strawberry.type
class EntitiesQuery:
    @strawberry.field(
        name="_entities",
        description="Entities of this subgraph by their keys, for a federation gateway; "
        "null where unknown or not for this caller.",
    )
    async def entities(
        self, info: Info, representations: list[FederationAny]
    ) -> list[Entity | None]:
        found = entities.records(info.context, representations)
        info.context.record_selection(info)
        # graphql-core awaits each item of a list; the annotation is the schema's type.
        return [_entity(entity, row) for entity, row in found]  # type: ignore[misc]
