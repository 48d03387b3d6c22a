"""GraphiQL's vendored files: exactly what the manifest says, each package with its licence."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from gateway.edge.graphiql import STATIC

VENDOR = STATIC / "vendor"
MANIFEST = json.loads((VENDOR / "manifest.json").read_text(encoding="utf-8"))
LOCK = Path(__file__).resolve().parents[3] / "tools" / "graphiql" / "package-lock.json"


@pytest.mark.parametrize("entry", MANIFEST["files"], ids=lambda entry: entry["file"])
def test_each_vendored_file_has_the_size_and_sha256_of_the_manifest(entry: dict) -> None:
    data = (VENDOR / entry["file"]).read_bytes()
    assert len(data) == entry["size"]
    assert hashlib.sha256(data).hexdigest() == entry["sha256"]


def test_the_vendor_folder_holds_nothing_the_manifest_does_not_name() -> None:
    on_disk = {p.relative_to(VENDOR).as_posix() for p in VENDOR.rglob("*") if p.is_file()}
    assert on_disk == {entry["file"] for entry in MANIFEST["files"]} | {"manifest.json"}


def test_each_package_ships_its_licence_and_the_version_the_lock_file_pins() -> None:
    lock = json.loads(LOCK.read_text(encoding="utf-8"))["packages"]
    assert set(MANIFEST["packages"]) == {
        "react",
        "react-dom",
        "graphiql",
        "@graphiql/plugin-explorer",
    }
    for name, package in MANIFEST["packages"].items():
        assert package["version"] == lock[f"node_modules/{name}"]["version"], name
        assert package["license"] == "MIT", name
        text = (VENDOR / package["licenseFile"]).read_text(encoding="utf-8")
        assert "Permission is hereby granted, free of charge" in text, name
    bundled = (VENDOR / "licenses" / "THIRD-PARTY-LICENSES.txt").read_text(encoding="utf-8")
    for key, meta in lock.items():
        if key:  # every package npm installed for the builds is named with its licence
            assert f"{key.rsplit('node_modules/', 1)[1]}@{meta['version']}" in bundled


def test_the_vendored_builds_are_the_minified_ones_and_stay_small() -> None:
    builds = [entry for entry in MANIFEST["files"] if not entry["file"].startswith("licenses/")]
    assert all(".min." in e["file"] or "plugin-explorer" in e["file"] for e in builds)
    assert sum(entry["size"] for entry in MANIFEST["files"]) < 2 * 1024 * 1024
