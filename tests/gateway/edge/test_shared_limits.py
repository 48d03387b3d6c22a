"""Shared quotas when the store goes away: decided in the process, still limited, then shared."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from gateway.core.errors import RateLimited
from gateway.edge.rate_limit_store import RedisBuckets
from gateway.edge.rate_limits import Quota, Quotas
from gateway.edge.shared_limits import SharedRateLimiter, share_of
from tests.redis_server import RedisServer


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A server of this test's own, since the test stops it."""
    server = RedisServer()
    try:
        yield server.start()
    finally:
        server.close()


async def admitted(limiter: SharedRateLimiter, app: str, tries: int) -> int:
    count = 0
    for _ in range(tries):
        try:
            await limiter.admit(app)
        except RateLimited:
            continue
        count += 1
    return count


def test_each_process_gets_its_share_of_a_quota_while_the_store_is_down() -> None:
    assert share_of(Quota(rate=50.0, burst=100), 4) == Quota(rate=12.5, burst=25)
    assert share_of(Quota(rate=1.0, burst=3), 4) == Quota(rate=0.25, burst=1)  # never 0
    assert share_of(Quota(rate=1.0, burst=3), 1) == Quota(rate=1.0, burst=3)


async def test_a_store_outage_falls_back_to_a_limited_share_and_recovers(
    own_redis: RedisServer,
) -> None:
    quota = Quota(rate=0.01, burst=8)  # no refill to speak of within the test
    fallbacks: list[None] = []
    limiter = SharedRateLimiter(
        RedisBuckets(own_redis.url, timeout=0.05),
        lambda: Quotas(quota),
        processes=2,
        retry_after=0.2,
        on_fallback=lambda: fallbacks.append(None),
    )
    try:
        assert await admitted(limiter, "counter-sh", 3) == 3  # shared: 5 left in Redis
        assert fallbacks == []
        assert limiter.available

        own_redis.stop()
        # Neither refused for the outage nor let through unlimited: half the burst (2
        # processes share it), counted in this process.
        assert await admitted(limiter, "counter-sh", 20) == 4
        assert len(fallbacks) == 20  # each decided in the process
        with pytest.raises(RateLimited) as refused:
            await limiter.admit("counter-sh")
        assert refused.value.extensions["burst"] == 4
        assert not limiter.available
        assert limiter.problem

        own_redis.start()  # back, empty (no persistence): a fresh bucket of 8
        await asyncio.sleep(0.3)  # past retry_after: the store is asked again
        before = len(fallbacks)
        assert await admitted(limiter, "counter-sh", 10) == 8
        assert len(fallbacks) == before
        assert limiter.available
    finally:
        await limiter.close()
