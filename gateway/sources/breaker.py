"""A circuit breaker per regional source: a region that is down is named at once, not waited on.

After ``failures`` consecutive failures the breaker opens: calls fail with
``SourceUnavailable`` at once, without touching the backend, so one region's
outage does not hold every request for its timeout. After ``reset_after``
seconds one trial call goes through (half-open): success closes the breaker,
failure opens it again. Only ``SourceUnavailable`` counts as a failure; a
programming error is not the region's fault, and neither is a caller's value
the backend refused (``InvalidInput``): counted, it would let one caller's
requests open the breaker for everyone.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Coroutine, Sequence
from enum import StrEnum
from typing import Any, TypeVar

from gateway.core.errors import SourceUnavailable
from gateway.core.types import Row
from gateway.sources.base import Source

T = TypeVar("T")


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker(Source):
    """Wraps a source; same interface, fails fast while its region is known to be down.

    Args:
        source: the source to protect.
        failures: consecutive failures that open the breaker.
        reset_after: seconds the breaker stays open before a trial call.
        clock: monotonic seconds (a parameter so tests can move time).
    """

    def __init__(
        self,
        source: Source,
        *,
        failures: int = 3,
        reset_after: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failures < 1 or reset_after <= 0:
            raise ValueError("failures must be at least 1 and reset_after positive")
        self.source = source
        self.region = source.region
        self.failures = failures
        self.reset_after = reset_after
        self._clock = clock
        self._consecutive = 0
        self._opened_at: float | None = None
        self._trial_running = False

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._clock() - self._opened_at >= self.reset_after:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    async def start(self) -> None:
        await self.source.start()

    async def close(self) -> None:
        await self.source.close()

    async def fetch(
        self,
        entity: str,
        field: str,
        values: Sequence[str],
        *,
        columns: Collection[str] | None = None,
    ) -> list[Row]:
        return await self._call(self.source.fetch(entity, field, values, columns=columns))

    async def fetch_many(
        self,
        lookups: Sequence[tuple[str, str, Sequence[str]]],
        *,
        columns: Sequence[Collection[str] | None] | None = None,
    ) -> list[list[Row]]:
        return await self._call(self.source.fetch_many(lookups, columns=columns))

    async def search(
        self,
        entity: str,
        field: str,
        prefix: str,
        *,
        after: tuple[str, str] | None,
        limit: int,
    ) -> list[Row]:
        return await self._call(self.source.search(entity, field, prefix, after=after, limit=limit))

    async def ping(self) -> None:
        # Readiness asks the backend itself, and a successful ping closes the breaker early.
        await self._call(self.source.ping(), probe=True)

    async def _call(self, call: Coroutine[Any, Any, T], *, probe: bool = False) -> T:
        """Await ``call`` (a call of the source, not yet started) unless the breaker refuses it."""
        trial = False
        if self._opened_at is not None:  # open or half open (closed, the usual case, skips this)
            state = self.state
            if not probe and (
                state is BreakerState.OPEN
                or (state is BreakerState.HALF_OPEN and self._trial_running)
            ):
                call.close()  # never started: no warning that it was not awaited
                raise SourceUnavailable(self.region)
            trial = state is BreakerState.HALF_OPEN
            if trial:
                self._trial_running = True
        try:
            result = await call
        except SourceUnavailable:
            self._consecutive += 1
            if trial or self._consecutive >= self.failures:
                self._opened_at = self._clock()
            raise
        finally:
            if trial:
                self._trial_running = False
        self._consecutive = 0
        self._opened_at = None  # a success closes it, whatever failed meanwhile
        return result
