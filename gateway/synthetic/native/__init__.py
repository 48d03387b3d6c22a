"""Each region's deliberately different native schema, and how to fill it.

The heterogeneity is the point (see the mapping files beside the gateway's
sources): the unified schema must not leak any of it.
"""

from __future__ import annotations

from collections.abc import Mapping

from gateway.core.types import RegionCode
from gateway.synthetic.native import ah, js, sh, zj
from gateway.synthetic.native.table import NativeTable

#: Native tables per region, in the order they are created and loaded.
NATIVE_TABLES: Mapping[RegionCode, tuple[NativeTable, ...]] = {
    "SH": sh.TABLES,
    "JS": js.TABLES,
    "ZJ": zj.TABLES,
    "AH": ah.TABLES,
}

__all__ = ["NATIVE_TABLES", "NativeTable"]
