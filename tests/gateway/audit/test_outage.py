"""The audit database goes down mid-run: personal data is refused, public data still served,
and once it is back every acknowledged access is in the log, and the chain holds."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator

import asyncpg
import pytest

from gateway.audit import create_database, verify
from gateway.edge.embedded import EmbeddedServer
from tests.client import GatewayClient, serve
from tests.conftest import (
    AUDIT_CHECKPOINT_SECRET,
    Seeded,
    embedded_data_dir,
    gateway_settings,
    token,
)

PERSON = "query($id: ID!) { naturalPerson(idNumber: $id) { name phone } }"
COMPANY = "query($u: ID!) { legalPerson(uscc: $u) { name status } }"

#: Safety bounds only: the test waits for events, not for time.
DEADLINE = 30.0
MOST_REQUESTS = 3000


@pytest.fixture(scope="module")
def audit_server() -> Iterator[tuple[EmbeddedServer, str]]:
    """An audit database on a server of its own, that the test stops and starts; stopped after."""
    if os.environ.get("DELTAGATE_TEST_DSN"):
        pytest.skip("the audit outage test stops an embedded server of its own")
    server = EmbeddedServer(embedded_data_dir("-audit"))
    try:
        yield server, asyncio.run(create_database(server.uri, fresh=True))
    finally:
        server.close()


class Run:
    """Callers asking for personal data, over and over, and what each was answered."""

    def __init__(self, client: GatewayClient, persons: list[dict[str, str]]) -> None:
        self.client = client
        self.persons = persons
        self.acknowledged: list[str] = []  # trace ids of answers that carried personal data
        self.refused = 0
        self.done = False

    async def caller(self, number: int) -> None:
        for i in range(MOST_REQUESTS):
            if self.done:
                return
            person = self.persons[(number + i) % len(self.persons)]
            response = await self.client.post(
                PERSON,
                {"id": person["id_number"]},
                token=token("SH", "one_stop_app", app=f"counter-{number}"),
                matter="OS-ENTERPRISE-OPENING",
            )
            body = response.json()
            if response.status_code == 200:
                assert body["data"]["naturalPerson"]["phone"] == person["phone"]
                self.acknowledged.append(body["extensions"]["traceId"])
            else:
                # Refused whole: no data key, no personal value anywhere in the answer.
                assert response.status_code == 503
                assert "data" not in body
                assert [e["extensions"]["code"] for e in body["errors"]] == ["AUDIT_UNAVAILABLE"]
                assert person["name"] not in response.text
                assert person["phone"] not in response.text
                self.refused += 1

    async def until(self, condition: object) -> None:
        deadline = time.monotonic() + DEADLINE
        while not condition():  # type: ignore[operator]
            assert time.monotonic() < deadline, "the run did not get there"
            await asyncio.sleep(0.01)


async def test_with_the_audit_database_down_nothing_is_served_unaudited(
    seeded: Seeded, audit_server: tuple[EmbeddedServer, str]
) -> None:
    server, dsn = audit_server
    persons = [seeded.dataset.person("SH", i) for i in range(20)]
    settings = gateway_settings(seeded.dsn, audit_dsn=dsn, audit_timeout=2.0)
    async with serve(settings) as client:
        run = Run(client, persons)
        callers = [asyncio.create_task(run.caller(n)) for n in range(4)]
        try:
            await run.until(lambda: len(run.acknowledged) >= 20)

            await asyncio.to_thread(server.stop)
            try:
                before = run.refused
                await run.until(lambda: run.refused >= before + 20)
                # Public data needs no audit event: still served.
                public = await client.query(
                    COMPANY, {"u": seeded.dataset.uscc("SH", 1)}, token=token("SH", "public_portal")
                )
                assert public["data"]["legalPerson"]["name"]
                ready = await client.http.get("/readyz")
                assert ready.status_code == 503
                assert ready.json()["audit"] == "unavailable"
            finally:
                await asyncio.to_thread(server.start)

            served = len(run.acknowledged)
            await run.until(lambda: len(run.acknowledged) >= served + 20)
        finally:
            run.done = True
            await asyncio.gather(*callers)
        assert (await client.http.get("/readyz")).json()["audit"] == "ok"

    connection = await asyncpg.connect(dsn)
    try:
        stored = {
            row["trace_id"] for row in await connection.fetch("SELECT trace_id FROM audit_event")
        }
    finally:
        await connection.close()
    assert set(run.acknowledged) <= stored
    assert run.refused >= 20
    report = await verify(dsn, secret=AUDIT_CHECKPOINT_SECRET.encode())
    assert report.ok, report.lines()
