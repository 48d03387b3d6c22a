"""The direct executor: planned operations answered from rows, level by level.

The gateway parses, limits and validates each distinct document once
(``gateway.edge.documents``) and plans it there (``schema.plan``); this
executor runs that plan. Each level of the response is one round: the keys
every object on the level links to are gathered, read with one round trip per
region (every entity the level needs from it in one statement), decided and counted
in bulk by the operation's policy, and copied into plain response dicts, each
value masked as it is copied: one copy of a row, not a masked row and then the
response object. No resolver call, resolve-info object, future or task per
field or per key. An operation
without a plan runs on graphql-core's per-field executor, with the Strawberry
resolvers.

Routing, the policy's look-up and link decisions, partial fan-out errors and
the merge order go through the functions the Strawberry resolvers use
(``resolvers.roots``, ``resolvers.persons``, ``resolvers.links``), and a test
holds both executors to the same responses.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Collection
from decimal import Decimal
from typing import Any

from graphql import ExecutionResult, GraphQLError, GraphQLSchema, located_error
from graphql.execution.executor import CollectedErrors
from graphql.execution.values import get_argument_values, get_variable_values
from graphql.pyutils import Path
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from gateway.core.errors import SourceUnavailable
from gateway.core.types import RegionCode, Row
from policies.masks import MaskFunction
from policies.operation import Changes
from resolvers.context import GatewayContext
from resolvers.links import Link as LinkField
from resolvers.links import follow, home_unavailable, regions_for
from resolvers.loaders import OWNER, SUBJECT_TYPE, LoadSpec
from resolvers.persons import lookup_region, per_region
from resolvers.roots import Lookup, Search
from schema.plan import Link, ObjectPlan, OperationPlan, RootPlan, Scalar

Read = tuple[LoadSpec, RegionCode]
#: An object to fill: the response dict, its plan, its row, its path, and whether the row
#: is raw (read here: masked as it is copied) or was masked already (a search's page).
Level = list[tuple[dict[str, Any], ObjectPlan, Row, Path, bool]]


class _Marker:
    __slots__ = ("label",)

    def __init__(self, label: str) -> None:
        self.label = label

    def __repr__(self) -> str:
        return self.label


#: In a step, for a value released as it is, and for a link.
_CLEAR = _Marker("CLEAR")
_LINK = _Marker("LINK")
#: How an object plan's entry is filled from rows of one kind (``_Run.steps``): response key,
#: row key (None for a link or ``__typename``), the mask (``_CLEAR``, None to withhold, or
#: the mask function; ``_LINK`` for a link), whether the value is copied as it is, the entry
#: (a ``Scalar``, or a ``Link`` where the mask is ``_LINK``).
_Step = tuple[str, str | None, "MaskFunction | _Marker | None", bool, Any]
#: Rows a search's page masked already: copied as they are.
_MASKED_ALREADY = Changes({})
#: The most maskings an object plan keeps its steps for (a caller's kind, owner, subject).
_VIEWS_KEPT = 64


class DirectExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """Runs an operation by its plan (``plan=``, passed through graphql-core's ``execute``);
    without one, or without batching, as graphql-core would."""

    def __init__(self, *args: Any, plan: OperationPlan | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.plan = plan

    def execute_collected_root_fields(  # type: ignore[no-untyped-def]
        self, root_type, root_value, grouped_field_set, serially, new_defer_usages
    ):
        plan = self.plan
        if plan is None or not plannable(self.context_value):
            return super().execute_collected_root_fields(
                root_type, root_value, grouped_field_set, serially, new_defer_usages
            )
        return _Run(self, plan).execute()


class _PlanContext:
    """What a plan's run reads of an execution context (``run_plan``): the operation's context
    value, its coerced variables and the errors collected."""

    __slots__ = ("collected_errors", "context_value", "variable_values")

    def __init__(self, context_value: Any, variable_values: Any) -> None:
        self.context_value = context_value
        self.variable_values = variable_values
        self.collected_errors = CollectedErrors()


def plannable(context_value: Any) -> bool:
    """Whether a plan runs directly for this context (not without batching: the benchmark's
    one-query-per-key baseline runs per field)."""
    return isinstance(context_value, GatewayContext) and context_value.loaders.batching


async def run_plan(
    schema: GraphQLSchema,
    plan: OperationPlan,
    variable_values: dict[str, Any] | None,
    context_value: GatewayContext,
    *,
    hide_suggestions: bool = False,
) -> ExecutionResult:
    """Run a plan without graphql-core's executor: the variables coerced as its ``execute``
    coerces them (the same errors), then the levels. Building graphql-core's execution
    context per request (fragments, signatures, hooks, an executor object) cost more than
    coercing the variables itself."""
    values = variable_values or {}
    plain = None if plan.plain_variables is None else plan.plain_variables(values)
    coerced = (
        plain
        if plain is not None
        else get_variable_values(
            schema,
            plan.variables,
            values,
            max_errors=_MAX_COERCION_ERRORS,
            hide_suggestions=hide_suggestions,
        )
    )
    if isinstance(coerced, list):
        return ExecutionResult(None, coerced)
    context = _PlanContext(context_value, coerced)
    try:
        data = await _Run(context, plan).execute()
    except GraphQLError as error:
        context.collected_errors.add(error, None)
        data = None
    return ExecutionResult(data, context.collected_errors.errors or None)


#: As graphql-core's ``execute`` (its ``max_coercion_errors``).
_MAX_COERCION_ERRORS = 50


class _Run:
    """One execution of a plan."""

    def __init__(self, context: DirectExecutionContext | _PlanContext, plan: OperationPlan) -> None:
        self.context = context
        self.ctx: GatewayContext = context.context_value
        self.plan = plan
        # Rows already read in this operation, as the loaders' cache would keep them.
        self.seen: dict[Read, dict[str, list[Row]]] = {}
        self.link_args: dict[int, dict[str, Any]] = {}
        # The steps of each object plan, per (owner, kind of subject) of raw rows.
        self.views: dict[Any, tuple[_Step, ...]] = {}

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
            answer = root.answer
            if not isinstance(answer, Lookup):
                try:
                    searches.append((root, self.search(root, answer)))
                except Exception as exc:
                    self.error(exc, root.nodes, Path(None, root.key, "Query"))
                    null_data = True
                continue
            try:
                args = get_argument_values(
                    root.field_def, root.nodes[0], self.context.variable_values
                )
                checked = answer.keys(args[answer.argument])
                if answer.many:
                    keys: list[tuple[int | None, str]] = list(enumerate(checked))
                    data[root.key] = [None] * len(keys)
                else:
                    keys = [(None, checked[0])]
            except Exception as exc:  # a bad argument: the field fails before any read
                self.error(exc, root.nodes, Path(None, root.key, "Query"))
                null_data = null_data or root.non_null
                continue
            for index, key in keys:
                home = lookup_region(self.ctx, answer.load, key)
                if home is None:
                    continue  # outside the delta, or the look-up is withheld: null
                wanted.setdefault((answer.load, home), {})[key] = None
                jobs.append((root, index, (answer.load, home), key))
        # No task where there is one thing to wait for (a look-up's level, or a search alone).
        found: list[Any] = []
        if not searches:
            fetched = await self.read(wanted)
        elif not wanted:
            fetched = {}
            found = await asyncio.gather(*(call for _, call in searches), return_exceptions=True)
        else:
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
            level.append((out, root.child, rows[0], path, True))
        while level:
            level = await self.fill(level)
        return None if null_data else data

    def search(self, root: RootPlan, answer: Search) -> Awaitable[Any]:
        """Start a search (its arguments are checked here, before anything is read)."""
        args = get_argument_values(root.field_def, root.nodes[0], self.context.variable_values)
        return answer.page(self.ctx, Path(None, root.key, "Query"), **args)

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
                            # Masked by the search already (``resolvers.enterprises``).
                            level.append((node, e.child, row, edge_path.add_key(e.key), False))
                    edges.append(edge)
                out[entry.key] = edges
        return out

    async def fill(self, level: Level) -> Level:
        """Copy each object's scalars (a raw row's masked as they are copied), read what all
        their links lead to, return the next level."""
        ctx = self.ctx
        views = self.views
        wanted: dict[Read, dict[str, None]] = {}
        jobs = []
        for out, plan, row, path, raw in level:
            # By the raw subject type, not the kind the policy makes of it: a partition at
            # least as fine as the policy's, whatever its rule (``about_person``).
            view = (id(plan), row[OWNER], row.get(SUBJECT_TYPE)) if raw else id(plan)
            steps = views.get(view)
            if steps is None:
                steps = views[view] = self.steps(plan, row if raw else None)
            for key, row_key, mask, plain, entry in steps:
                if row_key is not None:
                    value = row.get(row_key)
                    if value is not None:
                        if mask is not _CLEAR:
                            value = None if mask is None else mask(value)  # type: ignore[operator]
                        if not plain and value is not None:
                            value = self.scalar(entry, value, path)
                    out[key] = value
                    continue
                if mask is not _LINK:  # __typename
                    out[key] = entry.constant
                    continue
                out[key] = None
                link = entry.follows
                if link is None:  # only the parts of a search's page, which ``page`` builds
                    raise RuntimeError(f"{entry.field} is not a link")
                target = follow(ctx, link, row)
                if target is None:
                    continue
                regions = regions_for(ctx, link, target)
                if not regions and not link.fan_out:
                    continue
                for region in regions:
                    wanted.setdefault((link.load, region), {})[target] = None
                jobs.append((out, entry, link, target, regions, path.add_key(key)))
        if not jobs:
            return []
        fetched = await self.read(wanted)
        # Without a failed read (the usual case) each job's rows are taken as they are.
        intact = not any(isinstance(got, Exception) for got in fetched.values())
        following: Level = []
        for out, entry, link, key, regions, path in jobs:
            load = link.load
            if intact:
                found = [fetched[load, region].get(key, [])  # type: ignore[union-attr]
                         for region in regions]  # fmt: skip
            else:
                results = [self.rows_of(fetched[load, region], key) for region in regions]
                try:
                    if link.fan_out:
                        # A partial list where a region is down: what the others keep.
                        found = per_region(ctx, results, path)
                    else:
                        found = [self.home_rows(link, results)]
                except Exception as failed:
                    self.error(failed, entry.nodes, path)
                    continue
            if link.fan_out:
                rows = link.merge(found, self.kinds(entry))
                items = []
                for index, child_row in enumerate(rows):
                    child: dict[str, Any] = {}
                    items.append(child)
                    following.append((child, entry.child, child_row, path.add_key(index), True))
                out[entry.key] = items
            elif found[0]:
                child = {}
                out[entry.key] = child
                following.append((child, entry.child, found[0][0], path, True))
        return following

    @staticmethod
    def rows_of(got: dict[str, list[Row]] | Exception, key: str) -> list[Row] | Exception:
        return got if isinstance(got, Exception) else got.get(key, [])

    def home_rows(self, link: LinkField, results: list[list[Row] | Exception]) -> list[Row]:
        """The rows of a link read from the key's home region only (an outage as the resolver
        reports it, ``home_unavailable``)."""
        for result in results:
            if isinstance(result, SourceUnavailable):
                raise home_unavailable(self.ctx, link, result)
            if isinstance(result, Exception):
                raise result
            return result
        return []

    async def read(
        self, wanted: dict[Read, dict[str, None]]
    ) -> dict[Read, dict[str, list[Row]] | Exception]:
        """The keys not read before in this operation: everything one region is asked for on
        this level in one round trip (``Loaders.read_many``), the regions concurrently, each
        read selecting only the fields the plan needs. The rows stay raw (decided and counted
        by the policy as they are read): ``fill`` masks each value it copies, and nothing
        else here reads a graded field (links follow private keys and ``legal_rep_id``)."""
        by_region: dict[RegionCode, list[tuple[LoadSpec, list[str]]]] = {}
        for (spec, region), asked in wanted.items():
            seen = self.seen.setdefault((spec, region), {})
            new = [key for key in asked if key not in seen]
            if new:
                by_region.setdefault(region, []).append((spec, new))
        regions = list(by_region)
        loaders = self.ctx.loaders
        columns = self.plan.columns  # only the fields the operation needs (``schema.plan``)
        results: list[Any]
        if len(regions) == 1:  # one region: awaited here, no task
            try:
                results = [
                    await loaders.read_many(
                        regions[0], by_region[regions[0]], columns, masked=False
                    )
                ]
            except Exception as failed:
                results = [failed]
        else:
            results = await asyncio.gather(
                *(
                    loaders.read_many(region, by_region[region], columns, masked=False)
                    for region in regions
                ),
                return_exceptions=True,
            )
        outcome: dict[Read, dict[str, list[Row]] | Exception] = {}
        for region, result in zip(regions, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):
                    raise result
                for spec, _ in by_region[region]:
                    outcome[spec, region] = result  # not remembered: an outage is not an answer
                continue
            for (spec, keys), rows in zip(by_region[region], result, strict=True):
                self.seen[spec, region].update(zip(keys, rows, strict=True))
        for read in wanted:
            if read not in outcome:
                outcome[read] = self.seen[read]
        return outcome

    # -- values and errors -----------------------------------------------------------------

    def steps(self, plan: ObjectPlan, row: Row | None) -> tuple[_Step, ...]:
        """How ``plan``'s entries are filled from raw rows of ``row``'s type, owner and kind
        of subject: each value masked or withheld as the policy masks such a row
        (``OperationPolicy.changes``, the plan ``record`` counted the row by). ``row`` None:
        rows the policy masked already, copied as they are.

        Kept with the object plan per ``Changes`` (an object per masking plan, held by the
        key, so never mistaken for another), a few at most."""
        changes = _MASKED_ALREADY
        if row is not None:
            ctx = self.ctx
            changes = ctx.policy.changes(
                plan.type_name, row[OWNER], row, fields=ctx.loaders.fields_of(plan.type_name)
            )
        views = plan.views
        found: tuple[_Step, ...] | None = views.get(changes)
        if found is not None:
            return found
        by_key = changes.by_key
        steps: list[_Step] = []
        for entry in plan.entries:
            if isinstance(entry, Link):
                steps.append((entry.key, None, _LINK, False, entry))
            elif entry.kind == "typename":
                steps.append((entry.key, None, None, True, entry))
            else:
                mask = by_key.get(entry.row_key, _CLEAR)
                steps.append((entry.key, entry.row_key, mask, entry.kind == "plain", entry))
        if len(views) >= _VIEWS_KEPT:
            views.clear()
        found = views[changes] = tuple(steps)
        return found

    def scalar(self, entry: Scalar, value: Any, path: Path) -> Any:
        """A value (not None) as its type serialises it."""
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
        if "kinds" not in entry.field_def.args:
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
