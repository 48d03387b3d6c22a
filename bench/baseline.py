"""The gateway with parts left out, to measure what each costs (the benchmark's baselines).

    python -m bench.baseline --config gateway.toml --port 8003 [--no-audit] [--no-policy]
                             [--executor strawberry]

Everything else is the gateway as ``deltagate serve`` builds it from the same
configuration and environment (tracing is switched off the standard way,
``OTEL_TRACES_EXPORTER=none``, by the variant's environment). The switches
exist only here, on purpose: a gateway that skips its audit write or its
policy must never serve real callers, so the product has no such setting.

- ``--no-audit``: no audit event is written (the step returns at once).
- ``--no-policy``: no decision is taken and nothing is masked: every field is
  released as stored, every link followed, the summary is empty. The answers
  differ from the gateway's, so the benchmark does not compare their data.
- ``--executor strawberry``: every operation on Strawberry's per-field
  executor instead of the direct executor of planned operations.
"""

from __future__ import annotations

import argparse
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from bench.serving import serve
from gateway.core.types import Caller, Row
from gateway.edge.app import Gateway
from policies import OperationPolicy, PolicyEngine
from policies.operation import Changes


class Unaudited(Gateway):
    """The gateway without its audit step."""

    async def _audit(self, *args: Any) -> None:
        return None


class Unrestricted(OperationPolicy):
    """An operation policy that releases everything as stored, without deciding anything."""

    __slots__ = ()

    def allows(self, coordinate: str, owner_region: str) -> bool:
        return True

    def apply(
        self,
        type_name: str,
        owner_region: str,
        rows: Sequence[Row],
        *,
        fields: Collection[str] | None = None,
    ) -> list[Row]:
        return list(rows)

    def record(
        self,
        type_name: str,
        owner_region: str,
        rows: Sequence[Row],
        *,
        fields: Collection[str] | None = None,
    ) -> None:
        return None

    def changes(
        self,
        type_name: str,
        owner_region: str,
        row: Row,
        *,
        fields: Collection[str] | None = None,
    ) -> Changes:
        return _NONE

    def summary(self, *, include_clear: bool = False) -> dict[str, Any]:
        return {"policyVersion": self.policy_version, "matter": self.matter_code, "fields": []}


#: Nothing masked or withheld.
_NONE = Changes({})


class UnrestrictedEngine:
    """The policy engine, beginning operations with an ``Unrestricted`` policy.

    The matter is still checked (a bad one is refused as by the gateway).
    """

    def __init__(self, engine: PolicyEngine) -> None:
        self._engine = engine

    def begin(self, caller: Caller, matter_code: str | None) -> OperationPolicy:
        policy = self._engine.begin(caller, matter_code)
        # The engine's cache of decisions too: without it every decision the baseline still
        # takes (a look-up's, a filter's kind) was evaluated afresh on every request, and the
        # baseline without policy ran slower than the gateway with it.
        return Unrestricted(
            snapshot=policy.snapshot,
            caller=caller,
            matter=policy.matter,
            role_matters=policy.role_matters,
            shared=policy._shared,
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)


def main() -> None:

    from gateway.edge.app import create_app
    from gateway.edge.settings import load_settings
    from schema import build_schema

    parser = argparse.ArgumentParser(prog="python -m bench.baseline", description=__doc__)
    parser.add_argument("--config", type=Path, help="the gateway's configuration file")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8003)
    parser.add_argument("--no-audit", action="store_true", help="write no audit event")
    parser.add_argument("--no-policy", action="store_true", help="decide and mask nothing")
    parser.add_argument("--executor", choices=("direct", "strawberry"), default="direct")
    args = parser.parse_args()
    settings = load_settings(args.config)
    gateway = (Unaudited if args.no_audit else Gateway).from_settings(settings)
    if args.no_policy:
        gateway.policy = UnrestrictedEngine(gateway.policy)  # type: ignore[assignment]
    if args.executor == "strawberry":
        gateway.schema = build_schema(
            direct=False, extensions=[], hide_suggestions=settings.production
        )
    serve(create_app(gateway), args.host, args.port)


if __name__ == "__main__":
    main()
