"""A provincial gateway that stops and starts again, under a delta gateway that does not.

Shanghai and Jiangsu are each a ``deltagate serve`` process over its own
database; the delta gateway above them is configured as an operator would (a
file, every default of a ``gateway`` source) and keeps running throughout. While
Jiangsu is stopped its fields are SOURCE_UNAVAILABLE naming JS and Shanghai's data
still comes; once it is back on the same port, full answers return within 5 s
(the breaker's trial after ``breaker_reset``, 2 s for a gateway source, and a new
connection in place of the pooled ones the restart closed).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.audit import database_dsn
from gateway.edge.settings import load_settings
from gateway.synthetic import region_dsn
from tests.cascade import GatewayProcess, province_config, running, top_config
from tests.client import GatewayClient, serve
from tests.conftest import JWT_SECRET, MASK_SECRET, Seeded, token

pytestmark = pytest.mark.slow

MATTER = "JH-HUKOU-MIGRATION"
QUERY = """query($u: [ID!]!) { legalPersons(usccs: $u) { uscc name
  creditRecords { id region } } }"""


@pytest.fixture
def provinces(seeded: Seeded, tmp_path: Path) -> Iterator[dict[str, GatewayProcess]]:
    audit = {"DELTAGATE_AUDIT_DSN": database_dsn(seeded.dsn)}
    processes = {}
    for region in ("SH", "JS"):
        folder = tmp_path / region.lower()
        folder.mkdir()
        config = province_config(region_dsn(seeded.dsn, region), region)
        processes[region] = GatewayProcess(config, folder, audit)
    with running(*processes.values()):
        yield processes


async def ask(client: GatewayClient, usccs: list[str]) -> dict[str, Any]:
    return await client.query(
        QUERY, {"u": usccs}, token=token("SH", "joint_handling_officer"), matter=MATTER
    )


async def test_a_restarted_province_is_back_in_full_answers_within_five_seconds(
    seeded: Seeded, provinces: dict[str, GatewayProcess], tmp_path: Path
) -> None:
    path = tmp_path / "top.toml"
    path.write_text(top_config(provinces, MATTER), encoding="utf-8")
    service = token("SH", "joint_handling_officer", app="delta-gateway")
    env = {
        "DELTAGATE_JWT_SECRET": JWT_SECRET,
        "DELTAGATE_MASK_SECRET": MASK_SECRET,
        "DELTAGATE_AUDIT_DSN": database_dsn(seeded.dsn),
        "DELTAGATE_UPSTREAM_TOKEN_SH": service,
        "DELTAGATE_UPSTREAM_TOKEN_JS": service,
    }
    usccs = [seeded.dataset.uscc("SH", 5), seeded.dataset.uscc("JS", 5)]
    names = [seeded.dataset.enterprise(region, 5)["name"] for region in ("SH", "JS")]
    jiangsu = provinces["JS"]
    async with serve(load_settings(path, env)) as client:
        full = await ask(client, usccs)
        assert "errors" not in full, full["errors"]
        assert [e["name"] for e in full["data"]["legalPersons"]] == names

        jiangsu.stop()
        for _ in range(5):  # the first fails over, the next fail fast (the breaker is open)
            part = await ask(client, usccs)
            sh, js = part["data"]["legalPersons"]
            assert sh["name"] == names[0]
            assert js is None
            assert {e["extensions"]["region"] for e in part["errors"]} == {"JS"}
            assert {e["extensions"]["code"] for e in part["errors"]} == {"SOURCE_UNAVAILABLE"}
            # Shanghai's own credit records still come; Jiangsu's are the error's part.
            assert all(r["region"] != "JS" for r in sh["creditRecords"])
        ready = await client.http.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["sources"] == {"SH": "ok", "JS": "unavailable"}

        jiangsu.start()  # the same port; the delta gateway is not touched
        back = time.monotonic()
        while True:
            answer = await ask(client, usccs)
            if "errors" not in answer:
                break
            assert time.monotonic() - back < 5, answer["errors"]
            await asyncio.sleep(0.1)
        assert time.monotonic() - back < 5
        assert answer["data"] == full["data"]
