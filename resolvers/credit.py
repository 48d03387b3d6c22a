"""Credit records: kept by the region where the decision was made, so read from all of them."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from gateway.core.errors import InvalidId, InvalidInput
from gateway.core.identifiers import is_valid_id_number, is_valid_uscc
from gateway.core.types import Row
from resolvers.context import GatewayContext
from resolvers.loaders import CREDIT, ENTERPRISE, KEY, KIND, ORDER, OWNER, PERSON
from resolvers.persons import fan_out, lookup_region


def newest_first(per_region: Sequence[Sequence[Row]], kinds: Collection[str] | None) -> list[Row]:
    """Merge regions' records: newest decision first, then by region and id (a stable order)."""
    rows = [row for region in per_region for row in region]
    if kinds is not None:
        wanted = frozenset(kinds)
        # The raw kind (``_kind``): the shown one is None unless the operation selects it.
        rows = [row for row in rows if row.get(KIND) in wanted]
    rows.sort(key=lambda row: (row[OWNER], row[KEY]))
    rows.sort(key=lambda row: row[ORDER], reverse=True)
    return rows


def require_subject_id(value: str, argument: str = "subjectId") -> str:
    """A citizen ID number or a USCC, normalised; anything else is ``INVALID_ID``."""
    normalised = value.strip().upper()
    if is_valid_id_number(normalised) or is_valid_uscc(normalised):
        return normalised
    raise InvalidId(
        f"{argument} is neither a valid citizen ID number nor a valid unified social credit code",
        argument=argument,
    )


async def page(
    ctx: GatewayContext,
    subject_id: str,
    kinds: Collection[str] | None,
    first: int,
    after: str | None,
    path: Any,
) -> tuple[list[tuple[str, Row]], bool] | None:
    """One page of a subject's records, newest first: (cursor, row) pairs, more to come?.

    None, with nothing read, where the policy withholds the list: the look-up of
    the subject by its identifier, or the subject's credit records as a link
    from the subject (``NaturalPerson.creditRecords`` of the person's home
    region). Its edges, cursors and page info are withheld with it: a count of
    withheld records tells as much as the records.
    """
    key = require_subject_id(subject_id)
    if not _released(ctx, key):
        return None
    rows = newest_first(await fan_out(ctx, CREDIT, key, path), kinds)
    start = 0 if after is None else _start_after(rows, ctx.cursors.decode(after))
    chosen = rows[start : start + first]
    pairs = [(ctx.cursors.encode(_position(row)), row) for row in chosen]
    return pairs, start + first < len(rows)


def _released(ctx: GatewayContext, key: str) -> bool:
    """Whether the caller may look the subject up and follow it to its credit records."""
    # subjectId's type does not say which kind of key it is; a key that is a valid ID
    # number is decided as a person's, the stricter, even if it is also a valid USCC.
    subject = PERSON if is_valid_id_number(key) else ENTERPRISE
    home = lookup_region(ctx, subject, key)
    return home is not None and ctx.policy.allows(f"{subject.type_name}.creditRecords", home)


def _position(row: Row) -> list[str]:
    return [row[ORDER], row[OWNER], row[KEY]]


def _start_after(rows: Sequence[Row], position: list[str]) -> int:
    for index, row in enumerate(rows):
        if _position(row) == position:
            return index + 1
    raise InvalidInput("after is not a cursor of this list", argument="after")
