"""The link fields: which records a field leads to, where they are kept, how they are merged.

One description per link serves both executors: the Strawberry resolvers ask
the per-request loaders key by key (``resolve``), the direct executor reads a
whole level at once (``schema.direct``). Whether a link is followed at all is
the policy's decision for the link's coordinate and the parent's owning
region, asked once per parent object in both. The planner (``schema.plan``)
plans an object field as a link exactly when ``LINKS`` holds its coordinate.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.core.errors import SourceUnavailable
from gateway.core.types import Row
from resolvers.context import GatewayContext
from resolvers.credit import newest_first
from resolvers.loaders import (
    CREDIT,
    KEY,
    ORDER,
    OWNER,
    PERSON,
    REPRESENTED,
    RESIDENCES,
    SOCIAL_INSURANCE,
    LoadSpec,
)
from resolvers.persons import fan_out, home_region

Merge = Callable[[Sequence[Sequence[Row]], Collection[str] | None], list[Row]]


def newest_per_region(per_region: Sequence[Sequence[Row]], _: Any = None) -> list[Row]:
    """Region by region (in configuration order), newest first within each."""
    merged: list[Row] = []
    for rows in per_region:
        merged.extend(sorted(rows, key=lambda row: row[ORDER], reverse=True))
    return merged


def by_key_per_region(per_region: Sequence[Sequence[Row]], _: Any = None) -> list[Row]:
    """Region by region, ordered by the records' identifiers within each."""
    return [row for rows in per_region for row in sorted(rows, key=lambda row: row[KEY])]


@dataclass(frozen=True, slots=True)
class Link:
    """A link field.

    Attributes:
        coordinate: the field coordinate whose decision says whether to follow it.
        load: what is read.
        fan_out: read from every region (else from the key's home region only).
        key_field: the parent row's key that is looked up (``_key``: its own identity).
        merge: how the regions' rows become one list (fan-out links only).
    """

    coordinate: str
    load: LoadSpec
    fan_out: bool
    key_field: str = KEY
    merge: Merge = newest_per_region


LINKS: dict[str, Link] = {
    "NaturalPerson.residences": Link("NaturalPerson.residences", RESIDENCES, True),
    "NaturalPerson.socialInsurance": Link("NaturalPerson.socialInsurance", SOCIAL_INSURANCE, True),
    "NaturalPerson.enterprises": Link(
        "NaturalPerson.enterprises", REPRESENTED, True, merge=by_key_per_region
    ),
    "NaturalPerson.creditRecords": Link(
        "NaturalPerson.creditRecords", CREDIT, True, merge=newest_first
    ),
    "LegalPerson.legalRepresentative": Link(
        "LegalPerson.legalRepresentative", PERSON, False, key_field="legal_rep_id"
    ),
    "LegalPerson.creditRecords": Link(
        "LegalPerson.creditRecords", CREDIT, True, merge=newest_first
    ),
}


def follow(ctx: GatewayContext, link: Link, parent: Row) -> str | None:
    """The key to look up for ``parent``, or None if the link is not followed."""
    key: str | None = parent.get(link.key_field)
    if not key:
        return None
    if not ctx.policy.allows(link.coordinate, parent[OWNER]):
        return None
    return key


def regions_for(ctx: GatewayContext, link: Link, key: str) -> tuple[str, ...]:
    """Where to read ``key``: every region, or its home region (or the upper-level source's
    for a key no configured region holds; none without one)."""
    if link.fan_out:
        return ctx.regions
    home = home_region(ctx, link.load.by, key)
    return (home,) if home is not None else ()


async def resolve(
    ctx: GatewayContext,
    link: Link,
    parent: Row,
    path: Any,
    kinds: Collection[str] | None = None,
) -> list[Row] | Row | None:
    """The records ``link`` leads to from ``parent``, through the per-request loaders."""
    key = follow(ctx, link, parent)
    if key is None:
        return None
    if link.fan_out:
        return link.merge(await fan_out(ctx, link.load, key, path), kinds)
    regions = regions_for(ctx, link, key)
    if not regions:
        return None
    try:
        rows = await ctx.loaders.many(link.load, regions[0], key)
    except SourceUnavailable as error:
        raise home_unavailable(ctx, link, error) from None
    return rows[0] if rows else None


def home_unavailable(ctx: GatewayContext, link: Link, error: SourceUnavailable) -> Exception:
    """The error for a record whose home region is down: the region is named only where the
    caller may know which region keeps it (a fan-out asks every region, so naming one there
    tells nothing about the record)."""
    if ctx.policy.names_owner(link.load.type_name, error.region):
        return error
    return error.unnamed()
