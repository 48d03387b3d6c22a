"""One consistent load of the policy directory.

The four files (``catalog.toml``, ``matters.toml``, ``model.conf``,
``policy.csv``) are read and checked together: a snapshot exists only if all
four are valid and agree with each other. The engine swaps whole snapshots,
and an operation keeps the snapshot it began with, so no request ever sees half
of an edit.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gateway.core.errors import ConfigError
from gateway.core.regions import RegionRegistry
from policies.grades import Catalog, load_catalog
from policies.masks import MaskFunction
from policies.matters import MatterRegistry, load_matters
from policies.rules import PolicyRules, load_rules

#: The files of a policy directory, in the order they are read.
POLICY_FILES: tuple[str, ...] = ("catalog.toml", "matters.toml", "model.conf", "policy.csv")

#: What identifies a version of the files on disk without reading them.
FileSignature = tuple[tuple[str, int, int, int], ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicySnapshot:
    """The policy in force.

    Attributes:
        catalog: field grades and mask rules.
        matters: the registered matters.
        rules: the Casbin enforcer and its checked lines.
        masks: the mask rules by name, ``HASH`` bound to the secret.
        version: the first 12 hex characters of a SHA-256 over the four files,
            so an audit record can name the policy that decided.
        loaded_at: when the snapshot was loaded (UTC).
        signature: the files' sizes and modification times when they were read.
        regions: the region registry the lines were checked against (owners).
    """

    catalog: Catalog
    matters: MatterRegistry
    rules: PolicyRules
    masks: Mapping[str, MaskFunction]
    version: str
    loaded_at: dt.datetime
    signature: FileSignature
    regions: RegionRegistry


def file_signature(directory: Path) -> FileSignature:
    """Size, modification time and inode of each policy file (-1s for a missing one).

    A changed signature is what makes the engine reload; the inode catches an
    editor that replaces a file with one of the same size and time.
    """
    entries = []
    for name in POLICY_FILES:
        try:
            st = os.stat(directory / name)
            entries.append((name, st.st_size, st.st_mtime_ns, st.st_ino))
        except OSError:
            entries.append((name, -1, -1, -1))
    return tuple(entries)


def load_snapshot(
    directory: Path, *, masks: Mapping[str, MaskFunction], regions: RegionRegistry
) -> PolicySnapshot:
    """Read and check the four files; the first problem is a ``ConfigError`` naming it."""
    signature = file_signature(directory)
    catalog = load_catalog(directory / "catalog.toml")
    matters = load_matters(directory / "matters.toml")
    rules = load_rules(
        directory / "model.conf",
        directory / "policy.csv",
        catalog=catalog,
        matters=matters,
        regions=regions,
    )
    digest = hashlib.sha256()
    try:
        for name in POLICY_FILES:
            digest.update(name.encode())
            digest.update((directory / name).read_bytes())
    except OSError as exc:
        raise ConfigError(f"policy files changed while loading: {exc}") from exc
    return PolicySnapshot(
        catalog=catalog,
        matters=matters,
        rules=rules,
        masks=masks,
        version=digest.hexdigest()[:12],
        loaded_at=dt.datetime.now(dt.UTC),
        signature=signature,
        regions=regions,
    )
