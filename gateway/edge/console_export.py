"""``GET /console/export.csv``: the audit events of a filter, as CSV, for an auditor.

The parameters are ``auditEvents``' filter fields (same names, same checks), and
the rows are the events ``auditEvents`` pages through for that filter, newest
first, at most ``[console] export_max_rows``. The token comes in the
``Authorization`` header, never a cookie: a link alone cannot export anything.

The export is an audited access: before the file leaves, an event is written
(operation ``ConsoleExport``) naming the filter's subject and every subject the
rows list; if it cannot be written, nothing leaves (``AUDIT_UNAVAILABLE``).

Cells that a spreadsheet would run as a formula (starting with ``=``, ``+``,
``-``, ``@``, a tab or a carriage return) are prefixed with ``'``.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from gateway.audit import CHINA_TIME, StoredEvent, operation_event, scan
from gateway.core.errors import AuditUnavailable, GatewayError, InvalidInput
from gateway.edge.responses import JSON, request_error
from resolvers.audit import EventFilter, event_query, record_read, require_auditor
from resolvers.context import GatewayContext

if TYPE_CHECKING:
    from gateway.edge.pipeline import Gateway

__all__ = ["COLUMNS", "OPERATION_NAME", "export_csv", "safe_cell"]

#: The export's operation name in its audit event.
OPERATION_NAME = "ConsoleExport"

COLUMNS = (
    "id", "at", "traceId", "callerApp", "callerRegion", "actingGateway", "roles",
    "matterCode", "matterName", "operationName", "operationType", "documentHash",
    "policyVersion", "subjects", "decisions", "hash",
)  # fmt: skip

#: Query parameters and the ``EventFilter`` field each fills.
PARAMETERS = {
    "callerApp": "caller_app",
    "subjectId": "subject_id",
    "matterCode": "matter_code",
    "traceId": "trace_id",
    "region": "region",
    "decision": "decision",
    "outsideWorkingHours": "outside_working_hours",
    "from": "start",
    "to": "end",
}

_FORMULA = ("=", "+", "-", "@", "\t", "\r")
_PAGE = 1000


def safe_cell(value: object) -> str:
    """A cell's text, with ``'`` before what a spreadsheet would read as a formula."""
    text = "" if value is None else str(value)
    return f"'{text}" if text.startswith(_FORMULA) else text


def event_filter(params: Mapping[str, str]) -> EventFilter:
    """The filter the query parameters give.

    Raises:
        InvalidInput: an unknown or repeated parameter, or a malformed boolean.
    """
    values: dict[str, object] = {}
    if hasattr(params, "multi_items") and len(params.multi_items()) != len(params):
        raise InvalidInput("a parameter is given more than once")
    for name, value in params.items():
        field = PARAMETERS.get(name)
        if field is None:
            raise InvalidInput(
                f"unknown parameter {name!r} (known: {', '.join(PARAMETERS)})", argument=name
            )
        if value == "":
            continue
        if field == "outside_working_hours":
            if value not in ("true", "false"):
                raise InvalidInput("outsideWorkingHours must be true or false", argument=name)
            values[field] = value == "true"
        else:
            values[field] = value
    return EventFilter(**values)  # type: ignore[arg-type]


def _decisions(decisions: Sequence[Mapping[str, object]]) -> str:
    return ";".join(
        f"{entry.get('field')}@{entry.get('owner') or '-'}={entry.get('decision')}"
        for entry in decisions
    )


def csv_row(stored: StoredEvent) -> list[str]:
    event = stored.event
    at = event.at.astimezone(CHINA_TIME).isoformat(timespec="microseconds")
    return [
        safe_cell(value)
        for value in (
            stored.id, at, event.trace_id, event.caller_app, event.caller_region,
            event.acting or "", ";".join(event.roles), event.matter_code, event.matter_name,
            event.operation_name, event.operation_type, event.document_hash,
            event.policy_version, ";".join(event.subjects), _decisions(event.decisions),
            stored.hash,
        )
    ]  # fmt: skip


def csv_body(events: Sequence[StoredEvent], truncated_at: int | None) -> bytes:
    out = io.StringIO()
    out.write("\ufeff")  # a BOM: spreadsheets then read UTF-8 (names, matters) correctly
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for stored in events:
        writer.writerow(csv_row(stored))
    if truncated_at is not None:
        out.write(f"# truncated at {truncated_at} rows\r\n")
    return out.getvalue().encode("utf-8")


async def _events(ctx: GatewayContext, given: EventFilter, most: int) -> list[StoredEvent]:
    """The filter's events, newest first, at most ``most + 1`` (one more tells of truncation)."""
    assert ctx.audit_log is not None
    query = event_query(ctx, given, before=None, limit=_PAGE)
    return await scan(ctx.audit_log, query, most + 1, page=_PAGE)


async def export_csv(gateway: Gateway, request: Request) -> Response:
    """Answer one export; never raises (errors are JSON, as ``/graphql``'s)."""
    started = time.perf_counter()
    outcome, app = "INTERNAL", "-"
    try:
        with gateway.telemetry.operation(request.headers) as trace:
            try:
                caller = gateway.verifier.verify(request.headers.get("authorization"))
                app = caller.app
                trace.caller(caller, None)
                if gateway.rate_limiter is not None:
                    await gateway.rate_limiter.admit(caller.app)
                canonical = "&".join(f"{k}={v}" for k, v in sorted(request.query_params.items()))
                document_hash = hashlib.sha256(
                    f"GET /console/export.csv?{canonical}".encode()
                ).hexdigest()
                trace.operation(OPERATION_NAME, "query", document_hash)
                policy = gateway.policy.begin(caller, None)
                ctx = GatewayContext(
                    caller, policy, gateway.sources, gateway.cursors, gateway.policy,
                    spans=trace.recorder, audit_log=gateway.audit,
                    registry=gateway.settings.regions, console=gateway.console,
                )  # fmt: skip
                require_auditor(ctx, "the CSV export")
                given = event_filter(request.query_params)
                searched = event_query(ctx, given, before=None, limit=1).subject  # checks all
                if gateway.audit is None:
                    raise AuditUnavailable("no audit log is configured")
                most = gateway.console.settings.export_max_rows
                found = await _events(ctx, given, most)
                rows = found[:most]
                # Whose access records were searched, and every subject the file lists.
                subjects: dict[str, None] = {} if searched is None else {searched: None}
                for stored in rows:
                    subjects.update(dict.fromkeys(stored.event.subjects))
                record_read(ctx, OPERATION_NAME, len(rows))
                await gateway.commit_event(
                    trace,
                    operation_event(
                        trace_id=trace.trace_id,
                        caller=caller,
                        matter_code=None,
                        matter_name=None,
                        operation_name=OPERATION_NAME,
                        operation_type="query",
                        document_hash=document_hash,
                        policy_version=policy.policy_version,
                        subjects=subjects,
                        decisions=ctx.audit_reads,
                    ),
                )
            except GatewayError as error:
                outcome = error.code
                trace.failed(error.code)
                return request_error(error, JSON, trace_id=trace.trace_id)
            truncated = len(found) > most
            stamp = dt.datetime.now(CHINA_TIME).strftime("%Y%m%dT%H%M%S")
            headers = {
                "Content-Disposition": f'attachment; filename="audit-events-{stamp}.csv"',
                "Cache-Control": "no-store",
                "X-Content-Type-Options": "nosniff",
                "X-Trace-Id": trace.trace_id,
            }
            if truncated:
                headers["X-Deltagate-Truncated"] = "true"
            outcome = "ok"
            return Response(
                csv_body(rows, most if truncated else None),
                media_type="text/csv; charset=utf-8",
                headers=headers,
            )
    finally:
        gateway.metrics.observe_request(
            app=app,
            operation=gateway.metrics.operation_label(OPERATION_NAME),
            outcome=outcome,
            seconds=time.perf_counter() - started,
        )
