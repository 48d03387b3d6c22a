"""The direct executor: planned operations answered from rows, level by level.

Strawberry still parses and validates (with its caches and extensions); only
the execution of a planned operation (``schema.plan``) changes. Each level of
the response is one round: the keys every object on the level links to are
gathered, read with one query per (entity, region), masked in bulk by the
operation's policy, and copied into plain response dicts. No resolver call,
resolve-info object, future or task per field or per key.

The routing, the policy's link decisions and the merge order come from the
same descriptions the Strawberry resolvers use (``resolvers.links``), and a
test holds both executors to the same responses.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Collection
from decimal import Decimal
from typing import Any

from graphql import GraphQLError, located_error
from graphql.execution.values import get_argument_values
from graphql.pyutils import Path
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from gateway.core.errors import SourceUnavailable
from gateway.core.identifiers import require_id_number, require_uscc
from gateway.core.types import RegionCode, Row
from resolvers import enterprises
from resolvers.context import GatewayContext
from resolvers.links import LINKS, follow, home_unavailable, regions_for
from resolvers.loaders import ENTERPRISE, PERSON, LoadSpec
from resolvers.persons import lookup_region
from schema.plan import Link, ObjectPlan, OperationPlan, RootPlan, Scalar, plan_operation
from schema.query import _check_batch as check_batch
from schema.query import _check_page as check_page

#: Plans by operation node; the parser cache hands back the same node for the same document.
_PLANS: OrderedDict[int, tuple[object, OperationPlan | None]] = OrderedDict()
_PLAN_CACHE_SIZE = 1024

#: Per root field: what it reads, its argument, and how a key is checked.
_ROOTS = {
    "naturalPerson": (PERSON, "idNumber", require_id_number),
    "naturalPersons": (PERSON, "idNumbers", require_id_number),
    "legalPerson": (ENTERPRISE, "uscc", require_uscc),
    "legalPersons": (ENTERPRISE, "usccs", require_uscc),
}

Read = tuple[LoadSpec, RegionCode]
Level = list[tuple[dict[str, Any], ObjectPlan, Row, Path]]


class DirectExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """Runs planned operations directly; anything else as graphql-core would."""

    def execute_collected_root_fields(  # type: ignore[no-untyped-def]
        self, root_type, root_value, grouped_field_set, serially, new_defer_usages
    ):
        context = self.context_value
        direct = isinstance(context, GatewayContext) and context.loaders.batching
        plan = self._plan() if direct else None
        if plan is None:
            return super().execute_collected_root_fields(
                root_type, root_value, grouped_field_set, serially, new_defer_usages
            )
        return _Run(self, plan).execute()

    def _plan(self) -> OperationPlan | None:
        key = id(self.operation)
        found = _PLANS.get(key)
        if found is not None and found[0] is self.operation:
            _PLANS.move_to_end(key)
            return found[1]
        plan = plan_operation(self.schema, self.operation, self.fragment_definitions)
        _PLANS[key] = (self.operation, plan)
        if len(_PLANS) > _PLAN_CACHE_SIZE:
            _PLANS.popitem(last=False)
        return plan


class _Run:
    """One execution of a plan."""

    def __init__(self, context: DirectExecutionContext, plan: OperationPlan) -> None:
        self.context = context
        self.ctx: GatewayContext = context.context_value
        self.plan = plan
        # Rows already read in this operation, as the loaders' cache would keep them.
        self.seen: dict[Read, dict[str, list[Row]]] = {}
        self.link_args: dict[int, dict[str, Any]] = {}

    # -- the levels ------------------------------------------------------------------------

    async def execute(self) -> dict[str, Any] | None:
        self.ctx.use_selection(self.plan.selection)
        data: dict[str, Any] = {}
        wanted: dict[Read, dict[str, None]] = {}
        jobs: list[tuple[RootPlan, int | None, Read, str]] = []
        null_data = False
        searches: list[tuple[RootPlan, Awaitable[Any]]] = []
        for root in self.plan.roots:
            data[root.key] = None
            if root.field == "searchLegalPersons":
                try:
                    searches.append((root, self.search(root)))
                except Exception as exc:
                    self.error(exc, root.nodes, Path(None, root.key, "Query"))
                    null_data = True
                continue
            spec, argument, require = _ROOTS[root.field]
            try:
                args = get_argument_values(
                    root.field_def, root.nodes[0], self.context.variable_values
                )
                value = args[argument]
                if root.many:
                    check_batch(value, argument)
                    keys: list[tuple[int | None, str]] = [
                        (index, require(item, argument)) for index, item in enumerate(value)
                    ]
                    data[root.key] = [None] * len(keys)
                else:
                    keys = [(None, require(value, argument))]
            except Exception as exc:  # a bad argument: the field fails before any read
                self.error(exc, root.nodes, Path(None, root.key, "Query"))
                null_data = null_data or root.non_null
                continue
            for index, key in keys:
                home = lookup_region(self.ctx, spec, key)
                if home is None:
                    continue  # outside the delta, or the look-up is withheld: null
                wanted.setdefault((spec, home), {})[key] = None
                jobs.append((root, index, (spec, home), key))
        fetched, found = await asyncio.gather(
            self.read(wanted),
            asyncio.gather(*(call for _, call in searches), return_exceptions=True),
        )
        level: Level = []
        for (root, _), result in zip(searches, found, strict=True):
            path = Path(None, root.key, "Query")
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):
                    raise result
                self.error(result, root.nodes, path)
                null_data = True  # the page is non-null: an error nulls the response
                continue
            data[root.key] = self.page(root.child, result, path, level)
        for root, index, read, key in jobs:
            path = Path(None, root.key, "Query")
            if index is not None:
                path = path.add_key(index)
            got = fetched[read]
            if isinstance(got, Exception):
                self.error(got, root.nodes, path)
                continue
            rows = got.get(key)
            if not rows:
                continue
            out: dict[str, Any] = {}
            if index is None:
                data[root.key] = out
            else:
                data[root.key][index] = out
            level.append((out, root.child, rows[0], path))
        while level:
            level = await self.fill(level)
        return None if null_data else data

    def search(self, root: RootPlan) -> Awaitable[Any]:
        """Start a name search (arguments are checked here, before anything is read)."""
        args = get_argument_values(root.field_def, root.nodes[0], self.context.variable_values)
        check_page(args["first"])
        region = args.get("region")
        return enterprises.search(
            self.ctx,
            args["name"],
            None if region is None else getattr(region, "value", region),
            args["first"],
            args.get("after"),
            Path(None, root.key, "Query"),
        )

    def page(self, plan: ObjectPlan, found: Any, path: Path, level: Level) -> dict[str, Any]:
        """A search's connection object; its nodes join the level to be filled."""
        pairs, more = found
        out: dict[str, Any] = {}
        for entry in plan.entries:
            if isinstance(entry, Scalar):
                out[entry.key] = entry.constant  # only __typename is a scalar here
            elif entry.field == "pageInfo":
                out[entry.key] = {
                    e.key: e.constant
                    if e.kind == "typename"
                    else more
                    if e.row_key == "has_next_page"
                    else (pairs[-1][0] if pairs else None)
                    for e in entry.child.entries
                    if isinstance(e, Scalar)
                }
            else:
                edges = []
                for index, (cursor, row) in enumerate(pairs):
                    edge: dict[str, Any] = {}
                    edge_path = path.add_key(entry.key).add_key(index)
                    for e in entry.child.entries:
                        if isinstance(e, Scalar):
                            edge[e.key] = e.constant if e.kind == "typename" else cursor
                        else:
                            node: dict[str, Any] = {}
                            edge[e.key] = node
                            level.append((node, e.child, row, edge_path.add_key(e.key)))
                    edges.append(edge)
                out[entry.key] = edges
        return out

    async def fill(self, level: Level) -> Level:
        """Copy each object's scalars, read what all their links lead to, return the next level."""
        ctx = self.ctx
        wanted: dict[Read, dict[str, None]] = {}
        jobs = []
        for out, plan, row, path in level:
            for entry in plan.entries:
                if isinstance(entry, Scalar):
                    out[entry.key] = self.scalar(entry, row, path)
                    continue
                out[entry.key] = None
                link = LINKS[f"{entry.parent}.{entry.field}"]
                key = follow(ctx, link, row)
                if key is None:
                    continue
                regions = regions_for(ctx, link, key)
                if not regions and not link.fan_out:
                    continue
                for region in regions:
                    wanted.setdefault((link.load, region), {})[key] = None
                jobs.append((out, entry, link, key, regions, path.add_key(entry.key)))
        if not jobs:
            return []
        fetched = await self.read(wanted)
        following: Level = []
        for out, entry, link, key, regions, path in jobs:
            per_region: list[list[Row]] = []
            failed: Exception | None = None
            for region in regions:
                got = fetched[(link.load, region)]
                if isinstance(got, SourceUnavailable) and link.fan_out:
                    ctx.unavailable(path, got)  # a partial list: what the others keep
                    per_region.append([])
                elif isinstance(got, SourceUnavailable):
                    failed = home_unavailable(ctx, link, got)
                    break
                elif isinstance(got, Exception):
                    failed = got
                    break
                else:
                    per_region.append(got.get(key, []))
            if failed is not None:
                self.error(failed, entry.nodes, path)
                continue
            if link.fan_out:
                rows = link.merge(per_region, self.kinds(entry))
                items = []
                for index, child_row in enumerate(rows):
                    child: dict[str, Any] = {}
                    items.append(child)
                    following.append((child, entry.child, child_row, path.add_key(index)))
                out[entry.key] = items
            elif per_region and per_region[0]:
                child = {}
                out[entry.key] = child
                following.append((child, entry.child, per_region[0][0], path))
        return following

    async def read(
        self, wanted: dict[Read, dict[str, None]]
    ) -> dict[Read, dict[str, list[Row]] | Exception]:
        """One query per (entity, region) for the keys not read before in this operation."""
        reads = []
        for (spec, region), asked in wanted.items():
            seen = self.seen.setdefault((spec, region), {})
            new = [key for key in asked if key not in seen]
            reads.append(((spec, region), new))
        results = await asyncio.gather(
            *(self.ctx.loaders.read(spec, region, keys) for (spec, region), keys in reads if keys),
            return_exceptions=True,
        )
        outcome: dict[Read, dict[str, list[Row]] | Exception] = {}
        done = iter(results)
        for read, keys in reads:
            if keys:
                result = next(done)
                if isinstance(result, BaseException):
                    if not isinstance(result, Exception):
                        raise result
                    outcome[read] = result  # not remembered: an outage is not an answer
                    continue
                self.seen[read].update(zip(keys, result, strict=True))
            outcome[read] = self.seen[read]
        return outcome

    # -- values and errors -----------------------------------------------------------------

    def scalar(self, entry: Scalar, row: Row, path: Path) -> Any:
        if entry.kind == "typename":
            return entry.constant
        value = row.get(entry.row_key)
        if value is None or entry.kind == "plain":
            return value
        if entry.kind == "decimal":
            return str(value) if isinstance(value, Decimal) else value
        if entry.allowed is not None and value not in entry.allowed:
            # As the ordinary executor does: the field is null, with an error.
            message = f"Enum cannot represent value: {value!r}"
            at = path.add_key(entry.key)
            self.context.collected_errors.add(GraphQLError(message, path=at.as_list()), at)
            return None
        return value

    def kinds(self, entry: Link) -> Collection[str] | None:
        if entry.field != "creditRecords":
            return None
        found = self.link_args.get(id(entry))
        if found is None:
            found = self.link_args[id(entry)] = get_argument_values(
                entry.field_def, entry.nodes[0], self.context.variable_values
            )
        return found.get("kinds")

    def error(self, exc: Exception, nodes: Any, path: Path) -> None:
        error = (
            exc
            if isinstance(exc, GraphQLError)
            else located_error(exc, list(nodes), path.as_list())
        )
        self.context.collected_errors.add(error, path)
