"""The extension point for audit storage: one class per kind of store.

The gateway, its resolvers and the ``deltagate audit`` commands reach the audit
log only through :class:`AuditLog`: they append events, read them back with an
:class:`EventQuery` (filters, paging and order, no storage language), ask for
the newest event, and verify the log. The one implementation shipped is
``gateway.audit.postgres.PostgresAuditLog``; all SQL of the audit log is there
and in ``gateway.audit.sql``, which only it imports.

What every implementation keeps (``tests/gateway/audit/test_log_contract.py``
holds each to it):

- each log object (a writer) appends to a chain of its own; within it, events
  are numbered 1, 2, 3, ... without gaps and hash-chained
  (``gateway.audit.events.link``); ``append`` returns only once the event is
  stored durably, and raises ``AuditUnavailable`` otherwise (fail closed: the
  caller must not release the data the event records);
- every stored event also has an ``id``, increasing in the order of storing
  across all chains (with gaps): the order ``read`` pages in;
- ``read`` returns what ``append`` stored, unchanged;
- ``verify`` walks every chain and every checkpoint
  (``gateway.audit.verify.check_log``).
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any

from gateway.audit.checkpoints import Head
from gateway.audit.events import CHINA_TIME, AuditEvent, StoredEvent
from gateway.audit.verify import VerifyReport

__all__ = ["AuditLog", "EventQuery", "Receipt", "WorkingHours", "receipt_document", "scan"]


@dataclass(frozen=True, slots=True)
class WorkingHours:
    """Working hours in China Standard Time: from ``start`` (inclusive) to ``end``
    (exclusive) on the ISO weekdays ``days`` (Monday = 1)."""

    start: dt.time
    end: dt.time
    days: frozenset[int]

    def covers(self, at: dt.datetime) -> bool:
        local = at.astimezone(CHINA_TIME)
        return local.isoweekday() in self.days and self.start <= local.time() < self.end


@dataclass(frozen=True, slots=True, kw_only=True)
class EventQuery:
    """Which events to read; every given condition must hold.

    Attributes:
        caller_app: the caller application.
        chain: the writer's chain the events are in.
        subject: an ID number or USCC the event lists.
        matter_code: the matter.
        trace_id: the trace id (32 hex digits).
        owner: events with a decision on data kept by this region.
        decision: events with a decision of this kind (``CLEAR``, ``MASKED``, ``WITHHELD``);
            with ``owner``, the same decision entry must have both.
        outside: events outside these working hours (China Standard Time).
        start: events at or after this time.
        end: events before this time.
        before: events with a smaller ``id`` (the page after a cursor, newest first).
        after: events with a greater ``id`` (the page after a cursor, oldest first).
        limit: at most this many.
        newest_first: order by ``id`` descending (the default), else ascending.
    """

    caller_app: str | None = None
    chain: str | None = None
    subject: str | None = None
    matter_code: str | None = None
    trace_id: str | None = None
    owner: str | None = None
    decision: str | None = None
    outside: WorkingHours | None = None
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    before: int | None = None
    after: int | None = None
    limit: int = 20
    newest_first: bool = True


@dataclass(frozen=True, slots=True)
class Receipt:
    """An event's commit: the stored event and how many events its write carried.

    ``chain``, ``seq`` and ``hash`` name the event in the log for good: what an
    upper gateway keeps of a lower one's event (``as_json``).
    """

    stored: StoredEvent
    batch: int

    @property
    def chain(self) -> str:
        return self.stored.chain

    @property
    def seq(self) -> int:
        return self.stored.seq

    @property
    def hash(self) -> str:
        return self.stored.hash

    def as_json(self) -> dict[str, str | int]:
        return {"chain": self.chain, "seq": self.seq, "hash": self.hash}


def receipt_document(receipt: Receipt, gateway: str) -> dict[str, Any]:
    """What a lower gateway hands the upper for the event it wrote: ``extensions.auditReceipt``.

    ``gateway`` is the writer's ``[delegation] id``; the upper keeps this in its
    own event (adding the region it asked), and ``deltagate audit reconcile``
    finds the event by it and checks its hash.
    """
    return {"gateway": gateway, **receipt.as_json()}


class Expectation:
    """An operation that may append an event soon, announced to its log (``AuditLog.expect``).

    ``settle`` says it is over: it is about to append, or will not. Settling twice is
    settling once, so a ``finally`` may settle what was settled already.
    """

    __slots__ = ("_on_settle",)

    def __init__(self, on_settle: Callable[[], None] | None) -> None:
        self._on_settle = on_settle

    def settle(self) -> None:
        on_settle, self._on_settle = self._on_settle, None
        if on_settle is not None:
            on_settle()


#: What a log that does not gather events returns for every announcement.
NOTHING_EXPECTED = Expectation(None)


class AuditLog(ABC):
    """The hash-chained audit log, wherever it is kept: one chain per writer.

    Subclasses implement :meth:`append`, :meth:`read`, :meth:`head`,
    :meth:`verify`, :meth:`ping` and :meth:`close`; :meth:`start` does nothing
    unless the store has something to connect to.

    >>> async def newest(log: AuditLog) -> list[StoredEvent]:
    ...     async with log:
    ...         return await log.read(EventQuery(limit=5))

    Attributes:
        problem: why the store is unusable right now, for ``/readyz`` (None if
            it is usable, or does not know).
    """

    problem: str | None = None

    # Optional hook, empty on purpose: a store that holds nothing need not override it.
    async def start(self) -> None:  # noqa: B027
        """Get ready to write. Must not fail because the store is down right now."""

    @abstractmethod
    async def append(self, event: AuditEvent) -> Receipt:
        """Number, chain and store ``event``; return once it is stored durably.

        Raises:
            AuditUnavailable: the event was not stored (the caller must not
                release the data it records), or the log is closed.
        """

    def expect(self) -> Expectation:
        """Announce an operation that may append an event once it has run.

        A hint, never a promise: a writer that commits events in groups may wait a moment
        for the events of operations still running rather than commit each alone, and
        stops waiting as soon as every operation announced before the wait has settled.
        Nothing depends on it for correctness; a log that does not gather ignores it.
        """
        return NOTHING_EXPECTED

    @abstractmethod
    async def read(self, query: EventQuery) -> list[StoredEvent]:
        """The events matching ``query``, in its order.

        Raises:
            AuditUnavailable: the log cannot be read.
        """

    @abstractmethod
    async def head(self) -> Head | None:
        """The newest event (greatest ``id``) as (chain, seq, hash); None for an empty log.

        Raises:
            AuditUnavailable: the log cannot be read.
        """

    @abstractmethod
    async def verify(self, *, anchor: Head | None = None) -> VerifyReport:
        """Walk every chain and checkpoint, in one consistent snapshot.

        Args:
            anchor: an event written down earlier (chain, seq, hash); it must
                still be there with that hash.

        Raises:
            GatewayError: the log cannot be read.
        """

    @abstractmethod
    async def ping(self) -> None:
        """Return if the store answers, else raise ``AuditUnavailable``."""

    @abstractmethod
    async def close(self) -> None:
        """Store what is pending, then release what the store holds; later appends fail."""

    async def __aenter__(self) -> AuditLog:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


async def scan(log: AuditLog, query: EventQuery, most: int, page: int = 1000) -> list[StoredEvent]:
    """Up to ``most`` events ``query`` matches, in its order, read ``page`` at a time.

    ``query.limit`` is ignored; each next page starts after the last event read (by
    ``id``), so events appended meanwhile neither repeat nor shift the pages.

    Raises:
        AuditUnavailable: the log cannot be read.
    """
    found: list[StoredEvent] = []
    while len(found) < most:
        limit = min(page, most - len(found))
        batch = await log.read(replace(query, limit=limit))
        found += batch
        if len(batch) < limit:
            break
        last = batch[-1].id
        query = replace(query, before=last) if query.newest_first else replace(query, after=last)
    return found
