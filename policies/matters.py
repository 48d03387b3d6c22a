"""Registered administrative matters (事项): the purposes a caller may name.

Loaded from ``matters.toml``. The ``X-Matter-Code`` header names one; the
gateway refuses an unregistered code and a matter none of the caller's roles
may use (``gateway.core.errors.Forbidden``). Personal data of grade L3 and above is
released only under a matter, the purpose limitation of PIPL arts. 6 and 34.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

from gateway.core.errors import ConfigError, Forbidden

# Codes travel in an HTTP header: keep them to a plain, bounded shape.
_CODE_RE = re.compile(r"^[A-Z0-9][A-Z0-9-]{1,63}$")


@dataclass(frozen=True, slots=True, kw_only=True)
class Matter:
    """One registered matter.

    Attributes:
        code: what callers send in ``X-Matter-Code``, e.g. ``JH-HUKOU-MIGRATION``.
        name: the matter's official name, e.g. ``户口迁移``.
        roles: the roles that may handle it.
        basis: the list or document the matter comes from.
        description: what the matter is for.
    """

    code: str
    name: str
    roles: frozenset[str]
    basis: str
    description: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class MatterRegistry:
    """The registered matters by code, in file order."""

    matters: Mapping[str, Matter]

    def get(self, code: str) -> Matter | None:
        return self.matters.get(code)

    def resolve(self, code: str | None, roles: Collection[str]) -> Matter | None:
        """The matter a request names, checked against the caller's roles.

        ``roles`` are all the caller's roles, inherited ones included. No code
        (None or blank) means no matter. Raises ``Forbidden`` for an
        unregistered code, or a matter none of ``roles`` may use.
        """
        if code is None or not code.strip():
            return None
        code = code.strip()
        matter = self.matters.get(code)
        if matter is None:
            # Echo the code only if it has the shape of one: never reflect arbitrary header text.
            shown = code if _CODE_RE.match(code) else "given"
            raise Forbidden(f"matter {shown} is not registered")
        if matter.roles.isdisjoint(roles):
            raise Forbidden(f"the caller's roles may not handle matter {code}", matter=code)
        return matter


def load_matters(path: Path) -> MatterRegistry:
    """Read and check ``matters.toml``; any problem is a ``ConfigError`` naming it."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path.name}: {exc}") from exc
    entries = data.get("matter", [])
    if not isinstance(entries, list):
        raise ConfigError(f"{path.name}: [[matter]] must be an array of tables")
    matters: dict[str, Matter] = {}
    for index, raw in enumerate(entries, start=1):
        where = f"{path.name} matter #{index}"
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: expected a table")
        unknown = set(raw) - {"code", "name", "roles", "basis", "description"}
        if unknown:
            raise ConfigError(f"{where}: unknown settings {sorted(unknown)}")
        code, name, roles = raw.get("code"), raw.get("name"), raw.get("roles")
        if not isinstance(code, str) or not _CODE_RE.match(code):
            raise ConfigError(f"{where}: code must be upper-case letters, digits and '-'")
        if code in matters:
            raise ConfigError(f"{where}: code {code} is registered twice")
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{where} ({code}): name is required")
        if (
            not isinstance(roles, list)
            or not roles
            or not all(isinstance(r, str) and r.strip() for r in roles)
        ):
            raise ConfigError(f"{where} ({code}): roles must be a non-empty list of role names")
        matters[code] = Matter(
            code=code,
            name=name,
            roles=frozenset(roles),
            basis=str(raw.get("basis", "")),
            description=str(raw.get("description", "")),
        )
    return MatterRegistry(matters=matters)
