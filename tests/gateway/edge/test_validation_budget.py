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
from gateway.edge.query_limits import Limits
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
        latencies.append(await victim_once(client, variables))
    return latencies


async def victim_once(client: GatewayClient, variables: dict[str, str]) -> float:
    started = time.perf_counter()
    body = await client.query(VICTIM_QUERY, variables, token=VICTIM)
    assert body["data"]["legalPerson"]["name"]
    return time.perf_counter() - started


async def flooded(seeded: Seeded, **limits: int) -> tuple[float, float, list[str]]:
    """The victim's mean latency without and during a flood of new documents, and the
    codes the flooder got. The victim asks steadily for as long as the flood lasts, so
    the share of the loop the flood takes shows in its mean."""
    variables = {"u": seeded.dataset.cross_region_enterprise("JS")["uscc"]}
    settings = gateway_settings(seeded.dsn, limits=Limits(**limits))
    async with serve(settings) as client:
        await victim_latencies(client, variables, 10)  # warm: the victim's document is cached
        quiet = await victim_latencies(client, variables, 40)
        codes: list[str] = []

        async def flood() -> None:
            # 40 requests a second, within the default quota of 50; each text is new.
            sent = []
            for i in range(60):
                document = (REPEATED, WITHIN_LIMITS)[i % 2] + f"  # {i}"
                sent.append(asyncio.create_task(client.post(document, token=FLOODER)))
                await asyncio.sleep(1 / 40)
            for response in await asyncio.gather(*sent):
                codes.extend(e["extensions"]["code"] for e in response.json()["errors"])

        flooding = asyncio.create_task(flood())
        during = []
        while not flooding.done():  # 40 a second, within the victim's own quota
            during.append(await victim_once(client, variables))
            await asyncio.sleep(1 / 40)
        await flooding
        quiet += await victim_latencies(client, variables, 40)  # the baseline: before and after
    return statistics.fmean(quiet), statistics.fmean(during), codes


async def test_a_flood_of_new_expensive_documents_leaves_other_callers_latency_alone(
    seeded: Seeded,
) -> None:
    # Without the budget the flood takes the loop: the victim waits behind its documents.
    quiet_off, during_off, _ = await flooded(seeded, validation_ms_per_second=10**9)
    assert during_off > 4 * quiet_off, (
        f"the flood is too light to matter: {during_off * 1000:.1f} ms under it,"
        f" {quiet_off * 1000:.1f} ms without"
    )
    quiet, during, codes = await flooded(seeded)
    # With it the flooder keeps its 100 ms a second: a small part of what it took.
    assert during - quiet <= (during_off - quiet_off) / 3, (
        f"victim mean {during * 1000:.1f} ms under the flood ({quiet * 1000:.1f} without);"
        f" {during_off * 1000:.1f} ms with no budget"
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
