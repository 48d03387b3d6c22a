"""Serving one GraphQL request, from its headers to its JSON answer.

The stages run in this order, each able to refuse the request:

1. negotiate the response media type (``406``);
2. admit: authenticate the token (and an upper gateway's delegation: the
   caller it acts for; this is checked before the trace starts, since a
   trusted delegation's trace is continued), take from the app's rate limit,
   read the body within its size and time (all before the body is read, or as
   it is);
3. find the document (registered operations) and prepare it: parse, limit,
   validate, charged to the app's validation time;
4. bind the caller's policy (and matter);
5. execute (the ``gateway`` sources below delegate for the caller and collect
   the lower gateways' audit receipts and masked or withheld decisions);
6. commit the audit event if the operation touched L2+ data (else
   ``AUDIT_UNAVAILABLE``, without the data: fail closed), with the stricter of
   this level's and the lower's decision per field, and the lowers' receipts;
   a delegated request's answer carries this event's receipt;
7. answer with orjson, errors written by ``gateway.edge.responses``.

Each request runs in an OpenTelemetry span whose trace id the response
carries in ``extensions.traceId`` and every logged error names. The stages are
steps of one method rather than objects in a list: they share what earlier
ones found (caller, operation, policy), and a call per stage per request is
what the gateway's hot path cannot spare.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.types import Receive, Scope

from gateway.audit import (
    NOTHING_EXPECTED,
    AuditEvent,
    Receipt,
    operation_event,
    receipt_document,
    touches_audited_data,
)
from gateway.core.cascade import DEPTH_HEADER, CascadeRequest, acting_for, depth_of
from gateway.core.errors import (
    AuditUnavailable,
    GatewayError,
    InvalidDocument,
    InvalidInput,
    NotAcceptable,
)
from gateway.core.types import Caller
from gateway.edge.build import GatewayParts
from gateway.edge.delegated import Identity, identify
from gateway.edge.documents import PreparedOperation
from gateway.edge.http import negotiate, read_operation, request_headers
from gateway.edge.responses import (
    GRAPHQL_RESPONSE,
    JSON,
    Answer,
    json_answer,
    operation_errors,
    refusal,
    refusal_of,
)
from gateway.telemetry.spans import OperationTrace
from policies import OperationPolicy
from policies.levels import stricter
from resolvers.context import GatewayContext

logger = logging.getLogger("deltagate")

# Header names as ``request_headers`` keeps them.
_DEPTH = DEPTH_HEADER.lower()


class Gateway(GatewayParts):
    """The gateway's parts, serving GraphQL requests (``execute``)."""

    async def execute(self, scope: Scope, receive: Receive) -> Answer:
        """Answer one ``POST /graphql`` (its ASGI scope and body); never raises (anything
        unexpected is ``INTERNAL``).

        The headers are read once, into what every stage reads (``request_headers``), and
        the answer is sent as ASGI messages as it is: Starlette's ``Request`` and
        ``Response`` would read and write them again on every request.
        """
        started = time.perf_counter()
        seen = _Seen()
        try:
            headers = request_headers(scope["headers"])
            # Who asks is known before the trace starts: a trusted upper's delegated request
            # continues the upper's trace (signed in its delegation). A refusal is answered
            # inside the trace, like every other.
            identity: Identity | Exception
            try:
                identity = identify(self.verifier, self.delegation, headers)
            except Exception as error:
                identity = error
            parent = identity.traceparent if isinstance(identity, Identity) else None
            with self.telemetry.operation(headers, parent=parent) as trace:
                try:
                    return await self._answer(scope, receive, headers, seen, trace, identity)
                except Exception as error:
                    # Unexpected: INTERNAL with no detail, as JSON like every other error;
                    # ``refusal`` logs the detail with the trace id.
                    seen.outcome = "INTERNAL"
                    trace.failed(seen.outcome)
                    media_type = negotiate(headers.get("accept")) or GRAPHQL_RESPONSE
                    return refusal(error, media_type, trace_id=trace.trace_id)
        finally:
            self.metrics.observe_request(
                app=seen.app,
                operation=seen.operation,
                outcome=seen.outcome,
                seconds=time.perf_counter() - started,
                resources=seen.resources,
                fields=seen.fields,
            )

    async def _answer(
        self,
        scope: Scope,
        receive: Receive,
        headers: Mapping[str, str],
        seen: _Seen,
        trace: OperationTrace,
        identity: Identity | Exception,
    ) -> Answer:
        trace_id = trace.trace_id
        media_type = negotiate(headers.get("accept"))
        if media_type is None:
            seen.outcome = "NOT_ACCEPTABLE"
            trace.failed(seen.outcome)
            error = NotAcceptable(
                "the response can be application/graphql-response+json or application/json;"
                " the Accept header allows neither"
            )
            return refusal(error, JSON, trace_id=trace_id)
        limits = self.settings.limits
        operation = None
        try:
            # The client's address as Starlette's ``Request.client`` gives it.
            client = scope.get("client")
            with self.admission.pending(client[0] if client else "-"):
                if isinstance(identity, Exception):
                    raise identity
                # An upper gateway's request is decided for the caller it acts for.
                service, caller, matter = identity.service, identity.caller, identity.matter
                seen.app = service.app
                trace.caller(caller, matter)
                if self.rate_limiter is not None:
                    # Quotas are the token holder's: an upper spends its own for its callers.
                    await self.rate_limiter.admit(service.app)
                operation = await read_operation(
                    headers, receive, limits.max_body_bytes, limits.body_timeout
                )
            query = operation.query
            if self.manifest is not None:
                query = self.manifest.document_for(operation)
            if query is None:
                raise InvalidInput("'query' must be a non-empty string")
            prepared = await self._prepare(
                caller.app, query, operation.variables, operation.operation_name
            )
            seen.operation = self.metrics.operation_label(prepared.name)
            trace.operation(
                prepared.name, prepared.operation.operation.value, prepared.document_hash
            )
            policy = self.policy.begin(caller, matter)
        except GatewayError as error:
            seen.outcome = error.code
            trace.failed(error.code)
            answer = refusal(error, media_type, trace_id=trace_id)
            if operation is None:
                # Refused before its body was read: the connection is not kept for a body
                # nobody will read (an unauthenticated client could trickle it for ever).
                answer.close_connection()
            return answer
        context = GatewayContext(
            caller, policy, self.sources, self.cursors, self.policy,
            batching=self.settings.batching,
            spans=trace.recorder,
            audit_log=self.audit,
            registry=self.settings.regions,
            upper=self.upper,
            console=self.console,
        )  # fmt: skip
        try:
            # The audit writer may wait a moment for this operation's event rather than commit
            # the events before it each alone (group commit under load).
            expectation = self.audit.expect() if self.audit is not None else NOTHING_EXPECTED
            try:
                # What the gateway sources below need of this request: the caller to delegate,
                # the trace to continue; they leave the lowers' audit receipts in it.
                depth = depth_of(headers.get(_DEPTH))
                request = CascadeRequest(caller, matter, trace.traceparent, depth=depth)
                with acting_for(request) as cascade:
                    result = await self.schema.execute_prepared(
                        prepared.document,
                        variable_values=operation.variables,
                        context_value=context,
                        operation_name=operation.operation_name,
                        plan=prepared.plan,
                    )
                # Every decision, clear ones too: the audit event records them all, the
                # response lists the masked and withheld ones.
                summary = policy.summary(include_clear=True)
                if cascade.below:
                    # What a lower gateway masked or withheld was not released in clear here.
                    summary["fields"] = stricter(summary["fields"], cascade.below)
            finally:
                # Settled before the event is appended, with nothing awaited in between: the
                # writer stops waiting for this operation and finds its event already queued.
                expectation.settle()
            try:
                receipt = await self._audit(
                    trace, caller, policy, context, prepared, summary, cascade.receipts
                )
            except AuditUnavailable as error:
                # Fail closed: without its audit event, none of the operation's data leaves.
                logger.error("audit event not written; response refused (trace %s)", trace_id)
                seen.outcome = error.code
                trace.failed(error.code)
                return refusal(error, media_type, trace_id=trace_id)
            payload: dict[str, Any] = {}
            status = 200
            errors: list[dict[str, Any]] = []
            if result.errors or context.errors:
                errors = operation_errors(
                    result.errors or (),
                    context.errors,
                    trace_id=trace_id,
                    hide_schema=self.settings.production,  # variables that do not coerce
                )
                payload["errors"] = errors
                trace.failed(errors[0]["extensions"]["code"])
            # No data and no error at a path: the variables did not coerce, so nothing executed
            # (a request error: no ``data`` key, answered as a document that does not validate).
            if result.data is not None or any(error.path for error in result.errors or ()):
                payload["data"] = result.data
                seen.resources = prepared.root_fields
            else:
                status = refusal_of(InvalidDocument).status_for(media_type)
            shown = policy.explained(summary)
            payload["extensions"] = {
                "policy": shown,
                "backendQueries": context.loaders.batches,
                **context.extensions,
                "traceId": trace_id,
            }
            if receipt is not None and caller.acting is not None and self.settings.delegation:
                # For the acting gateway's own event. Only a trusted upper is told: the
                # numbers would show any caller how many audited operations this gateway serves.
                payload["extensions"]["auditReceipt"] = receipt_document(
                    receipt, self.settings.delegation.id
                )
            seen.outcome = errors[0]["extensions"]["code"] if errors else "ok"
            # Metrics are the operator's: they keep the owners the caller's view leaves out.
            seen.fields = summary["fields"]
            return json_answer(payload, status, media_type)
        finally:
            # The loaders refer back to the context (and it to them): broken here, the
            # request's rows and objects are freed as it ends, by reference counting, not
            # left for the collector, whose passes over them stalled every request in flight.
            context.close()

    async def _prepare(
        self, app: str, query: str, variables: Mapping[str, Any] | None, name: str | None
    ) -> PreparedOperation:
        """``DocumentGuard.prepare``, a new document charged to its app's validation time."""
        if self.validation_budget is None or self.documents.knows(query):
            return self.documents.prepare(query, variables, name)
        await self.validation_budget.wait_turn(app)
        started = time.perf_counter()
        try:
            return self.documents.prepare(query, variables, name)
        finally:
            self.validation_budget.charge(app, time.perf_counter() - started)

    async def _audit(
        self,
        trace: OperationTrace,
        caller: Caller,
        policy: OperationPolicy,
        context: GatewayContext,
        prepared: PreparedOperation,
        summary: dict[str, Any],
        receipts: list[Mapping[str, Any]],
    ) -> Receipt | None:
        """If the operation touched L2+ data (or read the audit log), commit its audit event.

        ``receipts`` are those of the lower gateways that answered it (the cascade).
        Returns the event's receipt, or None when no event was needed.
        """
        decisions = summary["fields"]
        trace.decisions(decisions, policy.policy_version)
        if not context.audit_reads and not touches_audited_data(decisions):
            return None
        return await self.commit_event(
            trace,
            operation_event(
                trace_id=trace.trace_id,
                caller=caller,
                matter_code=policy.matter_code,
                matter_name=policy.matter.name if policy.matter is not None else None,
                operation_name=prepared.name,
                operation_type=prepared.operation.operation.value,
                document_hash=prepared.document_hash,
                policy_version=policy.policy_version,
                subjects=context.loaders.subjects,
                decisions=[*decisions, *context.audit_reads],
                receipts=receipts,
            ),
        )

    async def commit_event(self, trace: OperationTrace, event: AuditEvent) -> Receipt:
        """Append an operation's audit event (in its ``audit.write`` span); mark the trace.

        Raises:
            AuditUnavailable: not stored, or no audit log: the data must not leave.
        """
        if self.audit is None:
            raise AuditUnavailable("no audit log is configured")
        attributes = {"deltagate.kind": "audit", "deltagate.audit.subjects": len(event.subjects)}
        with self.telemetry.span("audit.write", attributes) as span:
            receipt = await self.audit.append(event)
            if span is not None:
                span.set_attributes(
                    {"deltagate.audit.event_id": receipt.stored.id,
                     "deltagate.audit.chain": receipt.chain,
                     "deltagate.audit.batch": receipt.batch}
                )  # fmt: skip
        trace.audited(receipt.stored.id)
        return receipt


@dataclass(slots=True)
class _Seen:
    """What the metrics record of one request, filled in as it goes."""

    app: str = "-"
    operation: str = "unknown"
    outcome: str = "INTERNAL"
    resources: tuple[str, ...] = ()
    fields: Sequence[Mapping[str, Any]] = ()
