"""Documents a request may run: parsed, limited and validated once per distinct text.

``DocumentGuard.prepare`` is the gate between a request and execution. For a
document text it has not seen, it checks the size, parses with a token limit,
measures every operation's shape (depth, aliases, root fields, directives)
before validation, so a hostile document is refused before the costlier
validation rules see it, and then validates. The outcome, refusal included,
is kept in an LRU keyed by the text, bounded by count and by an estimate of
the bytes each entry holds; a refused document keeps only its errors'
messages and locations, never its parse tree. Per request only the operation is
picked and its cost counted, and the cost is kept per operation and per
size of the variables that size its lists (``first: $n``, ``idNumbers:
$ids``), so a steady stream of the same operation counts nothing.

Each operation is planned here too, once (``schema.plan``): the direct
executor answers a planned operation from rows. The gateway then executes the
same parsed document on graphql-core (``GatewaySchema.execute_prepared``) with
its plan, without parsing, validating or planning it again.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FloatValueNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSchema,
    GraphQLSyntaxError,
    InlineFragmentNode,
    IntValueNode,
    Lexer,
    NoSchemaIntrospectionCustomRule,
    OperationDefinitionNode,
    Source,
    TokenKind,
    ValidationRule,
    Visitor,
    parse,
    specified_rules,
    validate,
    visit,
)
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule

from gateway.core.errors import GatewayError, InvalidDocument
from gateway.core.text import StorableStringsRule
from gateway.edge.cost import CostCounter, default_sizes, size_variables, variable_size
from gateway.edge.query_limits import Limits, check_width, measure, refuse
from gateway.edge.schema_names import hide_schema_names
from schema.plan import OperationPlan, plan_operation

#: Costs kept per operation, one per distinct set of list sizes.
_COSTS_PER_OPERATION = 64
#: What a kept parse tree takes per lexical token (nodes, locations, the token itself), in
#: bytes: measured at 330 to 610 on the examples and on dense hostile documents.
_TREE_BYTES_PER_TOKEN = 640
#: What an entry takes besides its text and tree (the entry, its hash, a refusal).
_ENTRY_BYTES = 1024


@dataclass(slots=True)
class PreparedOperation:
    """One operation of a valid document, ready to execute.

    Attributes:
        document: the parsed document (the same object for the same text).
        operation: the operation to execute.
        name: its name, or None for an anonymous operation.
        root_fields: the names of the fields at its root (interface call statistics).
        document_hash: the SHA-256 of the document's text (``document_hash``).
        plan: how the direct executor answers it (``schema.plan``); None: per field.
    """

    document: DocumentNode
    operation: OperationDefinitionNode
    name: str | None
    root_fields: tuple[str, ...]
    document_hash: str
    sizing: dict[str, bool]
    defaults: dict[str, Any]
    plan: OperationPlan | None = None
    costs: OrderedDict[tuple[int | None, ...], int | GatewayError] = field(
        default_factory=OrderedDict
    )


@dataclass(slots=True)
class _Entry:
    document: DocumentNode | None = None
    refusal: GatewayError | None = None
    fragments: Mapping[str, FragmentDefinitionNode] = field(default_factory=dict)
    operations: dict[str | None, PreparedOperation] = field(default_factory=dict)
    hash: str = ""
    size: int = 0  # bytes, estimated: what the byte bound of the cache counts


def document_hash(document: str) -> str:
    """The SHA-256 of a document's UTF-8 text, in lower-case hex.

    Registered operations are known by it (as persisted queries are), and the
    audit log and traces name a document by it, never by its text.
    """
    return hashlib.sha256(document.encode("utf-8")).hexdigest()


class DocumentGuard:
    """Parses, limits and validates documents for one schema, keeping the outcome.

    Args:
        schema: the executable schema.
        limits: the query limits.
        production: validate without "did you mean" suggestions and refuse introspection.
        cache_size: distinct document texts kept (at most; ``limits.document_cache_bytes``
            bounds them by size too).
    """

    def __init__(
        self,
        schema: GraphQLSchema,
        limits: Limits,
        *,
        production: bool = False,
        cache_size: int = 1024,
    ) -> None:
        self.schema = schema
        self.limits = limits
        self.production = production
        self.cache_size = cache_size
        rules = [
            *specified_rules,
            MaybeNullValidationRule,
            OneOfInputValidationRule,
            StorableStringsRule,  # no literal a source cannot store reaches SQL
        ]
        if production:
            rules += [NoSchemaIntrospectionCustomRule, NoServiceSdlRule]
        self._rules = tuple(rules)
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._bytes = 0

    def prepare(
        self, query: str, variables: Mapping[str, Any] | None, operation_name: str | None
    ) -> PreparedOperation:
        """The operation to run, within every limit.

        Raises:
            LimitExceeded: a limit is exceeded (``QueryTooDeep``, ``BatchTooLarge`` or
                ``QUERY_TOO_COMPLEX``); nothing has run.
            InvalidDocument: the document does not parse or validate, or does not
                hold the operation asked for.
        """
        entry = self._checked(query)
        prepared = entry.operations.get(operation_name)
        if prepared is None:
            prepared = self._operation(entry, operation_name)
        self._check_cost(prepared, entry.fragments, variables or {})
        return prepared

    def knows(self, query: str) -> bool:
        """Whether ``query`` is cached, so that preparing it costs next to nothing."""
        return query in self._entries

    def examine(self, query: str) -> DocumentNode:
        """The parsed document, if it passes the size, token and shape limits and validates.

        Raises what ``prepare`` raises, except for cost (which needs variables).
        """
        document = self._checked(query).document
        assert document is not None  # a document that passed every check was parsed
        return document

    # -- per document ------------------------------------------------------------------------

    def _checked(self, query: str) -> _Entry:
        entry = self._entry(query)
        if entry.refusal is not None:
            # Raised again and again: without this, each raise would add its frames to it.
            raise entry.refusal.with_traceback(None)
        return entry

    def _entry(self, query: str) -> _Entry:
        entry = self._entries.get(query)
        if entry is not None:
            self._entries.move_to_end(query)
            return entry
        entry = _Entry(hash=document_hash(query))
        try:
            entry.document = self._parse(query)
            entry.fragments = {
                d.name.value: d
                for d in entry.document.definitions
                if isinstance(d, FragmentDefinitionNode)
            }
            for definition in entry.document.definitions:
                if isinstance(definition, OperationDefinitionNode):
                    measure(definition, entry.fragments).check(self.limits)
                    check_width(definition, entry.fragments, self.limits)
            errors = _long_numbers(entry.document) or validate(
                self.schema, entry.document, self._rules, hide_suggestions=self.production
            )
            if errors:
                raise InvalidDocument(errors)
        except GatewayError as error:
            entry.refusal = _detached(error, hide_schema=self.production)
            entry.document = None  # nothing of a refused document's tree is kept
            entry.fragments = {}
        entry.size = _ENTRY_BYTES + len(query.encode("utf-8"))
        if entry.document is not None:
            entry.size += _TREE_BYTES_PER_TOKEN * _tokens(entry.document)
        self._entries[query] = entry
        self._bytes += entry.size
        while len(self._entries) > self.cache_size or (
            self._bytes > self.limits.document_cache_bytes and len(self._entries) > 1
        ):
            _, dropped = self._entries.popitem(last=False)
            self._bytes -= dropped.size
        return entry

    @property
    def cached_bytes(self) -> int:
        """What the cached documents take, as estimated for the cache's byte bound."""
        return self._bytes

    def _parse(self, query: str) -> DocumentNode:
        size = len(query.encode("utf-8"))
        maximum = self.limits.max_document_bytes
        if size > maximum:
            raise refuse("documentBytes", size, maximum, f"is {size} bytes long")
        try:
            return parse(query, max_lexical_tokens=self.limits.max_tokens)
        except GraphQLSyntaxError as error:
            syntax_error = error
        # Told apart only now: a limit the parser stopped at, or a plain syntax error.
        tokens, nesting = _scan(query)
        if tokens > self.limits.max_tokens:
            raise refuse("tokens", tokens, self.limits.max_tokens, f"has {tokens} tokens")
        if nesting > self.limits.max_depth:
            raise refuse("depth", nesting, self.limits.max_depth, f"is {nesting} levels deep")
        raise InvalidDocument([syntax_error])

    # -- per operation -----------------------------------------------------------------------

    def _operation(self, entry: _Entry, name: str | None) -> PreparedOperation:
        assert entry.document is not None  # an entry without a refusal has its document
        operations = [
            d for d in entry.document.definitions if isinstance(d, OperationDefinitionNode)
        ]
        if name is None:
            if len(operations) != 1:
                raise InvalidDocument(
                    [GraphQLError("the document holds several operations; name one")]
                )
            operation = operations[0]
        else:
            found = [o for o in operations if o.name is not None and o.name.value == name]
            if not found:
                raise InvalidDocument([GraphQLError(f"unknown operation named {name!r}")])
            operation = found[0]
        sizing = size_variables(operation, entry.fragments)
        prepared = PreparedOperation(
            document=entry.document,
            operation=operation,
            name=operation.name.value if operation.name else None,
            root_fields=_root_fields(operation, entry.fragments),
            document_hash=entry.hash,
            sizing=sizing,
            defaults=default_sizes(operation, tuple(sizing)),
            plan=plan_operation(self.schema, operation, entry.fragments),
        )
        entry.operations[name] = prepared
        return prepared

    def _check_cost(
        self,
        prepared: PreparedOperation,
        fragments: Mapping[str, FragmentDefinitionNode],
        variables: Mapping[str, Any],
    ) -> None:
        sizes = {
            name: variable_size(
                variables[name] if name in variables else prepared.defaults.get(name),
                batch=batch,
            )
            for name, batch in prepared.sizing.items()
        }
        key = tuple(sizes.values())
        outcome = prepared.costs.get(key)
        if outcome is None:
            try:
                outcome = CostCounter(
                    self.schema, prepared.operation, fragments, self.limits, sizes
                ).count()
                if outcome > self.limits.max_cost:
                    outcome = refuse("cost", outcome, self.limits.max_cost, f"costs {outcome}")
            except GatewayError as error:
                outcome = error
            prepared.costs[key] = outcome
            if len(prepared.costs) > _COSTS_PER_OPERATION:
                prepared.costs.popitem(last=False)
        if isinstance(outcome, GatewayError):
            raise outcome.with_traceback(None)


class NoServiceSdlRule(ValidationRule):
    """Production mode: no ``_service { sdl }``, which is introspection by another name.

    Where introspection is refused, the subgraph SDL is too: a supergraph is composed from
    the published SDL (``schema/schema.graphql``, what ``_service`` returns), not from the
    running gateway. ``_entities`` stays open: it is a look-up like any other.
    """

    def enter_field(self, node: FieldNode, *_: Any) -> None:
        if node.name.value == "_service" and self.context.get_parent_type() is (
            self.context.schema.query_type
        ):
            self.report_error(
                GraphQLError(
                    "_service is off in production mode, as introspection is; compose the"
                    " supergraph from the published subgraph SDL",
                    node,
                )
            )


def _root_fields(
    operation: OperationDefinitionNode, fragments: Mapping[str, FragmentDefinitionNode]
) -> tuple[str, ...]:
    names: dict[str, None] = {}
    pending = [operation.selection_set]
    seen: set[str] = set()
    while pending:
        for node in pending.pop().selections:
            if isinstance(node, FieldNode):
                names[node.name.value] = None
            elif isinstance(node, InlineFragmentNode):
                pending.append(node.selection_set)
            elif isinstance(node, FragmentSpreadNode):
                name = node.name.value
                if name not in seen and name in fragments:
                    seen.add(name)
                    pending.append(fragments[name].selection_set)
    return tuple(sorted(names))


def _detached(error: GatewayError, *, hide_schema: bool) -> GatewayError:
    """The refusal as it is kept: no traceback (its frames hold the parse tree), and, for an
    invalid document, errors that keep their messages (without the schema's names in
    production) and locations but not their nodes."""
    error = error.with_traceback(None)
    error.__context__ = error.__cause__ = None
    if isinstance(error, InvalidDocument):
        kept = []
        for original in error.errors:
            message = hide_schema_names(original.message) if hide_schema else original.message
            copy = GraphQLError(message, extensions=original.extensions)
            copy.locations = original.locations
            kept.append(copy)
        error.errors = kept
    return error


def _tokens(document: DocumentNode) -> int:
    """Lexical tokens (comments too) of a parsed document: what its tree costs grows with them."""
    count = 0
    token = document.loc.start_token if document.loc is not None else None
    while token is not None:
        count += 1
        token = token.next
    return count


_CLOSING = (TokenKind.BRACE_R, TokenKind.PAREN_R, TokenKind.BRACKET_R)


def _scan(query: str) -> tuple[int, int]:
    """Tokens, and the deepest nesting of selection sets, as far as the text can be read."""
    tokens = 0
    nesting = deepest = 0
    brackets: list[str] = []
    lexer = Lexer(Source(query))
    try:
        while (token := lexer.advance()).kind is not TokenKind.EOF:
            tokens += 1
            kind = token.kind
            if kind in (TokenKind.BRACE_L, TokenKind.PAREN_L, TokenKind.BRACKET_L):
                # A brace outside any parentheses opens a selection set; inside, an input object.
                selection = kind is TokenKind.BRACE_L and "(" not in brackets
                brackets.append("s" if selection else kind.value)
                if selection:
                    nesting += 1
                    deepest = max(deepest, nesting)
            elif kind in _CLOSING and brackets and brackets.pop() == "s":
                nesting -= 1
    except GraphQLError:
        pass  # the text cannot be read further: count what was read
    return tokens, deepest


#: Longer than any Int (``-2147483648``) or finite Float literal needs.
_MAX_NUMBER_CHARS = 400


def _long_numbers(document: DocumentNode) -> list[GraphQLError]:
    """Number literals too long for any GraphQL number, refused before validation reads them.

    Validation would turn a literal of more than 4,300 digits into an ``int`` and fail
    with Python's own ``ValueError`` (an INTERNAL error) instead of saying what is wrong.
    """
    errors: list[GraphQLError] = []

    class Numbers(Visitor):
        def enter(self, node: Any, *_: Any) -> None:
            number = isinstance(node, IntValueNode | FloatValueNode)
            if number and len(node.value) > _MAX_NUMBER_CHARS:
                message = f"a number literal of {len(node.value)} characters is not a number"
                errors.append(GraphQLError(message, node))

    visit(document, Numbers())
    return errors
