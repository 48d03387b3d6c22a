"""The upper-level source: keys no configured region holds, read from the platform above.

A delta gateway asked for a Beijing ID number (prefix 11) has no region for it;
with ``[upper]`` configured it asks the national platform, a gateway source like
any other, under a name of its own (``code``, default ``UPPER``). The platform
above decides with its own policy for this gateway's service identity; its rows
then pass this gateway's policy as data owned by that name, so the stricter of
the two wins, as for any lower gateway.

The rows name regions this gateway does not know (``BJ``): such a region value
becomes the upper-level source's name, which the ``Region`` enum holds (the
registry the schema and the policy are built with gains it, with no prefix), so
the answer says "kept above" rather than failing to serialise a code the schema
lacks. Only look-ups by key go up (see ``resolvers.persons.home_region``).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from gateway.core.types import Row
from gateway.sources.base import Source

__all__ = ["REGION_FIELDS", "UpperSource"]

#: The unified fields that hold a region code, per entity.
REGION_FIELDS = {
    "person": ("household_region",),
    "residence": ("region",),
    "social_insurance": ("region",),
    "enterprise": ("region",),
    "credit_record": ("region",),
}


class UpperSource(Source):
    """``source`` under the name ``code``, its unknown region values renamed to ``code``.

    Args:
        source: the gateway source of the platform above (behind its breaker).
        code: the name this gateway's rows, errors and metrics give it.
        known: the region codes this gateway's schema knows.
    """

    def __init__(self, source: Source, code: str, known: Collection[str]) -> None:
        self.source = source
        self.region = code
        self._known = frozenset(known)

    @property
    def state(self) -> object:
        """The breaker's state of the wrapped source (for the metrics), if it has one."""
        return getattr(self.source, "state", None)

    async def start(self) -> None:
        await self.source.start()

    async def close(self) -> None:
        await self.source.close()

    async def ping(self) -> None:
        await self.source.ping()

    async def fetch(
        self,
        entity: str,
        field: str,
        values: Sequence[str],
        *,
        columns: Collection[str] | None = None,
    ) -> list[Row]:
        rows = await self.source.fetch(entity, field, values, columns=columns)
        for name in REGION_FIELDS.get(entity, ()):
            for row in rows:
                value = row.get(name)
                if value is not None and value not in self._known:
                    row[name] = self.region
        return rows

    async def search(
        self,
        entity: str,
        field: str,
        prefix: str,
        *,
        after: tuple[str, str] | None,
        limit: int,
    ) -> list[Row]:
        # A search names one region or fans out over this gateway's own: never the one above.
        return []
