"""The audit log under least privilege, set up as the README says: one role owns the table
(and runs ``deltagate audit init``), the gateway's role may only INSERT and SELECT, and the
gateway serves personal data, audited, without running any DDL."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg
import pytest

from gateway.audit import database_dsn, verify
from gateway.edge.cli import main
from tests.client import GatewayClient, serve
from tests.conftest import AUDIT_CHECKPOINT_SECRET, Seeded, gateway_settings, token

README = Path(__file__).parents[3] / "README.md"

#: The README's set-up, run by a superuser: the roles and the database.
SERVER_SETUP = """\
CREATE ROLE {owner} LOGIN;
CREATE ROLE {gateway} LOGIN;
CREATE DATABASE {database} OWNER {owner};
REVOKE ALL ON DATABASE {database} FROM PUBLIC;
GRANT CONNECT ON DATABASE {database} TO {gateway};
"""

#: The README's grants, run by the owner in the audit database after ``deltagate audit init``.
OWNER_GRANTS = """\
GRANT USAGE ON SCHEMA public TO {gateway};
GRANT SELECT, INSERT ON audit_event, audit_checkpoint, audit_decision_set TO {gateway};
"""

#: The names the README uses.
README_NAMES = {
    "owner": "deltagate_audit_owner",
    "gateway": "deltagate_gateway",
    "database": "deltagate_audit",
}

PERSON = "query($id: ID!) { naturalPerson(idNumber: $id) { name phone } }"


@dataclass(frozen=True)
class Roles:
    """The audit database of one test, with a DSN for each of its two roles."""

    owner_dsn: str
    gateway_dsn: str
    gateway: str


def _as(dsn: str, role: str, password: str) -> str:
    """``dsn`` (a URL) logging in as ``role``."""
    parts = urlsplit(dsn)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{role}:{quote(password)}@{host}"))


def _statements(script: str, **names: str) -> list[str]:
    return [line for line in script.format(**names).splitlines() if line.strip()]


async def _run(dsn: str, statements: list[str]) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        for statement in statements:  # one by one: CREATE DATABASE refuses a transaction
            await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture
async def roles(admin_dsn: str) -> AsyncIterator[Roles]:
    """The README's roles and database, made afresh (the names are unique to the test)."""
    if not admin_dsn.startswith("postgresql://"):
        pytest.skip("needs DELTAGATE_TEST_DSN as a URL")
    suffix = uuid.uuid4().hex[:10]
    names = {key: f"{value}_{suffix}" for key, value in README_NAMES.items()}
    password = secrets.token_urlsafe(16)
    await _run(admin_dsn, _statements(SERVER_SETUP, **names))
    try:
        # Not part of the set-up: a password, for servers that ask for one (the embedded trusts).
        await _run(
            admin_dsn,
            [f"ALTER ROLE {names[r]} PASSWORD '{password}'" for r in ("owner", "gateway")],
        )
        database = database_dsn(admin_dsn, names["database"])
        yield Roles(
            owner_dsn=_as(database, names["owner"], password),
            gateway_dsn=_as(database, names["gateway"], password),
            gateway=names["gateway"],
        )
    finally:
        await _run(
            admin_dsn,
            [
                f'DROP DATABASE IF EXISTS "{names["database"]}" WITH (FORCE)',
                f"DROP ROLE IF EXISTS {names['gateway']}",
                f"DROP ROLE IF EXISTS {names['owner']}",
            ],
        )


async def _init(owner_dsn: str) -> None:
    """``deltagate audit init``, as the owner, through the command line."""
    assert await asyncio.to_thread(main, ["audit", "init", "--dsn", owner_dsn]) == 0


async def _lookup(client: GatewayClient, person: dict[str, str]) -> dict[str, Any]:
    response = await client.post(
        PERSON,
        {"id": person["id_number"]},
        token=token("SH", "one_stop_app"),
        matter="OS-ENTERPRISE-OPENING",
    )
    return {"status": response.status_code, **response.json()}


async def test_the_gateway_serves_and_audits_as_a_role_with_only_insert_and_select(
    seeded: Seeded, roles: Roles
) -> None:
    await _init(roles.owner_dsn)
    await _run(roles.owner_dsn, _statements(OWNER_GRANTS, gateway=roles.gateway))
    person = seeded.dataset.person("SH", 3)
    settings = gateway_settings(seeded.dsn, audit_dsn=roles.gateway_dsn)
    async with serve(settings) as client:
        answer = await _lookup(client, person)
        ready = await client.http.get("/readyz")
    assert answer["status"] == 200, answer
    assert answer["data"] == {"naturalPerson": {"name": person["name"], "phone": person["phone"]}}
    assert ready.status_code == 200, ready.text
    assert ready.json()["audit"] == "ok"
    assert ready.json()["auditError"] is None

    owner = await asyncpg.connect(roles.owner_dsn)
    try:
        stored = await owner.fetch("SELECT trace_id, subjects FROM audit_event")
    finally:
        await owner.close()
    assert [row["trace_id"] for row in stored] == [answer["extensions"]["traceId"]]
    assert person["id_number"] in stored[0]["subjects"]
    # The gateway's role also wrote the checkpoint over its event as it stopped.
    report = await verify(roles.owner_dsn, secret=AUDIT_CHECKPOINT_SECRET.encode())
    assert report.ok, report.lines()
    assert (report.checkpoints, report.uncovered) == (1, 0)


async def test_the_gateway_role_cannot_change_remove_or_unguard_events(
    seeded: Seeded, roles: Roles
) -> None:
    await _init(roles.owner_dsn)
    await _run(roles.owner_dsn, _statements(OWNER_GRANTS, gateway=roles.gateway))
    async with serve(gateway_settings(seeded.dsn, audit_dsn=roles.gateway_dsn)) as client:
        assert (await _lookup(client, seeded.dataset.person("SH", 4)))["status"] == 200
    gateway = await asyncpg.connect(roles.gateway_dsn)
    try:
        for statement in (
            "UPDATE audit_event SET caller_app = 'someone-else'",
            "DELETE FROM audit_event",
            "TRUNCATE audit_event",
            "ALTER TABLE audit_event DISABLE TRIGGER audit_event_append_only",
            "DROP TRIGGER audit_event_follows ON audit_event",
            "UPDATE audit_checkpoint SET root = 'x'",
            "DELETE FROM audit_checkpoint",
            "ALTER TABLE audit_checkpoint DISABLE TRIGGER audit_checkpoint_follows",
            "UPDATE audit_decision_set SET decisions = '[]'",
            "DELETE FROM audit_decision_set",
            "TRUNCATE audit_decision_set",
            "ALTER TABLE audit_decision_set DISABLE TRIGGER audit_decision_set_append_only",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await gateway.execute(statement)
        assert await gateway.fetchval("SELECT count(*) FROM audit_event") == 1
    finally:
        await gateway.close()


async def test_without_audit_init_personal_data_is_refused_and_readyz_says_why(
    seeded: Seeded, roles: Roles
) -> None:
    # The owner connects but never runs init: the gateway must not make the table itself.
    settings = gateway_settings(seeded.dsn, audit_dsn=roles.owner_dsn)
    person = seeded.dataset.person("SH", 5)
    async with serve(settings) as client:
        answer = await _lookup(client, person)
        ready = await client.http.get("/readyz")
    assert answer["status"] == 503
    assert "data" not in answer
    assert [e["extensions"]["code"] for e in answer["errors"]] == ["AUDIT_UNAVAILABLE"]
    assert person["phone"] not in str(answer)
    assert ready.status_code == 503
    assert ready.json()["audit"] == "unavailable"
    assert "deltagate audit init" in ready.json()["auditError"]
    owner = await asyncpg.connect(roles.owner_dsn)
    try:
        assert await owner.fetchval("SELECT to_regclass('audit_event')") is None
    finally:
        await owner.close()


async def test_a_disabled_guard_refuses_personal_data_and_readyz_names_it(
    seeded: Seeded, roles: Roles
) -> None:
    await _init(roles.owner_dsn)
    await _run(
        roles.owner_dsn,
        [
            *_statements(OWNER_GRANTS, gateway=roles.gateway),
            "ALTER TABLE audit_event DISABLE TRIGGER audit_event_follows",
        ],
    )
    async with serve(gateway_settings(seeded.dsn, audit_dsn=roles.gateway_dsn)) as client:
        answer = await _lookup(client, seeded.dataset.person("SH", 6))
        ready = await client.http.get("/readyz")
    assert answer["status"] == 503
    assert [e["extensions"]["code"] for e in answer["errors"]] == ["AUDIT_UNAVAILABLE"]
    assert "audit_event_follows" in ready.json()["auditError"]

    # Init, run again by the owner, puts the guard back; a new gateway is then served.
    await _init(roles.owner_dsn)
    async with serve(gateway_settings(seeded.dsn, audit_dsn=roles.gateway_dsn)) as client:
        assert (await _lookup(client, seeded.dataset.person("SH", 6)))["status"] == 200


async def test_a_role_not_granted_the_decision_lists_is_refused_and_readyz_names_the_grant(
    seeded: Seeded, roles: Roles
) -> None:
    # The grants of the layout before the decision lists had a table of their own.
    await _init(roles.owner_dsn)
    await _run(
        roles.owner_dsn,
        [
            f"GRANT USAGE ON SCHEMA public TO {roles.gateway}",
            f"GRANT SELECT, INSERT ON audit_event, audit_checkpoint TO {roles.gateway}",
        ],
    )
    async with serve(gateway_settings(seeded.dsn, audit_dsn=roles.gateway_dsn)) as client:
        answer = await _lookup(client, seeded.dataset.person("SH", 7))
        ready = await client.http.get("/readyz")
    assert answer["status"] == 503
    assert [e["extensions"]["code"] for e in answer["errors"]] == ["AUDIT_UNAVAILABLE"]
    assert "audit_decision_set" in ready.json()["auditError"]

    await _run(roles.owner_dsn, _statements(OWNER_GRANTS, gateway=roles.gateway))
    async with serve(gateway_settings(seeded.dsn, audit_dsn=roles.gateway_dsn)) as client:
        assert (await _lookup(client, seeded.dataset.person("SH", 7)))["status"] == 200


def test_the_readme_gives_the_set_up_this_test_runs() -> None:
    # The README's SQL sits indented in a list item.
    readme = "\n".join(line.strip() for line in README.read_text(encoding="utf-8").splitlines())
    assert SERVER_SETUP.format(**README_NAMES) in readme
    assert OWNER_GRANTS.format(**README_NAMES) in readme
    assert "deltagate audit init --dsn" in readme
