"""The audit log's earlier layouts, as ``deltagate audit init`` made them: ``PREVIOUS_SCHEMA``
(before the link check ran once per statement: a per-row link trigger and an index on
``acting``) and ``INLINE_SCHEMA`` (before the decision lists had a table of their own:
every event carries its list), with the writer of both (``InlineAuditLog``). A log of
either must come forward with ``deltagate audit init`` (``test_previous_layout.py``), and
``python -m bench.audit_writers --layouts previous,inline,current`` measures against them.
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.audit import PostgresAuditLog
from gateway.audit.events import StoredEvent

__all__ = ["INLINE_INSERT", "INLINE_SCHEMA", "PREVIOUS_SCHEMA", "InlineAuditLog"]

#: The tables, indexes and guards as the previous ``deltagate audit init`` made them.
PREVIOUS_SCHEMA = """
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
CREATE INDEX IF NOT EXISTS audit_event_keys ON audit_event
    USING gin (audit_event_keys(subjects, trace_id));
-- The frequent keys, newest first within each: an app's or a matter's latest events.
CREATE INDEX IF NOT EXISTS audit_event_app ON audit_event (caller_app, id);
CREATE INDEX IF NOT EXISTS audit_event_matter ON audit_event (matter_code, id);
-- A time range: a btree, as the planner then reads only the range (a BRIN index was tried:
-- it cost less to keep, but the planner walked ``id`` back through the log instead).
CREATE INDEX IF NOT EXISTS audit_event_at ON audit_event (at);
CREATE INDEX IF NOT EXISTS audit_event_acting ON audit_event (acting, at) WHERE acting IS NOT NULL;

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

-- Per row, within the row's chain: event 1 must follow GENESIS, any other the stored event
-- before it in its chain (one primary-key lookup; rows of the same INSERT before it are
-- visible). With the primary key (chain, seq), two writers can never fork a chain.
CREATE OR REPLACE FUNCTION audit_event_follows() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    expected text;
BEGIN
    IF NEW.seq = 1 THEN
        expected := repeat('0', 64);
    ELSE
        SELECT hash INTO expected FROM audit_event WHERE chain = NEW.chain AND seq = NEW.seq - 1;
    END IF;
    IF expected IS DISTINCT FROM NEW.prev_hash THEN
        RAISE EXCEPTION 'audit event % of chain % does not follow its predecessor',
            NEW.seq, NEW.chain
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END $$;
-- (A single-chain log's row trigger of the same name is dropped by MIGRATE_SINGLE_CHAIN.)
CREATE OR REPLACE TRIGGER audit_event_follows
    BEFORE INSERT ON audit_event
    FOR EACH ROW EXECUTE FUNCTION audit_event_follows();

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


#: The layout after that (the link check once per statement, no index on ``acting``), as
#: ``deltagate audit init`` made it before the decision lists had a table of their own:
#: every event carries its list (``decisions``). A log of it must come forward too, and
#: ``--layouts inline,current`` measures against it.
INLINE_SCHEMA = """
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

#: That layout's INSERT of a batch: ``$1`` the events' records (lists inline) as one array.
INLINE_INSERT = (
    "WITH writing AS MATERIALIZED (SELECT pg_advisory_xact_lock_shared(4206714311)) "
    "INSERT INTO audit_event (chain, seq, at, trace_id, caller_app, caller_region, roles, "
    "matter_code, matter_name, operation_name, operation_type, document_hash, "
    "policy_version, subjects, decisions, hash_algorithm, prev_hash, hash, acting, "
    'receipts) SELECT e."chain", e."seq", e."at", e."traceId", e."callerApp", '
    'e."callerRegion", e."roles", e."matterCode", e."matterName", e."operationName", '
    'e."operationType", e."documentHash", e."policyVersion", e."subjects", e."decisions", '
    'e."hashAlgorithm", e."prevHash", e."hash", e."acting", e."receipts" FROM writing, '
    'jsonb_to_recordset($1::jsonb) AS e("chain" text, "seq" bigint, "at" timestamptz, '
    '"traceId" text, "callerApp" text, "callerRegion" text, "roles" text[], "matterCode" '
    'text, "matterName" text, "operationName" text, "operationType" text, "documentHash" '
    'text, "policyVersion" text, "subjects" text[], "decisions" jsonb, "hashAlgorithm" '
    'text, "prevHash" text, "hash" text, "acting" text, "receipts" jsonb) ORDER BY e.seq '
    "RETURNING seq, id"
)


class InlineAuditLog(PostgresAuditLog):
    """The writer of those layouts: every event's record as linked, its list inline.

    Needs ``audit_decision_set`` to be there (``check_schema`` asks for it), unused.
    """

    def _statement(self, stored: Sequence[StoredEvent]) -> tuple[str, list[str], Sequence[str]]:
        payload = (b"[" + b",".join(s.record for s in stored) + b"]").decode()
        return INLINE_INSERT, [payload], ()
