"""Prometheus metrics: what operators of a data-sharing platform report, served on ``/metrics``.

Call statistics per caller app and per resource (root field) are what the
platform reports upwards; latency, backend latency per region, masked and
withheld field counts, the audit queue and each region's circuit breaker are
what its operators watch; the policy version in force and the rate-limit
store's fall-backs are what a deployment of many replicas is checked by.
Metrics live on a registry of the gateway's own (no process-wide state),
except under ``PROMETHEUS_MULTIPROC_DIR``, where every worker process writes
its samples to that folder and ``/metrics`` adds them up (``deltagate serve
--workers N`` sets it).

Label values are bounded: apps are authenticated token subjects; operation
names come from documents that passed validation, and only the first
``max_operations`` distinct names get a series of their own (the rest count
as ``other``), so a caller cannot grow the metrics without limit.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

#: Breaker states as gauge values: higher is worse, so ``max`` across workers shows the worst.
BREAKER_VALUES = {"closed": 0, "half_open": 1, "open": 2}

_REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BACKEND_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """The gateway's metrics.

    Args:
        max_operations: distinct operation names given a series of their own.

    Hooks for other parts of the gateway (each a plain call, safe at any time)::

        metrics.set_audit_queue_depth(len(queue))
        metrics.set_breaker_state("ZJ", "open")     # closed, half_open or open
        metrics.set_policy("3f9a0c1d2e4b", failed=False)
        metrics.count_rate_limit_fallback()
    """

    def __init__(self, *, max_operations: int = 200) -> None:
        self.registry = CollectorRegistry()
        self.multiprocess_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None
        self._max_operations = max_operations
        self._operations: set[str] = set()
        self._children: dict[tuple[Any, tuple[str, ...]], Any] = {}
        self._requests: dict[tuple[str, str, str], tuple[Any, Any]] = {}
        self._policy_version: str | None = None
        registry = self.registry
        self.requests = Counter(
            "deltagate_requests",
            "GraphQL requests by caller app, operation and outcome (ok or the first error code)",
            ["app", "operation", "outcome"],
            registry=registry,
        )
        self.resource_calls = Counter(
            "deltagate_resource_calls",
            "Calls of each resource (root field) by caller app, refused requests excluded",
            ["app", "resource"],
            registry=registry,
        )
        self.latency = Histogram(
            "deltagate_request_duration_seconds",
            "Time from the request's arrival to its response, by operation",
            ["operation"],
            buckets=_REQUEST_BUCKETS,
            registry=registry,
        )
        self.backend_latency = Histogram(
            "deltagate_backend_query_duration_seconds",
            "Backend queries by region and entity",
            ["region", "entity"],
            buckets=_BACKEND_BUCKETS,
            registry=registry,
        )
        self.policy_fields = Counter(
            "deltagate_policy_fields",
            "Field values masked or withheld, by field coordinate, owning region and decision",
            ["field", "owner", "decision"],
            registry=registry,
        )
        self.audit_queue = Gauge(
            "deltagate_audit_queue_depth",
            "Audit events waiting to be committed",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.breaker = Gauge(
            "deltagate_breaker_state",
            "Circuit breaker of each region's source: 0 closed, 1 half-open, 2 open",
            ["region"],
            registry=registry,
            multiprocess_mode="max",
        )
        # ``max`` across workers: while the workers of one replica switch, both versions show 1.
        self.policy_info = Gauge(
            "deltagate_policy_info",
            "The access policy version in force (a content hash of the policy files): 1",
            ["version"],
            registry=registry,
            multiprocess_mode="max",
        )
        self.policy_reload_failed = Gauge(
            "deltagate_policy_reload_failed",
            "1 while the policy files on disk failed to load and the previous version is in force",
            registry=registry,
            multiprocess_mode="max",
        )
        self.rate_limit_fallbacks = Counter(
            "deltagate_rate_limit_store_fallbacks",
            "Requests whose rate limit was decided in the process: the shared store did not answer",
            registry=registry,
        )
        self.span_store_lost = Counter(
            "deltagate_span_store_lost_spans",
            "Spans of audited operations the span store did not keep, by why"
            " (dropped: a memory bound; write_failed; prune_failed counts prunings)",
            ["reason"],
            registry=registry,
        )

    # -- per request -------------------------------------------------------------------------

    def operation_label(self, name: str | None) -> str:
        """A bounded label for an operation name (``anonymous``, the name, or ``other``)."""
        if name is None:
            return "anonymous"
        if name in self._operations:
            return name
        if len(self._operations) < self._max_operations:
            self._operations.add(name)
            return name
        return "other"

    def observe_request(
        self,
        *,
        app: str,
        operation: str,
        outcome: str,
        seconds: float,
        resources: Iterable[str] = (),
        fields: Iterable[Mapping[str, Any]] = (),
    ) -> None:
        """Count one answered request (``app`` is ``-`` when unauthenticated).

        ``fields`` are the policy's decisions (``OperationPolicy.summary``): each masked or
        withheld one counts its values; ``CLEAR`` ones are not counted.
        """
        key = (app, operation, outcome)
        children = self._requests.get(key)
        if children is None:
            # The request counter's and the latency's series of one kind of request, found
            # once: the client's ``labels`` validates and locks on every call.
            children = self._requests[key] = (
                self.requests.labels(app, operation, outcome),
                self.latency.labels(operation),
            )
        count, latency = children
        count.inc()
        latency.observe(seconds)
        child = self._child
        for resource in resources:
            child(self.resource_calls, app, resource).inc()
        for entry in fields:
            decision = entry["decision"]
            if decision != "CLEAR" and entry.get("count", 0):
                labels = (entry["field"], entry["owner"], str(decision).lower())
                child(self.policy_fields, *labels).inc(entry["count"])

    def observe_backend_query(
        self, region: str, entity: str, field: str, keys: int, rows: int, seconds: float
    ) -> None:
        """A ``QueryObserver``: one backend query's latency."""
        self._child(self.backend_latency, region, entity).observe(seconds)

    def _child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, kept: the client's own look-up validates on every call."""
        key = (metric, labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    # -- hooks -------------------------------------------------------------------------------

    def set_audit_queue_depth(self, depth: int) -> None:
        self.audit_queue.set(depth)

    def set_breaker_state(self, region: str, state: str) -> None:
        self.breaker.labels(region).set(BREAKER_VALUES.get(str(state), 2))

    def set_policy(self, version: str | None, *, failed: bool) -> None:
        """The policy version in force (None: none is loaded) and whether a reload failed."""
        if version != self._policy_version:
            previous, self._policy_version = self._policy_version, version
            if previous is not None:
                if self.multiprocess_dir is None:
                    self.policy_info.remove(previous)
                else:  # a worker's samples cannot be removed from its file, only zeroed
                    self.policy_info.labels(previous).set(0)
            if version is not None:
                self.policy_info.labels(version).set(1)
        self.policy_reload_failed.set(1 if failed else 0)

    def count_rate_limit_fallback(self) -> None:
        self.rate_limit_fallbacks.inc()

    def count_span_store_loss(self, reason: str, count: int) -> None:
        self.span_store_lost.labels(reason).inc(count)

    def refresh_breakers(self, sources: Mapping[str, Any]) -> None:
        """Read each source's breaker state (sources without one are left out)."""
        for region, source in sources.items():
            state = getattr(source, "state", None)
            if state is not None:
                self.set_breaker_state(region, state)

    # -- exposition --------------------------------------------------------------------------

    def render(self) -> tuple[bytes, str]:
        """The metrics in the Prometheus text format, and its content type."""
        registry = self.registry
        if self.multiprocess_dir is not None:
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=self.multiprocess_dir)
        return generate_latest(registry), CONTENT_TYPE_LATEST
