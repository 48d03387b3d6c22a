"""Token buckets kept in Redis, so that every replica and worker draws on one bucket per app.

Each request is one ``EVALSHA`` of a Lua script that refills the app's bucket,
takes a token if there is one, and stores the bucket back, atomically (Redis
runs a script alone). The time comes from the Redis server (``TIME``), so the
replicas' clocks do not matter; a bucket's key expires once it would have
refilled anyway, so idle apps leave nothing behind. The script is sent once
(``SCRIPT LOAD``) and run by its hash; a server that lost it (restarted,
``SCRIPT FLUSH``) answers ``NOSCRIPT`` and gets it again.

The store knows nothing of fall-backs: it answers or raises
``StoreUnavailable`` within ``timeout``. What to do then is
``gateway.edge.shared_limits``'s choice.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from gateway.edge.rate_limits import Quota

#: Keys are ``deltagate:ratelimit:<app>``; the prefix keeps them apart from anything else.
KEY_PREFIX = "deltagate:ratelimit:"

# KEYS[1] the app's bucket; ARGV[1] rate (tokens per second), ARGV[2] burst.
# Returns {1, 0} when a token was taken, {0, "<seconds until one is there>"} when not.
# A changed quota keeps the tokens (clamped to the new burst) rather than refilling the
# bucket: replicas pick up a new quotas.toml at slightly different moments, and a refill on
# every change would hand out a burst each time two of them disagree.
_TOKEN_BUCKET = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local stored = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(stored[1])
local at = tonumber(stored[2])
if tokens == nil or at == nil then
  tokens = burst
  at = now
end
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local taken = 0
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
  taken = 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {taken, tostring(wait)}
"""


class StoreUnavailable(Exception):
    """The store did not answer within its timeout, or answered with an error."""


@dataclass(frozen=True, slots=True)
class Draw:
    """The outcome of one request against a bucket: taken, or seconds until a token is there."""

    taken: bool
    wait: float


class RedisBuckets:
    """Token buckets per app in one Redis.

    Args:
        url: ``redis://[user:password@]host:port/db`` (``rediss://`` for TLS).
        timeout: seconds a request may wait for the store (connecting included)
            before ``StoreUnavailable``; short, since every request waits on it.

    Example::

        buckets = RedisBuckets("redis://ratelimit:6379/0", timeout=0.05)
        draw = await buckets.take("counter-sh", Quota(rate=200, burst=400))
    """

    def __init__(self, url: str, *, timeout: float = 0.05) -> None:
        self.url = url
        self.timeout = timeout
        # No retries: a request that cannot reach the store within its timeout is served by
        # the fall-back at once, rather than waiting for the client to try again.
        self._client = Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )
        self._script = self._client.register_script(_TOKEN_BUCKET)

    async def take(self, app: str, quota: Quota) -> Draw:
        """Take one token from ``app``'s bucket, sized by ``quota``.

        Raises:
            StoreUnavailable: no answer within the timeout, or an error from Redis.
        """
        try:
            async with asyncio.timeout(self.timeout):
                taken, wait = await self._script(
                    keys=[KEY_PREFIX + app], args=[repr(quota.rate), quota.burst]
                )
        except (TimeoutError, OSError, RedisError) as exc:
            raise StoreUnavailable(f"{type(exc).__name__}: {exc}") from None
        return Draw(taken == 1, float(wait))

    async def ping(self) -> None:
        """Raise ``StoreUnavailable`` unless the store answers within the timeout."""
        try:
            async with asyncio.timeout(self.timeout):
                await self._client.ping()
        except (TimeoutError, OSError, RedisError) as exc:
            raise StoreUnavailable(f"{type(exc).__name__}: {exc}") from None

    async def close(self) -> None:
        await self._client.aclose()
