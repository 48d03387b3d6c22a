"""Every answer is JSON with ``extensions.code``, whatever the request's values.

orjson writes no integer beyond 64 bits: a variable such as ``{"first": 1e300}``
was sized as ``int(1e300)``, echoed in a ``BATCH_TOO_LARGE`` refusal, and the
refusal itself could not be written (a plain-text 500 and a traceback).
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from starlette.responses import Response

from gateway.edge.responses import json_answer, json_response
from tests.client import serve
from tests.conftest import Seeded, gateway_settings, token

PORTAL = token("AH", "public_portal", app="portal-ah")
AUDITOR = token("NATIONAL", "auditor", app="audit-national")
SEARCH = 'query($n: Int!) { searchLegalPersons(name: "上", first: $n) { edges { cursor } } }'
CREDIT = 'query($n: Int!) { creditRecords(subjectId: "x", first: $n) { edges { cursor } } }'
PERSONS = "query($ids: [ID!]!) { naturalPersons(idNumbers: $ids) { name } }"
AUDIT = "query($f: AuditEventFilter, $n: Int! = 5) { auditEvents(filter: $f, first: $n) {"
AUDIT += " edges { node { traceId } } } }"
HUGE = [1e300, -1e300, 1.7976931348623157e308, 2**40, 2**63, 2**64 - 1, 1e19, 2.5, "NaN"]


def _cases() -> list[tuple[str, Any]]:
    cases: list[tuple[str, Any]] = []
    for value in HUGE:
        cases += [
            (SEARCH, {"n": value}),
            (CREDIT, {"n": value}),
            (PERSONS, {"ids": [value]}),
            (PERSONS, {"ids": value}),
            (AUDIT, {"f": {"callerApp": value, "from": [value]}}),
            (AUDIT, {"n": value, "f": {"matterCode": {"nested": [value]}}}),
        ]
    return cases


@pytest.mark.parametrize(("query", "variables"), _cases())
async def test_extreme_numbers_in_variables_get_a_json_graphql_error(
    seeded: Seeded, query: str, variables: dict[str, Any]
) -> None:
    async with serve(gateway_settings(seeded.dsn, rate_limits=False)) as client:
        for bearer in (PORTAL, AUDITOR):
            response = await client.post(query, variables, token=bearer)
            assert response.status_code < 500, response.text
            assert response.headers["content-type"].startswith("application/json")
            errors = response.json()["errors"]
            assert errors
            for error in errors:
                assert error["extensions"]["code"] in {"BAD_REQUEST", "INVALID_ID", "FORBIDDEN"}
                assert "Traceback" not in error["message"]


@pytest.mark.parametrize(
    "literal",
    ["99999999999999999999", "-99999999999999999999", "9" * 5000, "2147483648"],
    ids=["20-digits", "negative", "5000-digits", "int32-max-plus-one"],
)
async def test_extreme_integer_literals_get_a_json_graphql_error(
    seeded: Seeded, literal: str
) -> None:
    query = f'{{ searchLegalPersons(name: "上", first: {literal}) {{ edges {{ cursor }} }} }}'
    async with serve(gateway_settings(seeded.dsn)) as client:
        response = await client.post(query, token=PORTAL)
    assert response.status_code < 500, response.text  # a request error: 200 as application/json
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "BAD_REQUEST"


@pytest.mark.parametrize(
    "body",
    [b'{"query": "{ __typename }", "variables": {"n": NaN}}', b'{"variables": {"n": 1e999}}'],
)
async def test_numbers_json_cannot_hold_are_a_bad_request(seeded: Seeded, body: bytes) -> None:
    async with serve(gateway_settings(seeded.dsn)) as client:
        response = await client.http.post(
            "/graphql",
            content=body,
            headers={"Authorization": f"Bearer {PORTAL}", "Content-Type": "application/json"},
        )
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


def test_a_payload_orjson_cannot_write_still_leaves_as_json() -> None:
    response = json_response(
        {"errors": [{"message": "x", "extensions": {"code": "BATCH_TOO_LARGE", "found": 10**300}}]}
    )
    assert response.status_code == 200
    body = orjson.loads(response.body)
    assert body["errors"][0]["extensions"] == {"code": "BATCH_TOO_LARGE", "found": str(10**300)}


@pytest.mark.parametrize(
    ("status", "media_type", "extra"),
    [
        (200, "application/graphql-response+json", {}),
        (200, "application/json", {}),
        (401, "application/json", {"WWW-Authenticate": "Bearer"}),
        (429, "application/graphql-response+json", {"Retry-After": "1"}),
    ],
)
def test_an_answer_writes_the_header_lines_starlette_wrote(
    status: int, media_type: str, extra: dict[str, str]
) -> None:
    payload = {"errors": [{"message": "x", "extensions": {"code": "X"}}]}
    answer = json_answer(payload, status, media_type, **extra)
    starlette = Response(orjson.dumps(payload), status, extra or None, media_type)
    assert answer.headers == starlette.raw_headers
    assert (answer.status, answer.body) == (starlette.status_code, starlette.body)
    answer.close_connection()
    starlette.headers["Connection"] = "close"
    assert answer.headers == starlette.raw_headers
    assert answer.response().raw_headers == starlette.raw_headers
