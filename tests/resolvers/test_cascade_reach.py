"""Links that cross provinces, asked through the delta gateway over provincial gateways.

Shanghai and Jiangsu are each a ``deltagate serve`` over its own database, and the
delta gateway (a process too) federates them. A Jiangsu enterprise's legal
representative from Shanghai, and a Shanghai person's residence in Jiangsu, need
the Jiangsu gateway to read a Shanghai key it keeps nothing of. Without ``[upper]``
it answers ``null`` for such a key, so the links are not reached; with the delta
gateway as its ``[upper]`` it asks the delta for the key, and the delta, which
routes by key region with its own loaders, reaches Shanghai.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.audit import database_dsn
from gateway.edge.demo_cascade import cascade_examples
from gateway.synthetic import region_dsn
from tests.cascade import GatewayProcess, province_config, running, top_config
from tests.conftest import Seeded, token
from tests.gateway.edge.test_cli import free_port

pytestmark = pytest.mark.slow

MATTER = "JH-HUKOU-MIGRATION"
QUERY = """query($u: ID!, $id: ID!) {
  legalPerson(uscc: $u) { name legalRepresentative { idNumber name householdRegion } }
  naturalPerson(idNumber: $id) { name residences { region address } } }"""


@contextmanager
def cascade(seeded: Seeded, folder: Path, *, upper: bool) -> Iterator[GatewayProcess]:
    """SH and JS gateways and the delta gateway over them; the delta's process."""
    audit = {"DELTAGATE_AUDIT_DSN": database_dsn(seeded.dsn)}
    top_port = free_port()
    top_url = f"http://127.0.0.1:{top_port}/graphql"
    provinces = {}
    for region in ("SH", "JS"):
        (folder / region).mkdir()
        config = province_config(region_dsn(seeded.dsn, region), region, top_url if upper else None)
        # Each province's service identity at the delta (for its [upper] requests).
        identity = token(region, "joint_handling_officer", app=f"deltagate-{region.lower()}")
        env = {**audit, "DELTAGATE_UPPER_TOKEN": identity}
        provinces[region] = GatewayProcess(config, folder / region, env)
    (folder / "top").mkdir()
    service = token("SH", "joint_handling_officer", app="deltagate-delta")
    top = GatewayProcess(
        top_config(provinces, MATTER), folder / "top",
        {**audit, "DELTAGATE_UPSTREAM_TOKEN_SH": service, "DELTAGATE_UPSTREAM_TOKEN_JS": service},
        port=top_port,
    )  # fmt: skip
    with running(*provinces.values(), top):
        yield top


def ask(top: GatewayProcess, variables: dict[str, str]) -> dict[str, Any]:
    answer = httpx.post(
        top.url,
        json={"query": QUERY, "variables": variables},
        headers={
            "Authorization": f"Bearer {token('JS', 'joint_handling_officer')}",
            "X-Matter-Code": MATTER,
        },
        timeout=15,
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_with_the_delta_as_upper_the_links_across_provinces_are_reached(
    seeded: Seeded, tmp_path: Path
) -> None:
    examples = cascade_examples(seeded.dataset)
    rep_region, rep_index = next(
        seeded.dataset.representative_of("JS", i)
        for i in range(seeded.dataset.enterprise_count("JS"))
        if seeded.dataset.uscc("JS", i) == examples["uscc"]
    )
    representative = seeded.dataset.person(rep_region, rep_index)
    in_jiangsu = [
        {"region": "JS", "address": r["address"]}
        for r in seeded.dataset.residences_of(examples["idNumber"])
        if r["region"] == "JS"
    ]
    with cascade(seeded, tmp_path, upper=True) as top:
        body = ask(top, {"u": examples["uscc"], "id": examples["idNumber"]})
    assert "errors" not in body, body["errors"]
    assert body["data"]["legalPerson"]["legalRepresentative"] == {
        "idNumber": representative["id_number"],
        "name": representative["name"],
        "householdRegion": "SH",
    }
    residences = body["data"]["naturalPerson"]["residences"]
    assert in_jiangsu
    assert all(r in residences for r in in_jiangsu)


def test_without_an_upper_the_province_cannot_follow_a_key_it_keeps_nothing_of(
    seeded: Seeded, tmp_path: Path
) -> None:
    examples = cascade_examples(seeded.dataset)
    with cascade(seeded, tmp_path, upper=False) as top:
        body = ask(top, {"u": examples["uscc"], "id": examples["idNumber"]})
    assert "errors" not in body, body["errors"]
    assert body["data"]["legalPerson"]["name"]  # the enterprise itself comes from Jiangsu
    assert body["data"]["legalPerson"]["legalRepresentative"] is None
    residences = body["data"]["naturalPerson"]["residences"]
    assert [r for r in residences if r["region"] == "JS"] == []
