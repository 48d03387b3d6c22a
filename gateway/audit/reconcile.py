"""Reconciling the cascade's audit logs: every release above has its event below, and back.

In the 国—省—市 cascade each level writes its own event for the same trace:
the lower records the original caller, the matter and the acting gateway
(``acting``); the upper records the receipt (``seq`` and ``hash``) the lower
returned for its event. ``reconcile`` reads both sides for a time window, as
an auditor who may read both logs would, and reports:

- ``missing``: a receipt above names no event below (deleted, or never written);
- ``hash mismatch``: the event below is not the one the receipt was given for;
- ``altered``: an event (either side) whose contents no longer hash to its
  stored hash: edited in place;
- ``trace mismatch``: the event below is filed under another trace;
- ``not delegated``: the event below records no acting gateway;
- ``subjects not covered``: the event below lists a subject (an ID number or
  USCC whose records it released) that the event above does not: the upper's
  log would hide whose data it obtained;
- ``no receipt``: the upper's event records a release of data kept by a
  reconciled region (an L2+ field with a count), but holds no receipt from it;
- ``orphan``: an event below, made for an upper gateway in the window, that no
  receipt above names (the upper's event was deleted, or never written).

A chain's own breaks are ``deltagate audit verify``'s to find; this checks what
links two logs. Events below are read from ``MARGIN`` before the window to
``MARGIN`` after it, and events above up to ``MARGIN`` after it, so a pair
astride an edge of the window is still matched; only findings about events
inside the window are reported.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.audit.events import LEGACY_CHAIN, StoredEvent
from gateway.audit.log import AuditLog, EventQuery
from gateway.audit.record import AUDITED_FROM_GRADE

__all__ = ["MARGIN", "Finding", "ReconcileReport", "reconcile"]

#: How far apart in time the two events of one operation may be (the upper's is written
#: after the lower answered; a request lasts seconds at most).
MARGIN = dt.timedelta(minutes=5)
#: Events read per round trip.
_PAGE = 1000


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing that does not reconcile.

    Attributes:
        kind: ``missing``, ``hash mismatch``, ``altered``, ``trace mismatch``,
            ``not delegated``, ``subjects not covered``, ``no receipt`` or ``orphan``.
        where: the event it is about: ``upper #12`` or ``JS #40``.
        detail: one sentence for the report.
    """

    kind: str
    where: str
    detail: str


@dataclass(slots=True)
class ReconcileReport:
    """What ``reconcile`` found.

    Attributes:
        since, until: the window.
        upper_events: events of the upper's log in the window.
        receipts: receipts checked.
        lower_events: per region, the events made for an upper gateway in the window.
        findings: what does not reconcile, in the order found.
    """

    since: dt.datetime
    until: dt.datetime
    upper_events: int = 0
    receipts: int = 0
    lower_events: dict[str, int] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def lines(self) -> list[str]:
        lowers = ", ".join(f"{region} {n}" for region, n in self.lower_events.items())
        out = [
            f"window {self.since.isoformat()} to {self.until.isoformat()}:"
            f" {self.upper_events} upper events, {self.receipts} receipts;"
            f" delegated events below: {lowers or 'none'}"
        ]
        out += [f"{f.kind}: {f.where}: {f.detail}" for f in self.findings]
        out.append("reconciled" if self.ok else f"NOT reconciled: {len(self.findings)} finding(s)")
        return out


async def reconcile(
    upper: AuditLog,
    lowers: Mapping[str, AuditLog],
    *,
    since: dt.datetime,
    until: dt.datetime,
    acting: str | None = None,
) -> ReconcileReport:
    """Check the upper's log against each region's lower log for ``since`` ≤ time < ``until``.

    Args:
        upper: the upper gateway's audit log.
        lowers: each reconciled region's (the upper's region code) lower audit log.
        acting: the upper's ``[delegation] id``: only events below made for it can be
            orphans (None: events made for any upper gateway).

    Raises:
        AuditUnavailable: a log cannot be read.
    """
    report = ReconcileReport(since=since, until=until)
    below: dict[str, dict[Key, StoredEvent]] = {}
    for region, log in lowers.items():
        below[region] = {
            (stored.chain, stored.seq): stored
            async for stored in _events(log, since - MARGIN, until + MARGIN)
            if stored.event.acting is not None
        }
    named: dict[str, set[Key]] = {region: set() for region in lowers}
    checked: set[tuple[str, Key]] = set()  # lower events a receipt led to (hash checked there)
    async for stored in _events(upper, since, until + MARGIN):
        inside = stored.event.at < until
        if inside:
            report.upper_events += 1
            if not stored.verify_hash():
                report.findings.append(
                    Finding(
                        "altered", f"upper {_name(stored)}", "its contents do not match its hash"
                    )
                )
        for receipt in stored.event.receipts:
            region = str(receipt.get("region"))
            if region not in lowers:
                continue
            key = _key(receipt)
            named[region].add(key)
            if inside:
                report.receipts += 1
                checked.add((region, key))
                event = await _lower_event(lowers[region], below[region], key, stored)
                report.findings += _check_receipt(stored, receipt, region, event)
        if inside:
            report.findings += _unreceipted(stored, lowers)
    for region, events in below.items():
        window = [s for s in events.values() if since <= s.event.at < until]
        mine = [s for s in window if acting is None or s.event.acting == acting]
        report.lower_events[region] = len(mine)
        for stored in sorted(mine, key=lambda s: s.id):
            key = (stored.chain, stored.seq)
            if (region, key) not in checked and not stored.verify_hash():
                report.findings.append(
                    Finding(
                        "altered",
                        f"{region} {_name(stored)}",
                        "its contents do not match its hash",
                    )
                )
            if key not in named[region]:
                report.findings.append(
                    Finding(
                        "orphan",
                        f"{region} {_name(stored)}",
                        f"made for {stored.event.acting} (trace {stored.event.trace_id}),"
                        " but no upper event holds its receipt",
                    )
                )
    return report


def _check_receipt(
    upper: StoredEvent, receipt: Mapping[str, Any], region: str, lower: StoredEvent | None
) -> list[Finding]:
    chain, number = _key(receipt)
    seq = f"{chain}:{number}"
    where = f"upper {_name(upper)}"
    if lower is None:
        return [Finding("missing", where, f"its receipt names {region} {seq}, which is not there")]
    found = []
    if lower.hash != receipt.get("hash"):
        found.append(
            Finding("hash mismatch", where, f"{region} {seq} has another hash than its receipt")
        )
    if not lower.verify_hash():
        found.append(Finding("altered", f"{region} {seq}", "its contents do not match its hash"))
    if lower.event.trace_id != upper.event.trace_id:
        found.append(
            Finding(
                "trace mismatch",
                where,
                f"trace {upper.event.trace_id}, but {region} {seq} is filed under"
                f" {lower.event.trace_id}",
            )
        )
    if lower.event.acting is None:
        found.append(Finding("not delegated", f"{region} {seq}", "it records no acting gateway"))
    hidden = sorted(set(lower.event.subjects) - set(upper.event.subjects))
    if hidden:
        found.append(
            Finding(
                "subjects not covered",
                where,
                f"{region} {seq} released {len(hidden)} subject(s) this event does not list",
            )
        )
    return found


def _unreceipted(upper: StoredEvent, lowers: Mapping[str, AuditLog]) -> list[Finding]:
    """A release of a reconciled region's L2+ data that holds no receipt from that region."""
    released = {
        str(entry.get("owner"))
        for entry in upper.event.decisions
        if entry.get("count")
        and str(entry.get("grade") or "L0").removeprefix("L").isdigit()
        and int(str(entry.get("grade") or "L0").removeprefix("L")) >= AUDITED_FROM_GRADE
    }
    receipted = {str(receipt.get("region")) for receipt in upper.event.receipts}
    return [
        Finding("no receipt", f"upper {_name(upper)}", f"it records data of {region}, no receipt")
        for region in sorted(released & set(lowers) - receipted)
    ]


#: An event's place in its log: (chain, seq).
Key = tuple[str, int]


def _key(receipt: Mapping[str, Any]) -> Key:
    """The (chain, seq) a receipt names (a receipt of a single-chain log names no chain)."""
    return str(receipt.get("chain") or LEGACY_CHAIN), int(receipt["seq"])


def _name(stored: StoredEvent) -> str:
    return f"{stored.chain}:{stored.seq}"


async def _lower_event(
    log: AuditLog, read: dict[Key, StoredEvent], key: Key, upper: StoredEvent
) -> StoredEvent | None:
    """The lower's event ``key``: from those read, else looked up among the events of the
    upper event's trace (one outside the window; one filed under another trace is missing)."""
    if key in read:
        return read[key]
    found = await log.read(EventQuery(trace_id=upper.event.trace_id, limit=100))
    return next((s for s in found if (s.chain, s.seq) == key), None)


async def _events(
    log: AuditLog, start: dt.datetime, end: dt.datetime
) -> AsyncIterator[StoredEvent]:
    """The events of ``start`` ≤ time < ``end``, oldest first, a page at a time."""
    after = 0
    while True:
        page = await log.read(
            EventQuery(start=start, end=end, after=after, limit=_PAGE, newest_first=False)
        )
        for stored in page:
            yield stored
        if len(page) < _PAGE:
            return
        after = page[-1].id
