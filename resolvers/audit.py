"""Reading the audit log: the auditor's search, and a citizen's own access history.

``auditEvents`` is open to the ``auditor`` role only, and every read of it is
itself recorded (an event listing the subject searched for and, if the auditor
asked for the events' subjects, those too). ``accessHistory`` shows a data
subject which apps read their data, when, under which matter and what was
released (the X-Road "data tracker"); it answers only a caller whose token
carries the ``citizen`` role and a ``subject`` claim equal to the ID number
asked about. Reading one's own history is not recorded: it releases nothing
about anyone else (PIPL art. 45, the right to access one's own data).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.audit import CHINA_TIME, AuditLog, EventQuery, StoredEvent, WorkingHours
from gateway.core.errors import AuditUnavailable, BatchTooLarge, Forbidden, InvalidInput
from gateway.core.identifiers import require_id_number
from gateway.core.text import require_text
from resolvers.context import GatewayContext
from resolvers.credit import require_subject_id

#: The roles these queries are for (as policy.csv names them).
AUDITOR_ROLE = "auditor"
CITIZEN_ROLE = "citizen"

#: Most events one page (or one history) returns.
MAX_EVENTS = 100

#: The decisions an event's entries record.
DECISIONS = ("CLEAR", "MASKED", "WITHHELD")

_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
_MAX_TEXT = 200


@dataclass(frozen=True, slots=True, kw_only=True)
class EventFilter:
    """The ``filter`` argument of ``auditEvents``, as given (checked by ``events``)."""

    caller_app: str | None = None
    subject_id: str | None = None
    matter_code: str | None = None
    trace_id: str | None = None
    region: str | None = None
    decision: str | None = None
    outside_working_hours: bool | None = None
    start: str | None = None
    end: str | None = None


def check_count(first: int, argument: str = "first") -> None:
    if first > MAX_EVENTS:
        raise BatchTooLarge(
            f"{argument} is {first}; at most {MAX_EVENTS} are allowed",
            argument=argument,
            found=first,
            maximum=MAX_EVENTS,
        )
    if first < 1:
        raise InvalidInput(f"{argument} must be at least 1", argument=argument)


def parse_time(text: str, argument: str, *, end: bool = False) -> dt.datetime:
    """An ISO 8601 date or date-time; without an offset, China Standard Time (UTC+8).

    ``from`` is inclusive; ``to`` is inclusive too: a date covers its whole day,
    a time its microsecond. The result is the exclusive bound for ``to``.
    """
    value = text.strip()
    try:
        if len(value) == 10:
            day = dt.datetime.combine(dt.date.fromisoformat(value), dt.time(), CHINA_TIME)
            return day + dt.timedelta(days=1) if end else day
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            f"{argument} must be an ISO 8601 date (2024-06-01) or date and time"
            " (2024-06-01T09:30:00+08:00)",
            argument=argument,
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=CHINA_TIME)
    return moment + dt.timedelta(microseconds=1) if end else moment


def _text(value: str | None, argument: str) -> str | None:
    if value is None:
        return None
    return require_text(value, argument, max_length=_MAX_TEXT)


def _log(ctx: GatewayContext) -> AuditLog:
    if ctx.audit_log is None:
        raise AuditUnavailable("no audit log is configured")
    return ctx.audit_log


def _query(ctx: GatewayContext, given: EventFilter, first: int, after: str | None) -> EventQuery:
    return event_query(ctx, given, before=_position(ctx, after), limit=first + 1)


def event_query(
    ctx: GatewayContext, given: EventFilter, *, before: int | None, limit: int
) -> EventQuery:
    """The ``EventQuery`` of a filter, each value checked (``auditEvents``, the CSV export).

    Raises:
        InvalidInput: a value is malformed, naming its argument.
    """
    trace_id = None
    if given.trace_id is not None:
        trace_id = given.trace_id.strip().lower()
        if not _TRACE_ID.match(trace_id):
            raise InvalidInput("traceId must be 32 hexadecimal digits", argument="traceId")
    region = None
    if given.region is not None:
        region = given.region.strip().upper()
        if region not in ctx.registry:
            raise InvalidInput(f"region {region!r} is not a known region", argument="region")
    decision = None
    if given.decision is not None:
        decision = given.decision.strip().upper()
        if decision not in DECISIONS:
            raise InvalidInput(
                f"decision must be one of {', '.join(DECISIONS)}", argument="decision"
            )
    outside = None
    if given.outside_working_hours:
        console = ctx.console_settings
        outside = WorkingHours(console.work_start, console.work_end, console.working_days)
    return EventQuery(
        caller_app=_text(given.caller_app, "callerApp"),
        subject=None if given.subject_id is None else require_subject_id(given.subject_id),
        matter_code=_text(given.matter_code, "matterCode"),
        trace_id=trace_id,
        owner=region,
        decision=decision,
        outside=outside,
        start=None if given.start is None else parse_time(given.start, "from"),
        end=None if given.end is None else parse_time(given.end, "to", end=True),
        before=before,
        limit=limit,
    )


async def events(
    ctx: GatewayContext,
    given: EventFilter | None,
    first: int,
    after: str | None,
    *,
    subjects_shown: bool,
) -> tuple[list[tuple[str, StoredEvent]], bool]:
    """One page of events, newest first: (cursor, event) pairs, and whether more follow.

    Raises:
        Forbidden: the caller does not hold the auditor role.
    """
    require_auditor(ctx, "auditEvents")
    check_count(first)
    query = _query(ctx, given or EventFilter(), first, after)
    found = await _log(ctx).read(query)
    chosen = found[:first]
    # The read itself is recorded: whose access records were searched, and, when the
    # events' subject lists were asked for, every subject they name.
    if query.subject is not None:
        ctx.loaders.subjects[query.subject] = None
    if subjects_shown:
        for stored in chosen:
            ctx.loaders.subjects.update(dict.fromkeys(stored.event.subjects))
    ctx.audit_reads.append(_read_decision("Query.auditEvents", len(chosen)))
    return [(_cursor(ctx, stored), stored) for stored in chosen], len(found) > first


async def event(ctx: GatewayContext, event_id: str) -> StoredEvent | None:
    """One event by its id, for an auditor (None: no such event); the read is recorded
    with the subjects the event lists.

    Raises:
        Forbidden: the caller does not hold the auditor role.
        InvalidInput: ``event_id`` is not an event id.
    """
    require_auditor(ctx, "auditEvent")
    number = event_id_of(event_id)
    found = await _log(ctx).read(EventQuery(after=number - 1, limit=1, newest_first=False))
    if not found or found[0].id != number:
        return None
    stored = found[0]
    ctx.loaders.subjects.update(dict.fromkeys(stored.event.subjects))
    ctx.audit_reads.append(_read_decision("Query.auditEvent", 1))
    return stored


def event_id_of(event_id: str, argument: str = "id") -> int:
    """The event an id names (its place in the log's order, ``StoredEvent.id``).

    Raises:
        InvalidInput: not an event id.
    """
    text = str(event_id).strip()
    if not text.isdigit() or len(text) > 18 or int(text) < 1:
        raise InvalidInput(f"{argument} is not an audit event id", argument=argument)
    return int(text)


def require_auditor(ctx: GatewayContext, field: str) -> None:
    """Raises ``Forbidden`` unless the caller holds the auditor role."""
    if AUDITOR_ROLE not in ctx.caller.roles:
        raise Forbidden(f"{field} is open to the auditor role only")


def record_read(ctx: GatewayContext, field: str, count: int) -> None:
    """Record a read of the audit log by an auditor in the operation's audit event."""
    ctx.audit_reads.append(_read_decision(field, count))


async def history(
    ctx: GatewayContext, id_number: str, first: int, after: str | None = None
) -> list[tuple[str, StoredEvent]]:
    """The newest ``first`` events that list ``id_number`` as a subject, older than ``after``.

    Returns (cursor, event) pairs; a record's cursor as ``after`` reads on from it.

    Raises:
        Forbidden: the caller is not that citizen (role ``citizen`` and a matching ``subject``).
    """
    key = require_id_number(id_number, "idNumber")
    subject = (ctx.caller.subject or "").strip().upper()
    if CITIZEN_ROLE not in ctx.caller.roles or subject != key:
        raise Forbidden("accessHistory shows a citizen their own history only")
    check_count(first)
    query = EventQuery(subject=key, limit=first, before=_position(ctx, after))
    found = await _log(ctx).read(query)
    return [(_cursor(ctx, stored), stored) for stored in found]


def _cursor(ctx: GatewayContext, stored: StoredEvent) -> str:
    """The cursor of an event in a list, newest first: its ``id``, encrypted."""
    return ctx.cursors.encode([str(stored.id)])


def _position(ctx: GatewayContext, after: str | None) -> int | None:
    """The ``id`` a cursor (``_cursor``) stands for; None without one."""
    if after is None:
        return None
    position = ctx.cursors.decode(after)
    if len(position) != 1 or not position[0].isdigit():
        raise InvalidInput("after is not a cursor of this list", argument="after")
    return int(position[0])


def released(decisions: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, str | None]]:
    """What an event released: (field, decision, owning region), withheld fields left out."""
    seen: dict[tuple[str, str, str | None], None] = {}
    for entry in decisions:
        if entry.get("decision") in ("CLEAR", "MASKED"):
            seen[(entry["field"], entry["decision"], entry.get("owner"))] = None
    return list(seen)


def _read_decision(field: str, count: int) -> dict[str, Any]:
    return {
        "field": field,
        "owner": None,
        "decision": "CLEAR",
        "grade": None,
        "clearance": None,
        "rule": None,
        "reason": "AUDITOR_ROLE",
        "count": count,
    }
