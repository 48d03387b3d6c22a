"""Checking the audit log: walk the hash chain, whatever store keeps it.

``check_chain`` reads every event in ``seq`` order (an ``AuditLog`` hands them over
from one consistent snapshot) and stops at the first that is missing, altered or out
of place, naming it by its number. The report also carries the store's guards (for
PostgreSQL, the append-only and link triggers) and whether each is in place, and the
head of the chain: an auditor who writes the head down can later pass it as
``anchor`` and so also detect events removed from the end, which a chain alone
cannot show.
"""

from __future__ import annotations

from collections.abc import AsyncIterable
from dataclasses import dataclass, field

from gateway.audit.events import GENESIS, StoredEvent

__all__ = ["Break", "VerifyReport", "check_chain"]


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


async def check_chain(
    events: AsyncIterable[StoredEvent],
    *,
    anchor: tuple[int, str] | None = None,
    guards: dict[str, bool] | None = None,
) -> VerifyReport:
    """Walk ``events`` (the whole log, in ``seq`` order) and report the first break.

    Every ``AuditLog.verify`` ends here, so the chain's rules are checked one way
    whatever keeps the events.

    Args:
        events: every stored event, oldest first.
        anchor: (seq, hash) of a head written down earlier; the event must
            still be there with that hash.
        guards: the store's guards and whether each is in place (none: {}).
    """
    count = 0
    prev = GENESIS
    head: tuple[int, str] | None = None
    broken: Break | None = None
    anchored: StoredEvent | None = None
    async for event in events:
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
    return VerifyReport(events=count, head=head, broken=broken, guards=dict(guards or {}))
