"""Per-request dataloaders: one per (entity, key field, region), masking rows as they arrive.

A loader batches every key asked for in one tick of the event loop into one
``Source.fetch`` (one ``= ANY($1)`` query), so an operation touching N
entities at depth d costs at most one backend query per (entity, region,
level), whatever N is. The rows a batch returns are decided and masked by the
operation's policy in one pass (``OperationPolicy.apply``), then grouped by
their raw key; what a loader caches, and what resolvers see, is already safe
to return.

Each row keeps, beside its (possibly masked) unified fields, three private
keys the policy does not grade, for following links and ordering:
``_key`` (the raw identity: ID number, USCC or record id), ``_owner`` (the
region whose source returned it) and ``_order`` (a raw date to sort by).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiodataloader import DataLoader

from gateway.sources import Source
from gateway.types import RegionCode, Row
from policies import OperationPolicy

KEY = "_key"
OWNER = "_owner"
ORDER = "_order"


@dataclass(frozen=True, slots=True)
class LoadSpec:
    """What one family of loaders reads.

    Attributes:
        entity: the unified entity (``gateway/entities.py``).
        by: the field the keys are matched against.
        type_name: the GraphQL type the rows become (its grades apply).
        identity: the field that identifies a row (copied to ``_key``).
        order: a field to sort merged rows by (copied raw to ``_order``), if any.
    """

    entity: str
    by: str
    type_name: str
    identity: str
    order: str | None = None


PERSON = LoadSpec("person", "id_number", "NaturalPerson", "id_number")
RESIDENCES = LoadSpec("residence", "person_id", "Residence", "person_id", order="since")
SOCIAL_INSURANCE = LoadSpec(
    "social_insurance", "person_id", "SocialInsurance", "person_id", order="since"
)
ENTERPRISE = LoadSpec("enterprise", "uscc", "LegalPerson", "uscc")
REPRESENTED = LoadSpec("enterprise", "legal_rep_id", "LegalPerson", "uscc")
CREDIT = LoadSpec("credit_record", "subject_id", "CreditRecord", "id", order="decided_on")


class Loaders:
    """The loaders of one request, made on first use.

    Args:
        sources: the configured source of each region.
        policy: the operation's policy; rows are masked with it as they arrive.
        fields_of: the fields the operation selects on a GraphQL type.
    """

    def __init__(
        self,
        sources: Mapping[RegionCode, Source],
        policy: OperationPolicy,
        fields_of: Callable[[str], frozenset[str]],
    ) -> None:
        self.sources = sources
        self.policy = policy
        self.fields_of = fields_of
        self.batches = 0
        self._loaders: dict[tuple[LoadSpec, RegionCode], DataLoader] = {}

    def get(self, spec: LoadSpec, region: RegionCode) -> DataLoader | None:
        """The loader of ``spec`` rows kept by ``region``; None if no source serves it."""
        loader = self._loaders.get((spec, region))
        if loader is None:
            source = self.sources.get(region)
            if source is None:
                return None
            loader = DataLoader(_batch(self, spec, source))
            self._loaders[(spec, region)] = loader
        return loader

    async def many(self, spec: LoadSpec, region: RegionCode, key: str) -> list[Row]:
        """Every row of ``spec`` whose key field is ``key``, from one region."""
        loader = self.get(spec, region)
        return [] if loader is None else await loader.load(key)

    async def one(self, spec: LoadSpec, region: RegionCode, key: str) -> Row | None:
        """The row identified by ``key`` in its home region, or None."""
        rows = await self.many(spec, region, key)
        return rows[0] if rows else None


def _batch(loaders: Loaders, spec: LoadSpec, source: Source) -> Callable[[Sequence[str]], Any]:
    region = source.region

    async def load(keys: Sequence[str]) -> list[list[Row]]:
        raw = await source.fetch(spec.entity, spec.by, keys)
        loaders.batches += 1
        for row in raw:
            row[KEY] = row[spec.identity]
            row[OWNER] = region
            if spec.order is not None:
                row[ORDER] = row.get(spec.order) or ""
        shown = loaders.policy.apply(
            spec.type_name, region, raw, fields=loaders.fields_of(spec.type_name)
        )
        groups: dict[str, list[Row]] = {key: [] for key in keys}
        for original, row in zip(raw, shown, strict=True):
            group = groups.get(original[spec.by])
            if group is not None:
                group.append(row)
        return [groups[key] for key in keys]

    return load
