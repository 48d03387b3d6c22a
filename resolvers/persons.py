"""Natural persons: base records from the home region, related records from every region."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import Any

from gateway.core.errors import SourceUnavailable
from gateway.core.identifiers import key_region
from gateway.core.types import RegionCode, Row
from resolvers.context import GatewayContext
from resolvers.loaders import LoadSpec


def home_record(ctx: GatewayContext, spec: LoadSpec, key: str) -> Awaitable[Row | None]:
    """The record of ``key`` from its home region only (一数一源); None outside the delta.

    Also None, without asking the source, where the caller may not look records
    of that region up by key (``lookup_region``): the same answer for a known
    and an unknown key.
    """
    home = lookup_region(ctx, spec, key)
    if home is None:
        return _none()
    return _first(ctx.loaders.many(spec, home, key))


def lookup_region(ctx: GatewayContext, spec: LoadSpec, key: str) -> RegionCode | None:
    """The region to look ``key`` up in, or None if there is nothing the caller may learn.

    None outside the configured regions when no upper-level source is configured
    (``home_region``), and None where the policy withholds the look-up itself:
    whether an ID number is in a region's register is personal data, decided
    as a use of the key field (``OperationPolicy.looks_up``). The key is noted
    for the audit event either way: an attempt is an access worth recording.
    """
    ctx.loaders.subjects[key] = None
    home = home_region(ctx, spec.by, key)
    if home is None:
        return None
    if spec.lookup is not None and not ctx.policy.looks_up(spec.lookup, home):
        return None
    return home


def home_region(ctx: GatewayContext, kind: str, key: str) -> RegionCode | None:
    """The region a key of ``kind`` is read from: its home region where a source serves it,
    else the upper-level source (``[upper]``), else None (the key is answered ``null``).

    Only look-ups by key go up: fan-outs stay with the configured regions, since the
    upper-level platform federates this gateway and would ask it again.
    """
    home = key_region(kind, key, ctx.registry)
    if home is not None and home in ctx.sources:
        return home
    return ctx.upper_region


async def _first(rows: Awaitable[list[Row]]) -> Row | None:
    found = await rows
    return found[0] if found else None


async def _none() -> None:
    return None


async def fan_out(ctx: GatewayContext, spec: LoadSpec, key: str, path: Any) -> list[list[Row]]:
    """The rows for ``key`` from every configured region, one list per region in order.

    A region that cannot be read contributes nothing and is named in an error at
    ``path``: the caller gets what the other regions keep, and knows what is missing.
    """
    results = await ctx.loaders.everywhere(spec, key)  # the keys join their batches now
    return per_region(ctx, results, path)


def per_region(
    ctx: GatewayContext, results: Sequence[list[Row] | BaseException], path: Any
) -> list[list[Row]]:
    """Each region's rows of a fan-out, in order; a region that could not be read gives none
    and is named in an error at ``path`` (a partial list).

    Raises:
        Exception: the first other failure, as it came.
    """
    out: list[list[Row]] = []
    for result in results:
        if isinstance(result, SourceUnavailable):
            ctx.unavailable(path, result)
            out.append([])
        elif isinstance(result, BaseException):
            raise result
        else:
            out.append(result)
    return out
