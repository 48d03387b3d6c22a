"""One app's new documents cannot take the event loop from other callers.

Every distinct text is new to the document cache (a trailing comment is enough), so
a flood of documents that are each expensive to validate, sent within the app's
request quota, must leave another caller's latency about where it was.
"""

from __future__ import annotations

import asyncio
import statistics
import time

import pytest

from gateway.core.errors import RateLimited
from gateway.edge.validation_budget import ValidationBudget
from tests.client import GatewayClient, serve
from tests.conftest import Seeded, gateway_settings, token

VICTIM = token("JS", "joint_handling_officer", app="jh-js")
FLOODER = token("AH", "public_portal", app="portal-flood")
VICTIM_QUERY = "query($u: ID!) { legalPerson(uscc: $u) { name uscc region } }"

#: The reported document: 800 copies of one field, refused now by the width of a selection set.
REPEATED = '{ legalPerson(uscc: "x") { ' + "name " * 800 + "} }"
#: Just within every limit and slow to validate all the same: 20 sets of 45 copies of one field.
WITHIN_LIMITS = (
    '{ legalPerson(uscc: "x") { '
    + " ".join(
        f"a{i}: legalRepresentative {{ enterprises {{ {'name ' * 45}}} }}" for i in range(20)
    )
    + " } }"
)


async def victim_latencies(client: GatewayClient, variables: dict[str, str], n: int) -> list[float]:
    latencies = []
    for _ in range(n):
        started = time.perf_counter()
        body = await client.query(VICTIM_QUERY, variables, token=VICTIM)
        latencies.append(time.perf_counter() - started)
        assert body["data"]["legalPerson"]["name"]
    return latencies


async def test_a_flood_of_new_expensive_documents_leaves_other_callers_latency_alone(
    seeded: Seeded,
) -> None:
    variables = {"u": seeded.dataset.cross_region_enterprise("JS")["uscc"]}
    async with serve(gateway_settings(seeded.dsn)) as client:
        await victim_latencies(client, variables, 10)  # warm: the victim's document is cached
        quiet = await victim_latencies(client, variables, 40)

        codes: list[str] = []

        async def flood() -> None:
            # 40 requests a second, within the default quota of 50; each text is new.
            sent = []
            for i in range(80):
                document = (REPEATED, WITHIN_LIMITS)[i % 2] + f"  # {i}"
                sent.append(asyncio.create_task(client.post(document, token=FLOODER)))
                await asyncio.sleep(1 / 40)
            for response in await asyncio.gather(*sent):
                codes.extend(e["extensions"]["code"] for e in response.json()["errors"])

        flooding = asyncio.create_task(flood())
        await asyncio.sleep(0.2)
        under_flood = statistics.median(await victim_latencies(client, variables, 40))
        await flooding
        quiet += await victim_latencies(client, variables, 40)  # the baseline: before and after

    baseline = statistics.median(quiet)
    assert under_flood <= 2 * baseline, (
        f"victim p50 {under_flood * 1000:.1f} ms under the flood, {baseline * 1000:.1f} ms without"
    )
    assert "RATE_LIMITED" in codes  # the flooder, refused for its validation time
    assert "INTERNAL" not in codes


async def test_an_app_over_its_validation_time_waits_and_is_refused_past_the_longest_wait() -> None:
    now = [0.0]

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    budget = ValidationBudget(100, clock=lambda: now[0], sleep=sleep)
    await budget.wait_turn("a")
    budget.charge("a", 0.25)  # 250 ms of work against a bucket of 100
    await budget.wait_turn("b")  # another app does not wait
    assert now[0] == 0.0
    await budget.wait_turn("a")  # waits until the 150 ms of debt is paid back
    assert now[0] == pytest.approx(1.5)
    budget.charge("a", 0.7)  # 7 s to pay back: longer than anyone waits
    with pytest.raises(RateLimited) as refused:
        await budget.wait_turn("a")
    assert refused.value.extensions == {
        "limit": "validationMsPerSecond", "maximum": 100, "retryAfter": 7,
    }  # fmt: skip
