"""The extension point for regional sources: one class per source kind.

A source serves the rows of one region in the unified vocabulary
(``gateway/core/entities.py``). It answers two batched questions, each in one
backend round trip, and nothing else, so that a source which is itself another
gateway (the national - provincial - city cascade) fits the same shape:

- :meth:`Source.fetch`: the rows of an entity whose field is one of some values
  ("persons with these ID numbers", "credit records of these subjects");
- :meth:`Source.search`: a page of rows whose field starts with a prefix.

:meth:`Source.fetch_many` asks several ``fetch`` questions at once (a person's
residences and social insurance); a kind that can answer them in one round
trip overrides it, the others ask them one by one, concurrently.

A look-up may name the fields it needs (``columns``, from the operation's
plan): a row then holds at least those and the field looked up by, and a
kind may leave the others out (``postgres`` selects only those columns, a
``gateway`` source asks the lower for only those fields). Without ``columns``,
every field of the entity.

A source raises :class:`~gateway.core.errors.SourceUnavailable` naming its region
when its backend cannot answer, so the gateway can return a partial result.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from types import TracebackType
from typing import Protocol

from gateway.core.types import Row

__all__ = ["QueryObserver", "Source"]


class QueryObserver(Protocol):
    """Called by a source after every backend query it completes.

    Tests count queries with it; tracing and metrics hook in the same way. It
    receives sizes and timing, never values: a key can be personal data.

    >>> def log_query(region, entity, field, keys, rows, seconds):
    ...     print(f"{region} {entity}.{field}: {keys} keys -> {rows} rows")
    >>> log_query("ZJ", "person", "id_number", 100, 98, 0.002)
    ZJ person.id_number: 100 keys -> 98 rows
    """

    def __call__(
        self, region: str, entity: str, field: str, keys: int, rows: int, seconds: float, /
    ) -> None: ...


class Source(ABC):
    """Rows of one region, in the unified vocabulary.

    Subclasses implement :meth:`fetch`, :meth:`search` and :meth:`ping`;
    :meth:`start` and :meth:`close` do nothing unless the kind holds resources.

    >>> async def persons(source: Source, ids: list[str]) -> list[Row]:
    ...     async with source:
    ...         return await source.fetch("person", "id_number", ids)

    Attributes:
        region: the region code whose data this source serves.
    """

    region: str

    # Optional hooks, empty on purpose: a kind that holds nothing overrides neither.
    async def start(self) -> None:  # noqa: B027
        """Get ready to serve. Must not fail because the backend is down right now."""

    async def close(self) -> None:  # noqa: B027
        """Release whatever the source holds."""

    @abstractmethod
    async def fetch(
        self,
        entity: str,
        field: str,
        values: Sequence[str],
        *,
        columns: Collection[str] | None = None,
    ) -> list[Row]:
        """The rows of ``entity`` whose ``field`` is one of ``values``, in one round trip.

        Covers both "rows for these keys" (``fetch("person", "id_number", ids)``)
        and "rows related to these subjects" (``fetch("credit_record",
        "subject_id", ids)``). Rows come in no particular order; an entity the
        region does not hold yields no rows. With ``columns``, a row holds at least
        those fields and ``field`` (every field without).
        """

    async def fetch_many(
        self,
        lookups: Sequence[tuple[str, str, Sequence[str]]],
        *,
        columns: Sequence[Collection[str] | None] | None = None,
    ) -> list[list[Row]]:
        """Several ``fetch`` look-ups, ``(entity, field, values)``: their rows, in order;
        ``columns``, if given, holds each look-up's columns (None: every field).

        One backend round trip where the kind can (``PostgresSource``); here, one ``fetch``
        each, concurrently. A failure of any fails them all, as one round trip would.
        """
        wanted = columns if columns is not None else [None] * len(lookups)
        asked = [
            self.fetch(entity, field, values)
            if own is None
            else self.fetch(entity, field, values, columns=own)
            for (entity, field, values), own in zip(lookups, wanted, strict=True)
        ]
        if len(asked) == 1:
            return [await asked[0]]
        return list(await asyncio.gather(*asked))

    @abstractmethod
    async def search(
        self,
        entity: str,
        field: str,
        prefix: str,
        *,
        after: tuple[str, str] | None,
        limit: int,
    ) -> list[Row]:
        """Up to ``limit`` rows whose ``field`` starts with ``prefix``, in one round trip.

        Rows are ordered by (``field``, key) in code-point order, the key being
        the entity's unique key (``gateway.sources.sql.SEARCH_KEYS``); ``after`` is the
        (field, key) of the last row of the previous page.
        """

    @abstractmethod
    async def ping(self) -> None:
        """Return if the backend answers, else raise ``SourceUnavailable``."""

    async def __aenter__(self) -> Source:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
