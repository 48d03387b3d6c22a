"""The audit database: events appended in groups, hash-chained, and read back by auditors.

The database (``deltagate_audit`` by default) belongs to the audit log alone.
Its table is created when the gateway first connects, and two triggers guard
it: one refuses every UPDATE, DELETE and TRUNCATE, even a superuser's (who must
disable the trigger first, which only the table's owner can do: the gateway's
own role should be granted INSERT and SELECT and own nothing); the other
refuses an event whose ``prev_hash`` is not the hash of the event before it,
so two writers can never fork the chain.

Writing: ``append`` hands the event to one writer task per process and
returns once the INSERT holding it has committed. While one INSERT is in
flight, the events that arrive wait for the next, which takes them all (group
commit): at low load an event waits for nothing but its own write, under load
one commit serves many requests. The writer numbers and chains the events from
the last event it knows of; if another replica appended in between, the
primary key on ``seq`` (or the link trigger) refuses the INSERT, and the writer
reads the new head and chains again.

A batch that fails is not retried: its requests are refused (fail closed) and
their events are dropped, since nothing was released. If a commit's outcome is
unknown (the link broke during COMMIT), the events may be stored although the
requests were refused: the log may over-report, never under-report.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import orjson

from gateway.audit.events import GENESIS, HASH_ALGORITHM, AuditEvent, StoredEvent, chain
from gateway.errors import AuditUnavailable

__all__ = [
    "DATABASE",
    "SCHEMA",
    "AuditStore",
    "EventQuery",
    "Receipt",
    "create_database",
    "create_schema",
    "database_dsn",
]

logger = logging.getLogger("deltagate.audit")

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
    hash            text NOT NULL
);
COMMENT ON TABLE audit_event IS
    'deltagate audit log: append-only, hash-chained (verify with: deltagate audit verify)';
CREATE INDEX IF NOT EXISTS audit_event_subjects ON audit_event USING gin (subjects);
CREATE INDEX IF NOT EXISTS audit_event_trace ON audit_event (trace_id);
CREATE INDEX IF NOT EXISTS audit_event_app ON audit_event (caller_app, seq);
CREATE INDEX IF NOT EXISTS audit_event_matter ON audit_event (matter_code, seq);
CREATE INDEX IF NOT EXISTS audit_event_at ON audit_event (at);

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
    " hash_algorithm, prev_hash, hash"
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
)

# One statement for a whole batch: the events go as one JSON array of their canonical
# forms (hashed, not serialised again), turned into rows by jsonb_to_recordset.
_KEYS = ", ".join(f'e."{key}"' for _, key, _ in _FIELDS)
_RECORD = ", ".join(f'"{key}" {kind}' for _, key, kind in _FIELDS)
_INSERT = (
    f"INSERT INTO audit_event ({COLUMNS}) SELECT {_KEYS}"
    f" FROM jsonb_to_recordset($1::jsonb) AS e({_RECORD}) ORDER BY e.seq"
)

_HEAD = "SELECT seq, hash FROM audit_event ORDER BY seq DESC LIMIT 1"

#: Times another writer may append first before a batch gives up.
CONFLICT_RETRIES = 8

_CONFLICTS = (asyncpg.UniqueViolationError, asyncpg.IntegrityConstraintViolationError)


@dataclass(frozen=True, slots=True)
class Receipt:
    """An event's commit: the stored event and how many events its INSERT carried."""

    stored: StoredEvent
    batch: int


@dataclass(frozen=True, slots=True, kw_only=True)
class EventQuery:
    """Which events to read, newest first; every given condition must hold.

    Attributes:
        caller_app: the caller application.
        subject: an ID number or USCC the event lists.
        matter_code: the matter.
        trace_id: the trace id (32 hex digits).
        start: events at or after this time.
        end: events before this time.
        before: events with a smaller ``seq`` (the page after a cursor).
        limit: at most this many.
    """

    caller_app: str | None = None
    subject: str | None = None
    matter_code: str | None = None
    trace_id: str | None = None
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    before: int | None = None
    limit: int = 20

    def sql(self) -> tuple[str, list[Any]]:
        conditions: list[str] = []
        args: list[Any] = []
        for template, value in (
            ("caller_app = {}", self.caller_app),
            ("subjects @> ARRAY[{}::text]", self.subject),
            ("matter_code = {}", self.matter_code),
            ("trace_id = {}", self.trace_id),
            ("at >= {}", self.start),
            ("at < {}", self.end),
            ("seq < {}", self.before),
        ):
            if value is not None:
                args.append(value)
                conditions.append(template.format(f"${len(args)}"))
        where = " AND ".join(conditions) or "TRUE"
        args.append(self.limit)
        sql = (
            f"SELECT {COLUMNS} FROM audit_event WHERE {where} ORDER BY seq DESC LIMIT ${len(args)}"
        )
        return sql, args


def stored_event(record: asyncpg.Record | dict[str, Any]) -> StoredEvent:
    """A database row as a ``StoredEvent``."""
    decisions = record["decisions"]
    if isinstance(decisions, str | bytes):
        decisions = orjson.loads(decisions)
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
        ),
        hash_algorithm=record["hash_algorithm"],
        prev_hash=record["prev_hash"],
        hash=record["hash"],
    )


def _payload(stored: Sequence[StoredEvent]) -> str:
    return (b"[" + b",".join(s.record for s in stored) + b"]").decode()


def _safe(exc: BaseException) -> str:
    """An error for the log without what it may quote: a rejected value can be an ID number."""
    if isinstance(exc, asyncpg.PostgresError):
        return f"{type(exc).__name__} (SQLSTATE {exc.sqlstate})"
    if isinstance(exc, OSError | TimeoutError | asyncpg.InterfaceError | AuditUnavailable):
        return f"{type(exc).__name__}: {exc}"
    return type(exc).__name__


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Pool reset that sends nothing: no session state is kept (as in ``gateway.sources``)."""


class AuditStore:
    """The audit log in its own PostgreSQL database.

    Args:
        dsn: the audit database (it must exist; the table is created on first connect).
        timeout: seconds for connecting and for each write or read.
        max_batch: most events one INSERT carries.
        algorithm: the chain's hash algorithm (default: SM3 if available, else SHA-256).
        on_queue: told how many events wait for their INSERT whenever that changes
            (the ``deltagate_audit_queue_depth`` gauge).

    Example::

        store = AuditStore("postgresql://gateway@audit-db/deltagate_audit")
        receipt = await store.append(event)   # returns once committed, else AuditUnavailable
        print(receipt.stored.seq)
        await store.close()                   # writes what is pending first
    """

    def __init__(
        self,
        dsn: str,
        *,
        timeout: float = 5.0,
        max_batch: int = 500,
        algorithm: str = HASH_ALGORITHM,
        on_queue: Callable[[int], None] | None = None,
    ) -> None:
        self._dsn = dsn
        self._on_queue = on_queue
        self._timeout = timeout
        self._max_batch = max_batch
        self._algorithm = algorithm
        self._pool: asyncpg.Pool | None = None
        self._connecting: asyncio.Lock | None = None
        self._head: tuple[int, str] | None = None  # (seq, hash) of the newest event known
        self._pending: list[tuple[AuditEvent, asyncio.Future[Receipt]]] = []
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._closed = False

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect (and create the table) now; a database that is down is retried on use."""
        self._closed = False
        try:
            await self._get_pool()
        except AuditUnavailable:
            logger.warning("audit database not reachable at start; will retry")

    async def close(self) -> None:
        """Write what is pending, stop the writer and close the pool."""
        self._closed = True
        if self._writer is not None:
            self._wake.set()
            try:
                await asyncio.wait_for(asyncio.shield(self._writer), self._timeout * 2)
            except TimeoutError:
                self._writer.cancel()
            self._writer = None
        self._fail(self._pending, "the gateway is shutting down")
        self._pending = []
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), self._timeout)
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                pool.terminate()

    async def ping(self) -> None:
        """Return if the audit database answers, else raise ``AuditUnavailable``."""
        await self._run(lambda pool: pool.fetchval("SELECT 1"), "ping")

    # -- writing -----------------------------------------------------------------------------

    async def append(self, event: AuditEvent) -> Receipt:
        """Store ``event``; returns once it is committed.

        Raises:
            AuditUnavailable: the event could not be committed (the caller must
                not release the data it records).
        """
        if self._closed:
            raise AuditUnavailable("the audit log is closed")
        future: asyncio.Future[Receipt] = asyncio.get_running_loop().create_future()
        self._pending.append((event, future))
        if self._on_queue is not None:
            self._on_queue(len(self._pending))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_loop(), name="deltagate-audit-writer")
        self._wake.set()
        return await future

    async def _write_loop(self) -> None:
        while True:
            if not self._pending:
                if self._closed:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            if self._on_queue is not None:
                self._on_queue(len(self._pending))
            try:
                stored = await self._insert([event for event, _ in batch])
            except Exception as exc:  # every failure refuses the batch; the loop goes on
                self._head = None  # read it again: the outcome of the failed write is unknown
                logger.error("audit write of %d events failed: %s", len(batch), _safe(exc))
                self._fail(batch, "the audit log cannot be written")
                continue
            for (_, future), event in zip(batch, stored, strict=True):
                if not future.done():  # a request whose client went away
                    future.set_result(Receipt(event, len(batch)))

    async def _insert(self, events: list[AuditEvent]) -> list[StoredEvent]:
        pool = await self._get_pool()
        async with asyncio.timeout(self._timeout), pool.acquire() as connection:
            for _ in range(CONFLICT_RETRIES):
                if self._head is None:
                    row = await connection.fetchrow(_HEAD)
                    self._head = (row["seq"], row["hash"]) if row else (0, GENESIS)
                stored = chain(events, self._head, self._algorithm)
                try:
                    await connection.execute(_INSERT, _payload(stored))
                except _CONFLICTS:
                    self._head = None  # another replica appended first: chain after its events
                    continue
                self._head = (stored[-1].seq, stored[-1].hash)
                return stored
        raise AuditUnavailable("the audit log is too busy")

    @staticmethod
    def _fail(batch: Sequence[tuple[AuditEvent, asyncio.Future[Receipt]]], why: str) -> None:
        for _, future in batch:
            if not future.done():
                future.set_exception(AuditUnavailable(why))

    # -- reading -----------------------------------------------------------------------------

    async def read(self, query: EventQuery) -> list[StoredEvent]:
        """The events matching ``query``, newest first.

        Raises:
            AuditUnavailable: the audit database cannot be read.
        """
        sql, args = query.sql()
        records = await self._run(lambda pool: pool.fetch(sql, *args), "read")
        return [stored_event(record) for record in records]

    async def _run(self, work: Any, what: str) -> Any:
        try:
            pool = await self._get_pool()
            async with asyncio.timeout(self._timeout):
                return await work(pool)
        except AuditUnavailable:
            raise
        except Exception as exc:
            logger.warning("audit database %s failed: %s", what, _safe(exc))
            raise AuditUnavailable("the audit log cannot be read") from None

    # -- connecting --------------------------------------------------------------------------

    async def _get_pool(self) -> asyncpg.Pool:
        if self._pool is not None:
            return self._pool
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._pool is None:
                self._pool = await self._create_pool()
        return self._pool

    async def _create_pool(self) -> asyncpg.Pool:
        pool = None
        try:
            async with asyncio.timeout(self._timeout):
                pool = await asyncpg.create_pool(
                    self._dsn,
                    min_size=1,
                    max_size=4,
                    reset=_keep_session,
                    timeout=self._timeout,
                    server_settings={"application_name": "deltagate-audit"},
                )
                async with pool.acquire() as connection:
                    await create_schema(connection)
        except Exception as exc:
            logger.warning("audit database not reachable: %s", _safe(exc))
            if pool is not None:
                pool.terminate()
            raise AuditUnavailable("the audit log is unavailable") from None
        return pool


async def create_schema(connection: asyncpg.Connection) -> None:
    """Create the table, its indexes and its guards if they are missing (idempotent)."""
    async with connection.transaction():
        # Replicas starting together: one creates, the others wait and find it made.
        await connection.execute("SELECT pg_advisory_xact_lock(hashtext('deltagate_audit'))")
        await connection.execute(SCHEMA)


#: The audit database's name where the gateway creates it (the demo, the tests).
DATABASE = "deltagate_audit"


def database_dsn(server_dsn: str, name: str = DATABASE) -> str:
    """``server_dsn`` (a URL or libpq key/value string) with its database swapped for ``name``."""
    if "://" in server_dsn:
        return urlunsplit(urlsplit(server_dsn)._replace(path=f"/{name}"))
    kept = [pair for pair in server_dsn.split() if not pair.startswith("dbname=")]
    return " ".join([*kept, f"dbname={name}"])


async def create_database(server_dsn: str, name: str = DATABASE, *, fresh: bool = False) -> str:
    """Create the audit database on a server (with the right to create databases); its DSN.

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
    return database_dsn(server_dsn, name)
