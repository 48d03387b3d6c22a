"""An audit log kept in a list: the second implementation of ``AuditLog``, for the contract.

It exists to show that the interface is complete (everything the gateway asks of
an audit log can be answered through it, with no SQL). It is never a stand-in
for PostgreSQL in a test of the gateway's behaviour: that runs against the real
database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

from gateway.audit import (
    HASH_ALGORITHM,
    AuditEvent,
    AuditLog,
    EventQuery,
    Head,
    Receipt,
    StoredEvent,
    VerifyReport,
    check_chain,
)
from gateway.audit.events import GENESIS, link, new_chain_name
from gateway.core.errors import AuditUnavailable


class MemoryAuditLog(AuditLog):
    """Events in a list, in one chain as PostgreSQL chains a writer's; one event per "commit"."""

    def __init__(self, algorithm: str = HASH_ALGORITHM) -> None:
        self.events: list[StoredEvent] = []
        self.chain = new_chain_name()
        self._algorithm = algorithm
        self._closed = False

    async def append(self, event: AuditEvent) -> Receipt:
        if self._closed:
            raise AuditUnavailable("the audit log is closed")
        after = (self.events[-1].seq, self.events[-1].hash) if self.events else (0, GENESIS)
        (stored,) = link(self.chain, [event], after, self._algorithm)
        stored = replace(stored, id=len(self.events) + 1)
        self.events.append(stored)
        return Receipt(stored, 1)

    async def read(self, query: EventQuery) -> list[StoredEvent]:
        found = [stored for stored in self.events if _matches(stored, query)]
        if query.newest_first:
            found.reverse()
        return found[: query.limit]

    async def head(self) -> Head | None:
        newest = self.events[-1] if self.events else None
        return None if newest is None else Head(newest.chain, newest.seq, newest.hash)

    async def verify(self, *, anchor: Head | None = None) -> VerifyReport:
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
        and (query.chain is None or stored.chain == query.chain)
        and (query.subject is None or query.subject in event.subjects)
        and (query.matter_code is None or event.matter_code == query.matter_code)
        and (query.trace_id is None or event.trace_id == query.trace_id)
        and (query.start is None or event.at >= query.start)
        and (query.end is None or event.at < query.end)
        and (query.before is None or stored.id < query.before)
        and (query.after is None or stored.id > query.after)
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
