"""The auditor console's GraphQL: who is signed in, an event's trace, the chain, misuse signals.

The console page (``/console``) is written against these fields; docs/console-api.md
is their contract. Every field but ``consoleSession`` is the auditor role's only.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

import strawberry

from gateway.audit import CHINA_TIME
from resolvers import console
from resolvers.signals import Signal, window_text
from schema.types import Info

if TYPE_CHECKING:
    from resolvers.chain_checks import Verification


@strawberry.enum(description="What the console shows a token.")
class ConsoleView(StrEnum):
    AUDITOR = "AUDITOR"
    CITIZEN = "CITIZEN"
    NONE = "NONE"


@strawberry.type(description="Who is signed in to the console, and which view they get.")
class ConsoleSession:
    view: ConsoleView
    caller_app: str
    caller_region: str
    roles: list[str]
    subject: str | None = strawberry.field(
        description="A citizen token's own ID number; null for any other token."
    )
    trace_url_template: str | None = strawberry.field(
        description="A link to an external trace UI, with {traceId}; null if not configured."
    )


@strawberry.enum(description="What a span of a request stands for.")
class SpanKind(StrEnum):
    OPERATION = "OPERATION"
    LOADER_BATCH = "LOADER_BATCH"
    BACKEND_QUERY = "BACKEND_QUERY"
    AUDIT_WRITE = "AUDIT_WRITE"
    UPSTREAM = "UPSTREAM"
    OTHER = "OTHER"


@strawberry.type(description="A span attribute (none holds a personal value).")
class SpanAttribute:
    key: str
    value: str


@strawberry.type(description="One span of a request's trace: a row of its waterfall.")
class TraceSpan:
    span_id: str
    parent_id: str | None = strawberry.field(description="Null for the operation's span.")
    name: str
    kind: SpanKind
    region: str | None = strawberry.field(description="The region a batch or query went to.")
    start_ms: float = strawberry.field(description="From the operation's start, milliseconds.")
    duration_ms: float
    error: str | None = strawberry.field(description="The error's type or code; null if fine.")
    attributes: list[SpanAttribute]


@strawberry.type(description="A request's trace as the gateway kept it.")
class Trace:
    trace_id: str
    duration_ms: float = strawberry.field(description="The operation span's duration.")
    spans: list[TraceSpan] = strawberry.field(description="Parents before children, then by start.")
    external_url: str | None = strawberry.field(
        description="The configured external trace UI's page of this trace; null if none."
    )

    @classmethod
    def of(cls, view: console.TraceView) -> Trace:
        spans = []
        for span, start_ms, duration_ms in view.spans:
            region = span.attributes.get("deltagate.region")
            spans.append(
                TraceSpan(
                    span_id=span.span_id,
                    parent_id=span.parent_id,
                    name=span.name,
                    kind=SpanKind(span.kind),
                    region=str(region) if region else None,
                    start_ms=round(start_ms, 3),
                    duration_ms=round(duration_ms, 3),
                    error=span.status.removeprefix("ERROR").strip() or "ERROR"
                    if span.status.startswith("ERROR")
                    else None,
                    attributes=[
                        SpanAttribute(key=key, value=_value(value))
                        for key, value in sorted(span.attributes.items())
                    ],
                )
            )
        return cls(
            trace_id=view.trace_id,
            duration_ms=round(view.duration_ms, 3),
            spans=spans,
            external_url=view.external_url,
        )


def _value(value: object) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


@strawberry.type(description="The result of one verification of a range of the audit chain.")
class ChainVerification:
    at: str
    ok: bool
    from_id: strawberry.ID | None
    to_id: strawberry.ID | None
    checked: int = strawberry.field(description="Events that hold (all of them when ok).")
    problems: list[str] = strawberry.field(description="Empty when the range holds.")
    by_app: str = strawberry.field(description="Who asked.")

    @classmethod
    def of(cls, result: Verification) -> ChainVerification:
        return cls(
            at=result.at.astimezone(CHINA_TIME).isoformat(timespec="seconds"),
            ok=result.ok,
            from_id=None if result.first is None else strawberry.ID(str(result.first)),
            to_id=None if result.last is None else strawberry.ID(str(result.last)),
            checked=result.checked,
            problems=list(result.problems),
            by_app=result.by_app,
        )


@strawberry.type(description="The audit chain's head and its last verification from the console.")
class ChainStatus:
    head_id: strawberry.ID | None = strawberry.field(description="Null for an empty log.")
    head_hash: str | None
    last_verification: ChainVerification | None = strawberry.field(
        description="Null until the first verification since this gateway process started."
    )
    max_range: int = strawberry.field(description="Most events one verifyAuditChain checks.")
    min_interval_seconds: float = strawberry.field(
        description="At most one verification per this many seconds."
    )


@strawberry.enum(description="A kind of misuse signal.")
class SignalKind(StrEnum):
    DISTINCT_SUBJECTS = "DISTINCT_SUBJECTS"
    OUTSIDE_HOURS = "OUTSIDE_HOURS"
    SUBJECT_MANY_APPS = "SUBJECT_MANY_APPS"


@strawberry.type(description="The auditEvents filter that lists the events behind a signal.")
class SignalFilter:
    caller_app: str | None
    subject_id: str | None
    outside_working_hours: bool | None
    from_: str | None = strawberry.field(name="from")
    to: str | None


@strawberry.type(description="A pattern in the audit log that deserves an auditor's look.")
class MisuseSignal:
    kind: SignalKind
    description: str
    caller_app: str | None
    subject_id: str | None
    count: int
    threshold: int
    from_: str = strawberry.field(name="from")
    to: str
    filter: SignalFilter

    @classmethod
    def of(cls, signal: Signal) -> MisuseSignal:
        start, end = window_text(signal)
        return cls(
            kind=SignalKind(signal.kind),
            description=signal.description,
            caller_app=signal.caller_app,
            subject_id=signal.subject_id,
            count=signal.count,
            threshold=signal.threshold,
            from_=start,
            to=end,
            filter=SignalFilter(
                caller_app=signal.caller_app,
                subject_id=signal.subject_id,
                outside_working_hours=True if signal.outside_working_hours else None,
                from_=start,
                to=end,
            ),
        )


@strawberry.type
class ConsoleQuery:
    @strawberry.field(description="Which console view this token gets (any valid token).")
    def console_session(self, info: Info) -> ConsoleSession:
        ctx = info.context
        found = console.session(ctx)
        return ConsoleSession(
            view=ConsoleView(found.view),
            caller_app=ctx.caller.app,
            caller_region=ctx.caller.region,
            roles=list(ctx.caller.roles),
            subject=found.subject,
            trace_url_template=ctx.console_settings.trace_url_template,
        )

    @strawberry.field(description="The audit chain's head and last verification. Auditor only.")
    async def audit_chain_status(self, info: Info) -> ChainStatus:
        head, last = await console.chain_status(info.context)
        checks = console.services(info.context).checks
        return ChainStatus(
            head_id=None if head is None else strawberry.ID(str(head[0])),
            head_hash=None if head is None else head[1],
            last_verification=None if last is None else ChainVerification.of(last),
            max_range=checks.max_range,
            min_interval_seconds=checks.min_interval,
        )

    @strawberry.field(
        description="Misuse signals over the configured window ending now. Auditor only;"
        " each read is audited."
    )
    async def misuse_signals(self, info: Info) -> list[MisuseSignal]:
        return [MisuseSignal.of(signal) for signal in await console.signals(info.context)]


@strawberry.type
class Mutation:
    @strawberry.mutation(
        description="Verify the audit chain from one event to another now (inclusive; default:"
        " the newest maxRange events). Auditor only; one at a time, spaced (RATE_LIMITED),"
        " at most maxRange events (BATCH_TOO_LARGE)."
    )
    async def verify_audit_chain(
        self, info: Info, from_id: strawberry.ID | None = None, to_id: strawberry.ID | None = None
    ) -> ChainVerification:
        return ChainVerification.of(await console.verify(info.context, from_id, to_id))
