"""The audit log's SQL: its tables and guards, and every statement the PostgreSQL store runs.

Only ``gateway.audit.postgres`` imports this module: the rest of the gateway
reads and writes the audit log through ``gateway.audit.log.AuditLog``.

The tables are created by their owner, once, with ``deltagate audit init``
(``create_schema``, which also brings a log of an earlier layout forward); the
gateway's own role runs no DDL (it may only INSERT and SELECT) and checks, once
per pool, that the tables are there, their guards enabled and the list table
granted to it (``check_schema``), refusing to write otherwise. Triggers guard
the tables (``audit_event``, ``audit_checkpoint``, ``audit_decision_set``):
one refuses every UPDATE, DELETE and
TRUNCATE, even a superuser's (who must disable the trigger first, which only
the table's owner can do: the gateway's own role should be granted INSERT and
SELECT and own nothing); the other refuses a row that does not follow its
predecessor (an event the one before it in its chain, a checkpoint the one
before it), so no writer can fork a chain or leave a gap in it. The events'
link check runs once per statement, over the rows the statement added (a
transition table), in one set-based query: a batch of events costs one call of
the check, not one per row.

Decision lists (``gateway.audit.decision_sets``): an event's list of per-field
decisions, most of its size, is kept once in ``audit_decision_set`` under the
SHA-256 of its canonical JSON, and the event refers to it (``decision_set``);
an event written before (the inline layout), or whose list its writer met for
the first time, keeps its own copy (``decisions``), and a check constraint
allows exactly one of the two. A list is stored in the statement whose events
first refer to it. Every read takes the list back (``_DECISIONS``: a
primary-key lookup per event read, a scalar subquery so that the reads keep
their plans over ``audit_event``), so ``select``, ``stored_event`` and
``verify`` see an event as it was hashed. Per event, PostgreSQL then parses,
stores and logs about 0.6 kB instead of 3 kB: its CPU per event fell to about
half the inline layout's for a list that repeats (``bench.audit_writers
--layouts inline,current``).

Indexes, for the reads auditors and citizens run (``select``: newest first, by
app, subject, matter, trace or time) and no more: the primary key (chain, seq),
which the link check and ``verify`` use; ``id``, the order of every read; one
GIN index over the rare keys (the subjects, and the trace as a ``trace:`` key);
(app, id) and (matter, id) for an app's or a matter's newest events; and
``at`` for time ranges. Nothing reads by ``acting``: it has no index.
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
    "ALL_CHECKPOINTS",
    "ALL_EVENTS",
    "CHAIN_HEAD",
    "CHECKPOINT_LOCK",
    "COLUMNS",
    "DATABASE",
    "DECISION_SETS",
    "GUARDS",
    "INSERT",
    "INSERT_CHECKPOINT",
    "LAST_CHECKPOINT",
    "MOVED_HEADS",
    "NEWEST",
    "NEWEST_ID",
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

#: Taken shared by every INSERT of events (before its rows are numbered) and exclusively
#: by a checkpoint: a checkpoint then sees every event numbered before it committed, so
#: its ``through_id`` leaves none behind. Any role may take an advisory lock.
_LOCK_KEY = 4206714311

#: The table of decision lists and its guard (``SCHEMA`` holds it; it needs
#: ``audit_event_append_only``, the function every table's guard calls).
DECISION_SETS = """
CREATE TABLE IF NOT EXISTS audit_decision_set (
    digest          text PRIMARY KEY,
    decisions       jsonb NOT NULL
);
COMMENT ON TABLE audit_decision_set IS
    'deltagate audit log: decision lists by SHA-256 of their canonical JSON, append-only';
CREATE OR REPLACE TRIGGER audit_decision_set_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_decision_set
    FOR EACH STATEMENT EXECUTE FUNCTION audit_event_append_only();
"""

SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS audit_event (
    id              bigint GENERATED ALWAYS AS IDENTITY,
    chain           text NOT NULL,
    seq             bigint NOT NULL CHECK (seq > 0),
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
    receipts        jsonb,
    PRIMARY KEY (chain, seq)
);
-- The cascade's columns, for a log created before them (NULL: called directly, no receipts).
ALTER TABLE audit_event ADD COLUMN IF NOT EXISTS acting text;
ALTER TABLE audit_event ADD COLUMN IF NOT EXISTS receipts jsonb;
COMMENT ON TABLE audit_event IS
    'deltagate audit log: append-only, a hash chain per writer (check: deltagate audit verify)';
CREATE UNIQUE INDEX IF NOT EXISTS audit_event_id ON audit_event (id);

-- The rare keys, found by equality: the subjects and the trace, in one array, so one GIN
-- index serves both. A subject (ID number, USCC) has no colon: it cannot pass for a trace.
-- (The app and the matter are not in it: each is in many events, and mixed with unique
-- keys their frequency would make the planner misjudge the rare ones.)
CREATE OR REPLACE FUNCTION audit_event_keys(subjects text[], trace_id text) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT subjects || ARRAY['trace:' || trace_id]
$$;
-- With fastupdate (the default): new keys go to a pending list that is merged into the
-- tree in bulk; merging each key at once (fastupdate off) cost about a tenth more
-- PostgreSQL CPU per event (bench.audit_writers).
CREATE INDEX IF NOT EXISTS audit_event_keys ON audit_event
    USING gin (audit_event_keys(subjects, trace_id));
-- The frequent keys, newest first within each: an app's or a matter's latest events.
CREATE INDEX IF NOT EXISTS audit_event_app ON audit_event (caller_app, id);
CREATE INDEX IF NOT EXISTS audit_event_matter ON audit_event (matter_code, id);
-- A time range: a btree, as the planner then reads only the range (a BRIN index was tried:
-- it cost less to keep, but the planner walked ``id`` back through the log instead). ``id``
-- order is close to time order, but without this index an old window (reconcile's, or the
-- console's from/to) is found by walking ``id`` through every event before or after it.
CREATE INDEX IF NOT EXISTS audit_event_at ON audit_event (at);
-- No query reads by ``acting``: the index the previous layout kept on it goes.
DROP INDEX IF EXISTS audit_event_acting;

CREATE TABLE IF NOT EXISTS audit_checkpoint (
    seq             bigint PRIMARY KEY CHECK (seq > 0),
    at              timestamptz NOT NULL,
    through_id      bigint NOT NULL,
    heads           jsonb NOT NULL,
    root            text NOT NULL,
    hash_algorithm  text NOT NULL,
    prev_hash       text NOT NULL,
    hash            text NOT NULL,
    signature       text NOT NULL
);
COMMENT ON TABLE audit_checkpoint IS
    'deltagate audit log: signed roots over every chain''s head, append-only';

CREATE OR REPLACE FUNCTION audit_event_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE OR REPLACE TRIGGER audit_event_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_event
    FOR EACH STATEMENT EXECUTE FUNCTION audit_event_append_only();
CREATE OR REPLACE TRIGGER audit_checkpoint_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_checkpoint
    FOR EACH STATEMENT EXECUTE FUNCTION audit_event_append_only();

-- The decision lists, each kept once under its digest (``decision_sets``): an event of
-- this layout refers to its list (``decision_set``), one of an earlier layout carries it
-- (``decisions``), never both nor neither. No foreign key: its check locks the list's row
-- for every event that refers to it (a write to the one row every writer shares); the
-- writer stores a list in the statement that first refers to it, the list's table is
-- append-only, and ``verify`` names an event whose list is missing or was edited.
ALTER TABLE audit_event ADD COLUMN IF NOT EXISTS decision_set text;
ALTER TABLE audit_event ALTER COLUMN decisions DROP NOT NULL;
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'audit_event_decisions_once'
                   AND conrelid = 'audit_event'::regclass) THEN
        -- NOT VALID: the events before it all carry their list (``decisions`` was NOT
        -- NULL) and none has a ``decision_set``, so init need not read the whole log
        -- under its lock to prove it; every new row is checked.
        ALTER TABLE audit_event ADD CONSTRAINT audit_event_decisions_once
            CHECK ((decisions IS NULL) <> (decision_set IS NULL)) NOT VALID;
    END IF;
END $$;
"""
    + DECISION_SETS
    + """
-- Once per statement, over the rows it added (``added``): event 1 of a chain must follow
-- GENESIS, any other the event before it in its chain (one primary-key lookup per row).
-- Running after the statement, the lookup finds the statement's own earlier rows as well
-- as the stored ones; a concurrent writer's uncommitted rows it does not, and with the
-- primary key (chain, seq) two writers can never fork a chain. Per statement it costs
-- more than a row trigger's first row (about 57 µs against 38, EXPLAIN ANALYZE), per row
-- less (about 3 µs against 8): cheaper from about 4 events a batch, half at 32. (Joining
-- ``added`` to itself, to look up only each chain's first row, cost more per statement
-- than it saved per row up to about 12.) The previous layout's row trigger of the same
-- name is replaced by this one (a single-chain log's is dropped by MIGRATE_SINGLE_CHAIN).
CREATE OR REPLACE FUNCTION audit_event_follows() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    stray record;
BEGIN
    SELECT a.chain, a.seq INTO stray FROM added AS a
    WHERE a.prev_hash IS DISTINCT FROM CASE
        WHEN a.seq = 1 THEN repeat('0', 64)
        ELSE (SELECT s.hash FROM audit_event AS s WHERE s.chain = a.chain AND s.seq = a.seq - 1)
    END
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'audit event % of chain % does not follow its predecessor',
            stray.seq, stray.chain
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER audit_event_follows
    AFTER INSERT ON audit_event REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION audit_event_follows();

CREATE OR REPLACE FUNCTION audit_checkpoint_follows() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    expected text;
BEGIN
    IF NEW.seq = 1 THEN
        expected := repeat('0', 64);
    ELSE
        SELECT hash INTO expected FROM audit_checkpoint WHERE seq = NEW.seq - 1;
    END IF;
    IF expected IS DISTINCT FROM NEW.prev_hash THEN
        RAISE EXCEPTION 'audit checkpoint % does not follow checkpoint %', NEW.seq, NEW.seq - 1
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE OR REPLACE TRIGGER audit_checkpoint_follows
    BEFORE INSERT ON audit_checkpoint
    FOR EACH ROW EXECUTE FUNCTION audit_checkpoint_follows();
"""
)

#: A log of the single-chain layout (``seq`` its primary key, no ``chain``) brought
#: forward: its events become the chain ``single`` (``events.LEGACY_CHAIN``) with their
#: numbers, hashes and links unchanged, and ``id`` = ``seq``; the per-row link trigger and
#: the indexes keyed on ``seq`` or replaced by the GIN index of the rare keys go. DDL
#: only: the append-only guard stays on and no event is updated. ``SCHEMA`` then adds
#: what is missing.
MIGRATE_SINGLE_CHAIN = """
DROP TRIGGER IF EXISTS audit_event_follows ON audit_event;
ALTER TABLE audit_event ADD COLUMN chain text NOT NULL DEFAULT 'single';
ALTER TABLE audit_event ALTER COLUMN chain DROP DEFAULT;
ALTER TABLE audit_event ADD COLUMN id bigint;
ALTER TABLE audit_event ALTER COLUMN id TYPE bigint USING seq;
ALTER TABLE audit_event ALTER COLUMN id SET NOT NULL;
ALTER TABLE audit_event ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY;
SELECT setval(pg_get_serial_sequence('audit_event', 'id'),
              (SELECT coalesce(max(seq), 0) + 1 FROM audit_event), false);
ALTER TABLE audit_event DROP CONSTRAINT audit_event_pkey;
ALTER TABLE audit_event ADD PRIMARY KEY (chain, seq);
DROP INDEX IF EXISTS audit_event_subjects, audit_event_trace, audit_event_app,
    audit_event_matter;
"""

#: Whether ``audit_event`` is of the single-chain layout (there, without a ``chain``).
SINGLE_CHAIN_LAYOUT = (
    "SELECT to_regclass('audit_event') IS NOT NULL AND NOT EXISTS (SELECT 1 FROM"
    " information_schema.columns WHERE table_name = 'audit_event' AND column_name = 'chain'"
    " AND table_schema = current_schema())"
)

#: The triggers ``deltagate audit verify`` expects to find enabled.
GUARDS = (
    "audit_event_append_only",
    "audit_event_follows",
    "audit_checkpoint_append_only",
    "audit_checkpoint_follows",
    "audit_decision_set_append_only",
)

#: An event's list: its own (an event of the inline layout) or the stored one it refers
#: to, looked up by primary key. A scalar subquery, not a join, so that each read keeps
#: the plan it had over ``audit_event`` alone (joined, a time window or a subject's
#: history hash-joined the whole list table); it runs for the rows read (and, in the
#: owner/decision filter, for the rows tested).
_DECISIONS = (
    "coalesce(decisions,"
    " (SELECT s.decisions FROM audit_decision_set AS s WHERE s.digest = decision_set))"
)
#: An event's columns as every read takes them, the list read back alike either way.
COLUMNS = (
    "id, chain, seq, at, trace_id, caller_app, caller_region, roles, matter_code, matter_name,"
    " operation_name, operation_type, document_hash, policy_version, subjects,"
    f" {_DECISIONS} AS decisions, hash_algorithm, prev_hash, hash, acting, receipts,"
    " decision_set"
)

#: Each column the writer sends and the key it has in an event's record (``events.link``).
_FIELDS = (
    ("chain", "chain", "text"),
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
    ("decision_set", "decisionSet", "text"),
    ("hash_algorithm", "hashAlgorithm", "text"),
    ("prev_hash", "prevHash", "text"),
    ("hash", "hash", "text"),
    ("acting", "acting", "text"),
    ("receipts", "receipts", "jsonb"),
)

# One statement for a whole batch: the events go as one JSON array of their records
# (hashed, not serialised again), turned into rows by jsonb_to_recordset. The CTE takes
# the shared lock before any row is numbered (the sort needs every row first).
# (Sending one binary array per column instead, decoded by unnest, was measured: it saved
# PostgreSQL about 5 µs of JSON parsing per event and cost the writer about twice that in
# building and encoding the arrays.)
_NAMES = ", ".join(column for column, _, _ in _FIELDS)
_KEYS = ", ".join(f'e."{key}"' for _, key, _ in _FIELDS)
_RECORD = ", ".join(f'"{key}" {kind}' for _, key, kind in _FIELDS)
INSERT = (
    f"WITH writing AS MATERIALIZED (SELECT pg_advisory_xact_lock_shared({_LOCK_KEY})),"
    # The lists the events refer to that the writer does not know to be stored ($2), in
    # the same statement: committed with the events or not at all. A list stored already
    # (by this writer or another) is left as it is; one another writer is storing at this
    # moment is waited for.
    " listed AS (INSERT INTO audit_decision_set (digest, decisions)"
    " SELECT l.digest, l.decisions FROM writing,"
    " jsonb_to_recordset($2::jsonb) AS l(digest text, decisions jsonb)"
    " ON CONFLICT (digest) DO NOTHING)"
    f" INSERT INTO audit_event ({_NAMES}) SELECT {_KEYS}"
    f" FROM writing, jsonb_to_recordset($1::jsonb) AS e({_RECORD}) ORDER BY e.seq"
    " RETURNING seq, id"
)

#: A chain's newest event (a writer finding its place again after a failed commit).
CHAIN_HEAD = "SELECT seq, hash FROM audit_event WHERE chain = $1 ORDER BY seq DESC LIMIT 1"
#: The newest event of the log.
NEWEST = "SELECT chain, seq, hash FROM audit_event ORDER BY id DESC LIMIT 1"
NEWEST_ID = "SELECT coalesce(max(id), 0) FROM audit_event"

CHECKPOINT_LOCK = f"SELECT pg_advisory_xact_lock({_LOCK_KEY})"
LAST_CHECKPOINT = "SELECT seq, at, through_id, hash FROM audit_checkpoint ORDER BY seq DESC LIMIT 1"
#: The head of every chain with events numbered in (``$1``, ``$2``].
MOVED_HEADS = (
    "SELECT m.chain, m.seq, e.hash FROM (SELECT chain, max(seq) AS seq FROM audit_event"
    " WHERE id > $1 AND id <= $2 GROUP BY chain) AS m JOIN audit_event AS e USING (chain, seq)"
)
INSERT_CHECKPOINT = (
    "INSERT INTO audit_checkpoint (seq, at, through_id, heads, root, hash_algorithm,"
    " prev_hash, hash, signature) VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7, $8, $9)"
)

#: The existence of the tables (``to_regclass`` reads the catalog only).
TABLE_EXISTS = (
    "SELECT to_regclass('audit_event') IS NOT NULL AND to_regclass('audit_checkpoint') IS NOT NULL"
    " AND to_regclass('audit_decision_set') IS NOT NULL"
)
#: A log of the layout before the decision lists had a table (``deltagate audit init``
#: brings it forward).
INLINE_LAYOUT = (
    "SELECT to_regclass('audit_event') IS NOT NULL AND to_regclass('audit_decision_set') IS NULL"
)

#: Every event, chain by chain, oldest first: the walk of ``verify`` (the primary key's order).
ALL_EVENTS = f"SELECT {COLUMNS} FROM audit_event ORDER BY chain, seq"
ALL_CHECKPOINTS = (
    "SELECT seq, at, through_id, heads, root, hash_algorithm, prev_hash, hash, signature"
    " FROM audit_checkpoint ORDER BY seq"
)

PING = "SELECT 1"

_EVENT_KEYS = "audit_event_keys(subjects, trace_id) @> {}::text[]"


def select(query: EventQuery) -> tuple[str, list[Any]]:
    """The statement and arguments that read the events ``query`` asks for."""
    conditions: list[str] = []
    args: list[Any] = []
    for template, value in (
        ("caller_app = {}", query.caller_app),
        ("chain = {}", query.chain),
        ("matter_code = {}", query.matter_code),
        ("at >= {}", query.start),
        ("at < {}", query.end),
        ("id < {}", query.before),
        ("id > {}", query.after),
    ):
        if value is not None:
            args.append(value)
            conditions.append(template.format(f"${len(args)}"))
    if query.owner is not None or query.decision is not None:
        entry = {"owner": query.owner, "decision": query.decision}
        args.append(orjson.dumps([{k: v for k, v in entry.items() if v is not None}]).decode())
        conditions.append(f"{_DECISIONS} @> ${len(args)}::jsonb")
    if query.outside is not None:
        # China Standard Time has no daylight saving: UTC + 8 hours is its wall clock.
        local = "((at AT TIME ZONE 'UTC') + interval '8 hours')"
        args += [query.outside.start, query.outside.end, sorted(query.outside.days)]
        conditions.append(
            f"NOT ({local}::time >= ${len(args) - 2} AND {local}::time < ${len(args) - 1}"
            f" AND extract(isodow FROM {local})::int = ANY(${len(args)}::int[]))"
        )
    order = "DESC" if query.newest_first else "ASC"
    source = "audit_event"
    # The subject and the trace as one containment test on the GIN index of the rare keys
    # (audit_event_keys). Found first, in a CTE: left to itself the planner walks ``id``
    # backwards and filters, which is quick for a frequent key and reads the whole log for
    # a rare one (a person, a trace), the very keys these filters are for.
    keys = [
        f"{prefix}{value}"
        for prefix, value in (("", query.subject), ("trace:", query.trace_id))
        if value is not None
    ]
    if keys:
        args.append(keys)
        source = "found"
        found = f"WITH found AS MATERIALIZED (SELECT * FROM audit_event WHERE {_EVENT_KEYS}) "
        found = found.format(f"${len(args)}")
    else:
        found = ""
    where = " AND ".join(conditions) or "TRUE"
    args.append(query.limit)
    sql = (
        f"{found}SELECT {COLUMNS} FROM {source} WHERE {where}"
        f" ORDER BY id {order} LIMIT ${len(args)}"
    )
    return sql, args


def stored_event(record: asyncpg.Record | dict[str, Any]) -> StoredEvent:
    """A database row as a ``StoredEvent``."""
    decisions = record["decisions"]
    if isinstance(decisions, str | bytes):
        decisions = orjson.loads(decisions)
    # An event whose list is missing (``verify`` names it): read back with none.
    decisions = decisions or ()
    receipts = record["receipts"]
    if isinstance(receipts, str | bytes):
        receipts = orjson.loads(receipts)
    return StoredEvent(
        id=record["id"],
        chain=record["chain"],
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
        decision_set=record.get("decision_set"),
    )


async def create_schema(connection: asyncpg.Connection) -> bool:
    """Create the tables, their indexes and guards if they are missing (idempotent);
    bring a log of the single-chain layout forward first. True if it did.

    Run as the role that is to own the tables (``deltagate audit init``), never as the
    gateway's: only the owner can change them or disable their guards.
    """
    async with connection.transaction():
        # Two inits at once: one creates, the other waits and finds it made.
        await connection.execute("SELECT pg_advisory_xact_lock(hashtext('deltagate_audit'))")
        migrate = bool(await connection.fetchval(SINGLE_CHAIN_LAYOUT))
        if migrate:
            await connection.execute(MIGRATE_SINGLE_CHAIN)
        await connection.execute(SCHEMA)
    return migrate


async def guard_states(connection: asyncpg.Connection | PoolConnectionProxy) -> dict[str, bool]:
    """Each guard trigger of ``GUARDS`` and whether it is there and enabled."""
    rows = await connection.fetch(
        # 'O' fires in ordinary sessions, 'A' always; 'D' is disabled, 'R' replicas only.
        "SELECT tgname, tgenabled::text IN ('O', 'A') AS enabled FROM pg_trigger"
        " WHERE tgrelid IN (to_regclass('audit_event'), to_regclass('audit_checkpoint'),"
        " to_regclass('audit_decision_set'))"
        " AND NOT tgisinternal"
    )
    found = {row["tgname"]: row["enabled"] for row in rows}
    return {name: found.get(name, False) for name in GUARDS}


async def check_schema(
    connection: asyncpg.Connection | PoolConnectionProxy, *, guards: bool = True
) -> None:
    """Return if the tables are there with every guard enabled (catalog reads only, no DDL).

    ``guards=False`` checks for the table alone: for reading a log whose guard was
    turned off, to look into it (``deltagate audit verify`` and ``tail``).

    Raises:
        AuditUnavailable: saying what is missing; the gateway then writes nothing
            (an unguarded table is no audit log).
    """
    if not await connection.fetchval(TABLE_EXISTS):
        if await connection.fetchval(SINGLE_CHAIN_LAYOUT):
            raise AuditUnavailable(
                "the audit database holds a log of the single-chain layout: run deltagate"
                " audit init as its owner to bring it forward (its events are kept)"
            )
        if await connection.fetchval(INLINE_LAYOUT):
            raise AuditUnavailable(
                "the audit database holds a log of an earlier layout (no table"
                " audit_decision_set): run deltagate audit init as its owner to bring it"
                " forward (its events are kept)"
            )
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
    # A log brought forward while the gateway's role was granted the older tables only:
    # say so now, not as every INSERT is refused.
    if not await connection.fetchval(
        "SELECT has_table_privilege('audit_decision_set', 'INSERT')"
        " AND has_table_privilege('audit_decision_set', 'SELECT')"
    ):
        raise AuditUnavailable(
            "the gateway's role may not INSERT and SELECT on audit_decision_set: the"
            " tables' owner grants it (GRANT SELECT, INSERT ON audit_decision_set TO ...)"
        )


#: The audit database's name where the gateway creates it (the demo, the tests).
DATABASE = "deltagate_audit"


def database_dsn(server_dsn: str, name: str = DATABASE) -> str:
    """``server_dsn`` (a URL or libpq key/value string) with its database swapped for ``name``."""
    if "://" in server_dsn:
        return urlunsplit(urlsplit(server_dsn)._replace(path=f"/{name}"))
    kept = [pair for pair in server_dsn.split() if not pair.startswith("dbname=")]
    return " ".join([*kept, f"dbname={name}"])


async def init_schema(dsn: str) -> bool:
    """``deltagate audit init``: connect to the audit database at ``dsn`` and ``create_schema``;
    True if it brought a single-chain log forward."""
    connection = await asyncpg.connect(dsn)
    try:
        return await create_schema(connection)
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
