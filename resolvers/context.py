"""What every resolver of one operation shares: the caller's policy, the sources, the loaders."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from gateway.core.errors import SourceUnavailable
from gateway.core.regions import RegionRegistry, shipped_regions
from gateway.core.types import Caller, RegionCode
from gateway.sources import Source
from policies import OperationPolicy, PolicyEngine
from resolvers.console_settings import ConsoleSettings
from resolvers.cursors import CursorCodec
from resolvers.loaders import Loaders
from resolvers.selection import Selection, selected_fields

if TYPE_CHECKING:
    from gateway.audit import AuditLog
    from gateway.telemetry.spans import SpanRecorder
    from resolvers.console import ConsoleServices


_DEFAULT_CONSOLE = ConsoleSettings()


class GatewayContext:
    """One operation's state, made by the app for each request and passed as the context.

    Attributes:
        caller: who is asking (verified claims of the token).
        policy: decisions for this caller and matter, made once per field and region.
        sources: the configured source of each region.
        registry: the region registry keys are routed with (default: the shipped four).
        loaders: the request's dataloaders.
        cursors: the codec of page cursors.
        engine: the policy engine (for the resource catalog).
        extensions: extra entries for the response's ``extensions``.
        errors: errors of fields answered in part (a region that could not be read), each
            with its path; the edge writes them into the response.
        upper_region: the name of the upper-level source keys no configured region
            holds are read from (``[upper]``), or None: such keys are answered ``null``.
        audit_log: the audit log, for the auditor's and the citizen's queries (None: none).
        audit_reads: decisions recorded for reads of the audit log itself; with
            any, the operation writes an audit event whatever else it touched.
        console: the auditor console's shared parts (settings, span store, chain checks).
    """

    __slots__ = (
        "_selection",
        "audit_log",
        "audit_reads",
        "caller",
        "console",
        "cursors",
        "engine",
        "errors",
        "extensions",
        "loaders",
        "policy",
        "registry",
        "sources",
        "upper_region",
    )

    def __init__(
        self,
        caller: Caller,
        policy: OperationPolicy,
        sources: Mapping[RegionCode, Source],
        cursors: CursorCodec,
        engine: PolicyEngine | None = None,
        *,
        batching: bool = True,
        spans: SpanRecorder | None = None,
        audit_log: AuditLog | None = None,
        registry: RegionRegistry | None = None,
        upper: Source | None = None,
        console: ConsoleServices | None = None,
    ) -> None:
        self.caller = caller
        self.console = console
        self.registry = shipped_regions() if registry is None else registry
        self.engine = engine
        self.cursors = cursors
        self.policy = policy
        self.sources = sources
        self.upper_region = None if upper is None else upper.region
        self.loaders = Loaders(
            sources, policy, self.fields_of, batching=batching, spans=spans, upper=upper
        )
        self.extensions: dict[str, Any] = {}
        self.errors: list[tuple[list[str | int], SourceUnavailable]] = []
        self.audit_log = audit_log
        self.audit_reads: list[dict[str, Any]] = []
        self._selection: Selection | None = None

    @property
    def console_settings(self) -> ConsoleSettings:
        """``[console]`` (its defaults when the gateway was built without it)."""
        return self.console.settings if self.console is not None else _DEFAULT_CONSOLE

    @property
    def regions(self) -> tuple[RegionCode, ...]:
        """The regions with a configured source, in configuration order (what fans out to;
        never the upper-level source)."""
        return tuple(self.sources)

    def record_selection(self, info: Any) -> None:
        """Record which fields the operation selects per type (once; the root resolvers call it,
        so that rows are masked for what the operation reads)."""
        if self._selection is None:
            raw = info._raw_info  # graphql-core's own info: the schema and the fragments
            self._selection = selected_fields(raw.schema, raw.operation, raw.fragments)

    def use_selection(self, selection: Selection) -> None:
        """Take the per-type fields from an operation plan (computed once per document)."""
        self._selection = selection

    def fields_of(self, type_name: str) -> frozenset[str]:
        """The fields the operation selects on ``type_name`` (none before one is recorded: fail
        closed)."""
        if self._selection is None:
            return frozenset()
        return self._selection.get(type_name, frozenset())

    def close(self) -> None:
        """The operation has been answered: break the references back to this context."""
        self.loaders.close()

    def unavailable(self, path: Any, error: SourceUnavailable) -> None:
        """Record that the field at ``path`` lacks what ``error``'s region keeps."""
        self.errors.append((path.as_list() if hasattr(path, "as_list") else list(path), error))
