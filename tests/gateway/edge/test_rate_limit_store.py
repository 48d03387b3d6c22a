"""Token buckets in a real Redis: one bucket per app, whoever asks, atomically, on Redis's clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from gateway.edge.rate_limit_store import KEY_PREFIX, RedisBuckets, StoreUnavailable
from gateway.edge.rate_limits import Quota
from tests.redis_server import RedisServer, free_port


@pytest.fixture
async def admin(redis_server: RedisServer) -> AsyncIterator[Redis]:
    """A plain client of the session's server, its keys emptied before each test."""
    client = Redis.from_url(redis_server.url)
    await client.flushdb()
    try:
        yield client
    finally:
        await client.aclose()


async def test_two_replicas_draw_on_one_bucket_per_app(
    redis_server: RedisServer, admin: Redis
) -> None:
    first, second = RedisBuckets(redis_server.url), RedisBuckets(redis_server.url)
    quota = Quota(rate=0.01, burst=6)  # no refill to speak of within the test
    try:
        draws = await asyncio.gather(
            *(replica.take("counter-sh", quota) for _ in range(10) for replica in (first, second))
        )
        assert sum(draw.taken for draw in draws) == 6  # not 6 each: the burst is shared
        refused = [draw for draw in draws if not draw.taken]
        assert all(90 < draw.wait <= 100 for draw in refused)  # a token in 1 / 0.01 s
        assert (await first.take("portal-ah", quota)).taken  # another app, another bucket
    finally:
        await first.close()
        await second.close()


async def test_a_bucket_refills_at_the_rate_and_no_further_than_its_burst(
    redis_server: RedisServer, admin: Redis
) -> None:
    buckets = RedisBuckets(redis_server.url)
    quota = Quota(rate=20.0, burst=2)
    try:
        assert [(await buckets.take("app", quota)).taken for _ in range(3)] == [True, True, False]
        await asyncio.sleep(0.5)  # 10 tokens' worth, but the bucket holds 2
        assert [(await buckets.take("app", quota)).taken for _ in range(3)] == [True, True, False]
    finally:
        await buckets.close()


async def test_an_idle_bucket_expires_once_it_would_be_full(
    redis_server: RedisServer, admin: Redis
) -> None:
    buckets = RedisBuckets(redis_server.url)
    try:
        await buckets.take("quiet-app", Quota(rate=2.0, burst=10))
        ttl = await admin.pttl(KEY_PREFIX + "quiet-app")
        assert 0 < ttl <= 6000  # 10 tokens at 2 a second, and a second to spare
    finally:
        await buckets.close()


async def test_a_lowered_quota_applies_to_the_next_request(
    redis_server: RedisServer, admin: Redis
) -> None:
    buckets = RedisBuckets(redis_server.url)
    try:
        assert (await buckets.take("app", Quota(rate=0.01, burst=100))).taken
        lowered = Quota(rate=0.01, burst=2)  # the 99 tokens left are clamped to 2
        assert [(await buckets.take("app", lowered)).taken for _ in range(3)] == [
            True,
            True,
            False,
        ]
    finally:
        await buckets.close()


async def test_a_server_that_lost_the_script_is_sent_it_again(
    redis_server: RedisServer, admin: Redis
) -> None:
    buckets = RedisBuckets(redis_server.url)
    quota = Quota(rate=0.01, burst=3)
    try:
        assert (await buckets.take("app", quota)).taken
        await admin.script_flush()  # as after a restart: EVALSHA answers NOSCRIPT
        assert (await buckets.take("app", quota)).taken
        assert (await buckets.take("app", quota)).taken
        assert not (await buckets.take("app", quota)).taken  # the same bucket throughout
    finally:
        await buckets.close()


async def test_an_unreachable_store_fails_within_its_timeout() -> None:
    buckets = RedisBuckets(f"redis://127.0.0.1:{free_port()}/0", timeout=0.05)
    loop = asyncio.get_running_loop()
    try:
        started = loop.time()
        with pytest.raises(StoreUnavailable):
            await buckets.take("app", Quota(rate=1.0, burst=1))
        with pytest.raises(StoreUnavailable):
            await buckets.ping()
        assert loop.time() - started < 5  # bounded, not the client's default of seconds each
    finally:
        await buckets.close()
