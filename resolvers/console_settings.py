"""The auditor console's settings (``[console]`` in gateway.toml), checked.

Read by the console's resolvers (signals, chain verification, traces) and by the
edge (the page, the CSV export, the span store's retention).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.core.errors import ConfigError

__all__ = ["ConsoleSettings"]

_HOURS = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")


@dataclass(frozen=True, kw_only=True)
class ConsoleSettings:
    """``[console]``.

    Attributes:
        enabled: serve ``/console`` and its CSV export (None: outside production
            only; the GraphQL fields exist either way, under their role rules).
        export_max_rows: most events one CSV export holds.
        verify_max_range: most events one ``verifyAuditChain`` checks.
        verify_min_interval: seconds between two verifications, gateway-wide.
        signals_ttl: seconds the misuse signals, once computed, are served again
            (each computation reads up to thousands of events).
        trace_url_template: a link to an external trace UI, ``{traceId}`` filled in.
        keep_spans: keep the spans of audited operations in the audit database (the
            waterfall; None: when the console is served). Off, spans are recorded
            only for a configured exporter: recording costs CPU on every request.
        span_retention_days: days the spans of audited operations are kept.
        span_max_rows: spans kept at most.
        work_start, work_end: working hours, China Standard Time.
        working_days: ISO weekdays (Monday = 1) that are working days.
        signal_window_minutes: how far back every misuse signal looks.
        distinct_subjects_threshold: one app reading more distinct subjects raises a signal.
        outside_hours_threshold: one app with more events outside working hours raises one.
        apps_per_subject_threshold: one subject read by more apps raises one.
    """

    enabled: bool | None = None
    export_max_rows: int = 10_000
    verify_max_range: int = 100_000
    verify_min_interval: float = 10.0
    signals_ttl: float = 15.0
    trace_url_template: str | None = None
    keep_spans: bool | None = None
    span_retention_days: float = 30.0
    span_max_rows: int = 1_000_000
    work_start: dt.time = dt.time(8, 30)
    work_end: dt.time = dt.time(18, 0)
    working_days: frozenset[int] = frozenset({1, 2, 3, 4, 5})
    signal_window_minutes: int = 60
    distinct_subjects_threshold: int = 100
    outside_hours_threshold: int = 10
    apps_per_subject_threshold: int = 3

    def serves_page(self, *, production: bool) -> bool:
        """Whether ``/console`` is served: on outside production unless switched off."""
        return (not production) if self.enabled is None else self.enabled

    def keeps_spans(self, *, production: bool) -> bool:
        """Whether the span store runs: by default where the console is served."""
        return (
            self.serves_page(production=production) if self.keep_spans is None else self.keep_spans
        )

    @property
    def working_hours(self) -> str:
        return f"{self.work_start:%H:%M}-{self.work_end:%H:%M}"

    def trace_url(self, trace_id: str) -> str | None:
        if not self.trace_url_template:
            return None
        return self.trace_url_template.replace("{traceId}", trace_id)

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> ConsoleSettings:
        """The ``[console]`` table; ``ConfigError`` names a wrong key or value."""
        known = {
            "enabled", "keep_spans", "export_max_rows", "verify_max_range", "verify_min_interval",
            "signals_ttl",
            "trace_url_template", "span_retention_days", "span_max_rows", "working_hours",
            "working_days", "signal_window_minutes", "distinct_subjects_threshold",
            "outside_hours_threshold", "apps_per_subject_threshold",
        }  # fmt: skip
        unknown = set(table) - known
        if unknown:
            raise ConfigError(f"[console]: unknown keys {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {}
        for key in ("enabled", "keep_spans"):
            if key in table:
                if not isinstance(table[key], bool):
                    raise ConfigError(f"console.{key} must be true or false")
                values[key] = table[key]
        for key, least in (
            ("export_max_rows", 1),
            ("verify_max_range", 1),
            ("span_max_rows", 1),
            ("signal_window_minutes", 1),
            ("distinct_subjects_threshold", 0),
            ("outside_hours_threshold", 0),
            ("apps_per_subject_threshold", 0),
        ):
            if key in table:
                value = table[key]
                if isinstance(value, bool) or not isinstance(value, int) or value < least:
                    raise ConfigError(f"console.{key} must be an integer of at least {least}")
                values[key] = value
        if "signals_ttl" in table:
            ttl = table["signals_ttl"]
            if isinstance(ttl, bool) or not isinstance(ttl, int | float) or ttl < 0:
                raise ConfigError("console.signals_ttl must be a number of seconds, 0 or more")
            values["signals_ttl"] = float(ttl)
        for key in ("verify_min_interval", "span_retention_days"):
            if key in table:
                value = table[key]
                if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                    raise ConfigError(f"console.{key} must be a positive number")
                values[key] = float(value)
        template = table.get("trace_url_template")
        if template is not None:
            if not isinstance(template, str) or not template.startswith(("https://", "http://")):
                raise ConfigError("console.trace_url_template must be an http(s):// URL")
            if "{traceId}" not in template:
                raise ConfigError("console.trace_url_template must contain {traceId}")
            values["trace_url_template"] = template
        if "working_hours" in table:
            values["work_start"], values["work_end"] = _hours(table["working_hours"])
        if "working_days" in table:
            days = table["working_days"]
            if not isinstance(days, list) or not all(
                isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= 7 for d in days
            ):
                raise ConfigError("console.working_days must be a list of ISO weekdays (1..7)")
            values["working_days"] = frozenset(days)
        return cls(**values)


def _hours(value: Any) -> tuple[dt.time, dt.time]:
    match = _HOURS.match(value) if isinstance(value, str) else None
    if match is None:
        raise ConfigError('console.working_hours must look like "08:30-18:00" (CST)')
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    try:
        start = dt.time(h1, m1)
        end = dt.time(23, 59, 59, 999999) if (h2, m2) == (24, 0) else dt.time(h2, m2)
    except ValueError:
        raise ConfigError("console.working_hours: not a time of day") from None
    if end <= start:
        raise ConfigError("console.working_hours must end after it starts")
    return start, end
