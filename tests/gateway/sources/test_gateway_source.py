"""The ``gateway`` source kind: an upper gateway whose Jiangsu is another deltagate process.

The lower is a real ``deltagate serve`` over the seeded JS database only; the
upper is served in-process over the other three regions' databases, with JS
``kind = "gateway"`` pointing at the lower. Nothing is mocked: the hop is HTTP on
loopback, the lower decides with its own policy for the upper's service token.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.core.cascade import CascadeRequest, acting_for
from gateway.core.types import Caller, Row
from gateway.edge.settings import Settings, SourceSettings
from gateway.sources import GatewaySource
from policies.masks import mask_address
from tests.client import GatewayClient, serve
from tests.conftest import Seeded, gateway_settings, token
from tests.gateway.edge.test_cli import ServerProcess, serving

pytestmark = pytest.mark.slow

MATTER = "JH-HUKOU-MIGRATION"
#: The upper gateway's service identity at the lower (the lower decides for it).
SERVICE_APP = "delta-gateway"

PERSON_FIELDS = """idNumber name gender birthDate ethnicity householdRegion householdAddress phone
  residences { region address since } socialInsurance { region insuranceType status since }
  enterprises { uscc name region } creditRecords { id kind title decidedOn amount region }"""


@pytest.fixture(scope="module")
def lower(seeded: Seeded, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The Jiangsu gateway: a ``deltagate serve`` process over the JS database only."""
    with lower_gateway(seeded, tmp_path_factory.mktemp("lower")) as server:
        yield server


def lower_gateway(seeded: Seeded, folder: Path) -> Any:
    from gateway.audit import database_dsn

    return serving(
        seeded, folder, config=["[limits]", "rate_limits = false"], regions=("JS",),
        DELTAGATE_AUDIT_DSN=database_dsn(seeded.dsn),
    )  # fmt: skip


def upper_settings(
    seeded: Seeded, lower: ServerProcess, service_token: str, matter: str | None
) -> Settings:
    """The delta gateway's settings: SH, ZJ, AH on PostgreSQL, JS through the lower gateway."""
    settings = gateway_settings(seeded.dsn, rate_limits=False)
    js = SourceSettings(
        region="JS", kind="gateway", url=f"{lower.base}/graphql", token=service_token,
        matter=matter, timeout=5.0, breaker_failures=1, breaker_reset=60.0,
    )  # fmt: skip
    sources = tuple(js if s.region == "JS" else s for s in settings.sources)
    return replace(settings, sources=sources).check()


@asynccontextmanager
async def upper(
    seeded: Seeded,
    lower: ServerProcess,
    service_token: str,
    calls: list[tuple[str, str]],
    matter: str | None = MATTER,
) -> AsyncIterator[GatewayClient]:
    def observe(region: str, entity: str, field: str, *_: object) -> None:
        calls.append((region, f"{entity}.{field}"))

    async with serve(upper_settings(seeded, lower, service_token, matter), observe) as client:
        yield client


def officer() -> str:
    """A Shanghai joint-handling officer: L3 of every region under the matter."""
    return token("SH", "joint_handling_officer", app=SERVICE_APP)


def ask_lower(lower: ServerProcess, query: str, variables: dict[str, Any], bearer: str) -> Any:
    response = httpx.post(
        f"{lower.base}/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {bearer}", "X-Matter-Code": MATTER},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return response.json()


def requests_at(lower: ServerProcess, app: str) -> float:
    """The lower's ``deltagate_requests_total`` for one caller app: requests it served it."""
    text = httpx.get(f"{lower.base}/metrics", timeout=5).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("deltagate_requests_total{") and f'app="{app}"' in line
    )


def only_js(person: dict[str, Any] | None) -> dict[str, Any] | None:
    """A person with its lists cut to Jiangsu's items: all a JS-only gateway holds."""
    if person is None:
        return None
    cut = dict(person)
    for link in ("residences", "socialInsurance", "enterprises", "creditRecords"):
        if cut[link] is not None:
            cut[link] = [item for item in cut[link] if item["region"] == "JS"]
    return cut


async def test_js_persons_through_the_upper_are_what_js_releases_to_the_same_identity(
    seeded: Seeded, lower: ServerProcess
) -> None:
    ids = [seeded.dataset.person_id("JS", i) for i in range(12)]
    query = f"query($ids: [ID!]!) {{ naturalPersons(idNumbers: $ids) {{ {PERSON_FIELDS} }} }}"
    calls: list[tuple[str, str]] = []
    async with upper(seeded, lower, officer(), calls) as client:
        above = await client.query(query, {"ids": ids}, token=officer(), matter=MATTER)
    direct = ask_lower(lower, query, {"ids": ids}, officer())
    assert "errors" not in above, above["errors"]
    persons = above["data"]["naturalPersons"]
    assert [p["idNumber"] for p in persons] == ids
    assert [p["name"] for p in persons] == [
        seeded.dataset.person("JS", i)["name"] for i in range(12)
    ]
    assert [only_js(p) for p in persons] == [only_js(p) for p in direct["data"]["naturalPersons"]]
    assert any(p["phone"] for p in persons)  # cleared below, so in clear above
    # One request to the lower per entity and level, whatever the number of persons.
    js_calls = [call for region, call in calls if region == "JS"]
    assert sorted(js_calls) == sorted(set(js_calls))


async def test_fifty_enterprises_with_representatives_cost_a_few_requests_at_the_lower(
    seeded: Seeded, lower: ServerProcess
) -> None:
    count = min(50, seeded.dataset.enterprise_count("JS"))
    usccs = [seeded.dataset.uscc("JS", i) for i in range(count)]
    query = """query($u: [ID!]!) { legalPersons(usccs: $u) {
      uscc name registeredCapital legalRepresentative { idNumber name phone }
      creditRecords { kind decidedOn amount } } }"""
    calls: list[tuple[str, str]] = []
    async with upper(seeded, lower, officer(), calls) as client:
        before = requests_at(lower, SERVICE_APP)
        body = await client.query(query, {"u": usccs}, token=officer(), matter=MATTER)
        after = requests_at(lower, SERVICE_APP)
    assert "errors" not in body, body["errors"]
    enterprises = body["data"]["legalPersons"]
    assert [e["name"] for e in enterprises] == [
        seeded.dataset.enterprise("JS", i)["name"] for i in range(count)
    ]
    # The lower names a representative by reading their record, which it keeps only for
    # Jiangsu's own people; representatives from other provinces wait for `_entities`.
    for i, enterprise in enumerate(enterprises):
        rep_region, rep_index = seeded.dataset.representative_of("JS", i)
        if rep_region == "JS":
            rep = seeded.dataset.person("JS", rep_index)
            assert enterprise["legalRepresentative"]["name"] == rep["name"]
    # Level 1 the enterprises, level 2 the JS representatives and the credit records (three
    # batches): two requests at the lower, one per level, not one per key or per link.
    assert after - before == 2
    assert len([c for c in calls if c[0] == "JS"]) == 3
    assert body["extensions"]["backendQueries"] <= 16


async def test_a_value_the_lower_masks_stays_masked_for_a_caller_the_upper_would_clear(
    seeded: Seeded, lower: ServerProcess
) -> None:
    # The service identity is public at the lower: L1, so an enterprise address (L2) is masked
    # there. The caller is a one-stop app, whom the upper itself clears for L2 everywhere.
    service = token("JS", "public_portal", app="delta-gateway-public")
    caller = token("SH", "one_stop_app")
    usccs = [seeded.dataset.uscc("JS", 0), seeded.dataset.uscc("SH", 0)]
    query = "query($u: [ID!]!) { legalPersons(usccs: $u) { uscc name address } }"
    async with upper(seeded, lower, service, [], matter=None) as client:
        body = await client.query(query, {"u": usccs}, token=caller)
    js, sh = body["data"]["legalPersons"]
    clear_js = seeded.dataset.enterprise("JS", 0)["address"]
    assert js["name"] == seeded.dataset.enterprise("JS", 0)["name"]  # L1: clear below
    assert js["address"] == mask_address(clear_js) != clear_js  # masked below, never unmasked
    assert sh["address"] == seeded.dataset.enterprise("SH", 0)["address"]  # the upper's own: clear
    # The upper tells (and records) the JS address as masked, by the lower: not as clear.
    decided = {
        (e["field"], e["owner"]): (e["decision"], e["reason"])
        for e in body["extensions"]["policy"]["fields"]
    }
    assert decided[("LegalPerson.address", "JS")] == ("MASKED", "DECIDED_BELOW")
    assert ("LegalPerson.address", "SH") not in decided  # clear: not listed to the caller


async def test_a_stopped_lower_is_source_unavailable_for_js_paths_only(
    seeded: Seeded, tmp_path: Path
) -> None:
    usccs = [seeded.dataset.uscc("JS", 1), seeded.dataset.uscc("SH", 1)]
    query = "query($u: [ID!]!) { legalPersons(usccs: $u) { uscc name } }"
    with lower_gateway(seeded, tmp_path) as server:
        async with upper(seeded, server, officer(), []) as client:
            answered = await client.query(query, {"u": usccs}, token=officer(), matter=MATTER)
            assert "errors" not in answered
            server.stop()
            body = await client.query(query, {"u": usccs}, token=officer(), matter=MATTER)
            ready = await client.http.get("/readyz")
    js, sh = body["data"]["legalPersons"]
    assert js is None
    assert sh["name"] == seeded.dataset.enterprise("SH", 1)["name"]
    assert [(e["path"], e["extensions"]) for e in body["errors"]] == [
        (["legalPersons", 0], {"code": "SOURCE_UNAVAILABLE", "region": "JS"})
    ]
    assert ready.status_code == 200  # a region down takes no replica out of rotation
    assert ready.json()["status"] == "degraded"
    assert ready.json()["sources"] == {"SH": "ok", "JS": "unavailable", "ZJ": "ok", "AH": "ok"}


async def test_fetches_of_one_request_share_a_request_to_the_lower_and_two_requests_never_do(
    seeded: Seeded, lower: ServerProcess
) -> None:
    # A level's batches go as one HTTP request; but each request of the upper carries its
    # own caller's delegation, so batches of two requests must never be sent together.
    app = "delta-gateway-coalesce"
    source = GatewaySource(
        "JS", f"{lower.base}/graphql", token=token("SH", "joint_handling_officer", app=app),
        matter=MATTER,
    )  # fmt: skip
    person, company = seeded.dataset.person_id("JS", 7), seeded.dataset.uscc("JS", 7)

    def caller(name: str) -> CascadeRequest:
        caller = Caller(app=name, region="SH", roles=("joint_handling_officer",))
        return CascadeRequest(caller=caller, matter=MATTER, traceparent=None)

    async def level(request: CascadeRequest) -> list[list[Row]]:
        with acting_for(request):
            return list(
                await asyncio.gather(
                    source.fetch("residence", "person_id", [person]),
                    source.fetch("enterprise", "uscc", [company]),
                )
            )

    try:
        before = requests_at(lower, app)
        one = await level(caller("jh-a"))
        between = requests_at(lower, app)
        two = await asyncio.gather(level(caller("jh-b")), level(caller("jh-c")))
        after = requests_at(lower, app)
    finally:
        await source.close()
    assert between - before == 1  # two batches of one request: one request to the lower
    assert after - between == 2  # the same two batches for two requests: two requests
    assert one == two[0] == two[1]
    assert [row["uscc"] for row in one[1]] == [company]
    assert {row["person_id"] for row in one[0]} <= {person}
