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

Every batch also notes the data subjects of its rows (the ID numbers and USCCs
whose records were read), for the operation's audit event, and, when tracing
records, runs in a span of its own (entity, region, key and row counts), which
also stands for the batch's one backend query.

An executor that gathers a whole level's keys (``schema.direct``) reads every
entity a level needs from one region in one round trip (``read_many``, through
``Source.fetch_many``): a person's residences and social insurance from each
region together, one query per region instead of two. It also knows, from the
operation's plan, which fields each read needs (``columns``): the fields the
operation selects, and what the gateway itself reads of a row (``LoadSpec.needs``).
The loaders, used where the fields are not known, read every field. Such an
executor may also take the rows raw (``masked=False``): decided and counted by
the policy as masking them would be, tagged as ever, and masked value by value
as it copies them into the response, so a row is copied once, not twice.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from aiodataloader import DataLoader, Loader, dispatch_queue

from gateway.core.entities import ENTITY_FIELDS
from gateway.core.types import RegionCode, Row
from gateway.sources import Source
from policies import OperationPolicy
from policies.decisions import Decision
from policies.grades import NATURAL_PERSON

if TYPE_CHECKING:
    from gateway.telemetry.spans import SpanRecorder

KEY = "_key"
OWNER = "_owner"
ORDER = "_order"
KIND = "_kind"
#: Whether a record is about a person or an enterprise: the policy grades by it.
SUBJECT_TYPE = "subject_type"


@dataclass(frozen=True, slots=True, eq=False)
class LoadSpec:
    """What one family of loaders reads.

    The specs are this module's constants, and each is its own identity: compared and
    hashed as an object, not field by field (a level of fifty enterprises keys its reads
    by spec a thousand times, and hashing eight fields each time was a twentieth of it).

    Attributes:
        entity: the unified entity (``gateway/core/entities.py``).
        by: the field the keys are matched against.
        type_name: the GraphQL type the rows become (its grades apply).
        identity: the field that identifies a row (copied to ``_key``).
        order: a field to sort merged rows by (copied raw to ``_order``), if any.
        subject: the field naming whose data a row is (an ID number or USCC),
            if not ``identity``; the audit event lists it.
        lookup: the coordinate of the key field a root field looks rows up by;
            a look-up is decided as a use of that field (``OperationPolicy.looks_up``).
        kind: a field that list arguments filter on (``kinds``), copied raw to
            ``_kind`` where the caller may see it in clear, so that a filter works
            whatever the operation selects and tells nothing the caller may not see.
    """

    entity: str
    by: str
    type_name: str
    identity: str
    order: str | None = None
    subject: str | None = None
    lookup: str | None = None
    kind: str | None = None

    @property
    def needs(self) -> frozenset[str]:
        """The fields the gateway reads of every row, whatever the operation selects: the
        key it is grouped by, the identity, the audit subject, the order, the kind, and the
        subject type the policy grades credit records by (``OperationPolicy.apply``)."""
        own = {self.by, self.identity, self.subject, self.order, self.kind}
        if SUBJECT_TYPE in ENTITY_FIELDS[self.entity]:
            own.add(SUBJECT_TYPE)
        return frozenset(name for name in own if name is not None)

    def columns(self, fields: Iterable[str]) -> frozenset[str]:
        """The fields to read for an operation whose rows of this spec read ``fields``."""
        return self.needs.union(fields)


PERSON = LoadSpec(
    "person", "id_number", "NaturalPerson", "id_number", lookup="NaturalPerson.idNumber"
)
RESIDENCES = LoadSpec("residence", "person_id", "Residence", "person_id", order="since")
SOCIAL_INSURANCE = LoadSpec(
    "social_insurance", "person_id", "SocialInsurance", "person_id", order="since"
)
ENTERPRISE = LoadSpec("enterprise", "uscc", "LegalPerson", "uscc", lookup="LegalPerson.uscc")
REPRESENTED = LoadSpec("enterprise", "legal_rep_id", "LegalPerson", "uscc")
CREDIT = LoadSpec(
    "credit_record",
    "subject_id",
    "CreditRecord",
    "id",
    order="decided_on",
    subject="subject_id",
    kind="kind",
)


class BatchScheduler:
    """Sends a request's batches level by level: all loaders together, once the request is quiet.

    aiodataloader sends each loader's batch one step of the event loop after
    its first key. Across regions that splits a level: the Shanghai persons
    come back first, their credit records go out, and the Jiangsu persons'
    credit records follow in a query of their own. Here no batch is sent while
    another is in flight (a batch in flight may yet add keys to any loader),
    nor until the event loop has run a few steps with no new key (resolvers
    reach their loaders through a few layers of tasks). So each (entity,
    region) is read once per level of the operation, whatever the row counts.
    """

    #: Event-loop steps without a new key before the waiting batches are sent.
    QUIET_STEPS = 2

    def __init__(self) -> None:
        self.in_flight = 0
        self._waiting: dict[int, DataLoader] = {}
        self._new_keys = False
        self._quiet = 0
        self._scheduled = False

    def enqueued(self, loader: DataLoader) -> None:
        self._waiting[id(loader)] = loader
        self._new_keys = True
        self._schedule()

    def finished(self) -> None:
        self.in_flight -= 1
        if self._waiting:
            self._schedule()

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        if self.in_flight:
            return  # the batch in flight reschedules when it finishes
        if self._new_keys or self._quiet + 1 < self.QUIET_STEPS:
            self._quiet = 0 if self._new_keys else self._quiet + 1
            self._new_keys = False
            self._schedule()
            return
        self._quiet = 0
        waiting = list(self._waiting.values())
        self._waiting.clear()
        for loader in waiting:
            if loader._queue:
                self.in_flight += 1
                dispatch_queue(loader)


class _ScheduledLoader(DataLoader):
    """A DataLoader whose batches the request's ``BatchScheduler`` sends."""

    def __init__(self, batch_load_fn: Callable[..., Any], scheduler: BatchScheduler) -> None:
        super().__init__(batch_load_fn)
        self.scheduler = scheduler

    def do_resolve_reject(self, key: Any, future: asyncio.Future[Any]) -> None:
        self._queue.append(Loader(key=key, future=future))
        self.scheduler.enqueued(self)


class Loaders:
    """The loaders of one request, made on first use.

    Args:
        sources: the configured source of each region.
        policy: the operation's policy; rows are masked with it as they arrive.
        fields_of: the fields the operation selects on a GraphQL type.
        batching: False sends one query per key (the benchmark's naive baseline).
        spans: makes a span per batch; None makes none.
        upper: the upper-level source, read under its own name for keys no
            configured region holds (never part of a fan-out).

    Attributes:
        subjects: the ID numbers and USCCs whose records were read (in first-read order).
    """

    def __init__(
        self,
        sources: Mapping[RegionCode, Source],
        policy: OperationPolicy,
        fields_of: Callable[[str], frozenset[str]],
        *,
        batching: bool = True,
        spans: SpanRecorder | None = None,
        upper: Source | None = None,
    ) -> None:
        self.sources = sources
        self.upper = upper
        self.batching = batching
        self.policy = policy
        self.fields_of = fields_of
        self.spans = spans
        self.batches = 0
        self.subjects: dict[str, None] = {}
        self.scheduler = BatchScheduler()
        self._loaders: dict[tuple[LoadSpec, RegionCode], DataLoader] = {}

    def close(self) -> None:
        """Let go of the request's loaders, so that what they hold is freed as the request ends."""
        self._loaders.clear()
        self.fields_of = _selects_nothing

    def get(self, spec: LoadSpec, region: RegionCode) -> DataLoader | None:
        """The loader of ``spec`` rows kept by ``region``; None if no source serves it."""
        loader = self._loaders.get((spec, region))
        if loader is None:
            source = self._source(region)
            if source is None:
                return None
            if self.batching:
                loader = _ScheduledLoader(_batch(self, spec, source, True), self.scheduler)
            else:  # one query per key: only for measuring what batching buys
                loader = DataLoader(_batch(self, spec, source, False), batch=False)
            self._loaders[(spec, region)] = loader
        return loader

    def _source(self, region: RegionCode) -> Source | None:
        source = self.sources.get(region)
        if source is None and self.upper is not None and region == self.upper.region:
            return self.upper
        return source

    def many(self, spec: LoadSpec, region: RegionCode, key: str) -> Awaitable[list[Row]]:
        """Every row of ``spec`` whose key field is ``key``, from one region.

        Not a coroutine on purpose: the key joins the loader's batch now, in the
        caller's step of the event loop, not in a task scheduled after the batch
        went out (which would split one level's keys over two queries).
        """
        loader = self.get(spec, region)
        if loader is None:
            done: asyncio.Future[list[Row]] = asyncio.get_running_loop().create_future()
            done.set_result([])
            return done
        return cast("Awaitable[list[Row]]", loader.load(key))

    def everywhere(self, spec: LoadSpec, key: str) -> Awaitable[list[list[Row] | BaseException]]:
        """The rows for ``key`` from every configured region, one entry per region in order.

        A region that failed gives its exception in place of rows, so the others still count.
        """
        return asyncio.gather(
            *(self.many(spec, region, key) for region in self.sources), return_exceptions=True
        )

    async def read(
        self, spec: LoadSpec, region: RegionCode, keys: Sequence[str]
    ) -> list[list[Row]]:
        """Read ``keys`` from one region now, in one query, without the loaders.

        For an executor that already gathered a whole level's keys; the rows are
        masked and grouped exactly as a loader's batch is.
        """
        [rows] = await self.read_many(region, [(spec, keys)])
        return rows

    async def read_many(
        self,
        region: RegionCode,
        reads: Sequence[tuple[LoadSpec, Sequence[str]]],
        columns: Mapping[LoadSpec, frozenset[str]] | None = None,
        *,
        masked: bool = True,
    ) -> list[list[list[Row]]]:
        """Read several specs' keys from one region now, in one round trip, without the loaders.

        Per read, its keys' rows, masked and grouped exactly as a loader's batch is.
        ``columns``: the fields to read per spec (``LoadSpec.columns``; every field for a
        spec it does not list). ``masked=False``: the rows are decided and counted but
        left raw (``shown``), for an executor that masks each value as it copies it.
        """
        out: list[list[list[Row]]] = [[] for _ in reads]
        source = self._source(region)
        asked = [(index, spec, keys) for index, (spec, keys) in enumerate(reads) if keys]
        if source is None or not asked:
            return [[[] for _ in keys] for _, keys in reads]
        with self.span([spec for _, spec, _ in asked], region, reads) as span:
            wanted = [None if columns is None else columns.get(spec) for _, spec, _ in asked]
            if len(asked) == 1:  # one look-up: the source's own fetch, as a loader's batch
                _, spec, keys = asked[0]
                raw = [await source.fetch(spec.entity, spec.by, keys, columns=wanted[0])]
            else:
                lookups = [(spec.entity, spec.by, keys) for _, spec, keys in asked]
                raw = await source.fetch_many(lookups, columns=wanted)
            self.batches += 1
            if span is not None:
                span.set_attribute("deltagate.batch.rows", sum(len(rows) for rows in raw))
            for (index, spec, keys), rows in zip(asked, raw, strict=True):
                out[index] = self.shown(spec, region, keys, rows, masked=masked)
            return out

    def span(
        self,
        specs: Sequence[LoadSpec],
        region: RegionCode,
        reads: Sequence[tuple[LoadSpec, Sequence[str]]],
    ) -> Any:
        """The span of one batch, and of its backend query (a no-op when nothing is recorded).

        Several specs read in one round trip are one batch, named by their entities joined
        by ``+`` as the query's observer names them.
        """
        if self.spans is None:
            return contextlib.nullcontext()
        entity = "+".join(spec.entity for spec in specs)
        return self.spans.span(
            f"batch {entity}",
            {
                "deltagate.kind": "loader",
                "deltagate.entity": entity,
                "deltagate.lookup.field": "+".join(spec.by for spec in specs),
                "deltagate.region": region,
                "deltagate.batch.keys": sum(len(keys) for _, keys in reads),
            },
            batch=True,
        )

    def shown(
        self,
        spec: LoadSpec,
        region: RegionCode,
        keys: Sequence[str],
        raw: list[Row],
        *,
        masked: bool = True,
    ) -> list[list[Row]]:
        """Tag, mask (the operation's policy, in bulk) and group a batch's rows by key.

        ``masked=False`` leaves the rows raw, tagged in place: decided and counted as
        masking them would be (``OperationPolicy.record``), for an executor that masks
        each value as it copies it into the response (``schema.direct``). Nothing else
        may then read their graded fields; the private keys are set as ever.
        """
        subjects = self.subjects
        subject = spec.subject or spec.identity
        for row in raw:
            row[KEY] = row[spec.identity]
            row[OWNER] = region
            subjects[row[subject]] = None
            if spec.order is not None:
                row[ORDER] = row.get(spec.order) or ""
        fields = self.fields_of(spec.type_name)
        if masked:
            shown = self.policy.apply(spec.type_name, region, raw, fields=fields)
        else:
            self.policy.record(spec.type_name, region, raw, fields=fields)
            shown = raw
        if spec.kind is not None:
            self._keep_kind(spec, spec.kind, region, raw, shown)
        groups: dict[str, list[Row]] = {key: [] for key in keys}
        by = spec.by
        for original, row in zip(raw, shown, strict=True):
            group = groups.get(original[by])
            if group is not None:
                group.append(row)
        return [groups[key] for key in keys]

    def _keep_kind(
        self,
        spec: LoadSpec,
        kind: str,
        region: RegionCode,
        raw: Sequence[Row],
        shown: Sequence[Row],
    ) -> None:
        """Give each shown row its raw kind (``_kind``) where the caller may see it in clear.

        A filter on the masked ``kind`` would drop every row whose kind the
        operation did not select; a filter on the raw kind of a row whose kind is
        withheld would tell it. So a withheld kind matches no filter.
        """
        coordinate = f"{spec.type_name}.{kind}"
        # Decided once per batch for each kind of subject present, not per row. As ``apply``
        # does: anything but an enterprise's record counts as a person's.
        clear: dict[bool, bool] = {}
        for original, row in zip(raw, shown, strict=True):
            about = original.get("subject_type") != "LEGAL_PERSON"
            if about not in clear:
                subject = NATURAL_PERSON if about else None
                decision = self.policy.decide(coordinate, region, subject_type=subject)
                clear[about] = decision.decision is Decision.CLEAR
            row[KIND] = original.get(kind) if clear[about] else None


def _selects_nothing(type_name: str) -> frozenset[str]:
    return frozenset()


def _batch(
    loaders: Loaders, spec: LoadSpec, source: Source, scheduled: bool
) -> Callable[[Sequence[str]], Any]:
    async def load(keys: Sequence[str]) -> list[list[Row]]:
        with loaders.span((spec,), source.region, ((spec, keys),)) as span:
            try:
                raw = await source.fetch(spec.entity, spec.by, keys)
            finally:
                if scheduled:
                    loaders.scheduler.finished()
            loaders.batches += 1
            if span is not None:
                span.set_attribute("deltagate.batch.rows", len(raw))
            return loaders.shown(spec, source.region, keys, raw)

    return load
