"""Quotas held across replicas: one bucket per app in a shared store, per-process while it is down.

With ``DELTAGATE_RATE_LIMIT_URL`` set, every replica and worker takes from the
app's one bucket in Redis (``gateway.edge.rate_limit_store``), so the
deployment as a whole lets an app through at its quota, however many
processes serve it.

When the store does not answer within its timeout (50 ms by default), the
request is neither refused for it (no 500, no 429 the app did not earn) nor let
through unlimited: it is counted against a bucket in this process, sized at
the app's quota divided by ``processes``, the number of gateway processes
(replicas × workers) the operator says share it. With ``processes = 1`` (the
default) each process allows the full quota while the store is down; set it to
the deployment's usual count to keep the sum near the quota. Each such request
counts in ``deltagate_rate_limit_store_fallbacks_total``. After a failure the
store is left alone for ``retry_after`` seconds (a store that hangs would
otherwise add its timeout to every request), then tried again: quotas are shared
again within that time of the store coming back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from gateway.edge.rate_limit_store import RedisBuckets, StoreUnavailable
from gateway.edge.rate_limits import Quota, Quotas, RateLimiter, refusal

logger = logging.getLogger("deltagate")


def share_of(quota: Quota, processes: int) -> Quota:
    """One process's share of ``quota`` when ``processes`` share it (a burst of at least 1)."""
    if processes == 1:
        return quota
    return Quota(rate=quota.rate / processes, burst=max(1, quota.burst // processes))


class SharedRateLimiter:
    """Token buckets per app in a shared store, with per-process buckets while it is down.

    Args:
        store: the shared buckets.
        quotas: returns the quotas in force (``quotas.toml``, reloaded as it changes).
        processes: gateway processes sharing a quota, for sizing the fall-back buckets.
        retry_after: seconds the store is left alone after it failed.
        on_fallback: called once for each request the fall-back decided (a metric).
        clock: monotonic seconds (tests pass a fake).

    Example::

        limiter = SharedRateLimiter(RedisBuckets(url), watched_quotas(policy_dir), processes=6)
        await limiter.admit(caller.app)     # RateLimited when the app's bucket is empty
    """

    def __init__(
        self,
        store: RedisBuckets,
        quotas: Callable[[], Quotas],
        *,
        processes: int = 1,
        retry_after: float = 1.0,
        on_fallback: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.processes = processes
        self.retry_after = retry_after
        self._quotas = quotas
        self._on_fallback = on_fallback or (lambda: None)
        self._clock = clock
        self._fallback = RateLimiter(Quotas(), clock=clock)
        self._down_until: float | None = None  # None: the store answered last time
        self.problem: str | None = None

    async def admit(self, app: str) -> None:
        """Take one request from ``app``'s bucket.

        Raises:
            RateLimited: the bucket is empty; ``retryAfter`` says in how many seconds it is not.
        """
        quota = self._quotas().of(app)
        if self._down_until is None or self._clock() >= self._down_until:
            try:
                draw = await self.store.take(app, quota)
            except StoreUnavailable as exc:
                self._went_down(str(exc))
            else:
                if self._down_until is not None:
                    logger.info("rate-limit store is back: quotas are shared again")
                    self._down_until = self.problem = None
                if not draw.taken:
                    raise refusal(app, quota, draw.wait)
                return
        self._on_fallback()
        self._fallback.take_with(app, share_of(quota, self.processes))

    @property
    def available(self) -> bool:
        """The store answered the latest request that asked it."""
        return self._down_until is None

    def _went_down(self, problem: str) -> None:
        if self._down_until is None:
            logger.warning(
                "rate-limit store unavailable (%s): quotas are counted per process, "
                "at 1/%d of each app's quota, until it answers again",
                problem,
                self.processes,
            )
        self.problem = problem
        self._down_until = self._clock() + self.retry_after

    async def ping(self) -> None:
        """Raise ``StoreUnavailable`` unless the store answers (for ``/readyz``)."""
        await self.store.ping()

    async def close(self) -> None:
        await self.store.close()
