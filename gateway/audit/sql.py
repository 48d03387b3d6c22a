"""The audit log's SQL: its table and guards, and every statement the PostgreSQL store runs.

Only ``gateway.audit.postgres`` imports this module: the rest of the gateway
reads and writes the audit log through ``gateway.audit.log.AuditLog``.

The table is created by its owner, once, with ``deltagate audit init``
(``create_schema``); the gateway's own role runs no DDL (it may only INSERT
and SELECT) and checks, once per pool, that the table is there and its guards
enabled (``check_schema``), refusing to write otherwise. Two triggers guard
it: one refuses every UPDATE, DELETE and TRUNCATE, even a superuser's (who
must disable the trigger first, which only the table's owner can do: the
gateway's own role should be granted INSERT and SELECT and own nothing); the
other refuses an event whose ``prev_hash`` is not the hash of the event
before it, so two writers can never fork the chain.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import orjson
from asyncpg.pool import PoolConnectionProxy

from gateway.audit.events import AuditEvent, StoredEvent
from gateway.core.errors import AuditUnavailable

if TYPE_CHECKING:
    from gateway.audit.log import EventQuery

__all__ = [
    "ALL_EVENTS",
    "COLUMNS",
    "DATABASE",
    "GUARDS",
    "HEAD",
    "INSERT",
    "PING",
    "SCHEMA",
    "TABLE_EXISTS",
    "check_schema",
    "create_database",
    "create_schema",
    "database_dsn",
    "guard_states",
    "init_schema",
    "select",
    "stored_event",
]

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_event (
    seq             bigint PRIMARY KEY CHECK (seq > 0),
    at              timestamptz NOT NULL,
    trace_id        text NOT NULL,
    caller_app      text NOT NULL,
    caller_region   text NOT NULL,
    roles           text[] NOT NULL,
    matter_code     text,
    matter_name     text,
    operation_name  text,
    operation_type  text,
    document_hash   text NOT NULL,
    policy_version  text,
    subjects        text[] NOT NULL,
    decisions       jsonb NOT NULL,
    hash_algorithm  text NOT NULL,
    prev_hash       text NOT NULL,
    hash            text NOT NULL,
    acting          text,
    receipts        jsonb
);
-- The cascade's columns, for a log created before them (NULL: called directly, no receipts).
ALTER TABLE audit_event ADD COLUMN IF NOT EXISTS acting text;
ALTER TABLE audit_event ADD COLUMN IF NOT EXISTS receipts jsonb;
COMMENT ON TABLE audit_event IS
    'deltagate audit log: append-only, hash-chained (verify with: deltagate audit verify)';
CREATE INDEX IF NOT EXISTS audit_event_subjects ON audit_event USING gin (subjects);
CREATE INDEX IF NOT EXISTS audit_event_trace ON audit_event (trace_id);
CREATE INDEX IF NOT EXISTS audit_event_app ON audit_event (caller_app, seq);
CREATE INDEX IF NOT EXISTS audit_event_matter ON audit_event (matter_code, seq);
CREATE INDEX IF NOT EXISTS audit_event_at ON audit_event (at);
CREATE INDEX IF NOT EXISTS audit_event_acting ON audit_event (acting, at) WHERE acting IS NOT NULL;

CREATE OR REPLACE FUNCTION audit_event_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE OR REPLACE TRIGGER audit_event_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_event
    FOR EACH STATEMENT EXECUTE FUNCTION audit_event_append_only();

CREATE OR REPLACE FUNCTION audit_event_follows() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    expected text;
BEGIN
    IF NEW.seq = 1 THEN
        expected := repeat('0', 64);
    ELSE
        SELECT hash INTO expected FROM audit_event WHERE seq = NEW.seq - 1;
    END IF;
    IF expected IS DISTINCT FROM NEW.prev_hash THEN
        RAISE EXCEPTION 'audit event % does not follow event %', NEW.seq, NEW.seq - 1
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE OR REPLACE TRIGGER audit_event_follows
    BEFORE INSERT ON audit_event
    FOR EACH ROW EXECUTE FUNCTION audit_event_follows();
"""

#: The triggers ``deltagate audit verify`` expects to find enabled.
GUARDS = ("audit_event_append_only", "audit_event_follows")

COLUMNS = (
    "seq, at, trace_id, caller_app, caller_region, roles, matter_code, matter_name,"
    " operation_name, operation_type, document_hash, policy_version, subjects, decisions,"
    " hash_algorithm, prev_hash, hash, acting, receipts"
)

#: Each column and the key it has in an event's canonical form (``events.canonical``).
_FIELDS = (
    ("seq", "seq", "bigint"),
    ("at", "at", "timestamptz"),
    ("trace_id", "traceId", "text"),
    ("caller_app", "callerApp", "text"),
    ("caller_region", "callerRegion", "text"),
    ("roles", "roles", "text[]"),
    ("matter_code", "matterCode", "text"),
    ("matter_name", "matterName", "text"),
    ("operation_name", "operationName", "text"),
    ("operation_type", "operationType", "text"),
    ("document_hash", "documentHash", "text"),
    ("policy_version", "policyVersion", "text"),
    ("subjects", "subjects", "text[]"),
    ("decisions", "decisions", "jsonb"),
    ("hash_algorithm", "hashAlgorithm", "text"),
    ("prev_hash", "prevHash", "text"),
    ("hash", "hash", "text"),
    ("acting", "acting", "text"),
    ("receipts", "receipts", "jsonb"),
)

# One statement for a whole batch: the events go as one JSON array of their canonical
# forms (hashed, not serialised again), turned into rows by jsonb_to_recordset.
_KEYS = ", ".join(f'e."{key}"' for _, key, _ in _FIELDS)
_RECORD = ", ".join(f'"{key}" {kind}' for _, key, kind in _FIELDS)
INSERT = (
    f"INSERT INTO audit_event ({COLUMNS}) SELECT {_KEYS}"
    f" FROM jsonb_to_recordset($1::jsonb) AS e({_RECORD}) ORDER BY e.seq"
)

HEAD = "SELECT seq, hash FROM audit_event ORDER BY seq DESC LIMIT 1"
#: Held by a writer from reading the head to its commit, so the writers of every replica
#: chain one after the other. Any role may take an advisory lock; no grant needed.
CHAIN_LOCK = "SELECT pg_advisory_xact_lock(4206714311)"


#: The existence of the table (``to_regclass`` reads the catalog only).
TABLE_EXISTS = "SELECT to_regclass('audit_event') IS NOT NULL"

#: Every event, oldest first: the walk of ``verify``.
ALL_EVENTS = f"SELECT {COLUMNS} FROM audit_event ORDER BY seq"

PING = "SELECT 1"


def select(query: EventQuery) -> tuple[str, list[Any]]:
    """The statement and arguments that read the events ``query`` asks for."""
    conditions: list[str] = []
    args: list[Any] = []
    for template, value in (
        ("caller_app = {}", query.caller_app),
        ("subjects @> ARRAY[{}::text]", query.subject),
        ("matter_code = {}", query.matter_code),
        ("trace_id = {}", query.trace_id),
        ("at >= {}", query.start),
        ("at < {}", query.end),
        ("seq < {}", query.before),
        ("seq > {}", query.after),
    ):
        if value is not None:
            args.append(value)
            conditions.append(template.format(f"${len(args)}"))
    if query.owner is not None or query.decision is not None:
        entry = {"owner": query.owner, "decision": query.decision}
        args.append(orjson.dumps([{k: v for k, v in entry.items() if v is not None}]).decode())
        conditions.append(f"decisions @> ${len(args)}::jsonb")
    if query.outside is not None:
        # China Standard Time has no daylight saving: UTC + 8 hours is its wall clock.
        local = "((at AT TIME ZONE 'UTC') + interval '8 hours')"
        args += [query.outside.start, query.outside.end, sorted(query.outside.days)]
        conditions.append(
            f"NOT ({local}::time >= ${len(args) - 2} AND {local}::time < ${len(args) - 1}"
            f" AND extract(isodow FROM {local})::int = ANY(${len(args)}::int[]))"
        )
    where = " AND ".join(conditions) or "TRUE"
    order = "DESC" if query.newest_first else "ASC"
    args.append(query.limit)
    sql = f"SELECT {COLUMNS} FROM audit_event WHERE {where} ORDER BY seq {order} LIMIT ${len(args)}"
    return sql, args


def stored_event(record: asyncpg.Record | dict[str, Any]) -> StoredEvent:
    """A database row as a ``StoredEvent``."""
    decisions = record["decisions"]
    if isinstance(decisions, str | bytes):
        decisions = orjson.loads(decisions)
    receipts = record["receipts"]
    if isinstance(receipts, str | bytes):
        receipts = orjson.loads(receipts)
    return StoredEvent(
        seq=record["seq"],
        event=AuditEvent(
            at=record["at"],
            trace_id=record["trace_id"],
            caller_app=record["caller_app"],
            caller_region=record["caller_region"],
            roles=tuple(record["roles"]),
            matter_code=record["matter_code"],
            matter_name=record["matter_name"],
            operation_name=record["operation_name"],
            operation_type=record["operation_type"],
            document_hash=record["document_hash"],
            policy_version=record["policy_version"],
            subjects=tuple(record["subjects"]),
            decisions=tuple(decisions),
            acting=record["acting"],
            receipts=tuple(receipts or ()),
        ),
        hash_algorithm=record["hash_algorithm"],
        prev_hash=record["prev_hash"],
        hash=record["hash"],
    )


async def create_schema(connection: asyncpg.Connection) -> None:
    """Create the table, its indexes and its guards if they are missing (idempotent).

    Run as the role that is to own the table (``deltagate audit init``), never as the
    gateway's: only the owner can change the table or disable its guards.
    """
    async with connection.transaction():
        # Two inits at once: one creates, the other waits and finds it made.
        await connection.execute("SELECT pg_advisory_xact_lock(hashtext('deltagate_audit'))")
        await connection.execute(SCHEMA)


async def guard_states(connection: asyncpg.Connection | PoolConnectionProxy) -> dict[str, bool]:
    """Each guard trigger of ``GUARDS`` and whether it is there and enabled."""
    rows = await connection.fetch(
        # 'O' fires in ordinary sessions, 'A' always; 'D' is disabled, 'R' replicas only.
        "SELECT tgname, tgenabled::text IN ('O', 'A') AS enabled FROM pg_trigger"
        " WHERE tgrelid = to_regclass('audit_event') AND NOT tgisinternal"
    )
    found = {row["tgname"]: row["enabled"] for row in rows}
    return {name: found.get(name, False) for name in GUARDS}


async def check_schema(
    connection: asyncpg.Connection | PoolConnectionProxy, *, guards: bool = True
) -> None:
    """Return if the table is there with every guard enabled (catalog reads only, no DDL).

    ``guards=False`` checks for the table alone: for reading a log whose guard was
    turned off, to look into it (``deltagate audit verify`` and ``tail``).

    Raises:
        AuditUnavailable: saying what is missing; the gateway then writes nothing
            (an unguarded table is no audit log).
    """
    if not await connection.fetchval(TABLE_EXISTS):
        raise AuditUnavailable(
            "the audit database has no table audit_event: run deltagate audit init"
            " as the role that is to own it"
        )
    if not guards:
        return
    off = [name for name, enabled in (await guard_states(connection)).items() if not enabled]
    if off:
        raise AuditUnavailable(
            f"audit_event guard(s) missing or disabled: {', '.join(off)}"
            " (the table's owner restores them with deltagate audit init)"
        )


#: The audit database's name where the gateway creates it (the demo, the tests).
DATABASE = "deltagate_audit"


def database_dsn(server_dsn: str, name: str = DATABASE) -> str:
    """``server_dsn`` (a URL or libpq key/value string) with its database swapped for ``name``."""
    if "://" in server_dsn:
        return urlunsplit(urlsplit(server_dsn)._replace(path=f"/{name}"))
    kept = [pair for pair in server_dsn.split() if not pair.startswith("dbname=")]
    return " ".join([*kept, f"dbname={name}"])


async def init_schema(dsn: str) -> None:
    """``deltagate audit init``: connect to the audit database at ``dsn`` and ``create_schema``."""
    connection = await asyncpg.connect(dsn)
    try:
        await create_schema(connection)
    finally:
        await connection.close()


async def create_database(server_dsn: str, name: str = DATABASE, *, fresh: bool = False) -> str:
    """Create the audit database on a server (with the right to create databases) and its
    schema, as ``deltagate audit init`` would (the demo, the tests); its DSN.

    An existing one is kept, unless ``fresh`` (tests) drops it first.
    """
    connection = await asyncpg.connect(server_dsn)
    try:
        if fresh:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    dsn = database_dsn(server_dsn, name)
    await init_schema(dsn)
    return dsn
