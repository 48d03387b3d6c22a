"""An audit log kept in a list: the second implementation of ``AuditLog``, for the contract.

It exists to show that the interface is complete (everything the gateway asks of
an audit log can be answered through it, with no SQL). It is never a stand-in
for PostgreSQL in a test of the gateway's behaviour: that runs against the real
database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from gateway.audit import (
    HASH_ALGORITHM,
    AuditEvent,
    AuditLog,
    EventQuery,
    Receipt,
    StoredEvent,
    VerifyReport,
    check_chain,
)
from gateway.audit.events import GENESIS, chain
from gateway.core.errors import AuditUnavailable


class MemoryAuditLog(AuditLog):
    """Events in a list, chained as PostgreSQL chains them; one event per "commit"."""

    def __init__(self, algorithm: str = HASH_ALGORITHM) -> None:
        self.events: list[StoredEvent] = []
        self._algorithm = algorithm
        self._closed = False

    async def append(self, event: AuditEvent) -> Receipt:
        if self._closed:
            raise AuditUnavailable("the audit log is closed")
        after = (self.events[-1].seq, self.events[-1].hash) if self.events else (0, GENESIS)
        (stored,) = chain([event], after, self._algorithm)
        self.events.append(stored)
        return Receipt(stored, 1)

    async def read(self, query: EventQuery) -> list[StoredEvent]:
        found = [stored for stored in self.events if _matches(stored, query)]
        if query.newest_first:
            found.reverse()
        return found[: query.limit]

    async def head(self) -> tuple[int, str] | None:
        return (self.events[-1].seq, self.events[-1].hash) if self.events else None

    async def verify(self, *, anchor: tuple[int, str] | None = None) -> VerifyReport:
        async def walk() -> AsyncIterator[StoredEvent]:
            for stored in list(self.events):
                yield stored

        return await check_chain(walk(), anchor=anchor)

    async def ping(self) -> None:
        if self._closed:
            raise AuditUnavailable("the audit log is closed")

    async def close(self) -> None:
        self._closed = True


def _matches(stored: StoredEvent, query: EventQuery) -> bool:
    event = stored.event
    return (
        (query.caller_app is None or event.caller_app == query.caller_app)
        and (query.subject is None or query.subject in event.subjects)
        and (query.matter_code is None or event.matter_code == query.matter_code)
        and (query.trace_id is None or event.trace_id == query.trace_id)
        and (query.start is None or event.at >= query.start)
        and (query.end is None or event.at < query.end)
        and (query.before is None or stored.seq < query.before)
        and (query.after is None or stored.seq > query.after)
        and (
            (query.owner is None and query.decision is None)
            or any(
                (query.owner is None or entry.get("owner") == query.owner)
                and (query.decision is None or entry.get("decision") == query.decision)
                for entry in event.decisions
            )
        )
        and (query.outside is None or not query.outside.covers(event.at))
    )
