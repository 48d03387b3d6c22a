"""The shipped policy, a private copy of it to edit, and callers to ask it for."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gateway.core.types import Caller
from policies import SHIPPED_POLICY_DIR, PolicyEngine
from policies.snapshot import POLICY_FILES

MASK_SECRET = b"policy-tests-mask-secret-0123456789abcdef"


def caller(region: str, *roles: str, app: str = "test-app") -> Caller:
    return Caller(app=app, region=region, roles=roles)


@pytest.fixture(scope="module")
def engine() -> PolicyEngine:
    """The shipped policy, loaded once per module."""
    return PolicyEngine.from_directory(SHIPPED_POLICY_DIR, mask_secret=MASK_SECRET, strict=True)


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    """A copy of the shipped policy files that a test may edit."""
    target = tmp_path / "policies"
    target.mkdir()
    for name in POLICY_FILES:
        shutil.copy(SHIPPED_POLICY_DIR / name, target / name)
    return target


def append(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(text)
