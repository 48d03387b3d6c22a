"""A region goes down mid-run: answers carry what the others keep and name the missing region;
when it comes back, full answers return within seconds, with no restart of the gateway."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from gateway.edge.embedded import EmbeddedServer
from gateway.synthetic import region_dsn, seed_regions
from tests.client import GatewayClient, serve
from tests.conftest import PERSONS, SEED, Seeded, embedded_data_dir, gateway_settings, token


@pytest.fixture(scope="module")
def zhejiang() -> Iterator[EmbeddedServer]:
    """A second embedded PostgreSQL, for ZJ, that the test stops and starts; stopped after."""
    if os.environ.get("DELTAGATE_TEST_DSN"):
        pytest.skip("the outage test stops an embedded server of its own")
    server = EmbeddedServer(embedded_data_dir("-zj"))
    try:
        asyncio.run(seed_regions(server.uri, PERSONS, SEED, regions=["ZJ"], processes=1))
        yield server
    finally:
        server.close()


QUERY = """
query($u: ID!) {
  legalPerson(uscc: $u) { name creditRecords { id region } }
}
"""


async def ask(client: GatewayClient, uscc: str) -> dict[str, Any]:
    return await client.query(QUERY, {"u": uscc}, token=token("SH", "public_portal"))


async def test_a_region_down_gives_partial_answers_and_comes_back(
    seeded: Seeded, zhejiang: EmbeddedServer
) -> None:
    settings = gateway_settings(seeded.dsn)
    sources = tuple(
        replace(s, dsn=region_dsn(zhejiang.uri, "ZJ"), timeout=2.0, breaker_reset=0.5)
        if s.region == "ZJ"
        else s
        for s in settings.sources
    )
    # An enterprise of SH with credit records kept in ZJ among others.
    uscc = next(
        seeded.dataset.uscc("SH", i)
        for i in range(seeded.dataset.enterprise_count("SH"))
        if {"ZJ", "SH"}
        <= {r["region"] for r in seeded.dataset.credit_records_of(seeded.dataset.uscc("SH", i))}
    )
    expected = {r["id"] for r in seeded.dataset.credit_records_of(uscc)}
    from_zj = {r["id"] for r in seeded.dataset.credit_records_of(uscc) if r["region"] == "ZJ"}
    async with serve(replace(settings, sources=sources)) as client:
        whole = await ask(client, uscc)
        assert "errors" not in whole
        assert {r["id"] for r in whole["data"]["legalPerson"]["creditRecords"]} == expected

        zhejiang.stop()
        try:
            for _ in range(5):  # a run of queries: the first ones fail over, later ones fast
                part = await ask(client, uscc)
                assert part["data"]["legalPerson"]["name"]  # SH's registry record still comes
                got = {r["id"] for r in part["data"]["legalPerson"]["creditRecords"]}
                assert got == expected - from_zj
                [error] = part["errors"]
                assert error["extensions"] == {"code": "SOURCE_UNAVAILABLE", "region": "ZJ"}
                assert error["path"] == ["legalPerson", "creditRecords"]
            ready = await client.http.get("/readyz")
            # Named, but the replica stays in rotation: every replica shares the outage.
            assert ready.status_code == 200
            assert ready.json()["status"] == "degraded"
            assert ready.json()["sources"]["ZJ"] == "unavailable"
            # An enterprise of ZJ itself: its base record is missing, and says why.
            own = await ask(client, seeded.dataset.uscc("ZJ", 0))
            assert own["data"]["legalPerson"] is None
            assert own["errors"][0]["extensions"]["region"] == "ZJ"
            # In a list, only the items kept by ZJ are missing.
            listed = await client.query(
                "query($u: [ID!]!) { legalPersons(usccs: $u) { name } }",
                {"u": [seeded.dataset.uscc("SH", 0), seeded.dataset.uscc("ZJ", 0)]},
                token=token("SH", "public_portal"),
            )
            assert listed["data"]["legalPersons"][0]["name"]
            assert listed["data"]["legalPersons"][1] is None
            [error] = listed["errors"]
            assert error["path"] == ["legalPersons", 1]
            assert error["extensions"]["code"] == "SOURCE_UNAVAILABLE"
        finally:
            zhejiang.start()

        deadline = time.monotonic() + 10
        while True:
            back = await ask(client, uscc)
            if "errors" not in back or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        assert "errors" not in back
        assert {r["id"] for r in back["data"]["legalPerson"]["creditRecords"]} == expected
