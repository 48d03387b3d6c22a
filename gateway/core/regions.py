"""The region registry: which regions the gateway knows, and which region a key belongs to.

A region is data, not code: a code (``SH``), a name (``上海``) and the
admin-division prefixes (GB/T 2260) of the keys it is the home of. Two digits
name a province; a city platform carries a longer prefix (``3201`` 南京) and
wins over its province for the keys under it (longest prefix). The registry
keeps the regions in order: the order fan-out results are merged in and the
order of the GraphQL ``Region`` enum.

The shipped registry (``shipped_regions()``) is the four regions of the
delta, read from ``regions.toml`` beside this module; a deployment adds or
changes regions in ``gateway.toml`` (``gateway.edge.settings``), and the
registry reaches the code that routes, decides and builds the schema through
its constructor arguments, never through a global.

::

    regions = shipped_regions().with_region(Region(code="NJ", name="南京", prefixes=("3201",)))
    regions.id_number_region("320102199001011234")  # 'NJ'
    regions.id_number_region("320202199001011234")  # 'JS'
"""

from __future__ import annotations

import functools
import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.core.errors import ConfigError

#: The data file of the shipped regions.
SHIPPED_REGIONS_FILE = Path(__file__).with_name("regions.toml")

#: The region a caller of a national body claims; never the code of a data-owning region.
NATIONAL = "NATIONAL"

# A code is a GraphQL enum value (it becomes one of ``Region``), upper case so that
# it reads like the four; policy lines and token claims compare it as written.
_CODE_RE = re.compile(r"^[A-Z][A-Z0-9_]{1,15}$")
# GB/T 2260 codes are six digits: province (2), city (4), district (6).
_PREFIX_RE = re.compile(r"^\d{2,6}$")
# Words a region code must not be: they mean something else where codes are written.
_RESERVED = frozenset({NATIONAL, "OWN", "TRUE", "FALSE", "NULL"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Region:
    """One data-owning region.

    Attributes:
        code: its code, e.g. ``SH``; a value of the GraphQL ``Region`` enum.
        name: its name, e.g. ``上海``.
        prefixes: the admin-division prefixes (2 to 6 digits) of the ID numbers
            and USCCs whose home it is.
        upper_level: the upper-level platform (``[upper]``): it holds no prefix, and
            keys no configured region holds are read there; known to the policy (as
            an owner) and to the ``Region`` enum, never routed to by prefix.
    """

    code: str
    name: str
    prefixes: tuple[str, ...]
    upper_level: bool = False

    def __post_init__(self) -> None:
        where = f"region {self.code!r}"
        if not isinstance(self.code, str) or not _CODE_RE.match(self.code):
            raise ConfigError(
                f"{where}: a region code is 2-16 upper-case letters, digits or _ "
                "starting with a letter"
            )
        if self.code in _RESERVED:
            raise ConfigError(f"{where}: {self.code} is reserved and cannot name a region")
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigError(f"{where}: name must be a non-empty string")
        if not self.prefixes and not self.upper_level:
            raise ConfigError(f"{where}: prefixes must list at least one admin-division prefix")
        for prefix in self.prefixes:
            if not isinstance(prefix, str) or not _PREFIX_RE.match(prefix):
                raise ConfigError(
                    f"{where}: prefix {prefix!r} must be 2 to 6 digits of an admin-division code"
                )

    @classmethod
    def from_table(cls, code: str, table: Mapping[str, Any], where: str) -> Region:
        """A region from a configuration table with ``name`` and ``prefixes``."""
        name = table.get("name")
        prefixes = table.get("prefixes")
        if not isinstance(name, str):
            raise ConfigError(f"{where}: name must be a string (the region's name)")
        if not isinstance(prefixes, list) or not all(isinstance(p, str) for p in prefixes):
            raise ConfigError(f'{where}: prefixes must be a list of strings, e.g. ["3201"]')
        return cls(code=code, name=name, prefixes=tuple(prefixes))


@dataclass(frozen=True, slots=True)
class RegionRegistry:
    """The known regions, in order, and routing of keys to them by longest prefix.

    Raises ``ConfigError`` when two regions share a code or a prefix.
    """

    regions: tuple[Region, ...]
    _by_code: dict[str, Region] = field(init=False, repr=False, compare=False)
    _by_prefix: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_code: dict[str, Region] = {}
        by_prefix: dict[str, str] = {}
        for region in self.regions:
            if region.code in by_code:
                raise ConfigError(f"region {region.code!r} is defined twice")
            by_code[region.code] = region
            for prefix in region.prefixes:
                if prefix in by_prefix:
                    raise ConfigError(
                        f"prefix {prefix!r} belongs to both {by_prefix[prefix]} and {region.code}"
                    )
                by_prefix[prefix] = region.code
        object.__setattr__(self, "_by_code", by_code)
        object.__setattr__(self, "_by_prefix", by_prefix)

    @property
    def codes(self) -> tuple[str, ...]:
        """The region codes, in order."""
        return tuple(region.code for region in self.regions)

    def __contains__(self, code: object) -> bool:
        return code in self._by_code

    def __iter__(self) -> Iterator[Region]:
        return iter(self.regions)

    def __len__(self) -> int:
        return len(self.regions)

    def get(self, code: str) -> Region | None:
        """The region of ``code``, or None."""
        return self._by_code.get(code)

    def with_region(self, region: Region) -> RegionRegistry:
        """This registry with ``region`` added at the end, or replacing the one of its code."""
        if region.code in self._by_code:
            return RegionRegistry(tuple(region if r.code == region.code else r for r in self))
        return RegionRegistry((*self.regions, region))

    def area_region(self, area: str) -> str | None:
        """The region whose longest prefix starts the 6-digit admin-division code ``area``."""
        for length in range(min(len(area), 6), 1, -1):
            code = self._by_prefix.get(area[:length])
            if code is not None:
                return code
        return None

    def id_number_region(self, value: str) -> str | None:
        """The home region of an ID number (its first 6 digits), or None outside the registry."""
        return self.area_region(value[:6])

    def uscc_region(self, value: str) -> str | None:
        """The home region of a USCC (its admin-division code is chars 3-8), or None."""
        return self.area_region(value[2:8])


def load_regions(path: Path) -> RegionRegistry:
    """The registry a TOML file describes: one table per code with ``name`` and ``prefixes``."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path.name}: {exc}") from exc
    return regions_from_tables(raw.items(), path.name)


def regions_from_tables(tables: Iterable[tuple[str, Any]], where: str) -> RegionRegistry:
    """A registry from ``(code, {name, prefixes})`` pairs, in their order."""
    regions = []
    for code, table in tables:
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: [{code}] must be a table")
        regions.append(Region.from_table(code, table, f"{where} [{code}]"))
    return RegionRegistry(tuple(regions))


@functools.cache
def shipped_regions() -> RegionRegistry:
    """The shipped registry: SH 上海 31, JS 江苏 32, ZJ 浙江 33, AH 安徽 34 (immutable)."""
    return load_regions(SHIPPED_REGIONS_FILE)
