"""The audit log in PostgreSQL: events appended in groups, hash-chained, read back, verified.

``PostgresAuditLog`` is the ``AuditLog`` the gateway runs with. The database
(``deltagate_audit`` by default) belongs to the audit log alone; its table and
guards are in ``gateway.audit.sql`` (with every statement run here), created
beforehand by their owner (``deltagate audit init``, ``init_schema``): the log
only checks, once per pool, that they are in place, and is unavailable until
they are.

Writing: ``append`` hands the event to one writer task per process and
returns once the INSERT holding it has committed. While one INSERT is in
flight, the events that arrive wait for the next, which takes them all (group
commit): at low load an event waits for nothing but its own write, under load
one commit serves many requests. The writer numbers and chains the events
after the head it reads under the log's advisory lock, held until its commit,
so writers of every replica take turns on the one chain instead of colliding.

A batch that fails is not retried: its requests are refused (fail closed) and
their events are dropped, since nothing was released. If a commit's outcome is
unknown (the link broke during COMMIT), the events may be stored although the
requests were refused: the log may over-report, never under-report.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from gateway.audit.events import GENESIS, HASH_ALGORITHM, AuditEvent, StoredEvent, chain
from gateway.audit.log import AuditLog, EventQuery, Receipt
from gateway.audit.sql import (
    ALL_EVENTS,
    CHAIN_LOCK,
    DATABASE,
    GUARDS,
    HEAD,
    INSERT,
    PING,
    check_schema,
    create_database,
    database_dsn,
    guard_states,
    init_schema,
    select,
    stored_event,
)
from gateway.audit.verify import VerifyReport, check_chain
from gateway.core.errors import AuditUnavailable, GatewayError

__all__ = [
    "DATABASE",
    "GUARDS",
    "PostgresAuditLog",
    "create_database",
    "database_dsn",
    "init_schema",
    "verify",
]

logger = logging.getLogger("deltagate.audit")

_CONFLICTS = (asyncpg.UniqueViolationError, asyncpg.IntegrityConstraintViolationError)
#: Times a batch chains again after a conflict before it gives up.
CONFLICT_RETRIES = 8


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


class PostgresAuditLog(AuditLog):
    """The audit log in its own PostgreSQL database.

    Args:
        dsn: the audit database, its table made by ``deltagate audit init``; the
            gateway's role needs only INSERT and SELECT on it.
        timeout: seconds for connecting and for each write or read.
        max_batch: most events one INSERT carries.
        algorithm: the chain's hash algorithm (default: SM3 if available, else SHA-256).
        on_queue: told how many events wait for their INSERT whenever that changes
            (the ``deltagate_audit_queue_depth`` gauge).
        guards_required: refuse a table whose guard triggers are missing or off
            (the gateway); False for reading and verifying such a table, to look
            into it (the ``deltagate audit`` commands): such a log appends nothing.

    Example::

        log = PostgresAuditLog("postgresql://gateway@audit-db/deltagate_audit")
        receipt = await log.append(event)     # returns once committed, else AuditUnavailable
        print(receipt.stored.seq)
        await log.close()                     # writes what is pending first
    """

    def __init__(
        self,
        dsn: str,
        *,
        timeout: float = 5.0,
        max_batch: int = 500,
        algorithm: str = HASH_ALGORITHM,
        on_queue: Callable[[int], None] | None = None,
        guards_required: bool = True,
    ) -> None:
        self._dsn = dsn
        self._guards_required = guards_required
        self._on_queue = on_queue
        self._timeout = timeout
        self._max_batch = max_batch
        self._algorithm = algorithm
        self._pool: asyncpg.Pool | None = None
        self._connecting: asyncio.Lock | None = None
        self._pending: list[tuple[AuditEvent, asyncio.Future[Receipt]]] = []
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._closed = False
        #: Why the last attempt to connect failed, for ``/readyz`` (None once connected).
        self.problem: str | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect (and check the table) now; a database that is down is retried on use."""
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
        await self._run(lambda pool: pool.fetchval(PING), "ping")

    # -- writing -----------------------------------------------------------------------------

    async def append(self, event: AuditEvent) -> Receipt:
        """Store ``event``; returns once it is committed.

        Raises:
            AuditUnavailable: the event could not be committed (the caller must
                not release the data it records).
        """
        if self._closed:
            raise AuditUnavailable("the audit log is closed")
        if not self._guards_required:
            raise AuditUnavailable("this audit log was opened for reading only")
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
                logger.error("audit write of %d events failed: %s", len(batch), _safe(exc))
                self._fail(batch, "the audit log cannot be written")
                continue
            for (_, future), event in zip(batch, stored, strict=True):
                if not future.done():  # a request whose client went away
                    future.set_result(Receipt(event, len(batch)))

    async def _insert(self, events: list[AuditEvent]) -> list[StoredEvent]:
        pool = await self._get_pool()
        async with asyncio.timeout(self._timeout), pool.acquire() as connection:
            # One writer at a time chains onto the head, under the log's advisory lock: the
            # replicas take turns. Without it they read the same head and collide; measured
            # with 2 and 4 writers, half their INSERTs were rolled back and some batches gave
            # up (bench/audit_writers.py). A conflict can now come only from a writer that
            # does not take the lock (an older version during a rolling update).
            for _ in range(CONFLICT_RETRIES):
                try:
                    async with connection.transaction():
                        await connection.execute(CHAIN_LOCK)
                        row = await connection.fetchrow(HEAD)
                        head = (row["seq"], row["hash"]) if row else (0, GENESIS)
                        stored = chain(events, head, self._algorithm)
                        await connection.execute(INSERT, _payload(stored))
                except _CONFLICTS:
                    continue
                return stored
        raise AuditUnavailable("the audit log is too busy")

    @staticmethod
    def _fail(batch: Sequence[tuple[AuditEvent, asyncio.Future[Receipt]]], why: str) -> None:
        for _, future in batch:
            if not future.done():
                future.set_exception(AuditUnavailable(why))

    # -- reading -----------------------------------------------------------------------------

    async def read(self, query: EventQuery) -> list[StoredEvent]:
        """The events matching ``query``, in its order.

        Raises:
            AuditUnavailable: the audit database cannot be read.
        """
        sql, args = select(query)
        records = await self._run(lambda pool: pool.fetch(sql, *args), "read")
        return [stored_event(record) for record in records]

    async def head(self) -> tuple[int, str] | None:
        """(seq, hash) of the newest event; None for an empty log."""
        row = await self._run(lambda pool: pool.fetchrow(HEAD), "read")
        return None if row is None else (row["seq"], row["hash"])

    async def verify(self, *, anchor: tuple[int, str] | None = None) -> VerifyReport:
        """Walk the chain inside one read-only snapshot; report the guards' states too.

        No timeout: a long log takes as long as it takes to read.

        Raises:
            GatewayError: the database cannot be reached or holds no audit log.
        """
        try:
            pool = await self._get_pool()
        except AuditUnavailable as exc:
            raise GatewayError(self.problem or str(exc)) from None
        async with pool.acquire() as connection:
            guards = await guard_states(connection)
            async with connection.transaction(isolation="repeatable_read", readonly=True):
                return await check_chain(_walk(connection), anchor=anchor, guards=guards)

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
                    await check_schema(connection, guards=self._guards_required)
        except Exception as exc:
            if isinstance(exc, AuditUnavailable):  # reachable, but not set up, or a guard is off
                self.problem = str(exc)
                logger.error("audit database not usable: %s", exc)
            else:
                self.problem = "the audit database is not reachable"
                logger.warning("audit database not reachable: %s", _safe(exc))
            if pool is not None:
                pool.terminate()
            raise AuditUnavailable("the audit log is unavailable") from None
        self.problem = None
        return pool


#: Events fetched per round trip while walking the chain.
CHUNK = 1000


async def _walk(
    connection: asyncpg.Connection | PoolConnectionProxy,
) -> AsyncIterator[StoredEvent]:
    async for record in connection.cursor(ALL_EVENTS, prefetch=CHUNK):
        yield stored_event(record)


async def verify(dsn: str, *, anchor: tuple[int, str] | None = None) -> VerifyReport:
    """Verify the audit log in the database at ``dsn`` (``PostgresAuditLog.verify``).

    Raises:
        GatewayError: the database cannot be reached or holds no audit log.
    """
    log = PostgresAuditLog(dsn, guards_required=False)
    try:
        return await log.verify(anchor=anchor)
    finally:
        await log.close()
