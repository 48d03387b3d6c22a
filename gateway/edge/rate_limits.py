"""Rate limits per caller app: a token bucket each, sized by ``quotas.toml`` in the policy folder.

An app's bucket holds up to ``burst`` requests and refills at ``rate`` per
second; a request takes one, and a request that finds the bucket empty is
refused with HTTP 429, ``RATE_LIMITED`` and a ``Retry-After`` (whole seconds
until a request would pass). Apps are the ``sub`` of their tokens; an app
without an entry gets ``[default]``.

``RateLimiter`` keeps the buckets in the process: each replica (and each
worker) counts for itself, so N of them let an app through at up to N times its
rate. With a shared store configured (``DELTAGATE_RATE_LIMIT_URL``),
``gateway.edge.shared_limits`` keeps one bucket per app in Redis for all of
them, and falls back to this module's buckets while the store is unreachable.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.core.errors import ConfigError, RateLimited
from gateway.edge.datafile import WatchedFile, read_toml

QUOTAS_FILE = "quotas.toml"


@dataclass(frozen=True, slots=True)
class Quota:
    """Requests per second an app's bucket refills with, and how many it holds."""

    rate: float
    burst: int

    def __post_init__(self) -> None:
        if not self.rate > 0 or self.burst < 1:
            raise ConfigError("a quota needs rate > 0 and burst >= 1")


#: The quota of every app when the policy folder has no quotas file.
DEFAULT_QUOTA = Quota(rate=50.0, burst=100)


@dataclass(frozen=True, slots=True)
class Quotas:
    """The default quota and the apps that have their own."""

    default: Quota = DEFAULT_QUOTA
    apps: Mapping[str, Quota] | None = None

    def of(self, app: str) -> Quota:
        return (self.apps or {}).get(app, self.default)


def watched_quotas(directory: Path, *, reload_interval: float = 2.0) -> Callable[[], Quotas]:
    """The quotas of ``quotas.toml`` in the policy folder, re-read when it changes (if any)."""
    path = directory / QUOTAS_FILE
    if not path.exists():
        fixed = Quotas()
        return lambda: fixed
    watched = WatchedFile(path, load_quotas, interval=reload_interval)
    return lambda: watched.value


def refusal(app: str, quota: Quota, wait: float) -> RateLimited:
    """The error of a request refused by ``app``'s bucket, ``wait`` seconds before a token."""
    retry = max(1, math.ceil(wait))
    return RateLimited(
        f"app {app!r} sent more than {quota.rate:g} requests per second"
        f" (burst {quota.burst}); retry in {retry} s",
        retryAfter=retry,
        rate=quota.rate,
        burst=quota.burst,
    )


def load_quotas(path: Path) -> Quotas:
    """Read a quotas file; ``ConfigError`` names what is wrong."""
    raw = read_toml(path)
    unknown = set(raw) - {"default", "apps"}
    if unknown:
        raise ConfigError(f"{path}: unknown sections {', '.join(sorted(unknown))}")
    default = DEFAULT_QUOTA
    if "default" in raw:
        default = _quota(raw["default"], f"{path}: [default]")
    apps = raw.get("apps", {})
    if not isinstance(apps, dict):
        raise ConfigError(f"{path}: [apps] must be a table of app tables")
    return Quotas(default, {app: _quota(t, f"{path}: [apps.{app}]") for app, t in apps.items()})


def _quota(table: Any, where: str) -> Quota:
    if not isinstance(table, dict) or set(table) != {"rate", "burst"}:
        raise ConfigError(f"{where} needs exactly rate and burst")
    rate, burst = table["rate"], table["burst"]
    if isinstance(rate, bool) or not isinstance(rate, int | float):
        raise ConfigError(f"{where}: rate must be a number")
    if isinstance(burst, bool) or not isinstance(burst, int):
        raise ConfigError(f"{where}: burst must be an integer")
    try:
        return Quota(float(rate), burst)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


class RateLimiter:
    """Token buckets per caller app, in this process.

    Args:
        quotas: the quotas in force, or a callable returning them (a watched file).
        clock: monotonic seconds (tests pass a fake).

    Example::

        limiter = RateLimiter.from_policy_dir(settings.policy_dir)
        limiter.take(caller.app)            # RateLimited when the app's bucket is empty
    """

    def __init__(
        self,
        quotas: Quotas | Callable[[], Quotas],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._quotas = quotas if callable(quotas) else (lambda: quotas)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float, Quota]] = {}  # app -> (tokens, at, quota)

    @classmethod
    def from_policy_dir(cls, directory: Path, *, reload_interval: float = 2.0) -> RateLimiter:
        """Quotas from ``quotas.toml`` in the policy folder (re-read when it changes), if any."""
        return cls(watched_quotas(directory, reload_interval=reload_interval))

    async def admit(self, app: str) -> None:
        """``take``, with the shared limiter's signature (the pipeline awaits either)."""
        self.take(app)

    def take(self, app: str) -> None:
        """Take one request from ``app``'s bucket.

        Raises:
            RateLimited: the bucket is empty; ``retryAfter`` says in how many seconds it is not.
        """
        self.take_with(app, self._quotas().of(app))

    def take_with(self, app: str, quota: Quota) -> None:
        """``take`` with a quota given rather than looked up (the shared limiter's fall-back)."""
        now = self._clock()
        tokens, at, sized_by = self._buckets.get(app, (float(quota.burst), now, quota))
        if sized_by != quota:  # the quota changed: a fresh bucket, so a raise applies at once
            tokens, at = float(quota.burst), now
        tokens = min(float(quota.burst), tokens + (now - at) * quota.rate)
        if tokens < 1.0:
            self._buckets[app] = (tokens, now, quota)
            raise refusal(app, quota, (1.0 - tokens) / quota.rate)
        self._buckets[app] = (tokens - 1.0, now, quota)
        if len(self._buckets) > 10_000:
            self._forget_full(now)

    def _forget_full(self, now: float) -> None:
        """Drop buckets that have refilled: they hold nothing a fresh bucket would not."""
        for app, (tokens, at, quota) in list(self._buckets.items()):
            if tokens + (now - at) * quota.rate >= quota.burst:
                del self._buckets[app]
