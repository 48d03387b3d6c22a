"""Audit databases made to order on the test server, and events to put in them."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest

from gateway.audit import AuditEvent, PostgresAuditLog, create_database


@asynccontextmanager
async def new_audit_database(admin_dsn: str) -> AsyncIterator[str]:
    """A new, empty audit database (its DSN), dropped afterwards."""
    name = f"deltagate_audit_{uuid.uuid4().hex[:12]}"
    yield await create_database(admin_dsn, name)
    connection = await asyncpg.connect(admin_dsn)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


@pytest.fixture
async def audit_dsn(admin_dsn: str) -> AsyncIterator[str]:
    """A new, empty audit database, dropped after the test."""
    async with new_audit_database(admin_dsn) as dsn:
        yield dsn


@pytest.fixture
async def store(audit_dsn: str) -> AsyncIterator[PostgresAuditLog]:
    audit = PostgresAuditLog(audit_dsn, timeout=5.0)
    yield audit
    await audit.close()


def event(
    number: int = 0, *, app: str = "counter-sh", subjects: tuple[str, ...] = ()
) -> AuditEvent:
    """A plausible event: a counter app reading one person's name under a matter."""
    return AuditEvent(
        at=dt.datetime.now(dt.UTC),
        trace_id=f"{number:032x}",
        caller_app=app,
        caller_region="SH",
        roles=("one_stop_app",),
        matter_code="OS-ENTERPRISE-OPENING",
        matter_name="企业开办",
        operation_name="CounterLookup",
        operation_type="query",
        document_hash="0" * 64,
        policy_version="test",
        subjects=subjects or ("11010519491231002X",),
        decisions=(
            {
                "field": "NaturalPerson.name",
                "owner": "SH",
                "decision": "CLEAR",
                "grade": "L2",
                "clearance": "L3",
                "rule": None,
                "reason": "WITHIN_CLEARANCE",
                "count": 1,
            },
        ),
    )


async def superuser_sql(dsn: str, sql: str, *args: object) -> None:
    """Run SQL as the server's superuser with the triggers bypassed: a tamperer's session."""
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute("SET session_replication_role = replica")
        await connection.execute(sql, *args)
    finally:
        await connection.close()
