"""Natural persons: base records from the home region, related records from every region."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from gateway.identifiers import id_number_region, require_id_number
from gateway.types import Row
from resolvers.context import RequestContext
from resolvers.loaders import KEY, ORDER, OWNER, PERSON, RESIDENCES, SOCIAL_INSURANCE, LoadSpec


async def person(ctx: RequestContext, id_number: str, argument: str = "idNumber") -> Row | None:
    """One person's base record, read from the region of the ID number only (一数一源).

    Raises:
        InvalidId: the ID number is malformed or its check character is wrong.
    """
    key = require_id_number(id_number, argument)
    home = id_number_region(key)
    if home is None:
        return None  # outside the delta: an upper-level source's, once the cascade exists
    return await ctx.loaders.one(PERSON, home, key)


async def persons(
    ctx: RequestContext, id_numbers: Sequence[str], argument: str = "idNumbers"
) -> list[Row | None]:
    """Base records in the order asked, None where a key is unknown; all keys checked first."""
    keys = [require_id_number(value, argument) for value in id_numbers]
    return list(await asyncio.gather(*(person(ctx, key) for key in keys)))


async def residences(ctx: RequestContext, subject: Row) -> list[Row] | None:
    return await _related(ctx, subject, "NaturalPerson.residences", RESIDENCES)


async def social_insurance(ctx: RequestContext, subject: Row) -> list[Row] | None:
    return await _related(ctx, subject, "NaturalPerson.socialInsurance", SOCIAL_INSURANCE)


async def _related(
    ctx: RequestContext, subject: Row, coordinate: str, spec: LoadSpec
) -> list[Row] | None:
    """A person's records kept by any region, in region order, newest first within one."""
    if not ctx.policy.allows(coordinate, subject[OWNER]):
        return None
    per_region = await fan_out(ctx, spec, subject[KEY])
    merged = []
    for rows in per_region:
        merged.extend(sorted(rows, key=lambda row: row[ORDER], reverse=True))
    return merged


async def fan_out(ctx: RequestContext, spec: LoadSpec, key: str) -> list[list[Row]]:
    """The rows for ``key`` from every configured region, one list per region in order."""
    return list(
        await asyncio.gather(*(ctx.loaders.many(spec, region, key) for region in ctx.regions))
    )
