"""Query limits over HTTP: each one at its maximum (answered) and one past it (refused with 400,
naming the limit, the value found and the maximum), with no backend query for a refusal.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gateway.edge.query_limits import Limits
from tests.client import GatewayClient, serve
from tests.conftest import Seeded, gateway_settings, token

OFFICER = token("JS", "joint_handling_officer", app="jh-js")
MATTER = "JH-HUKOU-MIGRATION"
COMPANY = "query($u: ID!) { legalPerson(uscc: $u) { %s } }"
GRAPHQL_RESPONSE = "application/graphql-response+json"


def refusal(response: httpx.Response) -> dict[str, Any]:
    """The one error of a request refused before execution: 400, no data, its extensions."""
    assert response.status_code == 400, response.text
    body = response.json()
    assert "data" not in body
    [error] = body["errors"]
    assert "found" not in error["message"] or error["extensions"]["found"]
    return error["extensions"]


async def answered(client: GatewayClient, document: str, variables: dict[str, Any]) -> Any:
    body = await client.query(document, variables, token=OFFICER, matter=MATTER)
    assert "errors" not in body, body["errors"]
    return body["data"]


class Recorder:
    """A query observer remembering every backend query."""

    def __init__(self) -> None:
        self.queries: list[tuple[Any, ...]] = []

    def __call__(self, *args: Any) -> None:
        self.queries.append(args)


def company(seeded: Seeded) -> dict[str, str]:
    return {"u": seeded.dataset.cross_region_enterprise("JS")["uscc"]}


# -- one limit at a time -----------------------------------------------------------------------

# (limits, document at the maximum, document one past it, code, limit, found, maximum)
CASES = [
    pytest.param(
        Limits(max_depth=4),
        COMPANY % "legalRepresentative { enterprises { name } }",
        COMPANY % "legalRepresentative { enterprises { legalRepresentative { name } } }",
        "QUERY_TOO_DEEP", "depth", 5, 4,
        id="depth",
    ),
    pytest.param(
        Limits(max_depth=4),
        "query($u: ID!) { legalPerson(uscc: $u) { ...L } }"
        " fragment L on LegalPerson { legalRepresentative { ...P } }"
        " fragment P on NaturalPerson { enterprises { name } }",
        "query($u: ID!) { legalPerson(uscc: $u) { ...L } }"
        " fragment L on LegalPerson { legalRepresentative { ...P } }"
        " fragment P on NaturalPerson { enterprises { legalRepresentative { name } } }",
        "QUERY_TOO_DEEP", "depth", 5, 4,
        id="depth-through-fragments",
    ),
    pytest.param(
        Limits(max_aliases=2),
        COMPANY % "a: name b: uscc",
        COMPANY % "a: name b: uscc c: region",
        "QUERY_TOO_COMPLEX", "aliases", 3, 2,
        id="aliases",
    ),
    pytest.param(
        Limits(max_aliases=2),
        "query($u: ID!) { legalPerson(uscc: $u) { ...B } } fragment A on LegalPerson { a: name }"
        " fragment B on LegalPerson { ...A ...A }",
        "query($u: ID!) { legalPerson(uscc: $u) { ...B ...A } }"
        " fragment A on LegalPerson { a: name } fragment B on LegalPerson { ...A ...A }",
        "QUERY_TOO_COMPLEX", "aliases", 3, 2,
        id="aliases-counted-at-every-spread",
    ),
    pytest.param(
        Limits(max_root_fields=2),
        "query($u: ID!) { legalPerson(uscc: $u) { name } again: legalPerson(uscc: $u) { uscc } }",
        "query($u: ID!) { legalPerson(uscc: $u) { name } again: legalPerson(uscc: $u) { uscc }"
        " __typename }",
        "QUERY_TOO_COMPLEX", "rootFields", 3, 2,
        id="root-fields",
    ),
    pytest.param(
        Limits(max_directives=2),
        COMPANY % "name @include(if: true) uscc @skip(if: false)",
        COMPANY % "name @include(if: true) uscc @skip(if: false) region @include(if: true)",
        "QUERY_TOO_COMPLEX", "directives", 3, 2,
        id="directives",
    ),
    # Selections count every field, inline fragment and spread, fragments at each spread.
    pytest.param(
        Limits(max_selections=4),
        COMPANY % "name uscc region",
        COMPANY % "name ... on LegalPerson { uscc region }",
        "QUERY_TOO_COMPLEX", "selections", 5, 4,
        id="selections",
    ),
    # A selection set holds the fields of its fragments and of every same-named field beside
    # it (merged as execution merges them): what validation compares pair by pair.
    pytest.param(
        Limits(max_selection_fields=3),
        COMPANY % "name uscc region",
        "query($u: ID!) { legalPerson(uscc: $u) { name ...F } }"
        " fragment F on LegalPerson { uscc region name }",
        "QUERY_TOO_COMPLEX", "selectionFields", 4, 3,
        id="selection-fields-through-fragments",
    ),
    pytest.param(
        Limits(max_selection_fields=3),
        COMPANY % "legalRepresentative { name gender } legalRepresentative { householdRegion }",
        COMPANY % "legalRepresentative { name gender } legalRepresentative { name phone }",
        "QUERY_TOO_COMPLEX", "selectionFields", 4, 3,
        id="selection-fields-merged-by-name",
    ),
    # query ( $ u : ID ! ) { legalPerson ( uscc : $ u ) { name } } is 20 tokens;
    # comments and white space are not tokens.
    pytest.param(
        Limits(max_tokens=20),
        "query($u: ID!) { legalPerson(uscc: $u) { name } }  # a comment is not a token",
        "query($u: ID!) { legalPerson(uscc: $u) { name uscc } }",
        "QUERY_TOO_COMPLEX", "tokens", 21, 20,
        id="tokens",
    ),
    pytest.param(
        Limits(max_document_bytes=len((COMPANY % "name").encode())),
        COMPANY % "name",
        COMPANY % "name ",
        "QUERY_TOO_COMPLEX", "documentBytes", len((COMPANY % "name ").encode()),
        len((COMPANY % "name").encode()),
        id="document-bytes",
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    ("limits", "at_limit", "past_limit", "code", "limit", "found", "maximum"), CASES
)
async def test_a_limit_answers_at_its_maximum_and_refuses_one_past_it(
    seeded: Seeded,
    limits: Limits,
    at_limit: str,
    past_limit: str,
    code: str,
    limit: str,
    found: int,
    maximum: int,
) -> None:
    recorder = Recorder()
    variables = company(seeded)
    async with serve(gateway_settings(seeded.dsn, limits=limits), observer=recorder) as client:
        data = await answered(client, at_limit, variables)
        assert data["legalPerson"] is not None
        recorder.queries.clear()
        for media_type in ("application/json", GRAPHQL_RESPONSE):
            response = await client.post(
                past_limit, variables, token=OFFICER, matter=MATTER, headers={"Accept": media_type}
            )
            assert refusal(response) == {
                "code": code, "limit": limit, "found": found, "maximum": maximum,
            }  # fmt: skip
            assert response.headers["content-type"].startswith(media_type)
    assert recorder.queries == []  # refused before any backend was asked


# -- cost ----------------------------------------------------------------------------------------

JOINT_HANDLING_LIST = """
query JointHandlingList($usccs: [ID!]!) {
  legalPersons(usccs: $usccs) {
    uscc name status region registeredCapital
    legalRepresentative { idNumber name phone householdRegion }
    creditRecords { kind title decidedOn region }
  }
}
"""


def usccs(seeded: Seeded, count: int) -> list[str]:
    return [seeded.dataset.uscc(("SH", "JS", "ZJ", "AH")[i % 4], i // 4) for i in range(count)]


async def test_cost_grows_with_the_keys_asked_for(seeded: Seeded) -> None:
    # 50 enterprises: 1 + 50 * (5 + (1 + 4) + (1 + 10 * 4)) = 2551; one more adds 51.
    async with serve(gateway_settings(seeded.dsn, limits=Limits(max_cost=2551))) as client:
        data = await answered(client, JOINT_HANDLING_LIST, {"usccs": usccs(seeded, 50)})
        assert len(data["legalPersons"]) == 50
        response = await client.post(
            JOINT_HANDLING_LIST, {"usccs": usccs(seeded, 51)}, token=OFFICER, matter=MATTER
        )
    assert refusal(response) == {
        "code": "QUERY_TOO_COMPLEX", "limit": "cost", "found": 2602, "maximum": 2551,
    }  # fmt: skip


async def test_cost_counts_nested_lists_and_pages(seeded: Seeded) -> None:
    # Each enterprise's representative's enterprises' credit records: lists within lists.
    nested = """query($u: [ID!]!) { legalPersons(usccs: $u) { legalRepresentative {
        enterprises { creditRecords { kind } } } } }"""
    # 1 + 100 * (1 + (1 + 10 * (1 + 10 * 1))) = 11201
    page = """query($n: Int!) { searchLegalPersons(name: "上", first: $n) {
        edges { node { uscc creditRecords { kind } } } } }"""
    # 1 + 100 * (1 + (1 + (1 + (1 + 10 * 1)))) = 1401: edges are not multiplied again
    async with serve(gateway_settings(seeded.dsn)) as client:
        refused = await client.post(nested, {"u": usccs(seeded, 100)}, token=OFFICER)
        assert refusal(refused) == {
            "code": "QUERY_TOO_COMPLEX", "limit": "cost", "found": 11201, "maximum": 10000,
        }  # fmt: skip
        data = await answered(client, nested, {"u": usccs(seeded, 80)})  # 8961
        assert len(data["legalPersons"]) == 80
        data = await answered(client, page, {"n": 100})
        assert data["searchLegalPersons"]["edges"]
    async with serve(gateway_settings(seeded.dsn, limits=Limits(max_cost=1400))) as client:
        refused = await client.post(page, {"n": 100}, token=OFFICER)
        assert refusal(refused)["found"] == 1401


# -- batches and pages ---------------------------------------------------------------------------


@pytest.mark.parametrize("literal", [False, True], ids=["variable", "literal"])
async def test_a_batch_of_100_keys_is_answered_and_101_refused(
    seeded: Seeded, literal: bool
) -> None:
    def document(keys: list[str], root: str, argument: str, field: str) -> tuple[str, dict]:
        if literal:
            listed = ", ".join(f'"{k}"' for k in keys)
            return f"{{ {root}({argument}: [{listed}]) {{ {field} }} }}", {}
        return f"query($k: [ID!]!) {{ {root}({argument}: $k) {{ {field} }} }}", {"k": keys}

    people = [seeded.dataset.person_id(("SH", "JS", "ZJ", "AH")[i % 4], i // 4) for i in range(101)]
    companies = usccs(seeded, 101)
    recorder = Recorder()
    async with serve(gateway_settings(seeded.dsn), observer=recorder) as client:
        for keys, root, argument, field in (
            (people, "naturalPersons", "idNumbers", "idNumber"),
            (companies, "legalPersons", "usccs", "uscc"),
        ):
            data = await answered(client, *document(keys[:100], root, argument, field))
            assert [row[field] for row in data[root]] == keys[:100]
            recorder.queries.clear()
            response = await client.post(*document(keys, root, argument, field), token=OFFICER)
            assert refusal(response) == {
                "code": "BATCH_TOO_LARGE", "limit": "batchKeys", "argument": argument,
                "found": 101, "maximum": 100,
            }  # fmt: skip
            assert recorder.queries == []


async def test_a_page_of_100_is_answered_and_101_refused(seeded: Seeded) -> None:
    search = (
        'query($n: Int!) { searchLegalPersons(name: "上", first: $n) { edges { node { name } } } }'
    )
    async with serve(gateway_settings(seeded.dsn)) as client:
        data = await answered(client, search, {"n": 100})
        assert 0 < len(data["searchLegalPersons"]["edges"]) <= 100
        response = await client.post(
            '{ searchLegalPersons(name: "上", first: 101) { edges { node { name } } } }',
            token=OFFICER,
        )
    assert refusal(response) == {
        "code": "BATCH_TOO_LARGE", "limit": "pageSize", "argument": "first", "found": 101,
        "maximum": 100,
    }  # fmt: skip


async def test_configured_batch_and_page_maxima_apply(seeded: Seeded) -> None:
    limits = Limits(max_batch_keys=3, max_page_size=5)
    async with serve(gateway_settings(seeded.dsn, limits=limits)) as client:
        data = await answered(
            client,
            "query($u: [ID!]!) { legalPersons(usccs: $u) { uscc } }",
            {"u": usccs(seeded, 3)},
        )
        assert len(data["legalPersons"]) == 3
        batch = await client.post(
            "query($u: [ID!]!) { legalPersons(usccs: $u) { uscc } }",
            {"u": usccs(seeded, 4)},
            token=OFFICER,
        )
        page = await client.post(
            '{ searchLegalPersons(name: "上", first: 6) { edges { cursor } } }', token=OFFICER
        )
    assert refusal(batch)["maximum"] == 3
    assert refusal(page)["maximum"] == 5


# -- fragments ---------------------------------------------------------------------------------


async def test_fragment_cycles_are_refused_as_invalid_without_hanging(seeded: Seeded) -> None:
    cycles = [
        "query($u: ID!) { legalPerson(uscc: $u) { ...A } }"
        " fragment A on LegalPerson { ...B } fragment B on LegalPerson { ...A }",
        # A cycle that goes deeper at every turn: depth counting must stop, not recurse forever.
        "query($u: ID!) { legalPerson(uscc: $u) { ...A } }"
        " fragment A on LegalPerson { legalRepresentative { enterprises { ...A } } }",
    ]
    recorder = Recorder()
    async with serve(gateway_settings(seeded.dsn), observer=recorder) as client:
        for document in cycles:
            response = await client.post(
                document, company(seeded), token=OFFICER, headers={"Accept": GRAPHQL_RESPONSE}
            )
            assert refusal(response)["code"] == "BAD_REQUEST"
            assert "within itself" in response.json()["errors"][0]["message"]
    assert recorder.queries == []


def chain(length: int, step: str) -> str:
    """Fragments F0 .. F{length}, each spreading the next inside ``step``."""
    fragments = [
        f"fragment F{i} on LegalPerson {{ {step.format(next=f'...F{i + 1}')} }}"
        for i in range(length)
    ]
    fragments.append(f"fragment F{length} on LegalPerson {{ name }}")
    return "query($u: ID!) { legalPerson(uscc: $u) { ...F0 } }\n" + "\n".join(fragments)


async def test_deeply_nested_fragments_are_measured_and_answered_or_refused(
    seeded: Seeded,
) -> None:
    # Each fragment adds its field to one selection set: 151 there, wider than the default.
    wide = Limits(max_tokens=20_000, max_document_bytes=200_000, max_selection_fields=1000)
    async with serve(gateway_settings(seeded.dsn, limits=wide)) as client:
        # 150 fragments deep, each adding no depth: a valid query, answered.
        data = await answered(client, chain(150, "uscc {next}"), company(seeded))
        assert data["legalPerson"]["name"]
        # Each fragment a level deeper (through a representative and back): refused by depth.
        deeper = chain(60, "legalRepresentative {{ enterprises {{ {next} }} }}")
        response = await client.post(deeper, company(seeded), token=OFFICER)
        assert refusal(response) == {
            "code": "QUERY_TOO_DEEP", "limit": "depth", "found": 122, "maximum": 10,
        }  # fmt: skip
        # Deeper than validation recurses: a clear refusal, never a 500.
        response = await client.post(
            chain(400, "uscc {next}"), company(seeded), token=OFFICER,
            headers={"Accept": GRAPHQL_RESPONSE},
        )  # fmt: skip
        assert refusal(response)["code"] == "BAD_REQUEST"


async def test_a_fragment_spread_twice_at_every_level_is_counted_at_every_spread(
    seeded: Seeded,
) -> None:
    # 2 ** 20 root fields from 21 short fragments: refused on the count, not by running out.
    fragments = "\n".join(
        f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(20)
    )
    bomb = "{ ...F0 }\n" + fragments + "\nfragment F20 on Query { __typename }"
    async with serve(gateway_settings(seeded.dsn)) as client:
        response = await client.post(bomb, token=OFFICER)
    assert refusal(response) == {
        "code": "QUERY_TOO_COMPLEX", "limit": "rootFields", "found": 2**20, "maximum": 10,
    }  # fmt: skip


async def test_selections_nested_past_what_the_parser_reads_are_too_deep(seeded: Seeded) -> None:
    levels = 600
    document = (
        "query($u: ID!) { legalPerson(uscc: $u) "
        + "{ legalRepresentative { enterprises " * levels
        + "{ name }"
        + " } }" * levels
        + " }"
    )
    wide = Limits(max_tokens=20_000, max_document_bytes=200_000)
    async with serve(gateway_settings(seeded.dsn, limits=wide)) as client:
        response = await client.post(document, company(seeded), token=OFFICER)
    extensions = refusal(response)
    assert extensions["code"] == "QUERY_TOO_DEEP"
    assert extensions["found"] == 2 * levels + 2


# -- configuration -------------------------------------------------------------------------------


def test_limits_are_checked_when_configured() -> None:
    from gateway.core.errors import ConfigError

    with pytest.raises(ConfigError, match="max_depth"):
        Limits(max_depth=0)
    with pytest.raises(ConfigError, match="at most 100"):
        Limits(max_batch_keys=500)
    with pytest.raises(ConfigError, match="unknown keys max_width"):
        Limits.from_table({"max_width": 3})
    assert Limits.from_table({"max_depth": 7}).max_depth == 7
