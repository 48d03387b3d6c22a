"""The Casbin side: ``model.conf`` + ``policy.csv``, checked line by line.

Casbin's own file adapter skips lines it does not understand; a typo in a
policy line would then quietly grant or deny nothing. Here every line is
checked against the catalog and the matter registry first (a field pattern
that names no field, a matter that is not registered, a clearance that is not
L1..L4 all stop the load), and the enforcer receives exactly the checked
lines. Each line keeps its line number, so a decision can be explained by
pointing at ``policy.csv:NN``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import casbin
from casbin.persist import Adapter

from gateway.core.errors import ConfigError
from gateway.core.regions import RegionRegistry
from policies.grades import Catalog
from policies.matters import MatterRegistry

_ROLE_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
# Owner words of a grant line besides the registry's codes.
_OWNER_WORDS = ("*", "own")
_LEVELS = frozenset({"L1", "L2", "L3", "L4"})

# The request and policy shapes the engine relies on (see model.conf).
_EXPECTED_TOKENS = {
    ("r", "r"): ["r_role", "r_home", "r_owner", "r_matter", "r_obj", "r_level"],
    ("p", "p"): ["p_role", "p_owner", "p_matter", "p_obj", "p_level", "p_eft"],
    ("r", "r2"): ["r2_home", "r2_owner", "r2_obj"],
    ("p", "p2"): ["p2_owner", "p2_obj"],
}


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyLine:
    """One checked line of ``policy.csv``.

    Attributes:
        number: its line number in the file.
        ptype: ``p`` (grant or deny), ``p2`` (negative list) or ``g`` (inheritance).
        values: the values after the type, as Casbin sees them.
    """

    number: int
    ptype: str
    values: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.ref}: {', '.join((self.ptype, *self.values))}"

    @property
    def ref(self) -> str:
        """Where the line is: ``policy.csv:27``."""
        return f"policy.csv:{self.number}"

    @property
    def is_deny(self) -> bool:
        return self.ptype == "p" and self.values[-1] == "deny"

    @property
    def level(self) -> int | None:
        """The clearance a grant line gives (None for other lines)."""
        if self.ptype == "p" and self.values[4] in _LEVELS:
            return int(self.values[4][1])
        return None


# Matcher functions registered with the enforcer. They must never raise: Casbin
# also evaluates the matcher once with empty policy values when a section is empty.
def _owner_match(owner: str, home: str, pattern: str) -> bool:
    return pattern == "*" or pattern == owner or (pattern == "own" and owner == home)


def _matter_match(matter: str, pattern: str) -> bool:
    return pattern == "*" or (matter != "" and matter == pattern)


def _level_covers(granted: str, asked: str) -> bool:
    if granted == "*":
        return True
    return granted in _LEVELS and asked in _LEVELS and granted[1] >= asked[1]


# pycasbin has no types (pyproject.toml), so its Adapter is Any to mypy.
class _CheckedLines(Adapter):  # type: ignore[misc]
    """Feeds the enforcer the already-checked lines instead of re-reading the file."""

    def __init__(self, lines: Sequence[PolicyLine]) -> None:
        self._lines = lines

    def load_policy(self, model: Any) -> None:
        for line in self._lines:
            model.model[line.ptype[0]][line.ptype].policy.append(list(line.values))


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyRules:
    """The loaded enforcer and the lines it holds.

    Attributes:
        enforcer: the Casbin enforcer; ``enforce_ex`` is the only method the
            decisions call (tests wrap it to count calls).
        lines: every checked policy line, in file order.
    """

    enforcer: casbin.Enforcer
    lines: tuple[PolicyLine, ...]
    _index: dict[tuple[str, tuple[str, ...]], PolicyLine] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        for line in reversed(self.lines):  # the first of two identical lines is the one shown
            self._index[(line.ptype, line.values)] = line

    def line_for(self, ptype: str, values: Sequence[str]) -> PolicyLine | None:
        """The policy line Casbin reported as the reason for a result."""
        return self._index.get((ptype, tuple(values)))

    def inherited_roles(self, role: str) -> frozenset[str]:
        """The role and every role it inherits through ``g`` lines."""
        return frozenset({role, *self.enforcer.get_implicit_roles_for_user(role)})


def load_rules(
    model_path: Path,
    policy_path: Path,
    *,
    catalog: Catalog,
    matters: MatterRegistry,
    regions: RegionRegistry,
) -> PolicyRules:
    """Check ``policy.csv`` against the catalog, matters and regions, and build the enforcer."""
    lines = parse_policy(policy_path, catalog=catalog, matters=matters, regions=regions)
    try:
        enforcer = casbin.Enforcer(str(model_path), _CheckedLines(lines))
    except Exception as exc:  # Casbin reports a bad model with assorted exception types.
        raise ConfigError(f"{model_path.name}: {exc}") from exc
    model = enforcer.model
    for (sec, key), tokens in _EXPECTED_TOKENS.items():
        found = model.model.get(sec, {}).get(key)
        if found is None or list(found.tokens) != tokens:
            raise ConfigError(f"{model_path.name}: {key} must be {', '.join(tokens)}")
    enforcer.add_function("ownerMatch", _owner_match)
    enforcer.add_function("matterMatch", _matter_match)
    enforcer.add_function("levelCovers", _level_covers)
    try:  # Evaluate each matcher once now, so an error shows at load time, not per request.
        enforcer.enforce_ex("", "SH", "SH", "", "NaturalPerson.name", "L1")
        enforcer.enforce_ex(enforcer.new_enforce_context("2"), "SH", "JS", "NaturalPerson.name")
    except Exception as exc:
        raise ConfigError(f"{model_path.name}: the matchers cannot be evaluated: {exc}") from exc
    return PolicyRules(enforcer=enforcer, lines=tuple(lines))


def parse_policy(
    path: Path, *, catalog: Catalog, matters: MatterRegistry, regions: RegionRegistry
) -> list[PolicyLine]:
    """Every rule line of ``policy.csv``, checked; the first problem is a ``ConfigError``."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path.name}: {exc}") from exc
    lines: list[PolicyLine] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        tokens = tuple(token.strip() for token in stripped.split(","))
        problem = _check(tokens, catalog, matters, regions)
        if problem:
            raise ConfigError(f"{path.name}:{number}: {problem}: {stripped}")
        lines.append(PolicyLine(number=number, ptype=tokens[0], values=tokens[1:]))
    return lines


def _check(
    tokens: tuple[str, ...], catalog: Catalog, matters: MatterRegistry, regions: RegionRegistry
) -> str | None:
    ptype, values = tokens[0], tokens[1:]
    if ptype == "p":
        if len(values) != 6:
            return (
                "a grant or deny line has 6 values: role, owner, matter, fields, clearance, effect"
            )
        role, owner, matter, fields, level, effect = values
        if not _ROLE_RE.match(role):
            return f"{role!r} is not a role name"
        if owner not in _OWNER_WORDS and owner not in regions:
            return f"owner must be one of {', '.join((*_OWNER_WORDS, *regions.codes))}"
        if matter != "*" and matters.get(matter) is None:
            return f"matter {matter!r} is not registered in matters.toml"
        if not catalog.covers(fields):
            return f"fields {fields!r} name nothing in catalog.toml"
        if effect == "allow" and level not in _LEVELS:
            return "a grant's clearance must be L1..L4"
        if effect == "deny" and level != "*":
            return "a deny line's clearance must be *"
        if effect not in ("allow", "deny"):
            return "effect must be allow or deny"
        return None
    if ptype == "p2":
        if len(values) != 2:
            return "a negative-list line has 2 values: owner, fields"
        # `*`: every region lists the fields, a region added later included.
        if values[0] != "*" and values[0] not in regions:
            return f"a negative list belongs to one region or *: {', '.join(regions.codes)}"
        if not catalog.covers(values[1]):
            return f"fields {values[1]!r} name nothing in catalog.toml"
        return None
    if ptype == "g":
        if len(values) != 2 or not all(_ROLE_RE.match(v) for v in values):
            return "an inheritance line is: g, role, inherited role"
        return None
    return f"unknown line type {ptype!r} (p, p2 or g)"
