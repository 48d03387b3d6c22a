"""Verifying a range of the audit chain from the console, and the last result.

``deltagate audit verify`` walks the whole chain; an auditor at the console
checks a range now (``verifyAuditChain``): each event's hash over its contents,
its link to the event before (the one just before the range too), and no gap.
Verifying reads and hashes every event of the range, so it is bounded
(``verify_max_range`` events) and rationed: one at a time in the process and at
most one per ``verify_min_interval`` seconds, whoever asks, so that no auditor
token can keep a worker busy hashing. The last result is kept in memory (per
process) for ``auditChainStatus``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from dataclasses import dataclass, field

from gateway.audit import GENESIS, AuditLog, EventQuery, StoredEvent
from gateway.core.errors import BatchTooLarge, InvalidInput, RateLimited

__all__ = ["ChainChecks", "Verification"]

#: Events read from the log per round trip while verifying.
CHUNK = 1000


@dataclass(frozen=True, slots=True)
class Verification:
    """The result of one range verification.

    Attributes:
        at: when it ended (UTC).
        first, last: the range checked (None, None for an empty log).
        checked: events checked before the first problem (all of them when ok).
        problems: what is wrong, naming events (empty when the range holds).
        by_app: the caller app that asked.
    """

    at: dt.datetime
    first: int | None
    last: int | None
    checked: int
    problems: tuple[str, ...]
    by_app: str

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class ChainChecks:
    """The process's verifications: one at a time, spaced, and the last one's result."""

    max_range: int = 100_000
    min_interval: float = 10.0
    last: Verification | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _started: float = float("-inf")

    async def verify(
        self, log: AuditLog, first: int | None, last: int | None, *, by_app: str
    ) -> Verification:
        """Verify events ``first``..``last`` (inclusive; defaults: the newest ``max_range``).

        Raises:
            RateLimited: another verification runs, or the last began too recently.
            BatchTooLarge: the range holds more than ``max_range`` events.
            InvalidInput: ``first`` is after ``last``.
        """
        if self._lock.locked():
            raise RateLimited("a verification is running; try again when it has finished")
        wait = self._started + self.min_interval - time.monotonic()
        if wait > 0:
            raise RateLimited(f"verifications are spaced: try again in {wait:.0f} s")
        async with self._lock:
            head = await log.head()
            if head is None:
                result = Verification(dt.datetime.now(dt.UTC), None, None, 0, (), by_app)
            else:
                end = head[0] if last is None else min(last, head[0])
                start = max(1, end - self.max_range + 1) if first is None else first
                if start > end:
                    raise InvalidInput("fromId must not be after toId", argument="fromId")
                if end - start + 1 > self.max_range:
                    raise BatchTooLarge(
                        f"the range holds {end - start + 1} events; at most"
                        f" {self.max_range} are verified at once",
                        argument="fromId",
                        found=end - start + 1,
                        maximum=self.max_range,
                    )
                # Spaced from here: a refused range costs nothing and does not count.
                self._started = time.monotonic()
                checked, problems = await check_range(log, start, end)
                result = Verification(
                    dt.datetime.now(dt.UTC), start, end, checked, tuple(problems), by_app
                )
            self.last = result
            return result


async def check_range(log: AuditLog, first: int, last: int) -> tuple[int, list[str]]:
    """Check events ``first``..``last``: (how many hold, the first problem found, if any)."""
    prev = GENESIS
    if first > 1:
        before = await log.read(EventQuery(after=first - 2, limit=1, newest_first=False))
        if not before or before[0].seq != first - 1:
            return 0, [f"event {first - 1}, before the range, is missing"]
        prev = before[0].hash
    expected = first
    checked = 0
    while expected <= last:
        chunk = await log.read(
            EventQuery(
                after=expected - 1, limit=min(CHUNK, last - expected + 1), newest_first=False
            )
        )
        if not chunk:
            return checked, [f"event {expected} is missing (the log ends before it)"]
        for stored in chunk:
            problem = _problem(stored, expected, prev)
            if problem is not None:
                return checked, [problem]
            checked += 1
            prev = stored.hash
            expected += 1
    return checked, []


def _problem(stored: StoredEvent, expected: int, prev: str) -> str | None:
    if stored.seq != expected:
        return f"event {expected} is missing (after event {expected - 1} comes event {stored.seq})"
    try:
        intact = stored.verify_hash()
    except ValueError:
        return f"event {stored.seq}: this platform has no {stored.hash_algorithm} hash"
    if not intact:
        return f"event {stored.seq} is altered: its contents do not match its hash"
    if stored.prev_hash != prev:
        return (
            f"event {stored.seq} is not linked: it does not carry the hash of event {expected - 1}"
        )
    return None
