"""The audit log's previous layout, as ``deltagate audit init`` made it before the link
check ran once per statement: a per-row link trigger and an index on ``acting``. A log of
it must come forward with ``deltagate audit init`` (``test_previous_layout.py``), and
``python -m bench.audit_writers --layouts previous,current`` measures against it.
"""

from __future__ import annotations

__all__ = ["PREVIOUS_SCHEMA"]

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

#: The previous writer's INSERT of a batch: ``$1`` the events' records as one JSON array.
