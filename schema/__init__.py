"""The unified GraphQL schema of deltagate (names are the contract: see the SDL snapshot)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from inspect import isawaitable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import strawberry
from graphql import DocumentNode, ExecutionResult, GraphQLError, execute
from strawberry.execution import optimized_is_awaitable
from strawberry.extensions import ParserCache, SchemaExtension, ValidationCache
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from gateway.core.errors import GatewayError
from schema.console import Mutation
from schema.direct import DirectExecutionContext, plannable, run_plan
from schema.enums import use_regions
from schema.plan import OperationPlan, plan_operation
from schema.query import Query

if TYPE_CHECKING:
    from gateway.core.regions import RegionRegistry

#: The committed SDL; a test fails when it and the Strawberry types drift apart. It is also the
#: subgraph SDL ``_service { sdl }`` returns, which a supergraph is composed from.
SDL_PATH = Path(__file__).with_name("schema.graphql")
#: The Apollo Federation version the subgraph SDL links (``@link``).
FEDERATION_VERSION: Literal["2.0"] = "2.0"

logger = logging.getLogger("deltagate.errors")


class GatewaySchema(strawberry.federation.Schema):
    """A schema that logs only unexpected errors: a caller's bad input is not an incident.

    It is an Apollo Federation v2 subgraph too (``_service { sdl }``, ``_entities``;
    see ``schema.entities``).
    """

    #: Variable coercion errors without "did you mean" (production; ``build_schema``).
    hide_suggestions = False

    async def execute_prepared(
        self,
        document: DocumentNode,
        *,
        variable_values: dict[str, Any] | None,
        context_value: Any,
        operation_name: str | None,
        plan: OperationPlan | None = None,
    ) -> ExecutionResult:
        """Execute a document the gateway already parsed, limited and validated.

        Strawberry's ``execute`` would run its extension hooks and look the document
        up again (about 75 µs a request, a few percent of a counter look-up): the
        gateway's ``DocumentGuard`` has done that work, so the document goes straight
        to graphql-core with the schema's executor. Unexpected errors are not logged
        here: the edge logs them as it writes them, with the request's trace id. ``plan``
        (``schema.plan``, made once per document) is run by the direct executor
        (``schema.direct.run_plan``), without graphql-core's executor; the per-field
        executor ignores it.
        """
        direct = plan is not None and issubclass(
            self.execution_context_class, DirectExecutionContext
        )
        if direct and plan is not None and plannable(context_value):
            return await run_plan(
                self._schema,
                plan,
                variable_values,
                context_value,
                hide_suggestions=self.hide_suggestions,
            )
        # The plan reaches the direct executor's constructor through graphql-core's ``execute``.
        extra: dict[str, Any] = {"plan": plan} if direct else {}
        result = execute(
            self._schema,
            document,
            context_value=context_value,
            variable_values=variable_values,
            operation_name=operation_name,
            executor_class=self.execution_context_class,
            # Strawberry annotates its check ``-> bool`` where graphql-core asks for a TypeGuard.
            is_awaitable=optimized_is_awaitable,  # type: ignore[arg-type]
            **extra,
        )
        if isawaitable(result):
            result = await result
        assert isinstance(result, ExecutionResult)
        return result

    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        for error in errors:
            original = error.original_error
            if original is not None and not isinstance(original, GatewayError | GraphQLError):
                logger.error("unexpected error at %s", error.path, exc_info=original)


def build_schema(
    *,
    cache_size: int = 1024,
    direct: bool = True,
    extensions: Sequence[Callable[[], SchemaExtension]] | None = None,
    hide_suggestions: bool = False,
    regions: RegionRegistry | None = None,
) -> GatewaySchema:
    """The schema, parsing and validating each distinct document once (per process).

    ``direct`` answers planned operations from rows (``schema.direct``) when
    ``execute_prepared`` is given their plan; without it every operation runs on
    Strawberry's per-field executor (same responses).
    ``extensions`` replaces the default parse and validation caches (the gateway
    passes none: it executes with ``execute_prepared`` what its ``DocumentGuard``
    parsed, limited and validated).
    ``hide_suggestions`` keeps "did you mean" out of execution errors (production).
    ``regions`` gives the ``Region`` enum the registry's codes (default: the shipped four).
    """
    context_class: type[StrawberryGraphQLCoreExecutionContext] = (
        DirectExecutionContext if direct else StrawberryGraphQLCoreExecutionContext
    )
    if hide_suggestions:
        context_class = _without_suggestions(context_class)
    if extensions is None:
        # Factories: a fresh extension per request, sharing one module-level LRU per size.
        extensions = [
            lambda: ParserCache(maxsize=cache_size),
            lambda: ValidationCache(maxsize=cache_size),
        ]
    built = GatewaySchema(
        query=Query,
        mutation=Mutation,
        execution_context_class=context_class,
        extensions=list(extensions),
        # The oldest Federation 2 (``@key`` is all it imports): any v2 supergraph composes it.
        federation_version=FEDERATION_VERSION,
    )
    built.hide_suggestions = hide_suggestions
    if regions is not None:
        use_regions(built._schema, regions)
    return built


def _without_suggestions(
    base: type[StrawberryGraphQLCoreExecutionContext],
) -> type[StrawberryGraphQLCoreExecutionContext]:
    """``base``, building its executors with suggestions hidden (variable coercion errors)."""

    # mypy takes no base class from a variable (valid-type), so it sees Any (misc).
    class WithoutSuggestions(base):  # type: ignore[misc,valid-type]
        @classmethod
        def build(cls, *args: Any, **kwargs: Any) -> Any:
            kwargs["hide_suggestions"] = True
            return super().build(*args, **kwargs)

    return WithoutSuggestions


schema = build_schema()

__all__ = [
    "SDL_PATH",
    "GatewaySchema",
    "OperationPlan",
    "build_schema",
    "plan_operation",
    "schema",
]
