"""Fuzzing the gateway with hypothesis-graphql: valid and invalid operations, several callers.

Whatever the document, for every caller: no response is a 5xx, every error has
an ``extensions.code`` and none is ``INTERNAL`` (an unexpected error is a bug
here), no error shows a stack trace or SQL, and no value comes back where the
policy withholds the field for every region and kind of subject the object
could belong to.

Documents come from the schema, in positive mode (they validate) and negative
mode (one schema violation each), some cut short into syntax errors; key
arguments are swapped for real keys of the seeded data often enough that many
operations read rows. Each example is sent as each of the callers.

A second property widens the documents into what is costly to validate rather
than to execute: a selection set repeated many times over, directly or in
inline fragments, at any level. Whatever the document, the gateway's document
guard must decide on it (answer or refuse) within a bounded time.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import graphql
import pytest
from graphql import (
    ArgumentNode,
    DocumentNode,
    FieldNode,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLUnionType,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    NameNode,
    NullValueNode,
    ObjectFieldNode,
    ObjectValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    StringValueNode,
    ValueNode,
    Visitor,
    get_named_type,
    visit,
)
from graphql.validation.rules import overlapping_fields_can_be_merged as overlapping
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, nodes, queries

from gateway.core.errors import GatewayError
from gateway.core.identifiers import id_number_region, uscc_region
from gateway.core.regions import shipped_regions
from gateway.core.types import DELTA_REGIONS, Caller
from policies import SHIPPED_POLICY_DIR, Decision, PolicyEngine
from schema import build_schema
from tests.client import GatewayClient, serve_on
from tests.conftest import MASK_SECRET, Seeded, gateway_settings, token

#: The shipped regions (SH, JS, ZJ, AH), which the demo data is made for.
SHIPPED = shipped_regions()

SCHEMA = build_schema()._schema

#: (app, region, roles, matter): the callers of the shipped policy, with and without matters.
CALLERS = (
    ("counter-sh", "SH", ("one_stop_app",), "OS-ENTERPRISE-OPENING"),
    ("jh-js", "JS", ("joint_handling_officer",), "JH-HUKOU-MIGRATION"),
    ("jh-zj", "ZJ", ("joint_handling_officer",), None),
    ("portal-ah", "AH", ("public_portal",), None),
    ("citizen-sh", "SH", ("citizen",), None),
    ("audit-national", "NATIONAL", ("auditor",), None),
)
CODES = {
    "BAD_REQUEST", "INVALID_ID", "BATCH_TOO_LARGE", "QUERY_TOO_DEEP", "QUERY_TOO_COMPLEX",
    "FORBIDDEN", "SOURCE_UNAVAILABLE",
}  # fmt: skip
#: What must never reach a caller: a Python traceback, a source path, SQL, the driver's name.
LEAKS = re.compile(r"Traceback|File \"|\.py\b|\b(?:SELECT|FROM|WHERE|JOIN)\b|asyncpg|postgres")
DATA_ROOTS = ("naturalPerson", "naturalPersons", "legalPerson", "legalPersons", "creditRecords",
              "searchLegalPersons", "_entities")  # fmt: skip

#: Federation's ``_Any`` (a representation): objects with or without a known __typename and
#: with keys of every JSON shape, and values that are not objects at all.
_ANY_VALUES = st.one_of(
    st.text(max_size=20).map(nodes.String),
    st.integers(-(2**40), 2**40).map(nodes.Int),
    st.sampled_from(["310101199001011234", "91320106P4N67XT072", "\x00"]).map(nodes.String),
)
REPRESENTATIONS = st.one_of(
    _ANY_VALUES,
    st.lists(
        st.tuples(
            st.sampled_from(["__typename", "idNumber", "uscc", "id", "x"]),
            st.one_of(
                st.sampled_from(["NaturalPerson", "LegalPerson", "CreditRecord", "_Entity"]).map(
                    nodes.String
                ),
                _ANY_VALUES,
            ),
        ),
        max_size=4,
        unique_by=lambda pair: pair[0],
    ).map(
        lambda pairs: nodes.Object(
            [ObjectFieldNode(name=NameNode(value=name), value=value) for name, value in pairs]
        )
    ),
)
CUSTOM_SCALARS = {"_Any": REPRESENTATIONS}


@dataclass(frozen=True)
class Keys:
    """Keys the seeded sources hold."""

    persons: list[str]
    companies: list[str]


def documents() -> st.SearchStrategy[DocumentNode]:
    def keep(document: DocumentNode) -> DocumentNode:
        return document

    scalars = CUSTOM_SCALARS
    return st.one_of(
        queries(SCHEMA, print_ast=keep, fields=DATA_ROOTS, custom_scalars=scalars),
        queries(SCHEMA, print_ast=keep, custom_scalars=scalars),
        queries(SCHEMA, print_ast=keep, mode=Mode.NEGATIVE, custom_scalars=scalars),
    )


def with_real_keys(document: DocumentNode, keys: Keys, draw: st.DrawFn) -> DocumentNode:
    """The document with most arguments swapped for ones that find rows."""
    often = st.integers(0, 3).map(bool)  # three times in four

    def key(name: str) -> StringValueNode:
        kind = draw(st.sampled_from(["persons", "companies"])) if name == "subjectId" else name
        pool = keys.persons if kind in ("idNumber", "idNumbers", "persons") else keys.companies
        return StringValueNode(value=draw(st.sampled_from(pool)))

    def representation() -> ValueNode:
        entity, field = draw(
            st.sampled_from([("NaturalPerson", "idNumber"), ("LegalPerson", "uscc")])
        )
        pairs = [
            ("__typename", entity),
            (field, key("idNumber" if field == "idNumber" else "uscc").value),
        ]
        return ObjectValueNode(
            fields=tuple(
                ObjectFieldNode(name=NameNode(value=k), value=StringValueNode(value=v))
                for k, v in pairs
            )
        )

    class Swap(Visitor):
        def leave_field(self, node: FieldNode, *_: Any) -> FieldNode | None:
            # Entities of a union: __typename tells the oracle which member each one is.
            if node.name.value != "_entities" or node.selection_set is None:
                return None
            typename = FieldNode(name=NameNode(value="__typename"), directives=(), arguments=())
            selections = (typename, *node.selection_set.selections)
            return FieldNode(
                alias=node.alias,
                name=node.name,
                arguments=node.arguments,
                directives=node.directives,
                selection_set=SelectionSetNode(selections=selections),
            )

        def enter_argument(self, node: ArgumentNode, *_: Any) -> ArgumentNode | None:
            name, value = node.name.value, node.value
            if isinstance(value, NullValueNode) or not draw(often):
                return None
            if name in ("idNumber", "uscc", "subjectId"):
                value = key(name)
            elif name in ("idNumbers", "usccs"):
                value = ListValueNode(
                    values=tuple(key(name) for _ in range(draw(st.integers(1, 6))))
                )
            elif name == "name":
                value = StringValueNode(value=draw(st.sampled_from(["上", "江", "浙", "安", ""])))
            elif name == "representations":
                value = ListValueNode(
                    values=tuple(representation() for _ in range(draw(st.integers(1, 6))))
                )
            elif name == "first":
                value = IntValueNode(value=str(draw(st.integers(1, 100))))
            elif name == "after":
                value = NullValueNode()
            else:
                return None
            return ArgumentNode(name=node.name, value=value)

    return visit(document, Swap())


# -- the oracle for withheld values --------------------------------------------------------------


class Withheld:
    """Whether a value must be null for a caller: withheld for every owner it could have."""

    def __init__(self, engine: PolicyEngine, caller: Caller, matter: str | None) -> None:
        self.policy = engine.begin(caller, matter)
        self.graded = set(engine.snapshot.catalog.types)

    def must_be_null(self, coordinate: str, owners: set[str], subjects: set[str | None]) -> bool:
        return all(
            self.policy.decide(coordinate, owner, subject_type=subject).decision
            is Decision.WITHHELD
            for owner in owners
            for subject in subjects
        )

    def check(self, data: Any, document: DocumentNode) -> None:
        operation = next(d for d in document.definitions if isinstance(d, OperationDefinitionNode))
        root = SCHEMA.query_type
        assert root is not None
        self._object(data, root, operation.selection_set, None)

    def _object(self, value: Any, parent: GraphQLObjectType, selection: SelectionSetNode,
                subject: str | None) -> None:  # fmt: skip
        if not isinstance(value, dict):
            return
        fields = [n for n in selection.selections if isinstance(n, FieldNode)]
        owners, subjects = self._owners(parent.name, value, fields, subject)
        for node in fields:
            key = node.alias.value if node.alias else node.name.value
            definition = parent.fields.get(node.name.value)
            if definition is None or key not in value:
                continue
            coordinate = f"{parent.name}.{node.name.value}"
            if parent.name in self.graded and self.must_be_null(coordinate, owners, subjects):
                assert value[key] is None, f"{coordinate} withheld but returned: {value[key]!r}"
            child = get_named_type(definition.type)
            if node.selection_set is None:
                continue
            about = {"NaturalPerson": "NATURAL_PERSON", "LegalPerson": "LEGAL_PERSON"}
            items = value[key] if _is_list(definition.type) else [value[key]]
            for item in items or ():
                if isinstance(child, GraphQLObjectType):
                    self._object(item, child, node.selection_set, about.get(parent.name, subject))
                elif isinstance(child, GraphQLUnionType):
                    self._member(item, node.selection_set)

    def _member(self, value: Any, selection: SelectionSetNode) -> None:
        """A union's item (an entity): checked as the member its ``__typename`` names."""
        if not isinstance(value, dict):
            return
        member = SCHEMA.get_type(str(value.get("__typename")))
        if not isinstance(member, GraphQLObjectType):
            return
        for node in selection.selections:
            condition = getattr(node, "type_condition", None)
            if isinstance(node, InlineFragmentNode) and (
                condition is None or condition.name.value == member.name
            ):
                self._object(value, member, node.selection_set, None)

    def _owners(self, type_name: str, row: dict[str, Any], fields: list[FieldNode],
                subject: str | None) -> tuple[set[str], set[str | None]]:  # fmt: skip
        """The regions the object may come from, and the kinds of subject it may be about."""
        values = {n.name.value: row.get(n.alias.value if n.alias else n.name.value) for n in fields}
        owner = None
        if type_name == "NaturalPerson":
            owner = id_number_region(str(values.get("idNumber") or ""), SHIPPED) or values.get(
                "householdRegion"
            )
        elif type_name == "LegalPerson":
            owner = values.get("region") or uscc_region(str(values.get("uscc") or ""), SHIPPED)
        elif type_name in ("Residence", "SocialInsurance", "CreditRecord"):
            owner = values.get("region")
        owners = {owner} if owner in DELTA_REGIONS else set(DELTA_REGIONS)
        kind = values.get("subjectType") or subject
        subjects = {kind} if kind else {"NATURAL_PERSON", "LEGAL_PERSON"}
        return owners, subjects if type_name == "CreditRecord" else {None}


def _is_list(field_type: Any) -> bool:
    if isinstance(field_type, GraphQLNonNull):
        field_type = field_type.of_type
    return isinstance(field_type, GraphQLList)


# -- the test ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(seeded: Seeded, loop: asyncio.AbstractEventLoop) -> Iterator[GatewayClient]:
    # Rate limits would only turn the run into 429s; they have tests of their own.
    with serve_on(loop, gateway_settings(seeded.dsn, rate_limits=False)) as gateway_client:
        yield gateway_client


@pytest.fixture(scope="module")
def oracles() -> list[tuple[str, str | None, Withheld]]:
    engine = PolicyEngine.from_directory(SHIPPED_POLICY_DIR, mask_secret=MASK_SECRET, strict=True)
    return [
        (
            token(region, *roles, app=app),
            matter,
            Withheld(engine, Caller(app=app, region=region, roles=roles), matter),
        )
        for app, region, roles, matter in CALLERS
    ]


@pytest.fixture(scope="module")
def keys(seeded: Seeded) -> Keys:
    data = seeded.dataset
    persons, companies = [], []
    for region in DELTA_REGIONS:
        persons += [data.person_id(region, i) for i in range(3)]
        persons.append(data.cross_region_person(region)["id_number"])
        companies += [data.uscc(region, i) for i in range(3)]
        companies.append(data.cross_region_enterprise(region)["uscc"])
    return Keys(persons, companies)


@settings(
    max_examples=600,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large,
    ],
)  # fmt: skip
@given(document=documents(), data=st.data())
def test_no_operation_crashes_leaks_internals_or_returns_a_withheld_value(
    client: GatewayClient,
    loop: asyncio.AbstractEventLoop,
    oracles: list[tuple[str, str | None, Withheld]],
    keys: Keys,
    document: DocumentNode,
    data: st.DataObject,
) -> None:
    document = with_real_keys(document, keys, data.draw)
    text = graphql.print_ast(document)
    if data.draw(st.integers(0, 9)) == 5:
        text = text[: data.draw(st.integers(1, len(text) - 1))]  # a syntax error, most likely
    for bearer, matter, withheld in oracles:
        response = loop.run_until_complete(client.post(text, token=bearer, matter=matter))
        assert response.status_code < 500, response.text
        body = response.json()
        for error in body.get("errors", ()):
            assert error["extensions"]["code"] in CODES, (text, error)
            assert not LEAKS.search(error["message"]), (text, error)
        if body.get("data") is not None:
            withheld.check(body["data"], graphql.parse(text))


def test_the_oracle_catches_a_withheld_value(
    oracles: list[tuple[str, str | None, Withheld]],
) -> None:
    auditor = oracles[-1][2]  # no natural-person field for the auditor, from any region
    document = graphql.parse('{ naturalPerson(idNumber: "x") { name } }')
    auditor.check({"naturalPerson": {"name": None}}, document)
    with pytest.raises(AssertionError, match=r"NaturalPerson\.name withheld"):
        auditor.check({"naturalPerson": {"name": "张三"}}, document)
    # An entity of federation's union, checked as the member its __typename names.
    entities = graphql.parse(
        "{ _entities(representations: []) { __typename ... on NaturalPerson { name } } }"
    )
    auditor.check({"_entities": [{"__typename": "NaturalPerson", "name": None}]}, entities)
    with pytest.raises(AssertionError, match=r"NaturalPerson\.name withheld"):
        auditor.check({"_entities": [{"__typename": "NaturalPerson", "name": "张三"}]}, entities)


# -- variables -------------------------------------------------------------------------------

#: Operations whose variables stand in every kind of position: a page size, a batch of keys,
#: a key, free text, an input object; each with and without a default.
VARIABLE_OPERATIONS = (
    'query($n: Int!) { searchLegalPersons(name: "上", first: $n) { edges { cursor } } }',
    "query($s: String!, $n: Int = 3) { searchLegalPersons(name: $s, first: $n) {"
    " edges { node { name } } } }",
    "query($ids: [ID!]!) { naturalPersons(idNumbers: $ids) { name } }",
    "query($u: ID!) { legalPerson(uscc: $u) { name } }",
    "query($r: [_Any!]!) { _entities(representations: $r) { ... on LegalPerson { name } } }",
    "query($s: ID!, $n: Int!) { creditRecords(subjectId: $s, first: $n) { edges { cursor } } }",
    "query($f: AuditEventFilter, $n: Int! = 5) { auditEvents(filter: $f, first: $n) {"
    " edges { node { traceId } } } }",
)
#: JSON values at and past every edge a number or a string has.
EDGES = st.one_of(
    st.integers(-(2**70), 2**70),
    st.sampled_from([2**31, -(2**31) - 1, 2**63, 2**64 - 1, 2**64, 10**30]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1e300, -1e300, 1.7976931348623157e308, 5e-324, 0.5]),
    st.text(max_size=20),
    st.sampled_from(["\x00", "上\x00", "NaN", "Infinity", "9" * 40]),
    st.booleans(),
    st.none(),
)
JSON_VALUES = st.recursive(
    EDGES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(query=st.sampled_from(VARIABLE_OPERATIONS), data=st.data())
def test_no_variable_value_crashes_or_leaves_without_a_code(
    client: GatewayClient,
    loop: asyncio.AbstractEventLoop,
    oracles: list[tuple[str, str | None, Withheld]],
    query: str,
    data: st.DataObject,
) -> None:
    names = re.findall(r"\$(\w+):", query)
    variables = {
        name: data.draw(JSON_VALUES) for name in names if data.draw(st.integers(0, 4)) != 0
    }
    if data.draw(st.booleans()) and "f" in variables:
        variables["f"] = data.draw(st.dictionaries(st.sampled_from(["callerApp", "from"]), EDGES))
    for bearer, matter, _ in oracles[3:]:  # a public caller and the auditor
        response = loop.run_until_complete(
            client.post(query, variables, token=bearer, matter=matter)
        )
        assert response.status_code < 500, (variables, response.text)
        for error in response.json().get("errors", ()):
            assert error["extensions"]["code"] in CODES, (variables, error)
            assert not LEAKS.search(error["message"]), (variables, error)


# -- what validation costs -----------------------------------------------------------------------

#: The most field pairs validation may compare for one new document. graphql-core's
#: OverlappingFieldsCanBeMerged rule compares the fields of each merged selection set pair by
#: pair, which is where an 800-field document spent its 0.2 s (about 320,000 pairs); a count,
#: unlike a time, says the same on a busy machine.
MOST_PAIRS = 20_000


def repeated(document: DocumentNode, draw: st.DrawFn) -> DocumentNode:
    """The document with one of its selection sets repeated many times, as is or in fragments."""
    sets: list[SelectionSetNode] = []

    class Collect(Visitor):
        def enter_selection_set(self, node: SelectionSetNode, *_: Any) -> None:
            sets.append(node)

    visit(document, Collect())
    target = sets[draw(st.integers(0, len(sets) - 1))]
    # About as long as a document may be: longer ones are refused unread, and only slow to print.
    most = max(2, 16_000 // len(graphql.print_ast(target)))
    times = draw(st.integers(2, min(800, most)))
    wrapped = draw(st.booleans())

    class Repeat(Visitor):
        # On leaving, so that the repeated selections are not visited again.
        def leave_selection_set(self, node: SelectionSetNode, *_: Any) -> SelectionSetNode | None:
            if node is not target:
                return None
            inner = tuple(node.selections)
            if not wrapped:
                return SelectionSetNode(selections=inner * times)
            fragment = InlineFragmentNode(
                type_condition=None, directives=(), selection_set=SelectionSetNode(selections=inner)
            )
            return SelectionSetNode(selections=(fragment,) * times)

    return visit(document, Repeat())


def pairs_compared(client: GatewayClient, text: str, monkeypatch: pytest.MonkeyPatch) -> int:
    """How many field pairs deciding on ``text`` (parse, limits, validation) compared."""
    calls = 0
    original = overlapping.find_conflict

    def counted(*args: Any) -> Any:
        nonlocal calls
        calls += 1
        return original(*args)

    with monkeypatch.context() as patch:
        patch.setattr(overlapping, "find_conflict", counted)
        with contextlib.suppress(GatewayError):  # refused or not, what it cost is what counts
            client.gateway.documents.examine(text)
    return calls


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large,
    ],
)  # fmt: skip
@given(
    document=queries(
        SCHEMA, print_ast=lambda d: d, fields=DATA_ROOTS, custom_scalars=CUSTOM_SCALARS
    ),
    data=st.data(),
)
def test_no_document_takes_long_to_validate(
    client: GatewayClient,
    document: DocumentNode,
    data: st.DataObject,
    monkeypatch: pytest.MonkeyPatch,
) -> None:

    text = graphql.print_ast(repeated(document, data.draw))
    # A text new to the cache, as a trailing comment makes it.
    pairs = pairs_compared(client, f"{text} # {id(data)}", monkeypatch)
    assert pairs <= MOST_PAIRS, f"{pairs} field pairs compared:\n{text[:2000]}"
