"""``/metrics``: call statistics per caller app, operation, outcome and resource; latency;
backend latency per region; masked and withheld fields; audit queue and breakers."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.edge.metrics import Metrics
from gateway.edge.query_limits import Limits
from tests.client import GatewayClient, serve
from tests.conftest import Seeded, gateway_settings, token
from tests.gateway.edge.test_cli import serving

OFFICER = token("JS", "joint_handling_officer", app="jh-js")
MATTER = "JH-HUKOU-MIGRATION"
MATTER = "JH-HUKOU-MIGRATION"
HUKOU = """query HukouMigration($id: ID!) {
  naturalPerson(idNumber: $id) { name ethnicity householdRegion residences { region } }
}"""


async def scrape(client: GatewayClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = await client.http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


async def test_requests_are_counted_by_app_operation_outcome_and_resource(seeded: Seeded) -> None:
    person = seeded.dataset.cross_region_person("AH")["id_number"]
    settings = gateway_settings(seeded.dsn, limits=Limits(max_depth=2))
    async with serve(settings) as client:
        for _ in range(2):
            body = await client.query(HUKOU.replace("residences { region }", ""), {"id": person},
                                      token=OFFICER, matter=MATTER)  # fmt: skip
            assert body["data"]["naturalPerson"]["ethnicity"] is None  # the negative list
        deep = await client.post(HUKOU, {"id": person}, token=OFFICER, matter=MATTER)
        invalid = await client.query('{ naturalPerson(idNumber: "1") { name } }', token=OFFICER)
        anonymous = await client.post("{ __typename }", token=None)
        samples = await scrape(client)
    assert deep.status_code == 400
    assert invalid["errors"][0]["extensions"]["code"] == "INVALID_ID"
    assert anonymous.status_code == 401
    requests = "deltagate_requests_total"
    assert value(samples, requests, app="jh-js", operation="HukouMigration", outcome="ok") == 2
    assert value(samples, requests, app="jh-js", operation="unknown",
                 outcome="QUERY_TOO_DEEP") == 1  # fmt: skip
    assert value(samples, requests, app="jh-js", operation="anonymous", outcome="INVALID_ID") == 1
    assert value(samples, requests, app="-", operation="unknown", outcome="UNAUTHENTICATED") == 1
    calls = "deltagate_resource_calls_total"
    assert value(samples, calls, app="jh-js", resource="naturalPerson") == 3  # refusals excluded
    assert value(samples, "deltagate_request_duration_seconds_count",
                 operation="HukouMigration") == 2  # fmt: skip
    assert value(samples, "deltagate_backend_query_duration_seconds_count",
                 region="AH", entity="person") == 2  # fmt: skip
    withheld = value(samples, "deltagate_policy_fields_total", field="NaturalPerson.ethnicity",
                     owner="AH", decision="withheld")  # fmt: skip
    assert withheld == 2


async def test_operation_names_get_a_bounded_number_of_series(seeded: Seeded) -> None:
    async with serve(gateway_settings(seeded.dsn)) as client:
        client.gateway.metrics._max_operations = 3
        for n in range(5):
            await client.query(f"query Name{n} {{ __typename }}", token=OFFICER)
        samples = await scrape(client)
    names = {
        dict(labels)["operation"] for name, labels in samples if name == "deltagate_requests_total"
    }
    assert names == {"Name0", "Name1", "Name2", "other"}


async def test_breaker_states_and_the_audit_queue_are_exposed(seeded: Seeded) -> None:
    settings = gateway_settings(seeded.dsn)
    broken = tuple(
        replace(s, dsn="postgresql://nobody@127.0.0.1:9/none", timeout=1.0, breaker_failures=1)
        if s.region == "ZJ"
        else s
        for s in settings.sources
    )
    person = seeded.dataset.person_id("ZJ", 0)
    async with serve(replace(settings, sources=broken)) as client:
        body = await client.query("query($i: ID!) { naturalPerson(idNumber: $i) { name } }",
                                  {"i": person}, token=OFFICER, matter=MATTER)  # fmt: skip
        assert body["errors"][0]["extensions"]["code"] == "SOURCE_UNAVAILABLE"
        client.gateway.metrics.set_audit_queue_depth(7)
        samples = await scrape(client)
    assert value(samples, "deltagate_breaker_state", region="ZJ") == 2
    assert value(samples, "deltagate_breaker_state", region="SH") == 0
    assert value(samples, "deltagate_audit_queue_depth") == 7
    assert value(samples, "deltagate_requests_total", app="jh-js", operation="anonymous",
                 outcome="SOURCE_UNAVAILABLE") == 1  # fmt: skip


def test_each_gateway_has_metrics_of_its_own() -> None:
    first, second = Metrics(), Metrics()
    first.observe_request(app="a", operation="x", outcome="ok", seconds=0.01)
    assert b'app="a"' in first.render()[0]
    assert b'app="a"' not in second.render()[0]


def test_masked_and_withheld_values_are_counted_and_clear_ones_are_not() -> None:
    metrics = Metrics()
    fields = [
        {"field": "NaturalPerson.name", "owner": "SH", "decision": "CLEAR", "count": 3},
        {"field": "NaturalPerson.phone", "owner": "SH", "decision": "MASKED", "count": 2},
        {"field": "NaturalPerson.ethnicity", "owner": "AH", "decision": "WITHHELD", "count": 1},
        {"field": "NaturalPerson.phone", "owner": "JS", "decision": "MASKED", "count": 0},
    ]
    for _ in range(2):
        metrics.observe_request(app="a", operation="x", outcome="ok", seconds=0.01,
                                resources=("naturalPerson",), fields=fields)  # fmt: skip
    samples = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(metrics.render()[0].decode())
        for sample in family.samples
    }
    policy = {
        (dict(labels)["field"], dict(labels)["owner"], dict(labels)["decision"]): count
        for (name, labels), count in samples.items()
        if name == "deltagate_policy_fields_total"
    }
    assert policy == {
        ("NaturalPerson.phone", "SH", "masked"): 4,
        ("NaturalPerson.ethnicity", "AH", "withheld"): 2,
    }
    assert value(samples, "deltagate_requests_total", app="a", operation="x", outcome="ok") == 2
    assert value(samples, "deltagate_resource_calls_total", app="a", resource="naturalPerson") == 2
    assert value(samples, "deltagate_request_duration_seconds_count", operation="x") == 2


@pytest.mark.slow
def test_metrics_of_several_workers_add_up(seeded: Seeded, tmp_path: Path) -> None:
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    sent = 0
    writers: set[str] = set()
    with serving(
        seeded, tmp_path, "--workers", "2", config=["[limits]", "rate_limits = false"],
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
    ) as server:  # fmt: skip

        def ping(_: int) -> int:
            answer = httpx.post(
                f"{server.base}/graphql",
                json={"query": "query Ping { __typename }"},
                headers={"Authorization": f"Bearer {OFFICER}"},
                timeout=5,
            )
            return answer.status_code

        # Concurrent batches until both workers have answered some (each writes files of its
        # own); bounded, and two batches are usually enough.
        with ThreadPoolExecutor(max_workers=16) as pool:
            for _ in range(20):
                assert set(pool.map(ping, range(32))) == {200}
                sent += 32
                writers = {p.stem.rsplit("_", 1)[1] for p in metrics_dir.glob("counter_*.db")}
                if len(writers) == 2:
                    break
        scrapes = [httpx.get(f"{server.base}/metrics", timeout=5) for _ in range(4)]
    assert len(writers) == 2, server.output
    # Whichever worker serves the scrape, it counts the requests of both.
    for scrape_ in scrapes:
        samples = {
            (s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(scrape_.text)
            for s in family.samples
        }
        counted = value(samples, "deltagate_requests_total", app="jh-js", operation="Ping",
                        outcome="ok")  # fmt: skip
        assert counted == sent, server.output
