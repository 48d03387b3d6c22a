"""Checking the audit log: walk the hash chain, and list the newest events.

``verify`` reads every event in ``seq`` order inside one read-only snapshot and
stops at the first that is missing, altered or out of place, naming it by its
number. It also reports whether the table's guards (the append-only and link
triggers) are in place and enabled, and the head of the chain: an auditor who
writes the head down can later pass it as ``anchor`` and so also detect events
removed from the end, which a chain alone cannot show.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import asyncpg

from gateway.audit.database import COLUMNS, guard_states, stored_event
from gateway.audit.events import GENESIS, StoredEvent
from gateway.core.errors import GatewayError

#: Events fetched per round trip while walking the chain.
CHUNK = 1000


@dataclass(frozen=True, slots=True)
class Break:
    """The first place the chain does not hold.

    Attributes:
        seq: the event's number (its id).
        kind: ``missing``, ``altered``, ``reordered``, ``not linked``,
            ``unverifiable`` or ``anchor``.
        detail: one sentence for the report.
    """

    seq: int
    kind: str
    detail: str


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """What ``verify`` found.

    Attributes:
        events: how many events were checked.
        head: (seq, hash) of the last event, None for an empty log.
        broken: the first break, None if the chain holds.
        guards: each expected trigger and whether it is there and enabled.
    """

    events: int
    head: tuple[int, str] | None
    broken: Break | None
    guards: dict[str, bool] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.broken is None and all(self.guards.values())

    def lines(self) -> list[str]:
        out = []
        if self.broken is None:
            out.append(f"chain intact: {self.events} events")
        else:
            out.append(
                f"chain BROKEN at event {self.broken.seq} ({self.broken.kind}):"
                f" {self.broken.detail}"
            )
        if self.head is not None:
            out.append(f"head: event {self.head[0]}, hash {self.head[1]}")
        for name, enabled in self.guards.items():
            out.append(f"guard {name}: {'enabled' if enabled else 'MISSING OR DISABLED'}")
        return out


@asynccontextmanager
async def _connect(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    try:
        connection = await asyncpg.connect(dsn, timeout=10)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise GatewayError(f"cannot connect to the audit database: {exc}") from None
    try:
        exists = await connection.fetchval("SELECT to_regclass('audit_event') IS NOT NULL")
        if not exists:
            raise GatewayError("this database holds no audit log (table audit_event)")
        yield connection
    finally:
        await connection.close()


def _check(event: StoredEvent, expected: int, prev: str) -> Break | None:
    seq = event.seq
    if seq != expected:
        return Break(
            expected,
            "missing",
            f"event {expected} is missing (after event {expected - 1} comes event {seq})",
        )
    try:
        intact = event.verify_hash()
    except ValueError:
        return Break(seq, "unverifiable", f"this platform has no {event.hash_algorithm} hash")
    linked = event.prev_hash == prev
    if not intact and not linked:
        return Break(
            seq, "reordered", "neither its contents nor its link to the event before match"
        )
    if not intact:
        return Break(seq, "altered", "its contents do not match its hash")
    if not linked:
        return Break(seq, "not linked", f"it does not carry the hash of event {seq - 1}")
    return None


async def verify(dsn: str, *, anchor: tuple[int, str] | None = None) -> VerifyReport:
    """Walk the chain in the audit database at ``dsn``.

    Args:
        dsn: the audit database.
        anchor: (seq, hash) of a head written down earlier; the event must
            still be there with that hash.

    Raises:
        GatewayError: the database cannot be reached or holds no audit log.
    """
    async with _connect(dsn) as connection:
        guards = await guard_states(connection)
        count = 0
        prev = GENESIS
        head: tuple[int, str] | None = None
        broken: Break | None = None
        anchored: StoredEvent | None = None
        async with connection.transaction(isolation="repeatable_read", readonly=True):
            cursor = connection.cursor(
                f"SELECT {COLUMNS} FROM audit_event ORDER BY seq", prefetch=CHUNK
            )
            async for record in cursor:
                event = stored_event(record)
                if anchor is not None and event.seq == anchor[0]:
                    anchored = event
                if broken is None:
                    broken = _check(event, count + 1, prev)
                    if broken is None:
                        count += 1
                        prev = event.hash
                head = (event.seq, event.hash)
        if broken is None and anchor is not None:
            if anchored is None:
                broken = Break(anchor[0], "anchor", "the anchored event is no longer in the log")
            elif anchored.hash != anchor[1]:
                broken = Break(anchor[0], "anchor", "the anchored event's hash has changed")
        return VerifyReport(events=count, head=head, broken=broken, guards=guards)


async def tail(dsn: str, count: int = 20) -> list[StoredEvent]:
    """The newest ``count`` events, oldest first."""
    async with _connect(dsn) as connection:
        records = await connection.fetch(
            f"SELECT {COLUMNS} FROM audit_event ORDER BY seq DESC LIMIT $1", count
        )
    return [stored_event(record) for record in reversed(records)]
