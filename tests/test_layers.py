"""The layers hold: no module imports a layer above its own (README, "Architecture").

Every import in the packages is read from the source (``TYPE_CHECKING`` imports too: a
type that needs a higher layer is a dependency on it all the same).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Each layer by rank; a module may import its own layer and any of lower rank.
LAYERS: dict[str, int] = {
    "gateway.core": 0,
    "gateway.sources": 1,
    "gateway.audit": 1,
    "gateway.telemetry": 1,
    "gateway.synthetic": 2,
    "policies": 2,
    "resolvers": 3,
    "schema": 4,
    "gateway.edge": 5,
}
#: Layers of the same rank that must not lean on each other either.
SIBLINGS_APART = {"gateway.sources", "gateway.audit", "gateway.telemetry"}


def layer_of(module: str) -> str | None:
    found = [name for name in LAYERS if module == name or module.startswith(f"{name}.")]
    return max(found, key=len) if found else None


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def violations(paths: list[Path]) -> list[str]:
    return [wrong for path in paths for wrong in violations_in(path, as_module=path)]


def violations_in(read: Path, *, as_module: Path) -> list[str]:
    """The imports of the file ``read`` that go up from where ``as_module`` stands."""
    own = layer_of(module_name(as_module))
    if own is None:
        return []
    wrong = []
    for line, target in imports(read):
        other = layer_of(target)
        if other is None or other == own:
            continue
        if LAYERS[other] > LAYERS[own] or (
            LAYERS[other] == LAYERS[own] and {own, other} <= SIBLINGS_APART
        ):
            wrong.append(f"{as_module.relative_to(ROOT)}:{line} {own} imports {target}")
    return wrong


def package_files() -> list[Path]:
    return [
        path
        for package in ("gateway", "policies", "resolvers", "schema")
        for path in sorted((ROOT / package).rglob("*.py"))
    ]


def test_no_module_imports_a_layer_above_its_own() -> None:
    assert violations(package_files()) == []


def test_every_module_is_in_a_layer() -> None:
    unplaced = [
        str(path.relative_to(ROOT))
        for path in package_files()
        if layer_of(module_name(path)) is None and module_name(path) != "gateway"
    ]
    assert unplaced == []


@pytest.mark.parametrize(
    ("module", "line"),
    [
        ("gateway/core/types.py", "from gateway.edge.settings import Settings"),
        ("policies/masks.py", "from resolvers.context import GatewayContext"),
        ("gateway/audit/postgres.py", "from gateway.telemetry.spans import Telemetry"),
    ],
)
def test_the_rule_catches_an_import_that_goes_up(tmp_path: Path, module: str, line: str) -> None:
    # The same file with one more import, placed where it would be.
    path = ROOT / module
    copy = tmp_path / "copy.py"
    copy.write_text(f"{path.read_text(encoding='utf-8')}\n{line}\n", encoding="utf-8")
    found = violations_in(copy, as_module=path)
    assert len(found) == 1
    assert line.split()[1] in found[0]
