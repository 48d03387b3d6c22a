"""The auditor console's queries: who is signed in, an event's trace, the chain, the signals.

Every field but ``consoleSession`` is the auditor role's only (as ``auditEvents``),
and every read of the audit log is recorded in the operation's own audit event,
with the subjects it showed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from dataclasses import dataclass, field

import asyncpg

from gateway.audit import AuditLog, EventQuery
from gateway.core.errors import AuditUnavailable
from gateway.telemetry.store import SpanStore, StoredSpan, spans_in_order
from resolvers.audit import AUDITOR_ROLE, CITIZEN_ROLE, event_id_of, record_read, require_auditor
from resolvers.chain_checks import ChainChecks, Verification
from resolvers.console_settings import ConsoleSettings
from resolvers.context import GatewayContext
from resolvers.signals import Signal, misuse_signals

__all__ = ["ConsoleServices", "Session", "TraceView"]

logger = logging.getLogger("deltagate.console")

#: Seconds the misuse signals computed once are served again.


@dataclass
class ConsoleServices:
    """What the console's resolvers share for the process's lifetime.

    Attributes:
        settings: ``[console]``.
        spans: the span store (None: no audit database, no stored traces).
        checks: the chain verifications and the last result.
    """

    settings: ConsoleSettings = field(default_factory=ConsoleSettings)
    spans: SpanStore | None = None
    checks: ChainChecks = field(default_factory=ChainChecks)
    # The signals read up to MAX_SCANNED events: computed at most once per ``signals_ttl``
    # seconds in a process, however often the front page is loaded.
    _signals: tuple[float, list[Signal]] | None = None
    _signals_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def signals(self, log: AuditLog, now: dt.datetime | None) -> list[Signal]:
        async with self._signals_lock:
            cached = self._signals
            ttl = self.settings.signals_ttl
            if now is None and cached is not None and time.monotonic() - cached[0] < ttl:
                return cached[1]
            raised = await misuse_signals(log, self.settings, now)
            self._signals = (time.monotonic(), raised)
            return raised

    @classmethod
    def of(cls, settings: ConsoleSettings, spans: SpanStore | None) -> ConsoleServices:
        return cls(
            settings=settings,
            spans=spans,
            checks=ChainChecks(
                max_range=settings.verify_max_range, min_interval=settings.verify_min_interval
            ),
        )


@dataclass(frozen=True, slots=True)
class Session:
    """What the console shows a token: ``AUDITOR``, ``CITIZEN`` (their own history) or ``NONE``."""

    view: str
    subject: str | None


def session(ctx: GatewayContext) -> Session:
    caller = ctx.caller
    if AUDITOR_ROLE in caller.roles:
        return Session("AUDITOR", None)
    if CITIZEN_ROLE in caller.roles and caller.subject:
        return Session("CITIZEN", caller.subject)
    return Session("NONE", None)


def services(ctx: GatewayContext) -> ConsoleServices:
    return ctx.console if ctx.console is not None else ConsoleServices()


@dataclass(frozen=True, slots=True)
class TraceView:
    """A trace's spans as the waterfall draws them: offsets from the operation's start."""

    trace_id: str
    duration_ms: float
    spans: list[tuple[StoredSpan, float, float]]  # span, start offset ms, duration ms
    external_url: str | None


async def trace(ctx: GatewayContext, trace_id: str) -> TraceView | None:
    """The stored spans of an event's trace (None: none kept, or no span store).

    The event itself was read by the auditor already (``auditEvent``/``auditEvents``);
    its spans hold no personal value. A store that cannot be read answers None and is
    logged: the event is still shown.
    """
    store = services(ctx).spans
    if store is None:
        return None
    try:
        spans = await store.trace(trace_id)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        logger.warning("spans of trace %s not read (%s)", trace_id, type(exc).__name__)
        return None
    if not spans:
        return None
    ordered = spans_in_order(spans)
    roots = [s for s in ordered if s.parent_id is None] or ordered
    origin = min(s.start_ns for s in roots)
    total = max(s.end_ns for s in roots) - origin
    return TraceView(
        trace_id=trace_id,
        duration_ms=total / 1e6,
        spans=[(s, (s.start_ns - origin) / 1e6, (s.end_ns - s.start_ns) / 1e6) for s in ordered],
        external_url=services(ctx).settings.trace_url(trace_id),
    )


async def chain_status(ctx: GatewayContext) -> tuple[tuple[int, str] | None, Verification | None]:
    """The log's newest event (id, hash) and the last verification's result."""
    require_auditor(ctx, "auditChainStatus")
    if ctx.audit_log is None:
        raise AuditUnavailable("no audit log is configured")
    # The newest event's id and hash name no one: not recorded as a read.
    newest = await ctx.audit_log.read(EventQuery(limit=1))
    head = (newest[0].id, newest[0].hash) if newest else None
    return head, services(ctx).checks.last


async def verify(ctx: GatewayContext, first: str | None, last: str | None) -> Verification:
    """``verifyAuditChain``: verify a range now (bounded, one at a time, spaced)."""
    require_auditor(ctx, "verifyAuditChain")
    if ctx.audit_log is None:
        raise AuditUnavailable("no audit log is configured")
    start = None if first is None else event_id_of(first, "fromId")
    end = None if last is None else event_id_of(last, "toId")
    result = await services(ctx).checks.verify(ctx.audit_log, start, end, by_app=ctx.caller.app)
    record_read(ctx, "Mutation.verifyAuditChain", result.checked)
    return result


async def signals(ctx: GatewayContext, now: dt.datetime | None = None) -> list[Signal]:
    """``misuseSignals``: the signals raised over the configured window ending now."""
    require_auditor(ctx, "misuseSignals")
    if ctx.audit_log is None:
        raise AuditUnavailable("no audit log is configured")
    raised = await services(ctx).signals(ctx.audit_log, now)
    for signal in raised:
        if signal.subject_id is not None:
            ctx.loaders.subjects[signal.subject_id] = None
    record_read(ctx, "Query.misuseSignals", len(raised))
    return raised
