"""A seeded burst for the demo: one app looking up many distinct persons, through the gateway.

``deltagate demo --seed-burst`` runs it before serving, so the auditor console's
front page has a ``DISTINCT_SUBJECTS`` signal to show (and the browser tests one
to find): the app ``burst-demo`` asks for ``distinct_subjects_threshold + 20``
persons of the synthetic data set, in requests of at most 50 ID numbers, as an
ordinary counter application would, each request audited. Normal demo traffic
(a few look-ups per app) stays far below the threshold.
"""

from __future__ import annotations

import httpx

from gateway.core.errors import ConfigError
from gateway.core.types import DELTA_REGIONS
from gateway.edge.app import create_app
from gateway.edge.auth import mint_token
from gateway.edge.pipeline import Gateway
from gateway.edge.settings import Settings
from gateway.synthetic import Dataset

__all__ = ["BURST_APP", "seed_burst"]

#: The app id of the burst, as the console's signal names it.
BURST_APP = "burst-demo"

_QUERY = "query BurstLookup($ids: [ID!]!) { naturalPersons(idNumbers: $ids) { name } }"
_MATTER = "OS-ENTERPRISE-OPENING"
_PER_REQUEST = 50


def burst_ids(dataset: Dataset, count: int) -> list[str]:
    """``count`` distinct ID numbers of the data set, from every region in turn."""
    ids: list[str] = []
    index = 0
    while len(ids) < count:
        for region in DELTA_REGIONS:
            if len(ids) < count and index < dataset.persons_per_region:
                ids.append(dataset.person(region, index)["id_number"])
        index += 1
        if index >= dataset.persons_per_region and len(ids) < count:
            raise ConfigError(f"the data set holds fewer than {count} persons for a burst")
    return ids


async def seed_burst(settings: Settings, dataset: Dataset, count: int | None = None) -> int:
    """Look ``count`` distinct persons up as ``burst-demo``; the number of audited requests.

    Raises:
        ConfigError: the settings have no HS256 secret to mint the app's token with.
        GatewayError: a request was not answered (the gateway's error, as it was refused).
    """
    if settings.jwt_secret is None:
        raise ConfigError("the burst needs the demo's HS256 secret")
    count = count or settings.console.distinct_subjects_threshold + 20
    bearer = mint_token(
        sub=BURST_APP, region="SH", roles=["one_stop_app"], secret=settings.jwt_secret, ttl=600
    )
    headers = {"Authorization": f"Bearer {bearer}", "X-Matter-Code": _MATTER}
    ids = burst_ids(dataset, count)
    gateway = Gateway.from_settings(settings)
    # The burst's requests are not rate-limited away: its app's quota is the demo's to spend.
    gateway.rate_limiter = None
    requests = 0
    try:
        await gateway.start()
        transport = httpx.ASGITransport(app=create_app(gateway))
        async with httpx.AsyncClient(transport=transport, base_url="http://deltagate") as http:
            for start in range(0, len(ids), _PER_REQUEST):
                chunk = ids[start : start + _PER_REQUEST]
                response = await http.post(
                    "/graphql", json={"query": _QUERY, "variables": {"ids": chunk}}, headers=headers
                )
                if response.status_code != 200 or "errors" in response.json():
                    raise ConfigError(f"the burst's request was refused: {response.text[:300]}")
                requests += 1
    finally:
        await gateway.close()
    return requests
