"""Type aliases shared across the gateway, the resolvers and the policies."""

from __future__ import annotations

from collections.abc import Mapping
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
