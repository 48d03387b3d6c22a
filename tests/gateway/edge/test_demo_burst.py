"""The demo's seeded burst raises the distinct-subjects signal on the console's front page."""

from __future__ import annotations

from gateway.edge.demo_burst import BURST_APP, burst_ids, seed_burst
from resolvers.console_settings import ConsoleSettings
from tests.client import serve
from tests.conftest import Seeded, gateway_settings
from tests.gateway.audit.test_api import auditor

SIGNALS = "{ misuseSignals { kind callerApp count threshold filter { callerApp from to } } }"
EVENTS = """
query($filter: AuditEventFilter) {
  auditEvents(filter: $filter, first: 100) { edges { node { callerApp subjects } } }
}
"""


async def test_the_burst_raises_the_distinct_subjects_signal_for_its_app(seeded: Seeded) -> None:
    settings = gateway_settings(seeded.dsn, console=ConsoleSettings(distinct_subjects_threshold=30))
    requests = await seed_burst(settings, seeded.dataset)
    assert requests == 1  # 50 persons in one request of at most 50

    async with serve(settings) as client:
        body = await client.query(SIGNALS, token=auditor())
        [signal] = [s for s in body["data"]["misuseSignals"] if s["callerApp"] == BURST_APP]
        assert signal["kind"] == "DISTINCT_SUBJECTS"
        assert signal["count"] >= 50
        assert signal["threshold"] == 30
        found = await client.query(EVENTS, {"filter": signal["filter"]}, token=auditor())
        edges = found["data"]["auditEvents"]["edges"]
        assert edges
        assert {e["node"]["callerApp"] for e in edges} == {BURST_APP}


def test_the_burst_asks_for_distinct_persons_of_every_region(seeded: Seeded) -> None:
    ids = burst_ids(seeded.dataset, 120)
    assert len(set(ids)) == 120
    assert {i[:2] for i in ids} == {"31", "32", "33", "34"}
