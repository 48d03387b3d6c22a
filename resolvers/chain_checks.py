"""Verifying a range of the audit chain from the console, and the last result.

``deltagate audit verify`` walks the whole chain; an auditor at the console
checks a range now (``verifyAuditChain``): each event's hash over its contents,
its link to the event before it in its writer's chain, and no gap in a chain.
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
            newest = await log.read(EventQuery(limit=1))
            if not newest:
                result = Verification(dt.datetime.now(dt.UTC), None, None, 0, (), by_app)
            else:
                end = newest[0].id if last is None else min(last, newest[0].id)
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
    """Check the events with ids ``first``..``last``: (how many hold, the first problem found).

    The log is one chain per writer, interleaved in ``id`` order: each event's hash
    must match its contents, and within its chain each event must follow the one
    before it (the next number, carrying its hash), the first of a chain in the range
    too, against the event just before the range. A chain's newest events deleted
    after the range, and the checkpoints, are ``deltagate audit verify``'s.
    """
    heads: dict[str, tuple[int, str]] = {}
    checked = 0
    after = first - 1
    while after < last:
        chunk = await log.read(EventQuery(after=after, limit=CHUNK, newest_first=False))
        for stored in chunk:
            if stored.id > last:
                return checked, []
            before = heads.get(stored.chain)
            if before is None and stored.seq > 1:
                before = await _predecessor(log, stored)
                if before is None:
                    name = f"{stored.chain}:{stored.seq - 1}"
                    return checked, [f"event {name}, before the range, is missing"]
            problem = _problem(stored, before)
            if problem is not None:
                return checked, [problem]
            heads[stored.chain] = (stored.seq, stored.hash)
            checked += 1
            after = stored.id
        if len(chunk) < CHUNK:
            break
    return checked, []


async def _predecessor(log: AuditLog, stored: StoredEvent) -> tuple[int, str] | None:
    """(seq, hash) of the event before ``stored`` in its chain, if it is there."""
    found = await log.read(EventQuery(chain=stored.chain, before=stored.id, limit=1))
    if not found or found[0].seq != stored.seq - 1:
        return None
    return found[0].seq, found[0].hash


def _problem(stored: StoredEvent, before: tuple[int, str] | None) -> str | None:
    name = f"event {stored.id} ({stored.chain}:{stored.seq})"
    if before is not None and stored.seq != before[0] + 1:
        return (
            f"{name}: event {stored.chain}:{before[0] + 1} is missing (after"
            f" {stored.chain}:{before[0]} comes {stored.chain}:{stored.seq})"
        )
    try:
        intact = stored.verify_hash()
    except ValueError:
        return f"{name}: this platform has no {stored.hash_algorithm} hash"
    if not intact:
        return f"{name} is altered: its contents do not match its hash"
    if before is not None and stored.prev_hash != before[1]:
        return f"{name} is not linked: it does not carry the hash of the event before it"
    if before is None and stored.seq == 1 and stored.prev_hash != GENESIS:
        return f"{name} is not linked: the first event of a chain carries the genesis hash"
    return None
