"""Legal persons: registry records from the home region, representatives from theirs, search."""

from __future__ import annotations

import asyncio
import heapq
from typing import Any

from gateway.core.errors import InvalidInput, SourceUnavailable
from gateway.core.text import require_text
from gateway.core.types import RegionCode, Row
from resolvers.context import GatewayContext
from resolvers.loaders import KEY, OWNER

#: The longest name prefix a search accepts (names are at most a few dozen characters).
MAX_PREFIX = 100


async def search(
    ctx: GatewayContext,
    name: str,
    region: RegionCode | None,
    first: int,
    after: str | None,
    path: Any,
) -> tuple[list[tuple[str, Row]], bool]:
    """One page of enterprises whose name starts with ``name``, ordered by (name, USCC).

    Each region's source returns its own first ``first + 1`` matches after the
    cursor; merging them gives the page across the delta and whether more follow.
    """
    prefix = require_text(name, "name", max_length=MAX_PREFIX)
    position = None if after is None else ctx.cursors.decode(after)
    if position is not None and len(position) != 2:
        raise InvalidInput("after is not a cursor of this list", argument="after")
    regions = [region] if region is not None else list(ctx.regions)
    sources = [ctx.sources[r] for r in regions if r in ctx.sources]
    pages = await asyncio.gather(
        *(
            source.search(
                "enterprise",
                "name",
                prefix,
                after=None if position is None else (position[0], position[1]),
                limit=first + 1,
            )
            for source in sources
        ),
        return_exceptions=True,
    )
    ctx.loaders.batches += len(sources)
    tagged = []
    for source, rows in zip(sources, pages, strict=True):
        if isinstance(rows, SourceUnavailable):
            ctx.unavailable(path, rows)
            continue
        if isinstance(rows, BaseException):
            raise rows
        for row in rows:
            row[KEY] = row["uscc"]
            row[OWNER] = source.region
        tagged.append(rows)
    merged = list(heapq.merge(*tagged, key=lambda row: (row["name"], row["uscc"])))
    chosen = merged[:first]
    ctx.loaders.subjects.update(dict.fromkeys(row[KEY] for row in chosen))
    shown: list[Row] = []
    for source in sources:
        own = [row for row in chosen if row[OWNER] == source.region]
        masked = ctx.policy.apply(
            "LegalPerson", source.region, own, fields=ctx.fields_of("LegalPerson")
        )
        shown.extend(masked)
    order = {row[KEY]: index for index, row in enumerate(chosen)}
    shown.sort(key=lambda row: order[row[KEY]])
    pairs = [
        (ctx.cursors.encode([raw["name"], raw["uscc"]]), row)
        for raw, row in zip(chosen, shown, strict=True)
    ]
    return pairs, len(merged) > first
