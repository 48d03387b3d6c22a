"""The ASGI app: ``POST /graphql``, GraphiQL outside production, health, readiness and metrics.

Every request to ``/graphql`` is authenticated and counted against its app's
rate limit before its body is read; its document must be registered (when a
manifest is configured) and within the query limits before anything runs;
it is bound to the caller's policy (and matter) before it executes, and
answered with orjson. Each runs in an OpenTelemetry span whose trace id the
response carries in ``extensions.traceId``; an operation that touched L2+ data
is answered only once its audit event is committed (else ``AUDIT_UNAVAILABLE``,
without the data). The app owns the regional sources (their pools), the audit
store and the policy engine's reload task for its lifetime.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from strawberry.http.ides import get_graphql_ide_html

from gateway.audit import AuditStore, operation_event, touches_audited_data
from gateway.core.errors import AuditUnavailable, GatewayError, InvalidInput, SourceUnavailable
from gateway.core.types import Caller, RegionCode
from gateway.edge.admission import Admission
from gateway.edge.auth import TokenVerifier
from gateway.edge.documents import DocumentGuard, PreparedOperation
from gateway.edge.http import negotiate, read_operation
from gateway.edge.metrics import Metrics
from gateway.edge.operations import OperationManifest
from gateway.edge.query_limits import Limits
from gateway.edge.rate_limits import RateLimiter
from gateway.edge.responses import GRAPHQL_RESPONSE, format_error, json_response, request_error
from gateway.edge.schema_names import hide_schema_names
from gateway.edge.settings import Settings
from gateway.edge.validation_budget import ValidationBudget
from gateway.sources import CircuitBreaker, QueryObserver, Source, build_source
from gateway.telemetry.spans import OperationTrace, Telemetry
from policies import OperationPolicy, PolicyEngine, resolve_mask_secret
from resolvers.context import GatewayContext
from resolvers.cursors import CursorCodec
from schema import GatewaySchema, build_schema

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

logger = logging.getLogger("deltagate")

MATTER_HEADER = "x-matter-code"


@dataclass
class Gateway:
    """The long-lived parts one worker serves requests with."""

    settings: Settings
    sources: Mapping[RegionCode, Source]
    policy: PolicyEngine
    verifier: TokenVerifier
    cursors: CursorCodec
    schema: GatewaySchema
    documents: DocumentGuard
    metrics: Metrics
    rate_limiter: RateLimiter | None = None
    validation_budget: ValidationBudget | None = None
    manifest: OperationManifest | None = None
    telemetry: Telemetry = field(default_factory=Telemetry)
    audit: AuditStore | None = None
    admission: Admission = field(
        default_factory=lambda: Admission(Limits().max_unauthenticated_per_client)
    )

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        observer: QueryObserver | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> Gateway:
        """Build every part from checked settings; ``ConfigError`` names what is wrong.

        ``observer`` is told of every backend query any source completes.
        ``tracer_provider`` receives the spans; without one, the ``OTEL_*``
        environment decides (see ``gateway.telemetry.spans``).
        """
        metrics = Metrics()
        observer = _both(metrics.observe_backend_query, observer)
        telemetry = (
            Telemetry.from_environment() if tracer_provider is None else Telemetry(tracer_provider)
        )
        if telemetry.recording:
            observer = _both(telemetry.observe_query, observer)
        audit = None
        if settings.audit_dsn:
            audit = AuditStore(
                settings.audit_dsn,
                timeout=settings.audit_timeout,
                on_queue=metrics.set_audit_queue_depth,
            )
        else:
            logger.warning("no audit database is configured: data of grade L2+ will be refused")
        mask_secret = resolve_mask_secret(settings.mask_secret, dev_mode=not settings.production)
        sources: dict[RegionCode, Source] = {
            s.region: CircuitBreaker(
                build_source(s.kind, **s.options(), observer=observer),
                failures=s.breaker_failures,
                reset_after=s.breaker_reset,
            )
            for s in settings.sources
        }
        policy = PolicyEngine.from_directory(
            settings.policy_dir,
            mask_secret=mask_secret,
            reload_interval=settings.policy_reload_interval,
            shared_cache_size=4096,
        )
        verifier = TokenVerifier(
            hs256_secret=settings.hs256_secret,
            jwks_path=settings.jwks_path,
            audience=settings.audience,
            issuer=settings.issuer,
            max_lifetime=settings.max_token_lifetime,
        )
        # No extensions: requests are executed with ``execute_prepared`` on the document
        # the guard parsed and validated, so Strawberry's own caches would never be read.
        schema = build_schema(extensions=[], hide_suggestions=settings.production)
        guard = DocumentGuard(schema._schema, settings.limits, production=settings.production)
        return cls(
            settings=settings,
            sources=sources,
            policy=policy,
            verifier=verifier,
            cursors=CursorCodec(mask_secret),
            schema=schema,
            documents=guard,
            metrics=metrics,
            rate_limiter=(
                RateLimiter.from_policy_dir(
                    settings.policy_dir, reload_interval=settings.policy_reload_interval
                )
                if settings.rate_limits
                else None
            ),
            validation_budget=(
                ValidationBudget(settings.limits.validation_ms_per_second)
                if settings.rate_limits
                else None
            ),
            manifest=(
                OperationManifest(
                    settings.operations_manifest,
                    reload_interval=settings.policy_reload_interval,
                )
                if settings.operations_manifest is not None
                else None
            ),
            telemetry=telemetry,
            audit=audit,
            admission=Admission(settings.limits.max_unauthenticated_per_client),
        )

    async def execute(self, request: Request) -> Response:
        started = time.perf_counter()
        seen = _Seen()
        try:
            with self.telemetry.operation(request.headers) as trace:
                try:
                    return await self._answer(request, seen, trace)
                except Exception:
                    # Unexpected: INTERNAL with no detail, as JSON like every other error;
                    # the detail goes to the log with the trace id.
                    logger.exception("request failed (trace %s)", trace.trace_id)
                    seen.outcome = "INTERNAL"
                    trace.failed(seen.outcome)
                    media_type = negotiate(request.headers.get("accept")) or GRAPHQL_RESPONSE
                    error = GatewayError("internal error")
                    return request_error(error, media_type, extensions={"traceId": trace.trace_id})
        finally:
            self.metrics.observe_request(
                app=seen.app,
                operation=seen.operation,
                outcome=seen.outcome,
                seconds=time.perf_counter() - started,
                resources=seen.resources,
                policy=seen.policy,
            )

    async def _answer(self, request: Request, seen: _Seen, trace: OperationTrace) -> Response:
        traced = {"traceId": trace.trace_id}
        media_type = negotiate(request.headers.get("accept"))
        if media_type is None:
            seen.outcome = "NOT_ACCEPTABLE"
            trace.failed(seen.outcome)
            return _not_acceptable(traced)
        limits = self.settings.limits
        operation = None
        try:
            with self.admission.pending(request.client.host if request.client else "-"):
                caller = self.verifier.verify(request.headers.get("authorization"))
                seen.app = caller.app
                matter = request.headers.get(MATTER_HEADER, "").strip() or None
                trace.caller(caller, matter)
                if self.rate_limiter is not None:
                    self.rate_limiter.take(caller.app)
                operation = await read_operation(
                    request, limits.max_body_bytes, limits.body_timeout
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
            response = request_error(error, media_type, extensions=traced)
            if operation is None:
                # Refused before its body was read: the connection is not kept for a body
                # nobody will read (an unauthenticated client could trickle it for ever).
                response.headers["Connection"] = "close"
            return response
        context = GatewayContext(
            caller, policy, self.sources, self.cursors, self.policy,
            batching=self.settings.batching,
            spans=trace.recorder,
            audit_log=self.audit,
        )  # fmt: skip
        result = await self.schema.execute_prepared(
            prepared.document,
            variable_values=operation.variables,
            context_value=context,
            operation_name=operation.operation_name,
            plan=prepared.plan,
        )
        # Every decision, clear ones too: the audit event records them all, the response
        # lists the masked and withheld ones.
        summary = policy.summary(include_clear=True)
        try:
            await self._audit(trace, caller, policy, context, prepared, summary)
        except AuditUnavailable as error:
            # Fail closed: without its audit event, none of the operation's data leaves.
            logger.error("audit event not written; response refused (trace %s)", trace.trace_id)
            seen.outcome = error.code
            trace.failed(error.code)
            return request_error(error, media_type, extensions=traced)
        payload: dict[str, Any] = {}
        status = 200
        errors = [format_error(error) for error in result.errors or ()] + context.errors
        if self.settings.production:  # variables that do not coerce: no types named either
            for entry in errors:
                if entry["extensions"]["code"] == "BAD_REQUEST":
                    entry["message"] = hide_schema_names(entry["message"])
        if errors:
            payload["errors"] = errors
            trace.failed(errors[0]["extensions"]["code"])
        # No data and no error at a path: the variables did not coerce, so nothing executed
        # (a request error: no ``data`` key, and 400 as graphql-response+json).
        if result.data is not None or any(error.path for error in result.errors or ()):
            payload["data"] = result.data
            seen.resources = prepared.root_fields
        elif media_type == GRAPHQL_RESPONSE:
            status = 400
        shown = policy.explained(summary)
        payload["extensions"] = {
            "policy": shown,
            "backendQueries": context.loaders.batches,
            **context.extensions,
            **traced,
        }
        seen.outcome = errors[0]["extensions"]["code"] if errors else "ok"
        # Metrics are the operator's: they keep the owners the caller's view leaves out.
        seen.policy = {"fields": [e for e in summary["fields"] if e["decision"] != "CLEAR"]}
        return json_response(payload, status, media_type)

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
    ) -> None:
        """If the operation touched L2+ data (or read the audit log), commit its audit event."""
        decisions = summary["fields"]
        trace.decisions(decisions, policy.policy_version)
        if not context.audit_reads and not touches_audited_data(decisions):
            return
        if self.audit is None:
            raise AuditUnavailable("no audit log is configured")
        event = operation_event(
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
        )
        attributes = {"deltagate.audit.subjects": len(event.subjects)}
        with self.telemetry.span("audit.write", attributes) as span:
            receipt = await self.audit.append(event)
            if span is not None:
                span.set_attributes(
                    {"deltagate.audit.event_id": receipt.stored.seq,
                     "deltagate.audit.batch": receipt.batch}
                )  # fmt: skip
        trace.audited(receipt.stored.seq)

    async def ready(self) -> dict[str, Any]:
        """Each source's reachability, the audit store's and the policy's state."""

        async def ping(source: Source) -> str:
            try:
                await source.ping()
            except SourceUnavailable:
                return "unavailable"
            return "ok"

        async def audit() -> tuple[str, str | None]:
            if self.audit is None:
                return "off", None
            try:
                await self.audit.ping()
            except AuditUnavailable:
                return "unavailable", self.audit.problem
            return "ok", None

        *states, (audit_state, audit_error) = await asyncio.gather(
            *(ping(s) for s in self.sources.values()), audit()
        )
        return {
            "sources": dict(zip(self.sources, states, strict=True)),
            "audit": audit_state,
            "auditError": audit_error,
            "policy": self.policy.status.as_dict(),
        }

    async def start(self) -> None:
        """Connect to the audit database (checking its table) before the first request."""
        if self.audit is not None:
            await self.audit.start()

    async def close(self) -> None:
        """Flush pending audit events and exported spans; close every pool."""
        closing = [source.close() for source in self.sources.values()]
        if self.audit is not None:
            closing.append(self.audit.close())
        await asyncio.gather(*closing)
        await asyncio.to_thread(self.telemetry.shutdown)


@dataclass(slots=True)
class _Seen:
    """What the metrics record of one request, filled in as it goes."""

    app: str = "-"
    operation: str = "unknown"
    outcome: str = "INTERNAL"
    resources: tuple[str, ...] = ()
    policy: dict[str, Any] | None = None


def _both(first: QueryObserver, second: QueryObserver | None) -> QueryObserver:
    if second is None:
        return first

    def observe(*args: Any) -> None:
        first(*args)
        second(*args)

    return observe


def _not_acceptable(extensions: dict[str, Any]) -> Response:
    error = InvalidInput(
        "the response can be application/graphql-response+json or application/json;"
        " the Accept header allows neither"
    )
    response = request_error(error, extensions=extensions)
    response.status_code = 406
    return response


def _method_not_allowed(message: str) -> Response:
    response = request_error(InvalidInput(message))
    response.status_code = 405
    response.headers["Allow"] = "POST"
    return response


def create_app(gateway: Gateway) -> Starlette:
    """The Starlette app serving ``gateway``; closes its sources on shutdown."""
    production = gateway.settings.production
    graphiql = None if production else get_graphql_ide_html("graphiql")

    async def graphql(request: Request) -> Response:
        if request.method == "GET":
            # Operations come by POST only: GET would put personal keys in URLs and logs,
            # and could never run a mutation anyway (GraphQL over HTTP: 405).
            if "query" in request.query_params:
                return _method_not_allowed("send GraphQL operations with POST, not GET")
            if graphiql is None:
                return _method_not_allowed("GraphiQL is off in production mode; send POST")
            return HTMLResponse(graphiql)
        return await gateway.execute(request)

    async def metrics(_: Request) -> Response:
        gateway.metrics.refresh_breakers(gateway.sources)
        body, content_type = gateway.metrics.render()
        return Response(body, media_type=content_type)

    async def healthz(_: Request) -> Response:
        return json_response({"status": "ok"})

    async def readyz(_: Request) -> Response:
        report = await gateway.ready()
        # A policy file that fails to reload leaves the previous policy in force: reported, but
        # not a reason to take every replica out of rotation at once.
        # A replica whose audit store is down refuses personal data: not ready either.
        ok = (
            all(s == "ok" for s in report["sources"].values())
            and report["audit"] != "unavailable"
            and report["policy"]["ready"]
        )
        report["status"] = "ok" if ok else "unavailable"
        return json_response(report, 200 if ok else 503)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await gateway.start()
        # What start made (schema, policy, pools, parsed documents) lives as long as the
        # worker: frozen, the collector's full passes no longer walk it, and those
        # passes were what stalled a request now and then (the p99 tail).
        gc.collect()
        gc.freeze()
        watcher = asyncio.create_task(gateway.policy.watch())
        try:
            yield
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            await gateway.close()

    return Starlette(
        routes=[
            Route("/graphql", graphql, methods=["GET", "POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
