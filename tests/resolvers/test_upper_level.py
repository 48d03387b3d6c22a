"""Keys no configured region holds go to the upper-level platform (``[upper]``), else ``null``.

The national platform is a real ``deltagate serve`` process whose registry holds
北京 (BJ, prefix 11) over a database of its own; the delta gateway is served
in-process over the four seeded regions with ``[upper]`` pointing at it. A
Beijing ID number asked at the delta gateway is answered by the platform above,
under its policy and the delta's; when the platform is down the error names it,
and the delta's own regions still answer.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import asyncpg
import httpx
import pytest

from gateway.audit import database_dsn
from gateway.core.identifiers import make_id_number, make_uscc
from gateway.edge.settings import Settings, SourceSettings
from gateway.sources.mapping import SHIPPED_MAPPINGS
from gateway.synthetic import region_dsn
from tests.cascade import GatewayProcess, province_config, running
from tests.client import serve
from tests.conftest import Seeded, gateway_settings, token
from tests.gateway.edge.test_cli import free_port
from tests.resolvers.test_fifth_region import NATIVE_SCHEMA

pytestmark = pytest.mark.slow

BJ_PERSON = make_id_number("110101", "19790203", 7)
BJ_ENTERPRISE = make_uscc("9", "1", "110101", "BJ000001")
MATTER = "JH-HUKOU-MIGRATION"
QUERY = """query($ids: [ID!]!, $u: ID!) {
  naturalPersons(idNumbers: $ids) { idNumber name householdRegion }
  legalPerson(uscc: $u) { name region legalRepresentative { name } } }"""


async def _make_beijing(dsn: str) -> None:
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute("DROP DATABASE IF EXISTS deltagate_bj")
        await admin.execute("CREATE DATABASE deltagate_bj")
    finally:
        await admin.close()
    connection = await asyncpg.connect(region_dsn(dsn, "BJ"))
    try:
        await connection.execute(NATIVE_SCHEMA)
        await connection.execute(
            "INSERT INTO person VALUES ($1, '燕京生', 'F', '1979-02-03', '汉族',"
            " '北京市东城区东长安街1号', '13800001111')",
            BJ_PERSON,
        )
        await connection.execute(
            "INSERT INTO enterprise VALUES ($1, '北京示范科技有限公司', 'llc', 'operating',"
            " 1000000, '2010-01-08', '北京市市场监督管理局', '北京市东城区王府井大街2号',"
            " '技术服务', $2)",
            BJ_ENTERPRISE,
            BJ_PERSON,
        )
    finally:
        await connection.close()


@pytest.fixture(scope="module")
def national(seeded: Seeded, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """The national platform: a gateway process whose only region is BJ (prefix 11)."""
    import asyncio

    asyncio.run(_make_beijing(seeded.dsn))
    folder = tmp_path_factory.mktemp("national")
    mapping = (SHIPPED_MAPPINGS / "js.toml").read_text(encoding="utf-8")
    (folder / "bj.toml").write_text(mapping.replace('"JS"', '"BJ"'), encoding="utf-8")
    config = f"""[limits]
rate_limits = false
[sources.BJ]
dsn = {json.dumps(region_dsn(seeded.dsn, "BJ"))}
mapping = "bj.toml"
name = "北京"
prefixes = ["11"]
"""
    process = GatewayProcess(config, folder, {"DELTAGATE_AUDIT_DSN": database_dsn(seeded.dsn)})
    with running(process):
        yield process


def delta(seeded: Seeded, national: GatewayProcess | None) -> Settings:
    """The delta gateway over the four regions, with the national platform above it."""
    settings = gateway_settings(seeded.dsn, rate_limits=False)
    if national is None:
        return settings
    upper = SourceSettings(
        region="CN", kind="gateway", url=national.url, matter=MATTER, timeout=3.0,
        token=token("SH", "joint_handling_officer", app="delta-gateway"),
        breaker_failures=1, breaker_reset=0.5,
    )  # fmt: skip
    return replace(settings, upper=upper).check()


def officer() -> str:
    return token("SH", "joint_handling_officer")


async def test_a_key_of_no_configured_region_is_answered_by_the_platform_above(
    seeded: Seeded, national: GatewayProcess
) -> None:
    shanghai = seeded.dataset.person_id("SH", 3)
    variables = {"ids": [BJ_PERSON, shanghai], "u": BJ_ENTERPRISE}
    async with serve(delta(seeded, national)) as client:
        body = await client.query(QUERY, variables, token=officer(), matter=MATTER)
    assert "errors" not in body, body["errors"]
    beijing, local = body["data"]["naturalPersons"]
    # BJ is not a region here: the platform above keeps the record, under its name.
    assert beijing == {"idNumber": BJ_PERSON, "name": "燕京生", "householdRegion": "CN"}
    assert local["name"] == seeded.dataset.person("SH", 3)["name"]
    assert body["data"]["legalPerson"] == {
        "name": "北京示范科技有限公司", "region": "CN", "legalRepresentative": {"name": "燕京生"}
    }  # fmt: skip


async def test_without_an_upper_level_source_such_a_key_is_null_as_before(
    seeded: Seeded,
) -> None:
    async with serve(delta(seeded, None)) as client:
        body = await client.query(
            QUERY, {"ids": [BJ_PERSON], "u": BJ_ENTERPRISE}, token=officer(), matter=MATTER
        )
    assert body["data"] == {"naturalPersons": [None], "legalPerson": None}
    assert "errors" not in body


async def test_the_platform_above_decides_for_the_delta_identity_and_the_stricter_wins(
    seeded: Seeded, national: GatewayProcess
) -> None:
    # A public portal at the delta: L1 only; the platform above would clear the officer's L3.
    async with serve(delta(seeded, national)) as client:
        body = await client.query(
            "query($u: ID!) { legalPerson(uscc: $u) { name address } }",
            {"u": BJ_ENTERPRISE},
            token=token("SH", "public_portal"),
        )
    enterprise = body["data"]["legalPerson"]
    assert enterprise["name"] == "北京示范科技有限公司"
    assert enterprise["address"] != "北京市东城区王府井大街2号"  # masked here, L2


async def test_a_platform_above_that_is_down_is_named_and_the_regions_here_still_answer(
    seeded: Seeded, tmp_path: Path
) -> None:
    process = GatewayProcess('[sources.JS]\ndsn = "postgresql://nobody@127.0.0.1:9/x"\n', tmp_path)
    shanghai = seeded.dataset.person_id("SH", 4)
    # Never started: the platform's address answers nothing.
    async with serve(delta(seeded, process)) as client:
        body = await client.query(
            QUERY, {"ids": [BJ_PERSON, shanghai], "u": BJ_ENTERPRISE},
            token=officer(), matter=MATTER,
        )  # fmt: skip
        ready = await client.http.get("/readyz")
        metrics = (await client.http.get("/metrics")).text
    beijing, local = body["data"]["naturalPersons"]
    assert beijing is None
    assert local["name"] == seeded.dataset.person("SH", 4)["name"]
    assert body["data"]["legalPerson"] is None
    assert sorted(json.dumps(e["path"]) for e in body["errors"]) == [
        '["legalPerson"]', '["naturalPersons", 0]'
    ]  # fmt: skip
    assert {e["extensions"]["region"] for e in body["errors"]} == {"CN"}
    assert {e["extensions"]["code"] for e in body["errors"]} == {"SOURCE_UNAVAILABLE"}
    assert ready.status_code == 200
    assert ready.json()["sources"]["CN"] == "unavailable"
    assert 'deltagate_breaker_state{region="CN"} 2.0' in metrics  # open


def test_two_gateways_that_are_each_others_upper_end_the_loop_at_once(
    seeded: Seeded, tmp_path: Path
) -> None:
    # A configuration mistake: JS's upper is SH's gateway and SH's upper is JS's. A key
    # neither holds would go round until a timeout; the depth header ends it after
    # MAX_DEPTH gateways, as the request's error (no breaker opens, no region is blamed).
    ports = {"JS": free_port(), "SH": free_port()}
    identity = token("SH", "joint_handling_officer", app="loop-gateway")
    processes = []
    for region, other in (("JS", "SH"), ("SH", "JS")):
        (tmp_path / region).mkdir()
        upper = f"http://127.0.0.1:{ports[other]}/graphql"
        config = province_config(region_dsn(seeded.dsn, region), region, upper)
        env = {"DELTAGATE_AUDIT_DSN": database_dsn(seeded.dsn), "DELTAGATE_UPPER_TOKEN": identity}
        processes.append(GatewayProcess(config, tmp_path / region, env, port=ports[region]))
    jiangsu = seeded.dataset.person_id("JS", 2)
    with running(*processes):
        started = time.monotonic()
        answer = httpx.post(
            processes[0].url,
            json={"query": QUERY, "variables": {"ids": [BJ_PERSON, jiangsu], "u": BJ_ENTERPRISE}},
            headers={"Authorization": f"Bearer {officer()}", "X-Matter-Code": MATTER},
            timeout=30,
        )
        elapsed = time.monotonic() - started
        ready = httpx.get(f"{processes[0].base}/readyz", timeout=10).json()
    body = answer.json()
    assert elapsed < 10
    beijing, local = body["data"]["naturalPersons"]
    assert beijing is None
    assert local["name"] == seeded.dataset.person("JS", 2)["name"]
    assert {e["extensions"]["code"] for e in body["errors"]} == {"BAD_REQUEST"}
    assert all("region" not in e["extensions"] for e in body["errors"])
    assert ready["sources"]["YRD"] == "ok"  # the upper answers; nothing was blamed on it
