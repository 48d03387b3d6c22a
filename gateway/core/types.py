"""Type aliases shared across the gateway, the resolvers and the policies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

#: A region code: one of the region registry's (``gateway.core.regions``).
RegionCode = str

#: The codes of the four shipped regions: the default of the demo and of the synthetic
#: data only. Routing, policy and the schema read the configured registry instead.
DELTA_REGIONS: tuple[RegionCode, ...] = ("SH", "JS", "ZJ", "AH")

#: The unified entities a source can be asked for.
Entity = Literal["person", "residence", "social_insurance", "enterprise", "credit_record"]

#: One record in the unified vocabulary: snake_case field names, ISO dates, 万元 amounts.
Row = dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class Caller:
    """Who is asking: the verified claims of the caller's token.

    Attributes:
        app: the caller application's id (JWT ``sub``).
        region: the caller's home region (a registry code) or ``NATIONAL``.
        roles: the caller's roles, e.g. ``("one_stop_app",)``.
        subject: for a citizen's own token, the ID number it speaks for.
        acting: for a delegated request (the cascade), the id of the upper gateway
            that acts for this caller; None when the caller called directly.
    """

    app: str
    region: str
    roles: tuple[str, ...]
    subject: str | None = None
    acting: str | None = None
