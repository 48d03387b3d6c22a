"""The audit API: auditors search the audit log; a citizen sees who accessed their data.

Times are ISO 8601 in China Standard Time (``2024-06-01T09:30:00.123456+08:00``);
filters accept a date or a date and time, without an offset read as UTC+8.
"""

from __future__ import annotations

from typing import Any

import strawberry

from gateway.audit import CHINA_TIME, StoredEvent
from resolvers import audit, console
from schema.console import Trace
from schema.resource_catalog import Decision
from schema.types import Info, PageInfo


def _at(stored: StoredEvent) -> str:
    # Microseconds, as stored: an auditor can paste a time into a filter and find the event.
    return stored.event.at.astimezone(CHINA_TIME).isoformat(timespec="microseconds")


@strawberry.type(description="What an operation got of one field coordinate kept by one region.")
class AuditDecision:
    field: str = strawberry.field(description="Type.field, e.g. NaturalPerson.phone.")
    owner: str | None = strawberry.field(description="The region that keeps the data.")
    decision: Decision
    count: int = strawberry.field(description="Records (or parent records, for links) it covered.")
    grade: str | None = strawberry.field(description="L1..L4.")
    clearance: str | None = strawberry.field(
        description="The caller's clearance for the owning region (L1..L4), if recorded."
    )
    rule: str | None = strawberry.field(description="The policy line that decided, if any.")
    reason: str | None = strawberry.field(description="Why, e.g. ONE_ABOVE_CLEARANCE.")


@strawberry.type(
    description="A lower gateway's receipt for its own event of the same operation (the cascade)."
)
class AuditReceipt:
    gateway: str = strawberry.field(description="The lower gateway's id ([delegation] id).")
    region: str | None = strawberry.field(description="The region that gateway answered for.")
    chain: str | None = strawberry.field(description="The lower's chain the event is in, if any.")
    seq: int = strawberry.field(description="The event's number in the lower's log.")
    hash: str = strawberry.field(description="The event's hash in the lower's log.")


@strawberry.type(description="One audited operation: who read whose data, when, and what they got.")
class AuditEvent:
    id: strawberry.ID = strawberry.field(
        description="The event's number in the log, across its chains (the order of the list)."
    )
    chain: str = strawberry.field(description="The hash chain it is in (one per gateway process).")
    seq: int = strawberry.field(
        description="Its number in that chain: `chain:seq` is what `deltagate audit verify` names."
    )
    at: str
    trace_id: str = strawberry.field(description="The operation's OpenTelemetry trace id.")
    caller_app: str
    caller_region: str
    acting_gateway: str | None = strawberry.field(
        description="The upper gateway that acted for the caller (the cascade); null when the"
        " caller came directly."
    )
    roles: list[str]
    matter_code: str | None
    matter_name: str | None
    operation_name: str | None
    operation_type: str | None = strawberry.field(description="query or mutation.")
    document_hash: str = strawberry.field(description="SHA-256 of the GraphQL document.")
    policy_version: str | None
    subjects: list[str] = strawberry.field(description="The ID numbers and USCCs read.")
    decisions: list[AuditDecision]
    hash: str = strawberry.field(description="The event's hash in the chain (SM3 or SHA-256).")
    receipts: list[AuditReceipt] = strawberry.field(
        description="The lower gateways' receipts for their events of this operation."
    )

    @strawberry.field(
        description="The request's spans as the gateway kept them (its waterfall); null when"
        " none were kept."
    )
    async def trace(self, info: Info) -> Trace | None:
        view = await console.trace(info.context, self.trace_id)
        return None if view is None else Trace.of(view)

    @classmethod
    def of(cls, stored: StoredEvent) -> AuditEvent:
        event = stored.event
        return cls(
            id=strawberry.ID(str(stored.id)),
            chain=stored.chain,
            seq=stored.seq,
            at=_at(stored),
            trace_id=event.trace_id,
            caller_app=event.caller_app,
            caller_region=event.caller_region,
            roles=list(event.roles),
            matter_code=event.matter_code,
            matter_name=event.matter_name,
            operation_name=event.operation_name,
            operation_type=event.operation_type,
            document_hash=event.document_hash,
            policy_version=event.policy_version,
            subjects=list(event.subjects),
            decisions=[_decision(entry) for entry in event.decisions],
            hash=stored.hash,
            acting_gateway=event.acting,
            receipts=[_receipt(entry) for entry in event.receipts],
        )


def _receipt(entry: Any) -> AuditReceipt:
    chain = entry.get("chain")
    return AuditReceipt(
        gateway=str(entry["gateway"]),
        region=entry.get("region"),
        chain=None if chain is None else str(chain),
        seq=int(entry["seq"]),
        hash=str(entry["hash"]),
    )


def _decision(entry: Any) -> AuditDecision:
    return AuditDecision(
        field=entry["field"],
        owner=entry.get("owner"),
        decision=Decision(entry["decision"]),
        count=int(entry.get("count", 0)),
        grade=entry.get("grade"),
        clearance=_text_or_none(entry.get("clearance")),
        rule=_text_or_none(entry.get("rule")),
        reason=entry.get("reason"),
    )


def _text_or_none(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


@strawberry.type
class AuditEventEdge:
    cursor: str
    node: AuditEvent


@strawberry.type(description="A page of audit events, newest first.")
class AuditEventConnection:
    edges: list[AuditEventEdge]
    page_info: PageInfo


@strawberry.input(description="Every condition given must hold.")
class AuditEventFilter:
    caller_app: str | None = None
    subject_id: str | None = strawberry.field(
        default=None, description="An ID number or USCC the event lists."
    )
    matter_code: str | None = None
    trace_id: str | None = None
    region: str | None = strawberry.field(
        default=None,
        description="An owning region code (e.g. SH): events with a decision on data kept there.",
    )
    decision: Decision | None = strawberry.field(
        default=None,
        description="Events with a decision of this kind; with region, on data kept there.",
    )
    outside_working_hours: bool | None = strawberry.field(
        default=None,
        description="true: only events outside the configured working hours (China Standard Time).",
    )
    from_: str | None = strawberry.field(
        default=None, name="from", description="From this date or time (inclusive)."
    )
    to: str | None = strawberry.field(
        default=None, description="Up to this date (the whole day) or time (inclusive)."
    )


@strawberry.type(description="A field that was released, and how.")
class ReleasedField:
    field: str
    decision: Decision
    owner: str | None = strawberry.field(description="The region that keeps the data.")


@strawberry.type(description="One access to a citizen's data.")
class AccessRecord:
    cursor: str = strawberry.field(
        description="Pass as `after` to read the records older than this one."
    )
    at: str
    caller_app: str
    caller_region: str
    matter_code: str | None
    matter_name: str | None
    released: list[ReleasedField]

    @classmethod
    def of(cls, cursor: str, stored: StoredEvent) -> AccessRecord:
        event = stored.event
        return cls(
            cursor=cursor,
            at=_at(stored),
            caller_app=event.caller_app,
            caller_region=event.caller_region,
            matter_code=event.matter_code,
            matter_name=event.matter_name,
            released=[
                ReleasedField(field=field, decision=Decision(decision), owner=owner)
                for field, decision, owner in audit.released(event.decisions)
            ],
        )


def _asks_for_subjects(selections: Any) -> bool:
    for selection in selections:
        if getattr(selection, "name", None) == "subjects" or _asks_for_subjects(
            getattr(selection, "selections", ())
        ):
            return True
    return False


@strawberry.type
class AuditQuery:
    @strawberry.field(
        description="Audit events, newest first. Auditor role only; each read is itself audited."
    )
    async def audit_events(
        self,
        info: Info,
        filter: AuditEventFilter | None = None,
        first: int = 20,
        after: str | None = None,
    ) -> AuditEventConnection:
        given = None
        if filter is not None:
            given = audit.EventFilter(
                caller_app=filter.caller_app,
                subject_id=filter.subject_id,
                matter_code=filter.matter_code,
                trace_id=filter.trace_id,
                region=filter.region,
                decision=None if filter.decision is None else filter.decision.value,
                outside_working_hours=filter.outside_working_hours,
                start=filter.from_,
                end=filter.to,
            )
        shown = _asks_for_subjects(info.selected_fields)
        pairs, more = await audit.events(info.context, given, first, after, subjects_shown=shown)
        edges = [AuditEventEdge(cursor=c, node=AuditEvent.of(stored)) for c, stored in pairs]
        return AuditEventConnection(
            edges=edges,
            page_info=PageInfo(has_next_page=more, end_cursor=edges[-1].cursor if edges else None),
        )

    @strawberry.field(
        description="One audit event by id, with its decisions and trace. Auditor role only;"
        " each read is itself audited. Null if there is no such event."
    )
    async def audit_event(self, info: Info, id: strawberry.ID) -> AuditEvent | None:
        stored = await audit.event(info.context, id)
        return None if stored is None else AuditEvent.of(stored)

    @strawberry.field(
        description="Who accessed this citizen's data, newest first: for the citizen only."
    )
    async def access_history(
        self,
        info: Info,
        id_number: strawberry.ID,
        first: int = 50,
        after: str | None = None,
    ) -> list[AccessRecord]:
        found = await audit.history(info.context, id_number, first, after)
        return [AccessRecord.of(cursor, stored) for cursor, stored in found]
