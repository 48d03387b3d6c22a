"""Misuse signals for the console's front page, computed from the audit log.

Over the last ``signal_window_minutes`` (``[console]``):

- ``DISTINCT_SUBJECTS``: a caller app whose events name more distinct subjects
  (ID numbers, USCCs) than ``distinct_subjects_threshold``: a trawl through
  people rather than the handling of a matter;
- ``OUTSIDE_HOURS``: a caller app with more events outside the working hours
  (China Standard Time) than ``outside_hours_threshold``;
- ``SUBJECT_MANY_APPS``: one subject read by more caller apps than
  ``apps_per_subject_threshold``.

Events of callers holding the auditor role (the console's own reads of the audit
log) are left out. Each signal carries the event filter that lists the events
behind it. The window is read through ``AuditLog.read``, newest first, at most
``MAX_SCANNED`` events; a signal computed from a window cut short says so.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from dataclasses import dataclass

from gateway.audit import CHINA_TIME, AuditLog, EventQuery, StoredEvent, WorkingHours, scan
from resolvers.audit import AUDITOR_ROLE
from resolvers.console_settings import ConsoleSettings

__all__ = ["MAX_SCANNED", "Signal", "misuse_signals"]

#: Most events one computation of the signals reads.
MAX_SCANNED = 50_000
_PAGE = 5_000


@dataclass(frozen=True, slots=True, kw_only=True)
class Signal:
    """One raised signal, and the filter (``auditEvents``) that lists its events."""

    kind: str
    description: str
    caller_app: str | None
    subject_id: str | None
    count: int
    threshold: int
    start: dt.datetime
    end: dt.datetime
    outside_working_hours: bool = False


def _text(at: dt.datetime) -> str:
    return at.astimezone(CHINA_TIME).isoformat(timespec="microseconds")


async def window_events(
    log: AuditLog, start: dt.datetime, end: dt.datetime
) -> tuple[list[StoredEvent], bool]:
    """The events from ``start`` to ``end``, newest first, and whether the scan was cut short."""
    # One more than is scanned: whether the window holds more than is read.
    found = await scan(log, EventQuery(start=start, end=end), MAX_SCANNED + 1, _PAGE)
    return found[:MAX_SCANNED], len(found) > MAX_SCANNED


async def misuse_signals(
    log: AuditLog, settings: ConsoleSettings, now: dt.datetime | None = None
) -> list[Signal]:
    """The signals raised over the window ending ``now``, strongest first within each kind."""
    end = now or dt.datetime.now(dt.UTC)
    start = end - dt.timedelta(minutes=settings.signal_window_minutes)
    events, cut = await window_events(log, start, end)
    hours = WorkingHours(settings.work_start, settings.work_end, settings.working_days)
    subjects_of: defaultdict[str, set[str]] = defaultdict(set)
    apps_of: defaultdict[str, set[str]] = defaultdict(set)
    outside: Counter[str] = Counter()
    for stored in events:
        event = stored.event
        if AUDITOR_ROLE in event.roles:
            continue
        subjects_of[event.caller_app].update(event.subjects)
        for subject in event.subjects:
            apps_of[subject].add(event.caller_app)
        if not hours.covers(event.at):
            outside[event.caller_app] += 1
    minutes = settings.signal_window_minutes
    note = f" (only the newest {MAX_SCANNED} events of the window were read)" if cut else ""
    signals: list[Signal] = []
    threshold = settings.distinct_subjects_threshold
    for app, subjects in sorted(subjects_of.items(), key=lambda item: -len(item[1])):
        if len(subjects) > threshold:
            signals.append(
                Signal(
                    kind="DISTINCT_SUBJECTS",
                    description=f"{app} read {len(subjects)} distinct subjects in {minutes} min"
                    f" (threshold {threshold}){note}",
                    caller_app=app,
                    subject_id=None,
                    count=len(subjects),
                    threshold=threshold,
                    start=start,
                    end=end,
                )
            )
    threshold = settings.outside_hours_threshold
    for app, count in outside.most_common():
        if count > threshold:
            signals.append(
                Signal(
                    kind="OUTSIDE_HOURS",
                    description=f"{app} made {count} audited requests outside working hours"
                    f" ({settings.working_hours} CST) in {minutes} min"
                    f" (threshold {threshold}){note}",
                    caller_app=app,
                    subject_id=None,
                    count=count,
                    threshold=threshold,
                    start=start,
                    end=end,
                    outside_working_hours=True,
                )
            )
    threshold = settings.apps_per_subject_threshold
    for subject, apps in sorted(apps_of.items(), key=lambda item: (-len(item[1]), item[0])):
        if len(apps) > threshold:
            signals.append(
                Signal(
                    kind="SUBJECT_MANY_APPS",
                    description=f"one subject was read by {len(apps)} apps in {minutes} min"
                    f" (threshold {threshold}){note}",
                    caller_app=None,
                    subject_id=subject,
                    count=len(apps),
                    threshold=threshold,
                    start=start,
                    end=end,
                )
            )
    return signals


def window_text(signal: Signal) -> tuple[str, str]:
    """The signal's window as filter values (``from``, ``to``)."""
    return _text(signal.start), _text(signal.end)
