"""How much of a worker's time one caller app may spend on documents the gateway has not seen.

A new document is parsed, measured and validated on the event loop, and every
distinct text is new (a trailing comment is enough), so an app sending new
documents steadily would take the loop from everyone else even when each
document is within every query limit. Each app therefore has a bucket of
validation time: it refills at ``validation_ms_per_second`` milliseconds per
second and holds one second's worth. The time a new document took is charged
after the fact (the query limits bound what one document can take). A new
document from an app whose bucket is empty waits, off the loop, until the bucket
has refilled, so an app starting up with many documents is slowed, not refused;
one that would wait longer than ``MAX_WAIT`` is refused with ``RATE_LIMITED``
(which also bounds the requests left waiting). Known documents cost about
nothing and never wait here.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable

from gateway.core.errors import RateLimited

#: The longest a new document waits for its app's bucket, in seconds, before it is refused.
MAX_WAIT = 5.0
#: Buckets kept before full ones (that hold nothing a fresh bucket would not) are dropped.
_BUCKETS = 10_000


class ValidationBudget:
    """Per-app buckets of validation time, in this process.

    Args:
        ms_per_second: milliseconds of new-document work per second each app may use.
        clock: monotonic seconds, and sleep: waits that long (tests pass fakes of both).
    """

    def __init__(
        self,
        ms_per_second: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.ms_per_second = ms_per_second
        self._rate = ms_per_second / 1000.0  # seconds of work per second
        self._clock = clock
        self._sleep = sleep
        self._buckets: dict[str, tuple[float, float]] = {}  # app -> (seconds left, at)

    async def wait_turn(self, app: str) -> None:
        """Return once ``app`` may have a new document prepared.

        Raises:
            RateLimited: the app's bucket would not refill within ``MAX_WAIT``;
                ``retryAfter`` says when it will.
        """
        deadline = self._clock() + MAX_WAIT
        # Several waiters of one app wake in turn: the first prepares its document and is
        # charged before it yields the loop, so the next one finds the bucket empty again.
        while (left := self._left(app, now := self._clock())) < 0:
            delay = max(-left / self._rate, 0.001)
            if now + delay > deadline:
                retry = max(1, math.ceil(delay))
                raise RateLimited(
                    f"app {app!r} sent new documents that took more than {self.ms_per_second} ms"
                    f" per second to validate; retry in {retry} s",
                    limit="validationMsPerSecond",
                    maximum=self.ms_per_second,
                    retryAfter=retry,
                )
            await self._sleep(delay)

    def charge(self, app: str, seconds: float) -> None:
        """Take the time a new document of ``app`` took from its bucket."""
        now = self._clock()
        self._buckets[app] = (self._left(app, now) - seconds, now)
        if len(self._buckets) > _BUCKETS:
            for name, (left, at) in list(self._buckets.items()):
                if left + (now - at) * self._rate >= self._rate:
                    del self._buckets[name]

    def _left(self, app: str, now: float) -> float:
        left, at = self._buckets.get(app, (self._rate, now))
        return min(self._rate, left + (now - at) * self._rate)
