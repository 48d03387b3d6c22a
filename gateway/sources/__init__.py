"""Regional sources: the extension point, its kinds, and the factory that builds them.

A source kind is one class implementing :class:`Source`; ``build_source``
makes one from its configuration entry (``kind = "postgres"`` or ``"gateway"``,
and options).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway.core.errors import ConfigError
from gateway.sources.base import QueryObserver, Source
from gateway.sources.breaker import BreakerState, CircuitBreaker
from gateway.sources.gateway import GatewaySource
from gateway.sources.mapping import RegionMapping, load_mapping
from gateway.sources.postgres import PostgresSource

__all__ = [
    "BreakerState",
    "CircuitBreaker",
    "GatewaySource",
    "PostgresSource",
    "QueryObserver",
    "Source",
    "build_source",
]

_KINDS: dict[str, type[Source]] = {"postgres": PostgresSource, "gateway": GatewaySource}


def build_source(kind: str, **options: Any) -> Source:
    """Make a source of ``kind`` from its options; ``ConfigError`` if either is wrong.

    ``mapping`` may be a :class:`RegionMapping` or the path of a mapping file,
    and ``region`` defaults to the mapping's region.

    >>> build_source("postgres", dsn="postgresql://gw@db-zj/zj",
    ...              mapping="gateway/sources/mappings/zj.toml", timeout=3.0)  # doctest: +SKIP
    <gateway.sources.postgres.PostgresSource object at ...>
    """
    source_class = _KINDS.get(kind)
    if source_class is None:
        raise ConfigError(f"unknown source kind {kind!r} (known: {', '.join(sorted(_KINDS))})")
    mapping = options.get("mapping")
    if isinstance(mapping, str | Path):
        options["mapping"] = mapping = load_mapping(mapping)
    if isinstance(mapping, RegionMapping):
        options.setdefault("region", mapping.region)
    try:
        return source_class(**options)
    except TypeError as exc:
        # A missing or misspelt option: say which kind it was for, not a traceback.
        raise ConfigError(f"source kind {kind!r}: bad options ({exc})") from None
