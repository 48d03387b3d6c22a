"""Type aliases shared across the gateway, the resolvers and the policies."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

#: A region code. Four today; a city platform or an upper-level gateway may add more.
RegionCode = str

#: The regions of the Yangtze River Delta, in the stable order results are merged in.
DELTA_REGIONS: tuple[RegionCode, ...] = ("SH", "JS", "ZJ", "AH")

#: Admin-division prefix (first two digits of an ID number or of chars 3-4 of a USCC).
REGION_PREFIXES: Mapping[str, RegionCode] = {"31": "SH", "32": "JS", "33": "ZJ", "34": "AH"}

#: The unified entities a source can be asked for.
Entity = Literal["person", "residence", "social_insurance", "enterprise", "credit_record"]

#: One record in the unified vocabulary: snake_case field names, ISO dates, 万元 amounts.
Row = dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class Caller:
    """Who is asking: the verified claims of the caller's token.

    Attributes:
        app: the caller application's id (JWT ``sub``).
        region: the caller's home region (``SH``/``JS``/``ZJ``/``AH``) or ``NATIONAL``.
        roles: the caller's roles, e.g. ``("one_stop_app",)``.
        subject: for a citizen's own token, the ID number it speaks for.
    """

    app: str
    region: str
    roles: tuple[str, ...]
    subject: str | None = None
