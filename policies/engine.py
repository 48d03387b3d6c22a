"""The policy engine: the policy in force, reloaded when its files change.

One engine per process, made at start-up and kept on the app (no globals).
Each operation calls ``begin(caller, matter_code)`` and gets an
``OperationPolicy`` bound to the snapshot in force at that moment.

Reloading: at most every ``reload_interval`` seconds (from ``begin`` or from
the ``watch`` task), the engine compares the files' sizes and modification
times with those of the snapshot in force; if they changed, it loads all four
files anew. A load that fails leaves the previous snapshot in force, logs the
error and shows it in ``status`` (for ``/readyz``); it is retried when the
files change again. With no valid snapshot at all, ``begin`` raises
``PolicyError``: the gateway never falls open.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.core.errors import ConfigError, PolicyError
from gateway.core.regions import RegionRegistry, shipped_regions
from gateway.core.types import Caller
from policies.decisions import FieldDecision
from policies.masks import build_rules
from policies.memo import DecisionMemo
from policies.operation import OperationPolicy
from policies.snapshot import FileSignature, PolicySnapshot, file_signature, load_snapshot

logger = logging.getLogger("deltagate.policies")

#: The policy files shipped with the gateway.
SHIPPED_POLICY_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyStatus:
    """The engine's health, for ``/readyz`` and logs.

    Attributes:
        ready: a valid policy is in force (without one every request is refused).
        version: the version of the policy in force.
        loaded_at: when it was loaded.
        error: why the latest load of changed files failed, if it did; the
            previous policy then stays in force until the files are fixed.
        error_at: when that load failed.
    """

    ready: bool
    version: str | None
    loaded_at: dt.datetime | None
    error: str | None
    error_at: dt.datetime | None

    @property
    def healthy(self) -> bool:
        """Ready, and the files on disk are the ones in force."""
        return self.ready and self.error is None

    def as_dict(self) -> dict[str, Any]:
        return {
            "ready": self.ready,
            "healthy": self.healthy,
            "version": self.version,
            "loadedAt": self.loaded_at.isoformat() if self.loaded_at else None,
            "error": self.error,
            "errorAt": self.error_at.isoformat() if self.error_at else None,
        }


#: Most (roles, matter) pairs ``begin`` keeps worked out (cleared when full).
_BEGUN_LIMIT = 1024


class PolicyEngine:
    """Holds the policy in force and starts per-operation policies.

    Args:
        directory: the folder with ``catalog.toml``, ``matters.toml``,
            ``model.conf`` and ``policy.csv``.
        mask_secret: the key of the ``HASH`` mask rule (see
            ``policies.masks.resolve_mask_secret``).
        reload_interval: seconds between checks of the files; 0 checks on every ``begin``.
        shared_cache_size: 0 (the default) decides afresh in each operation. A
            positive size also keeps decisions across operations (keyed by the
            caller's region, roles and matter; emptied on every reload) for up to
            that many entries, so a steady stream of similar requests consults
            Casbin almost never; and, as many per table, what operations work out
            of those decisions alike (``policies.memo``: masking plans, summary
            layouts), kept for the snapshot in force only. Decisions depend only
            on those keys and the files, so the answers are the same either way.
        clock: monotonic seconds (tests pass a fake).
        regions: the region registry: the owners policy lines may name, and the
            regions decisions are made for (default: the shipped four).

    Example::

        engine = PolicyEngine.from_directory(SHIPPED_POLICY_DIR, mask_secret=secret)
        policy = engine.begin(caller, request.headers.get("x-matter-code"))
    """

    def __init__(
        self,
        directory: Path | str,
        *,
        mask_secret: bytes | str,
        reload_interval: float = 2.0,
        shared_cache_size: int = 0,
        clock: Callable[[], float] = time.monotonic,
        regions: RegionRegistry | None = None,
    ) -> None:
        if reload_interval < 0:
            raise ConfigError("reload_interval must be 0 or more seconds")
        if shared_cache_size < 0:
            raise ConfigError("shared_cache_size must be 0 or more")
        secret = mask_secret.encode("utf-8") if isinstance(mask_secret, str) else mask_secret
        self.directory = Path(directory)
        self.reload_interval = reload_interval
        self.regions = shipped_regions() if regions is None else regions
        self._masks = build_rules(secret)
        self._clock = clock
        self._snapshot: PolicySnapshot | None = None
        self._failed: FileSignature | None = None
        self._error: str | None = None
        self._error_at: dt.datetime | None = None
        self._checked_at = clock()
        self._cache_size = shared_cache_size
        self._shared: dict[Any, FieldDecision] | None = {} if shared_cache_size else None
        # What ``begin`` works out of (roles, matter code) under one snapshot: the matter and
        # each role's use of it (a matter refused is not kept: it is worked out and refused
        # again, so no caller can fill this with codes of its choosing).
        self._begun: dict[tuple[tuple[str, ...], str | None], tuple[Any, Any]] = {}
        self._begun_for: PolicySnapshot | None = None
        self._memo: DecisionMemo | None = None

    @classmethod
    def from_directory(
        cls,
        path: Path | str,
        *,
        mask_secret: bytes | str,
        reload_interval: float = 2.0,
        shared_cache_size: int = 0,
        strict: bool = False,
        regions: RegionRegistry | None = None,
    ) -> PolicyEngine:
        """An engine with the directory's policy loaded.

        If the files are invalid, the engine starts without a policy (``status.ready``
        is False, every ``begin`` raises ``PolicyError``) and keeps trying as the
        files change; with ``strict`` it raises ``ConfigError`` instead, for
        command-line tools.
        """
        engine = cls(
            path,
            mask_secret=mask_secret,
            reload_interval=reload_interval,
            shared_cache_size=shared_cache_size,
            regions=regions,
        )
        engine.reload_if_changed(force=True)
        if strict and engine._snapshot is None:
            raise ConfigError(f"the policy cannot be loaded: {engine._error}")
        return engine

    @property
    def snapshot(self) -> PolicySnapshot:
        """The policy in force; ``PolicyError`` if there is none."""
        if self._snapshot is None:
            raise PolicyError("no valid access policy is loaded")
        return self._snapshot

    @property
    def status(self) -> PolicyStatus:
        snap = self._snapshot
        return PolicyStatus(
            ready=snap is not None,
            version=snap.version if snap else None,
            loaded_at=snap.loaded_at if snap else None,
            error=self._error,
            error_at=self._error_at,
        )

    def begin(self, caller: Caller, matter_code: str | None) -> OperationPolicy:
        """Start one operation's policy: check the matter, bind the policy in force.

        Raises:
            Forbidden: the matter code is not registered, or none of the caller's
                roles (inherited ones included) may use it.
            PolicyError: no valid policy is loaded.
        """
        if self._clock() - self._checked_at >= self.reload_interval:
            self.reload_if_changed()
        snap = self.snapshot
        if self._begun_for is not snap:
            self._begun, self._begun_for = {}, snap
        key = (tuple(caller.roles), matter_code)
        found = self._begun.get(key)
        if found is None:
            roles = tuple(dict.fromkeys(caller.roles))
            inherited = {role: snap.rules.inherited_roles(role) for role in roles}
            matter = snap.matters.resolve(matter_code, frozenset().union(*inherited.values()))
            # A role counts the matter only if it (or a role it inherits) may use it.
            role_matters = tuple(
                (
                    role,
                    matter.code if matter and not matter.roles.isdisjoint(inherited[role]) else "",
                )
                for role in roles
            )
            if len(self._begun) >= _BEGUN_LIMIT:
                self._begun.clear()
            found = self._begun[key] = (matter, role_matters)
        matter, role_matters = found
        return OperationPolicy(
            snapshot=snap,
            caller=caller,
            matter=matter,
            role_matters=role_matters,
            shared=self._shared_cache(),
            memo=self._memo_for(snap),
        )

    def reload_if_changed(self, *, force: bool = False) -> bool:
        """Load the files if they changed since the policy in force; True if a new one is in force.

        A failed load is logged and kept in ``status``; the same files are not
        tried again until they change.
        """
        self._checked_at = self._clock()
        signature = file_signature(self.directory)
        current = self._snapshot.signature if self._snapshot else None
        if not force and signature == current:
            # The files are back to the version in force (a bad edit undone): nothing is pending.
            self._failed = None
            self._error = self._error_at = None
            return False
        if not force and signature == self._failed:
            return False
        try:
            snap = load_snapshot(self.directory, masks=self._masks, regions=self.regions)
        except Exception as exc:  # any failure keeps the old policy; never fall open
            self._failed = signature
            self._error = (
                str(exc) if isinstance(exc, ConfigError) else f"{type(exc).__name__}: {exc}"
            )
            self._error_at = dt.datetime.now(dt.UTC)
            if self._snapshot is None:
                logger.error(
                    "access policy cannot be loaded; refusing all requests: %s", self._error
                )
            else:
                logger.error(
                    "access policy reload failed; version %s stays in force: %s",
                    self._snapshot.version,
                    self._error,
                )
            return False
        previous = self._snapshot.version if self._snapshot else None
        self._snapshot = snap
        self._failed = None
        self._error = self._error_at = None
        if self._shared is not None:
            self._shared = {}
        self._memo = None  # the old snapshot's work: ``_memo_for`` starts the new one's
        logger.info("access policy version %s in force (was %s)", snap.version, previous)
        return True

    async def watch(self, on_status: Callable[[PolicyStatus], None] | None = None) -> None:
        """Check the files every ``reload_interval`` seconds until cancelled.

        Optional: ``begin`` checks too, but this keeps ``status`` current while
        no requests arrive. Run it as a task from the app's lifespan.
        ``on_status`` is given the status at the start and after every check
        (the edge reports the version in force in its metrics).
        """
        while True:
            if on_status is not None:
                on_status(self.status)
            await asyncio.sleep(max(self.reload_interval, 0.1))
            self.reload_if_changed()

    def _memo_for(self, snap: PolicySnapshot) -> DecisionMemo | None:
        """The memo of ``snap`` (a new one for a snapshot just put in force); None when
        nothing is kept across operations."""
        if not self._cache_size:
            return None
        if self._memo is None or self._memo.snapshot is not snap:
            self._memo = DecisionMemo(snap, self._cache_size)
        return self._memo

    def _shared_cache(self) -> dict[Any, FieldDecision] | None:
        if self._shared is None:
            return None
        if len(self._shared) >= self._cache_size:
            self._shared.clear()  # simple bound; refilling costs one operation's decisions
        return self._shared
