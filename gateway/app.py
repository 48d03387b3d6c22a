"""The ASGI app: ``POST /graphql``, GraphiQL outside production, ``/healthz`` and ``/readyz``.

Every request to ``/graphql`` is authenticated before its body is read, bound
to the caller's policy (and matter) before anything executes, and answered
with orjson. Each runs in an OpenTelemetry span whose trace id the response
carries in ``extensions.traceId``; an operation that touched L2+ data is
answered only once its audit event is committed (else ``AUDIT_UNAVAILABLE``,
without the data). The app owns the regional sources (their pools), the audit
store and the policy engine's reload task for its lifetime.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from strawberry.http.ides import get_graphql_ide_html

from gateway.audit import AuditStore, document_hash, operation_event, touches_audited_data
from gateway.auth import TokenVerifier
from gateway.errors import AuditUnavailable, GatewayError, InvalidInput, SourceUnavailable
from gateway.responses import GRAPHQL_RESPONSE, JSON, format_error, json_response, request_error
from gateway.settings import Settings
from gateway.sources import CircuitBreaker, QueryObserver, Source, build_source
from gateway.telemetry import OperationTrace, Telemetry
from gateway.types import Caller, RegionCode
from policies import OperationPolicy, PolicyEngine, resolve_mask_secret
from resolvers.context import GatewayContext
from resolvers.cursors import CursorCodec
from schema import GatewaySchema, build_schema

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

logger = logging.getLogger("deltagate")

#: The largest request body accepted (a document plus its variables).
MAX_BODY_BYTES = 256 * 1024
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
    telemetry: Telemetry = field(default_factory=Telemetry)
    audit: AuditStore | None = None

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
        environment decides (see ``gateway.telemetry``).
        """
        telemetry = (
            Telemetry.from_environment() if tracer_provider is None else Telemetry(tracer_provider)
        )
        if telemetry.recording:
            observer = _both(telemetry.observe_query, observer)
        audit = None
        if settings.audit_dsn:
            audit = AuditStore(settings.audit_dsn, timeout=settings.audit_timeout)
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
            hs256_secret=settings.jwt_secret,
            jwks_path=settings.jwks_path,
            audience=settings.audience,
            issuer=settings.issuer,
        )
        return cls(
            settings=settings,
            sources=sources,
            policy=policy,
            verifier=verifier,
            cursors=CursorCodec(mask_secret),
            schema=build_schema(),
            telemetry=telemetry,
            audit=audit,
        )

    async def execute(self, request: Request) -> Response:
        with self.telemetry.operation(request.headers) as trace:
            return await self._execute(request, trace)

    async def _execute(self, request: Request, trace: OperationTrace) -> Response:
        media_type = _response_type(request.headers.get("accept"))
        traced = {"traceId": trace.trace_id}
        try:
            caller = self.verifier.verify(request.headers.get("authorization"))
            query, variables, operation_name = await _read_operation(request)
            matter = request.headers.get(MATTER_HEADER, "").strip() or None
            trace.caller(caller, matter)
            policy = self.policy.begin(caller, matter)
        except GatewayError as error:
            trace.failed(error.code)
            return request_error(error, media_type, extensions=traced)
        context = GatewayContext(
            caller, policy, self.sources, self.cursors, self.policy,
            batching=self.settings.batching,
            tracer=self.telemetry.child_tracer(trace),
            audit_log=self.audit,
        )  # fmt: skip
        result = await self.schema.execute(
            query,
            variable_values=variables,
            context_value=context,
            operation_name=operation_name,
        )
        # Every decision, clear ones too: the audit event records them all, the response
        # lists the masked and withheld ones.
        summary = policy.summary(include_clear=True)
        try:
            await self._audit(trace, caller, policy, context, query, operation_name, summary)
        except AuditUnavailable as error:
            # Fail closed: without its audit event, none of the operation's data leaves.
            logger.error("audit event not written; response refused (trace %s)", trace.trace_id)
            trace.failed(error.code)
            return request_error(error, media_type, extensions=traced)
        payload: dict[str, Any] = {}
        status = 200
        errors = [format_error(error) for error in result.errors or ()] + context.errors
        if errors:
            payload["errors"] = errors
            trace.failed(errors[0]["extensions"]["code"])
            if result.data is None and media_type == GRAPHQL_RESPONSE:
                status = 400  # the document did not parse or validate: nothing executed
        payload["data"] = result.data
        payload["extensions"] = {
            "policy": {
                **summary,
                "fields": [e for e in summary["fields"] if e["decision"] != "CLEAR"],
            },
            "backendQueries": context.loaders.batches,
            **context.extensions,
            **traced,
        }
        return json_response(payload, status, media_type)

    async def _audit(
        self,
        trace: OperationTrace,
        caller: Caller,
        policy: OperationPolicy,
        context: GatewayContext,
        document: str,
        operation_name: str | None,
        summary: dict[str, Any],
    ) -> None:
        """Name the operation on its span; if it touched L2+ data, commit its audit event."""
        operation = context.operation
        if operation is not None:
            operation_name = operation.name.value if operation.name else None
        kind = operation.operation.value if operation is not None else None
        trace.operation(operation_name, kind, document_hash(document))
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
            operation_name=operation_name,
            operation_type=kind,
            document=document,
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

        async def audit() -> str:
            if self.audit is None:
                return "off"
            try:
                await self.audit.ping()
            except AuditUnavailable:
                return "unavailable"
            return "ok"

        *states, audit_state = await asyncio.gather(
            *(ping(s) for s in self.sources.values()), audit()
        )
        return {
            "sources": dict(zip(self.sources, states, strict=True)),
            "audit": audit_state,
            "policy": self.policy.status.as_dict(),
        }

    async def start(self) -> None:
        """Connect to the audit database (creating its table) before the first request."""
        if self.audit is not None:
            await self.audit.start()

    async def close(self) -> None:
        """Flush pending audit events and exported spans; close every pool."""
        closing = [source.close() for source in self.sources.values()]
        if self.audit is not None:
            closing.append(self.audit.close())
        await asyncio.gather(*closing)
        await asyncio.to_thread(self.telemetry.shutdown)


def _both(first: QueryObserver, second: QueryObserver | None) -> QueryObserver:
    if second is None:
        return first

    def observe(*args: Any) -> None:
        first(*args)
        second(*args)

    return observe


def _response_type(accept: str | None) -> str:
    """``application/graphql-response+json`` if the client accepts it, else ``application/json``."""
    if accept and GRAPHQL_RESPONSE in accept:
        return GRAPHQL_RESPONSE
    return JSON


async def _read_operation(request: Request) -> tuple[str, dict[str, Any] | None, str | None]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != JSON:
        raise InvalidInput("the request body must be application/json")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise InvalidInput(f"the request body exceeds {MAX_BODY_BYTES} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise InvalidInput(f"the request body exceeds {MAX_BODY_BYTES} bytes")
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidInput("the request body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise InvalidInput("the request body must be a JSON object")
    query = payload.get("query")
    variables = payload.get("variables")
    operation_name = payload.get("operationName")
    if not isinstance(query, str) or not query.strip():
        raise InvalidInput("'query' must be a non-empty string")
    if variables is not None and not isinstance(variables, dict):
        raise InvalidInput("'variables' must be an object")
    if operation_name is not None and not isinstance(operation_name, str):
        raise InvalidInput("'operationName' must be a string")
    return query, variables, operation_name


def create_app(gateway: Gateway) -> Starlette:
    """The Starlette app serving ``gateway``; closes its sources on shutdown."""
    production = gateway.settings.production
    graphiql = None if production else get_graphql_ide_html("graphiql")

    async def graphql(request: Request) -> Response:
        if request.method == "GET":
            if graphiql is None:
                error = InvalidInput("GraphiQL is off in production mode; send queries with POST")
                response = request_error(error)
                response.status_code = 405
                response.headers["Allow"] = "POST"
                return response
            return HTMLResponse(graphiql)
        return await gateway.execute(request)

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
        ],
        lifespan=lifespan,
    )
