"""Several gateway processes, one audit database: no event lost, none doubled, no fork.

Real ``deltagate serve`` processes, each with its own writer, chains and group commit,
append to one audit log while concurrent L2+ requests go to all of them; afterwards
the events committed must be exactly those of the answers served with data, each
process's chain unbroken, no request refused for want of an audit write, and
``deltagate audit verify`` (as an operator runs it, with the checkpoint secret) must
pass with every event covered by a checkpoint.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
import uuid
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import asyncpg
import httpx
import pytest

from gateway.audit import database_dsn
from tests.conftest import Seeded, token
from tests.gateway.edge.test_cli import ServerProcess, serving

JH = "JH-HUKOU-MIGRATION"
PERSONS = "query CaseFiles($ids: [ID!]!) { naturalPersons(idNumbers: $ids) { name phone } }"

#: Gateway processes sharing the audit database, requests in all, and how many in flight.
PROCESSES = 3
#: Chains each process appends to (``audit.chains``).
CHAINS = 2
REQUESTS = 300
IN_FLIGHT = 24
#: The checkpoint secret the gateways sign with and verify checks with.
SECRET = "checkpoint secret of the replica test"


def deltagate(*args: str) -> subprocess.CompletedProcess[str]:
    """The ``deltagate`` command as an operator runs it, in a process of its own."""
    env = {**os.environ, "DELTAGATE_AUDIT_CHECKPOINT_SECRET": SECRET}
    return subprocess.run(
        [sys.executable, "-m", "gateway.edge.cli", *args],
        capture_output=True, text=True, timeout=120, check=False, env=env,
    )  # fmt: skip


async def _create_empty(admin_dsn: str, name: str) -> None:
    connection = await asyncpg.connect(admin_dsn)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


async def _drop(admin_dsn: str, name: str) -> None:
    connection = await asyncpg.connect(admin_dsn)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


async def _chain(dsn: str) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(dsn)
    try:
        return await connection.fetch(
            "SELECT chain, seq, caller_app, trace_id, prev_hash, hash FROM audit_event"
            " ORDER BY chain, seq"
        )
    finally:
        await connection.close()


async def _fire(
    servers: list[ServerProcess], bodies: list[dict[str, object]], bearer: str
) -> list[httpx.Response | BaseException]:
    """Send every body, round robin over the servers, at most ``IN_FLIGHT`` at once."""
    gate = asyncio.Semaphore(IN_FLIGHT)
    headers = {"Authorization": f"Bearer {bearer}", "X-Matter-Code": JH}
    limits = httpx.Limits(max_connections=IN_FLIGHT)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:

        async def one(number: int, body: dict[str, object]) -> httpx.Response:
            async with gate:
                base = servers[number % len(servers)].base
                return await client.post(f"{base}/graphql", json=body, headers=headers)

        return await asyncio.gather(
            *(one(n, body) for n, body in enumerate(bodies)), return_exceptions=True
        )


def _served(answer: httpx.Response | BaseException) -> str | None:
    """The trace id of an answer that released data (HTTP 200 with persons), else None."""
    if not isinstance(answer, httpx.Response) or answer.status_code != 200:
        return None
    body = answer.json()
    persons = (body.get("data") or {}).get("naturalPersons") or []
    if "errors" in body or not any(person and person.get("name") for person in persons):
        return None
    return str(body["extensions"]["traceId"])


@pytest.mark.slow
def test_concurrent_requests_on_three_processes_leave_one_event_each_in_their_chains(
    seeded: Seeded, tmp_path: Path
) -> None:
    name = f"deltagate_audit_{uuid.uuid4().hex[:12]}"
    audit_dsn = database_dsn(seeded.dsn, name)
    asyncio.run(_create_empty(seeded.dsn, name))
    try:
        made = deltagate("audit", "init", "--dsn", audit_dsn)
        assert made.returncode == 0, made.stderr

        app = f"jh-replicas-{uuid.uuid4().hex[:8]}"
        people = [seeded.dataset.person(r, i)["id_number"] for i in range(5) for r in ("JS", "SH")]
        bodies: list[dict[str, object]] = [
            {"query": PERSONS, "variables": {"ids": [people[n % len(people)]]}}
            for n in range(REQUESTS)
        ]
        config = [
            "[audit]", f'dsn = "{audit_dsn}"', "checkpoint_interval = 1.0",
            f"chains = {CHAINS}",
            "[limits]", "rate_limits = false",
        ]  # fmt: skip
        with ExitStack() as stack:  # every server is stopped on the way out, failed or not
            servers = []
            for number in range(PROCESSES):
                folder = tmp_path / f"gateway-{number}"
                folder.mkdir()
                secret = {"DELTAGATE_AUDIT_CHECKPOINT_SECRET": SECRET}
                servers.append(
                    stack.enter_context(serving(seeded, folder, config=config, **secret))
                )
            bearer = token("JS", "joint_handling_officer", app=app)
            answers = asyncio.run(_fire(servers, bodies, bearer))

        outcomes = Counter(
            type(a).__name__ if isinstance(a, BaseException) else a.status_code for a in answers
        )
        served = [trace for trace in map(_served, answers) if trace is not None]
        # Every request served with data: none refused because the audit log was busy.
        assert len(served) == REQUESTS, outcomes

        rows = asyncio.run(_chain(audit_dsn))
        ours = [row for row in rows if row["caller_app"] == app]
        # No event lost and none doubled: exactly one per answer that released data.
        assert len(ours) == len(served), outcomes
        assert Counter(row["trace_id"] for row in ours) == Counter(served)
        # No fork: per process its chains (each used or not, as the load fell), each with
        # events 1..n, each carrying its predecessor's hash.
        chains = {
            name: list(group) for name, group in itertools.groupby(rows, lambda r: r["chain"])
        }
        assert PROCESSES <= len(chains) <= PROCESSES * CHAINS
        for chain in chains.values():
            assert [row["seq"] for row in chain] == list(range(1, len(chain) + 1))
            pairs = itertools.pairwise(chain)
            assert all(before["hash"] == after["prev_hash"] for before, after in pairs)

        checked = deltagate("audit", "verify", "--dsn", audit_dsn)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert f"chains intact: {len(rows)} events in {len(chains)} chains" in checked.stdout
        # Each process wrote a checkpoint as it stopped: no event is left uncovered.
        assert "written after the newest checkpoint" not in checked.stdout
    finally:
        asyncio.run(_drop(seeded.dsn, name))
