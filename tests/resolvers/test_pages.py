"""Paged lists: enterprise search across regions, and a subject's credit records."""

from __future__ import annotations

import ast
import contextlib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from gateway.core.errors import InvalidInput
from gateway.core.types import DELTA_REGIONS
from resolvers.cursors import CursorCodec
from tests.client import GatewayClient, serve
from tests.conftest import Seeded, gateway_settings, token

SEARCH = """
query($name: String!, $region: Region, $first: Int!, $after: String) {
  searchLegalPersons(name: $name, region: $region, first: $first, after: $after) {
    edges { cursor node { uscc name region } }
    pageInfo { hasNextPage endCursor }
  }
}
"""
CREDIT = """
query($s: ID!, $first: Int!, $after: String, $kinds: [CreditKind!]) {
  creditRecords(subjectId: $s, first: $first, after: $after, kinds: $kinds) {
    edges { cursor node { id decidedOn region kind } }
    pageInfo { hasNextPage endCursor }
  }
}
"""
PORTAL = token("AH", "public_portal")


async def all_pages(
    client: GatewayClient, document: str, root: str, variables: dict[str, Any]
) -> list[list[dict[str, Any]]]:
    pages = []
    after = None
    while True:
        body = await client.query(document, {**variables, "after": after}, token=PORTAL)
        assert "errors" not in body, body
        connection = body["data"][root]
        pages.append([edge["node"] for edge in connection["edges"]])
        if not connection["pageInfo"]["hasNextPage"]:
            return pages
        after = connection["pageInfo"]["endCursor"]
        assert after == connection["edges"][-1]["cursor"]


def common_first_character(seeded: Seeded) -> str:
    """The first character most enterprise names share (names start with their city)."""
    firsts: Counter[str] = Counter()
    for region in DELTA_REGIONS:
        firsts.update(row["name"][0] for row in seeded.dataset.enterprises(region))
    return firsts.most_common(1)[0][0]


async def test_search_pages_through_all_regions_in_name_order(seeded: Seeded) -> None:
    # Searched in every region; the others answer empty pages that the merge must handle.
    prefix = common_first_character(seeded)
    expected = sorted(
        (row["name"], row["uscc"])
        for region in DELTA_REGIONS
        for row in seeded.dataset.enterprises(region)
        if row["name"].startswith(prefix)
    )
    async with serve(gateway_settings(seeded.dsn)) as client:
        pages = await all_pages(
            client, SEARCH, "searchLegalPersons", {"name": prefix, "first": 7, "region": None}
        )
    assert all(len(page) == 7 for page in pages[:-1])
    found = [(node["name"], node["uscc"]) for page in pages for node in page]
    assert len(found) > 7
    assert found == expected


async def test_search_in_one_region(seeded: Seeded) -> None:
    prefix = seeded.dataset.enterprise("ZJ", 0)["name"][:2]
    async with serve(gateway_settings(seeded.dsn)) as client:
        pages = await all_pages(
            client, SEARCH, "searchLegalPersons", {"name": prefix, "first": 50, "region": "ZJ"}
        )
    nodes = [node for page in pages for node in page]
    assert nodes
    assert {node["region"] for node in nodes} == {"ZJ"}
    assert len(nodes) == sum(
        1 for row in seeded.dataset.enterprises("ZJ") if row["name"].startswith(prefix)
    )


async def test_a_cursor_the_gateway_did_not_make_is_refused(seeded: Seeded) -> None:
    async with serve(gateway_settings(seeded.dsn)) as client:
        body = await client.query(
            SEARCH,
            {"name": "上", "first": 5, "after": "eyJuYW1lIjoieCJ9"},
            token=PORTAL,
        )
    [error] = body["errors"]
    assert error["extensions"] == {"code": "BAD_REQUEST", "argument": "after"}
    assert body["data"] is None


def source_literals() -> set[bytes]:
    """Every string and bytes constant in the gateway's packages: what any reader knows."""
    root = Path(__file__).resolve().parents[2]
    found: set[bytes] = set()
    for package in ("gateway", "policies", "resolvers", "schema"):
        for path in (root / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Constant) and isinstance(node.value, str | bytes):
                    value = node.value
                    found.add(
                        value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value
                    )
    return found


async def test_no_key_in_the_source_opens_a_development_gateways_cursors(seeded: Seeded) -> None:
    # Development with no DELTAGATE_MASK_SECRET: the cursor key must still be nobody's to know.
    # (A person's credit history is withheld from the portal altogether, cursors included.)
    subject = seeded.dataset.multi_region_credit_subject("JS", "LEGAL_PERSON")
    async with serve(gateway_settings(seeded.dsn, mask_secret=None)) as client:
        body = await client.query(CREDIT, {"s": subject, "first": 1}, token=PORTAL)
        cursor = body["data"]["creditRecords"]["pageInfo"]["endCursor"]
        after = {"s": subject, "first": 1, "after": cursor}
        again = await client.query(CREDIT, after, token=PORTAL)
    assert cursor
    assert "errors" not in again  # the gateway that made it reads it back
    literals = source_literals()
    assert len(literals) > 1000
    opened = []
    for literal in literals:
        with contextlib.suppress(InvalidInput):
            opened.append(CursorCodec(literal).decode(cursor))
    assert opened == []


@pytest.mark.parametrize("where", [0, 20, -5])
async def test_a_tampered_cursor_is_refused(seeded: Seeded, where: int) -> None:
    prefix = common_first_character(seeded)
    async with serve(gateway_settings(seeded.dsn)) as client:
        first = await client.query(SEARCH, {"name": prefix, "first": 2}, token=PORTAL)
        cursor = first["data"]["searchLegalPersons"]["pageInfo"]["endCursor"]
        flipped = "A" if cursor[where] != "A" else "B"
        tampered = cursor[:where] + flipped + cursor[where:][1:]
        body = await client.query(
            SEARCH, {"name": prefix, "first": 2, "after": tampered}, token=PORTAL
        )
    assert tampered != cursor
    [error] = body["errors"]
    assert error["extensions"] == {"code": "BAD_REQUEST", "argument": "after"}
    assert body["data"] is None


async def test_credit_records_page_newest_first_across_regions(seeded: Seeded) -> None:
    uscc = seeded.dataset.multi_region_credit_subject("JS", "LEGAL_PERSON")
    expected = seeded.dataset.credit_records_of(uscc)
    async with serve(gateway_settings(seeded.dsn)) as client:
        pages = await all_pages(client, CREDIT, "creditRecords", {"s": uscc, "first": 1})
        kind = expected[0]["kind"]
        filtered = await all_pages(
            client, CREDIT, "creditRecords", {"s": uscc, "first": 2, "kinds": [kind]}
        )
    nodes = [node for page in pages for node in page]
    assert len(pages) == len(expected)
    assert sorted(node["id"] for node in nodes) == sorted(row["id"] for row in expected)
    dates = [node["decidedOn"] for node in nodes]
    assert dates == sorted(dates, reverse=True)
    assert {node["kind"] for page in filtered for node in page} == {kind}
    assert sum(len(page) for page in filtered) == sum(1 for r in expected if r["kind"] == kind)


async def test_page_sizes_are_bounded(seeded: Seeded) -> None:
    async with serve(gateway_settings(seeded.dsn)) as client:
        refused = await client.post(SEARCH, {"name": "上", "first": 101}, token=PORTAL)
        too_small = await client.query(SEARCH, {"name": "上", "first": 0}, token=PORTAL)
    assert refused.status_code == 400  # refused before anything runs
    assert refused.json()["errors"][0]["extensions"] == {
        "code": "BATCH_TOO_LARGE", "limit": "pageSize", "argument": "first", "found": 101,
        "maximum": 100,
    }  # fmt: skip
    assert too_small["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
