"""Text no source can store (NUL, lone surrogates) is the caller's error, refused before any SQL.

Sent on to PostgreSQL, a NUL made the backend raise a data error that the
source reported as the region being unavailable: a few aliased searches from
one public caller opened every region's circuit breaker, and every other
caller's requests failed until the breakers reset.
"""

from __future__ import annotations

from typing import Any

import pytest

from gateway.core.errors import InvalidInput
from gateway.core.text import check_variables, require_text
from gateway.sources import BreakerState
from tests.client import serve
from tests.conftest import Seeded, gateway_settings, token

PORTAL = token("AH", "public_portal", app="portal-ah")
OFFICER = token("JS", "joint_handling_officer", app="jh-js")
GRAPHQL_RESPONSE = "application/graphql-response+json"
SEARCH = "{ edges { node { uscc name } } }"
ALIASED = " ".join(
    f'a{n}: searchLegalPersons(name: "{prefix}") {SEARCH}'
    for n, prefix in enumerate(["\\u0000", "上海\\u0000", "\\u0000\\u0000"])
)
BY_VARIABLE = "query($n: String!) { a: searchLegalPersons(name: $n) { edges { cursor } } }"
AUDIT = "query($f: AuditEventFilter) { auditEvents(filter: $f) { edges { node { traceId } } } }"


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        ("{ " + ALIASED + " }", None),
        ('{ a: searchLegalPersons(name: "\x00") { edges { cursor } } }', None),  # raw, unescaped
        (BY_VARIABLE, {"n": "\x00"}),
        (BY_VARIABLE, {"n": "上海\x00有限"}),
        (AUDIT, {"f": {"callerApp": "portal\x00"}}),  # nested in an input object
        ('{ legalPersons(usccs: ["\\u0000"]) { name } }', None),
    ],
    ids=["aliased-literals", "raw-literal", "variable", "variable-inside", "nested", "key"],
)
async def test_unstorable_text_from_a_public_caller_never_opens_a_breaker_or_stalls_others(
    seeded: Seeded, query: str, variables: dict[str, Any] | None
) -> None:
    queries: list[str] = []
    settings = gateway_settings(seeded.dsn, rate_limits=False)
    async with serve(settings, observer=lambda region, *_: queries.append(region)) as client:
        for _ in range(5):  # more than breaker_failures, for every region
            response = await client.post(
                query, variables, token=PORTAL, headers={"Accept": GRAPHQL_RESPONSE}
            )
            assert response.status_code == 400, response.text
            body = response.json()
            assert "data" not in body
            for error in body["errors"]:
                assert error["extensions"]["code"] == "BAD_REQUEST"
                assert "U+0000" in error["message"]
        assert queries == []  # refused before any SQL
        assert {r: s.state for r, s in client.gateway.sources.items()} == dict.fromkeys(
            client.gateway.sources, BreakerState.CLOSED
        )
        company = seeded.dataset.enterprise("ZJ", 0)
        served = await client.query(
            f'{{ legalPerson(uscc: "{company["uscc"]}") {{ name }} }}',
            token=OFFICER,
            matter="JH-HUKOU-MIGRATION",
        )
    assert "errors" not in served
    assert served["data"]["legalPerson"]["name"] == company["name"]


@pytest.mark.parametrize("value", ["\x00", "a\x00", "\ud800", "x\udfff"])
def test_require_text_refuses_characters_no_text_can_hold(value: str) -> None:
    with pytest.raises(InvalidInput, match="which no text can hold") as refused:
        require_text(value, "name", max_length=100)
    assert refused.value.extensions == {"argument": "name"}


def test_require_text_strips_and_bounds_the_length() -> None:
    assert require_text("  上海 ", "name", max_length=2) == "上海"
    for value in ("   ", "上海市"):
        with pytest.raises(InvalidInput, match="1 to 2 characters"):
            require_text(value, "name", max_length=2)


def test_variables_are_checked_at_every_depth_keys_included() -> None:
    check_variables({"a": ["上海", {"b": "ok", "c": [1, 2.5, None, True]}]})
    for variables in ({"a": [{"b": ["\x00"]}]}, {"a": {"\x00": 1}}, {"a": "\ud800"}):
        with pytest.raises(InvalidInput, match=r"variable \$a"):
            check_variables(variables)
