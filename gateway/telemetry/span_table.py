"""The SQL of the span store: the ``audit_span`` table in the audit database.

The spans of audited operations are kept beside their audit events so that an
auditor's console can draw a request's waterfall without an outside trace
collector. They are not evidence: the hash chain covers the events, not the
spans, and spans are pruned (``PRUNE_AGE``, ``PRUNE_ROWS``). So the gateway's
own role may DELETE here (``GRANTS``), where on ``audit_event`` it may only
INSERT and SELECT.

The table is created by the audit database's owner with ``deltagate audit init``
(``create_span_table``), like ``audit_event``; the gateway runs no DDL.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson
from asyncpg.pool import PoolConnectionProxy

__all__ = [
    "INSERT",
    "PRUNE_AGE",
    "PRUNE_ROWS",
    "SCHEMA",
    "SELECT_TRACE",
    "create_span_table",
    "init_span_table",
    "insert_args",
    "prune_spans",
]

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_span (
    id          bigserial PRIMARY KEY,
    trace_id    text NOT NULL,
    span_id     text NOT NULL,
    parent_id   text,
    name        text NOT NULL,
    start_at    timestamptz NOT NULL,
    end_at      timestamptz NOT NULL,
    start_ns    bigint NOT NULL,
    end_ns      bigint NOT NULL,
    attributes  jsonb NOT NULL,
    status      text NOT NULL
);
COMMENT ON TABLE audit_span IS
    'deltagate: spans of audited operations (not evidence; pruned by age and count)';
CREATE INDEX IF NOT EXISTS audit_span_trace ON audit_span (trace_id);
CREATE INDEX IF NOT EXISTS audit_span_start ON audit_span (start_at);
"""

#: What the gateway's role needs on the table (run by its owner; ``gateway`` is an example name).
GRANTS = (
    "GRANT SELECT, INSERT, DELETE ON audit_span TO gateway;"
    " GRANT USAGE ON SEQUENCE audit_span_id_seq TO gateway;"
)

_COLUMNS = (
    ("trace_id", "text"),
    ("span_id", "text"),
    ("parent_id", "text"),
    ("name", "text"),
    ("start_ns", "bigint"),
    ("end_ns", "bigint"),
    ("attributes", "jsonb"),
    ("status", "text"),
)

# One statement per batch: the spans go as one JSON array, turned into rows server-side.
INSERT = (
    "INSERT INTO audit_span (trace_id, span_id, parent_id, name, start_at, end_at,"
    " start_ns, end_ns, attributes, status)"
    " SELECT s.trace_id, s.span_id, s.parent_id, s.name,"
    " to_timestamp(s.start_ns / 1e9), to_timestamp(s.end_ns / 1e9),"
    " s.start_ns, s.end_ns, s.attributes, s.status"
    f" FROM jsonb_to_recordset($1::jsonb) AS s({', '.join(f'{c} {t}' for c, t in _COLUMNS)})"
)

SELECT_TRACE = (
    "SELECT span_id, parent_id, name, start_ns, end_ns, attributes, status"
    " FROM audit_span WHERE trace_id = $1 ORDER BY start_ns, id LIMIT $2"
)

#: Spans older than $1 seconds go.
PRUNE_AGE = "DELETE FROM audit_span WHERE start_at < now() - make_interval(secs => $1)"
#: All but the newest $1 spans go.
PRUNE_ROWS = (
    "DELETE FROM audit_span"
    " WHERE id <= (SELECT id FROM audit_span ORDER BY id DESC OFFSET $1 LIMIT 1)"
)

COUNT = "SELECT count(*) FROM audit_span"


def insert_args(rows: list[dict[str, Any]]) -> str:
    """The one argument of ``INSERT``: the rows as a JSON array."""
    return orjson.dumps(rows).decode()


async def create_span_table(connection: asyncpg.Connection | PoolConnectionProxy) -> None:
    """Create the table and its indexes if missing (idempotent); run as the table's owner."""
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock(hashtext('deltagate_span'))")
        await connection.execute(SCHEMA)


async def prune_spans(dsn: str, retention: float, max_rows: int) -> int:
    """``deltagate spans prune``: delete spans older than ``retention`` seconds, then all but
    the newest ``max_rows``; how many went. For a gateway role without DELETE, run by the
    table's owner on a schedule.
    """
    connection = await asyncpg.connect(dsn)
    try:
        gone = 0
        for statement, argument in ((PRUNE_AGE, float(retention)), (PRUNE_ROWS, int(max_rows))):
            status = await connection.execute(statement, argument)
            gone += int(status.split()[-1])
        return gone
    finally:
        await connection.close()


async def init_span_table(dsn: str) -> None:
    """Connect to the audit database at ``dsn`` and ``create_span_table``."""
    connection = await asyncpg.connect(dsn)
    try:
        await create_span_table(connection)
    finally:
        await connection.close()
