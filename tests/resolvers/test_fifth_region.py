"""A fifth region is a mapping file and a configuration entry: no Python changes for it.

The region here is a city platform, 南京 (NJ, admin-division prefix 3201),
whose native schema has the shape of Jiangsu's (its mapping is ``js.toml``
with the region code changed). Its database is made with plain SQL in that
layout. Through the gateway, with the shipped policy and the audit log on, a
person with a ``3201…`` ID number is read from NJ, a ``3202…`` one still from
Jiangsu (longest prefix), and the fifth code goes in and out of the ``Region``
enum.
"""

from __future__ import annotations

import json
from pathlib import Path

import asyncpg
import pytest

from gateway.audit import database_dsn
from gateway.core.identifiers import make_id_number, make_uscc
from gateway.edge.settings import Settings, load_settings
from gateway.sources.mapping import SHIPPED_MAPPINGS
from gateway.synthetic import region_dsn
from tests.client import serve
from tests.conftest import JWT_SECRET, MASK_SECRET, Seeded, token

NJ_PERSON = make_id_number("320102", "19880512", 123)
NJ_ENTERPRISE = make_uscc("9", "1", "320102", "NJ000001")
OFFICER = ("JS", "joint_handling_officer")
MATTER = "JH-HUKOU-MIGRATION"

# Jiangsu's native layout (see js.toml), made by hand: the test describes the region's
# database as an operator's would already exist, not with the gateway's own code.
NATIVE_SCHEMA = """
CREATE TABLE person (id_number varchar(18) NOT NULL, full_name varchar(50) NOT NULL,
    sex varchar(1), date_of_birth date, ethnic_group varchar(20),
    hukou_address varchar(200), mobile varchar(20));
CREATE TABLE residence (person_id_number varchar(18) NOT NULL, address varchar(200),
    registered_on date);
CREATE TABLE social_insurance (person_id_number varchar(18) NOT NULL, scheme varchar(20),
    status varchar(12), start_date date);
CREATE TABLE enterprise (uscc varchar(18) NOT NULL, name varchar(200) NOT NULL,
    entity_type varchar(20), status varchar(12), registered_capital_yuan numeric(20,2),
    established_on date, registration_authority varchar(100), address varchar(200),
    business_scope text, legal_rep_id_number varchar(18));
CREATE TABLE credit_event (event_id varchar(32) NOT NULL, subject_id varchar(18) NOT NULL,
    subject_type varchar(12) NOT NULL, kind varchar(12) NOT NULL, title varchar(200),
    document_no varchar(100), authority varchar(100), decided_on date, valid_until date,
    amount_yuan numeric(18,2), detail text);
"""


async def _make_region_database(dsn: str) -> None:
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute("DROP DATABASE IF EXISTS deltagate_nj")
        await admin.execute("CREATE DATABASE deltagate_nj")
    finally:
        await admin.close()
    connection = await asyncpg.connect(region_dsn(dsn, "NJ"))
    try:
        await connection.execute(NATIVE_SCHEMA)
        await connection.execute(
            "INSERT INTO person VALUES ($1, '秦淮生', 'M', '1988-05-12', '回族',"
            " '江苏省南京市玄武区中山路1号', '13912345678')",
            NJ_PERSON,
        )
        await connection.execute(
            "INSERT INTO residence VALUES ($1, '江苏省南京市鼓楼区北京西路2号', '2015-03-01')",
            NJ_PERSON,
        )
        await connection.execute(
            "INSERT INTO enterprise VALUES ($1, '南京金陵示范有限公司', 'llc', 'operating',"
            " 5000000, '2012-06-18', '南京市市场监督管理局', '江苏省南京市玄武区长江路3号',"
            " '软件开发', $2)",
            NJ_ENTERPRISE,
            NJ_PERSON,
        )
    finally:
        await connection.close()


def _write_config(folder: Path, dsn: str) -> Path:
    """The operator's whole change: a mapping file and a configuration entry."""
    mapping = (SHIPPED_MAPPINGS / "js.toml").read_text(encoding="utf-8")
    (folder / "nj.toml").write_text(mapping.replace('"JS"', '"NJ"'), encoding="utf-8")
    lines = []
    for region in ("SH", "JS", "ZJ", "AH", "NJ"):
        lines += [f"[sources.{region}]", f"dsn = {json.dumps(region_dsn(dsn, region))}"]
        if region == "NJ":
            lines += ['mapping = "nj.toml"', 'name = "南京"', 'prefixes = ["3201"]']
    path = folder / "gateway.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
async def settings(seeded: Seeded, tmp_path: Path) -> Settings:
    await _make_region_database(seeded.dsn)
    env = {
        "DELTAGATE_JWT_SECRET": JWT_SECRET,
        "DELTAGATE_MASK_SECRET": MASK_SECRET,
        "DELTAGATE_AUDIT_DSN": database_dsn(seeded.dsn),
    }
    return load_settings(_write_config(tmp_path, seeded.dsn), env)


def _jiangsu_person_outside_nanjing(seeded: Seeded) -> str:
    return next(
        p["id_number"]
        for p in seeded.dataset.persons("JS")
        if p["id_number"].startswith("32") and not p["id_number"].startswith("3201")
    )


PERSON = """query Person($id: ID!) { naturalPerson(idNumber: $id) {
  idNumber name phone ethnicity householdRegion residences { region address } } }"""


async def test_a_person_of_the_fifth_region_is_read_from_it_under_policy_and_audit(
    settings: Settings, seeded: Seeded
) -> None:
    assert settings.regions.codes == ("SH", "JS", "ZJ", "AH", "NJ")
    async with serve(settings) as client:
        body = await client.query(PERSON, {"id": NJ_PERSON}, token=token(*OFFICER), matter=MATTER)
        person = body["data"]["naturalPerson"]
        # The grants say `*`: the officer's L3 clearance covers NJ's data too.
        assert person["idNumber"] == NJ_PERSON
        assert person["name"] == "秦淮生"
        assert person["phone"] == "13912345678"
        assert person["householdRegion"] == "NJ"
        assert {"region": "NJ", "address": "江苏省南京市鼓楼区北京西路2号"} in person["residences"]
        # The negative list's `*` line lists ethnicity for NJ as for every region.
        assert person["ethnicity"] is None
        [entry] = [
            e
            for e in body["extensions"]["policy"]["fields"]
            if e["field"] == "NaturalPerson.ethnicity" and e["owner"] == "NJ"
        ]
        assert (entry["decision"], entry["reason"]) == ("WITHHELD", "NEGATIVE_LIST")

        trace_id = body["extensions"]["traceId"]
    audit = await asyncpg.connect(database_dsn(seeded.dsn))
    try:
        row = await audit.fetchrow(
            "SELECT subjects, decisions FROM audit_event WHERE trace_id = $1", trace_id
        )
    finally:
        await audit.close()
    assert row is not None
    assert NJ_PERSON in row["subjects"]
    decisions = json.loads(row["decisions"])
    assert any(d["owner"] == "NJ" and d["field"] == "NaturalPerson.name" for d in decisions)


async def test_the_longest_prefix_routes_a_key(settings: Settings, seeded: Seeded) -> None:
    jiangsu = _jiangsu_person_outside_nanjing(seeded)
    query = "query($id: ID!) { naturalPerson(idNumber: $id) { idNumber householdRegion } }"
    async with serve(settings) as client:
        nanjing = await client.query(query, {"id": NJ_PERSON}, token=token(*OFFICER), matter=MATTER)
        other = await client.query(query, {"id": jiangsu}, token=token(*OFFICER), matter=MATTER)
    assert nanjing["data"]["naturalPerson"]["householdRegion"] == "NJ"
    assert other["data"]["naturalPerson"] == {"idNumber": jiangsu, "householdRegion": "JS"}


@pytest.mark.parametrize("direct", [True, False])
async def test_the_fifth_code_goes_in_and_out_of_the_region_enum(
    settings: Settings, direct: bool
) -> None:
    query = """query($region: Region, $uscc: ID!) {
      company: legalPerson(uscc: $uscc) { uscc region }
      search: searchLegalPersons(name: "南京金陵", region: $region) {
        edges { node { uscc region } } }
    }"""
    async with serve(settings) as client:
        if not direct:
            from schema import build_schema

            client.gateway.schema = build_schema(
                extensions=[], direct=False, regions=settings.regions
            )
        body = await client.query(
            query, {"region": "NJ", "uscc": NJ_ENTERPRISE}, token=token("JS", "one_stop_app")
        )
    assert "errors" not in body, body
    assert body["data"]["company"] == {"uscc": NJ_ENTERPRISE, "region": "NJ"}
    assert body["data"]["search"]["edges"] == [{"node": {"uscc": NJ_ENTERPRISE, "region": "NJ"}}]
