"""Building a gateway from settings: the long-lived parts one worker serves requests with.

``GatewayParts.from_settings`` makes the regional sources (each behind its
circuit breaker), the audit store, the policy engine, the token verifier, the
schema and its document guard, the limits, the metrics and the telemetry, and
checks them together; ``start`` and ``close`` bracket their lifetime, and
``ready`` reports whether each can be reached. Serving a request with them is
``gateway.edge.pipeline``'s job.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self

from gateway.audit import AuditLog, PostgresAuditLog, checkpoint_secret
from gateway.core.delegation import (
    DelegationSigner,
    DelegationVerifier,
    load_signing_key,
    load_trusted_keys,
)
from gateway.core.errors import AuditUnavailable, SourceUnavailable
from gateway.core.regions import Region
from gateway.core.types import RegionCode
from gateway.edge.admission import Admission
from gateway.edge.auth import TokenVerifier, caller_regions
from gateway.edge.delegated import DelegationGate
from gateway.edge.documents import DocumentGuard
from gateway.edge.metrics import Metrics
from gateway.edge.operations import OperationManifest
from gateway.edge.query_limits import Limits
from gateway.edge.rate_limit_store import RedisBuckets, StoreUnavailable
from gateway.edge.rate_limits import RateLimiter, watched_quotas
from gateway.edge.settings import Settings, SourceSettings
from gateway.edge.shared_limits import SharedRateLimiter
from gateway.edge.validation_budget import ValidationBudget
from gateway.sources import CircuitBreaker, QueryObserver, Source, build_source
from gateway.sources.upper import UpperSource
from gateway.telemetry.spans import Telemetry
from gateway.telemetry.store import SpanStore
from policies import PolicyEngine, resolve_mask_secret
from resolvers.console import ConsoleServices
from resolvers.cursors import CursorCodec
from schema import GatewaySchema, build_schema

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

logger = logging.getLogger("deltagate")


@dataclass
class GatewayParts:
    """The long-lived parts one worker serves requests with.

    Attributes:
        settings: the checked settings the parts were built from.
        sources: each region's source, behind its circuit breaker, in configuration order.
        policy: the policy engine (its files reload while the worker runs).
        verifier: checks bearer tokens.
        cursors: the codec of page cursors (keyed with the mask secret).
        schema: the unified schema, executing prepared documents.
        documents: parses, limits and validates documents, and keeps them.
        metrics: the Prometheus metrics.
        rate_limiter: each app's token bucket, in this process or in the shared store
            (None: rate limits off).
        validation_budget: each app's validation time (None: rate limits off).
        manifest: the registered operations (None: any document may run).
        telemetry: spans and their export.
        audit: the audit store (None: data of grade L2+ is refused).
        admission: requests each client address may have waiting to be admitted.
        delegation: checks the delegations of upper gateways (None: none accepted).
        upper: the upper-level source (``[upper]``), behind its breaker: keys no
            configured region holds are read there (None: answered ``null``).
        console: the auditor console's parts: its settings, the span store, chain checks.
    """

    settings: Settings
    sources: Mapping[RegionCode, Source]
    policy: PolicyEngine
    verifier: TokenVerifier
    cursors: CursorCodec
    schema: GatewaySchema
    documents: DocumentGuard
    metrics: Metrics
    rate_limiter: RateLimiter | SharedRateLimiter | None = None
    validation_budget: ValidationBudget | None = None
    manifest: OperationManifest | None = None
    telemetry: Telemetry = field(default_factory=Telemetry)
    audit: AuditLog | None = None
    admission: Admission = field(
        default_factory=lambda: Admission(Limits().max_unauthenticated_per_client)
    )
    delegation: DelegationGate | None = None
    upper: Source | None = None

    @property
    def reachable(self) -> dict[RegionCode, Source]:
        """Every source under its name, the upper-level one last: what readiness reports,
        the breaker metrics show and ``close`` closes."""
        if self.upper is None:
            return dict(self.sources)
        return {**self.sources, self.upper.region: self.upper}

    console: ConsoleServices = field(default_factory=ConsoleServices)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        observer: QueryObserver | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> Self:
        """Build every part from checked settings; ``ConfigError`` names what is wrong.

        ``observer`` is told of every backend query any source completes.
        ``tracer_provider`` receives the spans; without one, the ``OTEL_*``
        environment decides (see ``gateway.telemetry.spans``).
        """
        metrics = Metrics()
        observer = _both(metrics.observe_backend_query, observer)
        # The spans of audited operations go to the audit database too (the console's
        # waterfall), whether or not an OTLP collector is configured.
        spans = None
        if settings.audit_dsn and settings.console.keeps_spans(production=settings.production):
            spans = SpanStore(
                settings.audit_dsn,
                retention=settings.console.span_retention_days * 86400.0,
                max_rows=settings.console.span_max_rows,
                on_problem=metrics.count_span_store_loss,
                timeout=settings.audit_timeout,
            )
        if tracer_provider is None:
            telemetry = Telemetry.from_environment(processors=() if spans is None else (spans,))
        else:
            if spans is not None:
                tracer_provider.add_span_processor(spans)
            telemetry = Telemetry(tracer_provider)
        if telemetry.recording:
            observer = _both(telemetry.observe_query, observer)
        audit = None
        if settings.audit_dsn:
            audit = PostgresAuditLog(
                settings.audit_dsn,
                timeout=settings.audit_timeout,
                on_queue=metrics.set_audit_queue_depth,
                checkpoint_secret=checkpoint_secret(
                    settings.audit_checkpoint_secret, dev_mode=not settings.production
                ),
                checkpoint_interval=settings.audit_checkpoint_interval,
                gather=settings.audit_gather,
                chains=settings.audit_chains,
            )
        else:
            logger.warning("no audit database is configured: data of grade L2+ will be refused")
        mask_secret = resolve_mask_secret(settings.mask_secret, dev_mode=not settings.production)
        signer = _delegation_signer(settings)
        sources: dict[RegionCode, Source] = {
            s.region: CircuitBreaker(
                build_source(s.kind, **_source_options(s, signer), observer=observer),
                failures=s.breaker_failures,
                reset_after=s.breaker_reset,
            )
            for s in settings.sources
        }
        upper = None
        if settings.upper is not None:
            upper = UpperSource(
                CircuitBreaker(
                    build_source(
                        "gateway", **_source_options(settings.upper, signer), observer=observer
                    ),
                    failures=settings.upper.breaker_failures,
                    reset_after=settings.upper.breaker_reset,
                ),
                settings.upper.region,
                settings.regions.codes,
            )
        # The upper-level platform owns the rows it returns: the policy decides them as its
        # data (lines may name it; the `*` lines cover it), and the Region enum names it.
        regions = settings.regions
        if upper is not None:
            regions = regions.with_region(
                Region(code=upper.region, name=upper.region, prefixes=(), upper_level=True)
            )
        policy = PolicyEngine.from_directory(
            settings.policy_dir,
            mask_secret=mask_secret,
            reload_interval=settings.policy_reload_interval,
            shared_cache_size=4096,
            regions=regions,
        )
        verifier = TokenVerifier(
            hs256_secret=settings.hs256_secret,
            jwks_path=settings.jwks_path,
            audience=settings.audience,
            issuer=settings.issuer,
            max_lifetime=settings.max_token_lifetime,
            regions=settings.regions.codes,
        )
        # No extensions: requests are executed with ``execute_prepared`` on the document
        # the guard parsed and validated, so Strawberry's own caches would never be read.
        schema = build_schema(extensions=[], hide_suggestions=settings.production, regions=regions)
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
            rate_limiter=_rate_limiter(settings, metrics) if settings.rate_limits else None,
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
            delegation=_delegation_gate(settings),
            upper=upper,
            console=ConsoleServices.of(settings.console, spans),
        )

    async def ready(self) -> dict[str, Any]:
        """Each source's reachability, the audit store's and the policy's state."""

        async def ping(source: Source) -> str:
            try:
                await source.ping()
            except SourceUnavailable:
                return "unavailable"
            return "ok"

        async def rate_limit_store() -> str:
            # Not a reason to leave rotation: without the store, quotas fall back per process.
            if not isinstance(self.rate_limiter, SharedRateLimiter):
                return "off"
            try:
                await self.rate_limiter.ping()
            except StoreUnavailable:
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

        reachable = self.reachable
        *states, (audit_state, audit_error), store_state = await asyncio.gather(
            *(ping(s) for s in reachable.values()), audit(), rate_limit_store()
        )
        return {
            "sources": dict(zip(reachable, states, strict=True)),
            "audit": audit_state,
            "auditError": audit_error,
            "rateLimitStore": store_state,
            "policy": self.policy.status.as_dict(),
        }

    async def start(self) -> None:
        """Connect to the audit database (checking its table) before the first request."""
        if self.audit is not None:
            await self.audit.start()
        if self.console.spans is not None:
            await self.console.spans.start()

    async def close(self) -> None:
        """Flush pending audit events and exported spans; close every pool."""
        closing = [source.close() for source in self.reachable.values()]
        if self.audit is not None:
            closing.append(self.audit.close())
        if isinstance(self.rate_limiter, SharedRateLimiter):
            closing.append(self.rate_limiter.close())
        await asyncio.gather(*closing)
        await asyncio.to_thread(self.telemetry.shutdown)
        if self.console.spans is not None:
            await self.console.spans.close()


def _rate_limiter(settings: Settings, metrics: Metrics) -> RateLimiter | SharedRateLimiter:
    """Buckets in the shared store when one is configured, else in this process."""
    quotas = watched_quotas(settings.policy_dir, reload_interval=settings.policy_reload_interval)
    if settings.rate_limit_url is None:
        return RateLimiter(quotas)
    return SharedRateLimiter(
        RedisBuckets(settings.rate_limit_url, timeout=settings.rate_limit_timeout),
        quotas,
        processes=settings.rate_limit_processes,
        on_fallback=metrics.count_rate_limit_fallback,
    )


def _both(first: QueryObserver, second: QueryObserver | None) -> QueryObserver:
    if second is None:
        return first

    def observe(*args: Any) -> None:
        first(*args)
        second(*args)

    return observe


def _delegation_gate(settings: Settings) -> DelegationGate | None:
    """The check of upper gateways' delegations, if ``[delegation]`` is configured."""
    config = settings.delegation
    if config is None or config.trusted_jwks is None:
        return None
    keys = load_trusted_keys(config.trusted_jwks, config.trusted_issuers)
    return DelegationGate(
        DelegationVerifier(audience=config.id, keys=keys),
        acting_roles=config.acting_roles,
        regions=caller_regions(settings.regions.codes),
    )


def _delegation_signer(settings: Settings) -> DelegationSigner | None:
    """The key this gateway signs its callers' delegations with, if it has one."""
    config = settings.delegation
    if config is None or config.signing_key is None or config.signing_key_id is None:
        return None
    return DelegationSigner(
        key=load_signing_key(config.signing_key),
        kid=config.signing_key_id,
        issuer=config.id,
        ttl=config.ttl,
    )


def _source_options(source: SourceSettings, signer: DelegationSigner | None) -> dict[str, Any]:
    """A source's options, with the delegation signer for a ``gateway`` source that delegates."""
    options = source.options()
    if source.kind == "gateway" and source.delegation_audience is not None:
        options["signer"] = signer
    return options
