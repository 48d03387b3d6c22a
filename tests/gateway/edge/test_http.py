"""GraphQL over HTTP (Stage 2 draft, past its 2025 watershed): media types, status codes per
media type, requests refused with a clear 4xx, and what production mode keeps to itself.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from starlette.datastructures import Headers

from gateway.edge.http import negotiate, request_headers
from tests.client import GatewayClient, serve
from tests.conftest import Seeded, gateway_settings, token
from tests.gateway.edge.test_auth import jwk, new_rsa_key, rs256, write_jwks

JSON = "application/json"
GRAPHQL_RESPONSE = "application/graphql-response+json"
PORTAL = token("AH", "public_portal", app="portal-ah")
NAME = "query($u: ID!) { legalPerson(uscc: $u) { name } }"


async def post(client: GatewayClient, query: str, variables: Any = None, **headers: str) -> Any:
    return await client.post(query, variables, token=PORTAL, headers=headers)


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, GRAPHQL_RESPONSE),  # no Accept: the modern type, since 1 January 2025
        ("*/*", JSON),  # curl, browsers, older clients
        ("application/json", JSON),
        (GRAPHQL_RESPONSE, GRAPHQL_RESPONSE),
        (f"{GRAPHQL_RESPONSE}; charset=utf-8, application/json; charset=utf-8", GRAPHQL_RESPONSE),
        (f"application/json, {GRAPHQL_RESPONSE};q=0.5", JSON),
        (f"application/json;q=0.5, {GRAPHQL_RESPONSE}", GRAPHQL_RESPONSE),
        ("application/*", JSON),
        ("text/html", None),
        ("application/json;q=0", None),
    ],
)
def test_the_response_type_follows_the_accept_header(accept: str | None, expected: str) -> None:
    assert negotiate(accept) == expected


async def test_a_client_without_accept_gets_graphql_response_json(seeded: Seeded) -> None:
    async with serve(gateway_settings(seeded.dsn)) as client:
        request = client.http.build_request(
            "POST", "/graphql", json={"query": "{ nope }"},
            headers={"Authorization": f"Bearer {PORTAL}"},
        )  # fmt: skip
        del request.headers["accept"]
        response = await client.http.send(request)
        refused = await post(client, "{ __typename }", Accept="text/html")
    assert response.status_code == 400
    assert response.headers["content-type"].startswith(GRAPHQL_RESPONSE)
    assert refused.status_code == 406
    assert refused.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


@pytest.mark.parametrize(
    ("query", "variables", "message"),
    [
        ("{ legalPerson(uscc: ", None, "Syntax Error"),
        ("{ legalPerson(uscc: 1) { nope } }", None, "Cannot query field"),
        # The one mutation is the console's verifyAuditChain: a query field is not one.
        ("mutation { legalPerson }", None, "Cannot query field 'legalPerson' on type 'Mutation'"),
        ("subscription { legalPerson }", None, "subscription operation is not supported"),
        ("query A { __typename } query B { __typename }", None, "name one"),
        (NAME, None, "Variable '$u'"),  # a required variable not given: coercion fails
        (NAME, {"u": ["a", "list"]}, "Variable '$u'"),
    ],
    ids=["parse", "validate", "mutation", "subscription", "operation", "missing", "coercion"],
)
async def test_a_request_error_is_200_as_json_and_400_as_graphql_response_without_data(
    seeded: Seeded, query: str, variables: Any, message: str
) -> None:
    async with serve(gateway_settings(seeded.dsn)) as client:
        legacy = await post(client, query, variables, Accept=JSON)
        modern = await post(client, query, variables, Accept=GRAPHQL_RESPONSE)
    for response, status in ((legacy, 200), (modern, 400)):
        assert response.status_code == status
        body = response.json()
        assert "data" not in body  # nothing executed
        assert message in body["errors"][0]["message"]
        assert body["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


async def test_a_field_error_is_200_with_data_for_both_media_types(seeded: Seeded) -> None:
    async with serve(gateway_settings(seeded.dsn)) as client:
        for accept in (JSON, GRAPHQL_RESPONSE):
            response = await post(client, NAME, {"u": "91350100M000100Y40"}, Accept=accept)
            assert response.status_code == 200
            body = response.json()
            assert body["data"] == {"legalPerson": None}
            assert body["errors"][0]["extensions"]["code"] == "INVALID_ID"


@pytest.mark.parametrize(
    "query",
    [
        "{ __typename }",
        "mutation { legalPerson }",
        "query($u: ID!) { legalPerson(uscc: $u) { name } }",
    ],
)
async def test_get_with_an_operation_is_405_never_executed(seeded: Seeded, query: str) -> None:
    async with serve(gateway_settings(seeded.dsn)) as client:
        response = await client.http.get(
            "/graphql", params={"query": query}, headers={"Authorization": f"Bearer {PORTAL}"}
        )
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


async def test_an_oversized_body_is_413_whether_or_not_its_length_is_declared(
    seeded: Seeded,
) -> None:
    body = b'{"query": "{ __typename }", "variables": {"pad": "' + b"x" * 300_000 + b'"}}'

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 16_384):
            yield body[start : start + 16_384]

    headers = {"Content-Type": JSON, "Authorization": f"Bearer {PORTAL}"}
    async with serve(gateway_settings(seeded.dsn)) as client:
        declared = await client.http.post("/graphql", content=body, headers=headers)
        streamed = await client.http.post("/graphql", content=chunks(), headers=headers)
    assert "content-length" not in streamed.request.headers
    for response in (declared, streamed):
        assert response.status_code == 413
        [error] = response.json()["errors"]
        assert error["extensions"] == {
            "code": "BAD_REQUEST", "limit": "bodyBytes", "maximum": 256 * 1024,
        }  # fmt: skip


@pytest.mark.parametrize(
    ("content_type", "body", "message"),
    [
        (None, b'{"query": "{ __typename }"}', "application/json"),
        ("application/json; charset=latin-1", b'{"query": "{ __typename }"}', "UTF-8"),
        ("application/json", b'{"query": "\xff\xfe"}', "not valid JSON"),
        ("application/json", b"", "not valid JSON"),
        ("application/json", b'{"query": "{ __typename }", "extensions": 1}', "'extensions'"),
        ("application/json", b'{"query": "{ __typename }", "operationName": 7}', "'operationName'"),
        (
            "application/json",
            b'{"extensions": {"persistedQuery": {"sha256Hash": "ab"}}}',
            "'query'",
        ),
    ],
    ids=["no-type", "charset", "bad-utf8", "empty", "extensions", "operation-name", "hash-only"],
)
async def test_a_request_that_is_not_graphql_over_http_is_400(
    seeded: Seeded, content_type: str | None, body: bytes, message: str
) -> None:
    headers = {"Authorization": f"Bearer {PORTAL}"}
    if content_type:
        headers["Content-Type"] = content_type
    async with serve(gateway_settings(seeded.dsn)) as client:
        response = await client.http.post("/graphql", content=body, headers=headers)
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "BAD_REQUEST"
    assert message in error["message"]


async def test_a_utf8_charset_and_a_null_operation_name_are_fine(seeded: Seeded) -> None:
    async with serve(gateway_settings(seeded.dsn)) as client:
        response = await client.http.post(
            "/graphql",
            content=b'{"query": "{ __typename }", "operationName": null, "variables": null}',
            headers={
                "Content-Type": "application/json; charset=UTF-8",
                "Authorization": f"Bearer {PORTAL}",
            },
        )
    assert response.status_code == 200
    assert response.json()["data"] == {"__typename": "Query"}


# -- production mode -----------------------------------------------------------------------------


@pytest.fixture
def production(seeded: Seeded, tmp_path: Path) -> tuple[Any, str]:
    key = new_rsa_key()
    write_jwks(tmp_path / "jwks.json", jwk(key, "k1"))
    settings = gateway_settings(
        seeded.dsn, mode="production", jwt_secret=None, jwks_path=tmp_path / "jwks.json"
    )
    return settings, rs256(key, "k1")


SUGGESTING = [
    ('{ legalPerson(uscc: "x") { nmae } }', None),
    (
        'query($k: [CreditKind!]) { legalPerson(uscc: "x") { creditRecords(kinds: $k) { id } } }',
        {"k": ["ADMIN_PENALTI"]},
    ),
    ('{ legalPerson(uscc: "x") { creditRecords(kinds: [ADMIN_PENALTI]) { id } } }', None),
]


async def test_production_mode_gives_no_suggestions_and_no_introspection(
    seeded: Seeded, production: tuple[Any, str]
) -> None:
    settings, bearer = production
    introspection = "{ __schema { queryType { name } } }"
    async with serve(gateway_settings(seeded.dsn)) as client:
        development = [await post(client, q, v) for q, v in SUGGESTING]
        schema = await post(client, introspection)
    assert all("Did you mean" in r.json()["errors"][0]["message"] for r in development)
    assert schema.json()["data"] == {"__schema": {"queryType": {"name": "Query"}}}

    async with serve(settings) as client:
        answers = [await client.post(q, v, token=bearer) for q, v in SUGGESTING]
        schema = await client.post(introspection, token=bearer)
        typename = await client.post("{ __typename }", token=bearer)
        service = await client.post("{ _service { sdl } }", token=bearer)
    for response in answers:
        [error] = response.json()["errors"]
        assert error["extensions"]["code"] == "BAD_REQUEST"
        assert "Did you mean" not in error["message"]
    assert "introspection has been disabled" in schema.json()["errors"][0]["message"]
    assert "data" not in schema.json()
    assert typename.json()["data"] == {"__typename": "Query"}
    # The federation subgraph SDL is the schema too: composed from the published file instead.
    assert "_service is off in production mode" in service.json()["errors"][0]["message"]
    assert "data" not in service.json()


# (document, variables, what the message must still name)
TYPE_NAMING = [
    ("{ naturalPerson { name } }", None, "'idNumber' of 'naturalPerson' is required"),
    ("{ naturalPerson(idNumber: true) { name } }", None, "value: true"),
    ('{ naturalPerson(idNumber: "x") }', None, "'naturalPerson' must have a selection"),
    ('{ legalPerson(uscc: "x") { name { x } } }', None, "'name' must not have a selection"),
    ('{ legalPerson(uscc: "x") { nmae } }', None, "'nmae'"),
    ('{ legalPerson(uscc: "x") { creditRecords(kinds: [ADMIN_PENALTI]) { id } } }', None,
     "'ADMIN_PENALTI' does not exist"),
    ('{ legalPerson(uscc: "x") { creditRecords(kinds: "x") { id } } }', None, '"x"'),
    ('{ legalPerson(uscc: "x") { creditRecords(kindz: "x") { id } } }', None, "'kindz'"),
    ('query($k: Int) { naturalPerson(idNumber: $k) { name } }', None, "'$k'"),
    ('{ searchLegalPersons(name: "x", first: "a") { edges { node { name } } } }', None, '"a"'),
    ("{ auditEvents(filter: {foo: 1}) { edges { node { at } } } }", None, "'foo'"),
    # Variables that do not coerce, found as the operation starts executing.
    ("query($f: AuditEventFilter) { auditEvents(filter: $f) { edges { node { at } } } }",
     {"f": {"from": 5, "owner": "SH"}}, "'owner'"),
]  # fmt: skip


async def test_production_errors_name_no_type_the_caller_did_not_write(
    seeded: Seeded, production: tuple[Any, str]
) -> None:
    from schema import build_schema

    types = [name for name in build_schema()._schema.type_map if not name.startswith("__")]
    settings, bearer = production
    async with serve(settings) as client:
        for document, variables, named in TYPE_NAMING:
            response = await client.post(document, variables, token=bearer)
            assert "data" not in response.json(), document
            messages = " ".join(e["message"] for e in response.json()["errors"])
            assert named in messages, (document, messages)
            assert not re.search(r"'\w+\.\w+", messages), (document, messages)  # no coordinate
            shown = [t for t in types if re.search(rf"\b{t}\b", messages)]
            assert all(t in document for t in shown), (document, messages)


async def test_graphiql_loads_the_whole_schema_in_development(seeded: Seeded) -> None:
    # The introspection query GraphiQL sends, answered as the SDL snapshot describes.
    from graphql import (
        GraphQLSchema,
        build_client_schema,
        build_schema,
        get_introspection_query,
        lexicographic_sort_schema,
        print_schema,
    )

    from schema import SDL_PATH

    async with serve(gateway_settings(seeded.dsn)) as client:
        response = await post(client, get_introspection_query(descriptions=True))
    body = response.json()
    assert "errors" not in body
    # The snapshot is a federation subgraph SDL: it applies @link and @key and leaves their
    # definitions (and their argument types) to the supergraph, where introspection has them.
    kwargs = build_client_schema(body["data"]).to_kwargs()
    kwargs["directives"] = tuple(d for d in kwargs["directives"] if d.name not in ("key", "link"))
    kwargs["types"] = tuple(
        t for t in kwargs["types"] if t.name not in ("_FieldSet", "link__Import", "link__Purpose")
    )
    served = lexicographic_sort_schema(GraphQLSchema(**kwargs))
    sdl = SDL_PATH.read_text(encoding="utf-8")
    snapshot = lexicographic_sort_schema(build_schema(sdl, assume_valid_sdl=True))
    assert print_schema(served) == print_schema(snapshot)


def test_request_headers_keep_the_first_value_of_a_name_in_any_case() -> None:
    raw = [
        (b"authorization", b"Bearer first"),
        (b"Authorization", b"Bearer second"),
        (b"X-Matter-Code", b"OS-ENTERPRISE-OPENING"),
        (b"x-label", "caf\u00e9".encode("latin-1")),
    ]
    headers = request_headers(raw)
    assert headers == {
        "authorization": "Bearer first",
        "x-matter-code": "OS-ENTERPRISE-OPENING",
        "x-label": "caf\u00e9",  # latin-1, as Starlette decodes a header value
    }
    # What Starlette's ``Headers`` gives for the lines a server sends (names lower-cased).
    lowered = [(name.lower(), value) for name, value in raw]
    assert dict(request_headers(lowered)) == {key: Headers(raw=lowered).get(key) for key in headers}
