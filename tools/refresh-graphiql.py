"""Refresh the GraphiQL files the gateway serves itself (``make graphiql-assets``).

    python tools/refresh-graphiql.py

Government extranets are cut off from the internet, so GraphiQL cannot come from a CDN: the
browser builds are committed under ``gateway/edge/static/vendor/``. This script installs the
exact versions pinned in ``tools/graphiql/package-lock.json`` from the npm registry
(``npm ci``, no install scripts), copies the builds GraphiQL needs with each package's licence,
writes the licences of everything bundled into them, and rewrites ``manifest.json`` (package,
version, file, size, SHA-256), which ``tests/gateway/edge/test_graphiql_assets.py`` holds the
files to. To move to other versions, edit ``tools/graphiql/package.json``, run
``npm install --package-lock-only`` there, then this script.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NPM_PROJECT = ROOT / "tools" / "graphiql"
MODULES = NPM_PROJECT / "node_modules"
VENDOR = ROOT / "gateway" / "edge" / "static" / "vendor"

# (package, file in the package, name served) for the builds the page loads, in load order.
# Minified UMD builds: they need no bundler and set the globals graphiql-init.js uses
# (React, ReactDOM, GraphiQL, GraphiQLPluginExplorer).
BUILDS = [
    ("react", "umd/react.production.min.js", "react.production.min.js"),
    ("react-dom", "umd/react-dom.production.min.js", "react-dom.production.min.js"),
    ("graphiql", "graphiql.min.js", "graphiql.min.js"),
    ("graphiql", "graphiql.min.css", "graphiql.min.css"),
    ("@graphiql/plugin-explorer", "dist/index.umd.js", "plugin-explorer.umd.js"),
    ("@graphiql/plugin-explorer", "dist/style.css", "plugin-explorer.css"),
]

# @graphiql/plugin-explorer's npm package carries no LICENSE file; it is MIT (its
# package.json) and lives in the graphql/graphiql repository, whose LICENSE graphiql ships.
LICENSE_FROM = {"@graphiql/plugin-explorer": "graphiql"}

LICENSE_NAMES = ("LICENSE", "LICENSE.md", "LICENSE.txt", "LICENCE", "license", "COPYING")


def _license_text(package_dir: Path) -> str | None:
    for name in LICENSE_NAMES:
        if (package_dir / name).is_file():
            return (package_dir / name).read_text(encoding="utf-8")
    return None


def _package_json(name: str) -> dict[str, object]:
    return json.loads((MODULES / name / "package.json").read_text(encoding="utf-8"))


def _entry(path: Path, package: str, version: str, source: str) -> dict[str, object]:
    data = path.read_bytes()
    return {
        "file": path.relative_to(VENDOR).as_posix(),
        "package": package,
        "version": version,
        "source": source,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def _third_party() -> str:
    """Every package npm installed for these builds, its licence and its licence text.

    The builds bundle their dependencies (CodeMirror, markdown-it, Radix, graphql-js, ...);
    this is a superset of what they contain, from the lock file, so nothing bundled is missed.
    """
    lock = json.loads((NPM_PROJECT / "package-lock.json").read_text(encoding="utf-8"))
    parts = []
    for key, meta in sorted(lock["packages"].items()):
        if not key:
            continue
        name = key.rsplit("node_modules/", 1)[1]
        text = _license_text(NPM_PROJECT / key)
        header = f"{name}@{meta['version']} ({meta.get('license', 'no licence field')})"
        body = text or "(the npm package carries no licence file; licence as named above)\n"
        parts.append(f"{'=' * 78}\n{header}\n{'=' * 78}\n{body.rstrip()}\n")
    return "\n".join(parts)


def main() -> int:
    subprocess.run(
        ["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=NPM_PROJECT, check=True
    )
    if VENDOR.exists():
        shutil.rmtree(VENDOR)
    (VENDOR / "licenses").mkdir(parents=True)
    files: list[dict[str, object]] = []
    packages: dict[str, dict[str, object]] = {}
    for package, source, served in BUILDS:
        meta = _package_json(package)
        version = str(meta["version"])
        shutil.copyfile(MODULES / package / source, VENDOR / served)
        files.append(_entry(VENDOR / served, package, version, source))
        if package in packages:
            continue
        text = _license_text(MODULES / LICENSE_FROM.get(package, package))
        if text is None:
            raise SystemExit(f"no licence file for {package}")
        license_path = VENDOR / "licenses" / f"{package.lstrip('@').replace('/', '-')}.LICENSE"
        license_path.write_text(text, encoding="utf-8")
        files.append(_entry(license_path, package, version, "LICENSE"))
        packages[package] = {
            "version": version,
            "license": meta.get("license"),
            "licenseFile": license_path.relative_to(VENDOR).as_posix(),
        }
    bundled = VENDOR / "licenses" / "THIRD-PARTY-LICENSES.txt"
    bundled.write_text(_third_party(), encoding="utf-8")
    files.append(_entry(bundled, "(bundled dependencies)", "", "package-lock.json"))
    manifest = {"packages": packages, "files": files}
    (VENDOR / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    total = sum(int(str(f["size"])) for f in files)
    print(f"vendored {len(files)} files, {total / 1024:.0f} KiB, into {VENDOR.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
