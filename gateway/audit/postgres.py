"""The audit log in PostgreSQL: events appended in groups, hash-chained, read back, verified.

``PostgresAuditLog`` is the ``AuditLog`` the gateway runs with. The database
(``deltagate_audit`` by default) belongs to the audit log alone; its table and
guards are in ``gateway.audit.sql`` (with every statement run here), created
beforehand by their owner (``deltagate audit init``, ``init_schema``): the log
only checks, once per pool, that they are in place, and is unavailable until
they are.

Writing: ``append`` hands the event to one writer task per log object (one
per gateway worker process) and returns once the INSERT holding it has
committed. While one INSERT is in flight, the events that arrive wait for the
next, which takes them all (group commit): at low load an event waits for
nothing but its own write, under load one commit serves many requests. A
commit's fixed cost (most of it the WAL flush) is paid per batch, and at a
moderate load a batch would hold one to four events; so, if asked to
(``gather``, none by default), while operations announced to the log
(``expect``) are still running, the writer waits up to ``gather`` seconds for
their events before it writes, and stops waiting as soon as every one of them
has settled (one that starts during the wait is not waited for). With no
other operation running, an event never waits: an idle gateway writes each at
once. Each writer appends to chains of its own (``chains``, one by default),
named at random when it is made, and keeps each chain's head in memory: it
never reads another chain's head nor waits for one, and one INSERT (one round
trip, its own transaction) stores a batch. Each chain has a connection and a
writing task of its own, so that, with more than one, while one batch's commit
waits for the disk (a WAL flush: milliseconds on a slow disk, far more than the
rest of a batch) the next batch goes out on another chain, and PostgreSQL
flushes the commits in flight together. The database still refuses a batch
that does not follow its chain's stored head (``sql.SCHEMA``).

Each event's decisions list goes by reference (``gateway.audit.decision_sets``):
inline the first time the writer meets it, then stored with the next event that
has it, in the same statement, and remembered once that batch has committed;
after a failed batch the writer forgets them all (the next batch sends its
lists again, and ``ON CONFLICT DO NOTHING`` keeps the stored ones).

A batch that fails is not retried: its requests are refused (fail closed) and
their events are dropped, since nothing was released. If a commit's outcome is
unknown (the link broke during COMMIT), the events may be stored although the
requests were refused: the log may over-report, never under-report; the writer
reads its chain's head again before its next batch.

Checkpoints (``gateway.audit.checkpoints``): every ``checkpoint_interval``
seconds a writer that wrote since the newest checkpoint writes one unless
another writer did within the interval, and every writer writes one as it
closes, so that its last events are covered.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from gateway.audit import decision_sets
from gateway.audit.checkpoints import DEVELOPMENT_SECRET, Checkpoint, Head, seal, stored_checkpoint
from gateway.audit.events import (
    GENESIS,
    HASH_ALGORITHM,
    AuditEvent,
    StoredEvent,
    link,
    new_chain_name,
)
from gateway.audit.log import NOTHING_EXPECTED, AuditLog, EventQuery, Expectation, Receipt
from gateway.audit.sql import (
    ALL_CHECKPOINTS,
    ALL_EVENTS,
    CHAIN_HEAD,
    CHECKPOINT_LOCK,
    DATABASE,
    GUARDS,
    INSERT,
    INSERT_CHECKPOINT,
    LAST_CHECKPOINT,
    MOVED_HEADS,
    NEWEST,
    NEWEST_ID,
    PING,
    check_schema,
    create_database,
    database_dsn,
    guard_states,
    init_schema,
    select,
    stored_event,
)
from gateway.audit.verify import VerifyReport, check_log
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

#: Seconds between checkpoints, unless configured.
CHECKPOINT_INTERVAL = 5.0

#: Most seconds the writer waits for announced operations' events, unless configured: none.
#: Waiting saves PostgreSQL commits but holds every audited answer while the others
#: finish; where the disk flushes in well under a millisecond, as on the benchmark's
#: machine, that cost more throughput than it saved (bench/README.md, fifth round).
#: uvloop's timers count whole milliseconds (a shorter wait ends on the loop's next turn).
GATHER = 0.0


def _release(gathering: asyncio.Future[None]) -> None:
    if not gathering.done():
        gathering.set_result(None)


def _safe(exc: BaseException) -> str:
    """An error for the log without what it may quote: a rejected value can be an ID number."""
    if isinstance(exc, asyncpg.PostgresError):
        return f"{type(exc).__name__} (SQLSTATE {exc.sqlstate})"
    if isinstance(exc, OSError | TimeoutError | asyncpg.InterfaceError | AuditUnavailable):
        return f"{type(exc).__name__}: {exc}"
    return type(exc).__name__


def _open(connection: PoolConnectionProxy) -> bool:
    """Whether a connection the writer keeps is still its own and open."""
    try:
        return not connection.is_closed()
    except asyncpg.InterfaceError:  # the pool took it back as it closed
        return False


def _jsonb_in(value: str | bytes) -> bytes:
    """jsonb's binary form (a version byte, then the text) from text or UTF-8 bytes: the
    writer's batches go as the bytes it built (a ``str`` of them cost a decode here and
    an encode in asyncpg, every event; the matter names are Chinese, so not ASCII)."""
    return b"\x01" + (value if isinstance(value, bytes) else value.encode())


def _jsonb_out(data: bytes) -> str:
    """jsonb read as text, as asyncpg reads it by default."""
    return data[1:].decode()


async def _jsonb_codec(connection: asyncpg.Connection) -> None:
    await connection.set_type_codec(
        "jsonb", schema="pg_catalog", encoder=_jsonb_in, decoder=_jsonb_out, format="binary"
    )


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Pool reset that sends nothing: no session state is kept (as in ``gateway.sources``)."""


@dataclass(slots=True, eq=False)
class _Chain:
    """One of a writer's chains: its head (None when unknown, after a failed commit), the
    decision lists it knows to be stored (their bodies are not sent again), its kept
    connection and the task writing to it."""

    name: str
    head: tuple[int, str] | None = (0, GENESIS)
    known: decision_sets.KnownSets = field(default_factory=decision_sets.KnownSets)
    connection: PoolConnectionProxy | None = None
    task: asyncio.Task[None] | None = None


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
        checkpoint_secret: signs the checkpoints, and checks them in ``verify``
            (default: the public development secret; production configures one).
        checkpoint_interval: seconds between checkpoints.
        gather: most seconds the writer waits, before a write, for the events of
            operations announced with ``expect`` and still running (0: never waits).
        chains: how many chains this writer appends to, each on a connection of its
            own: how many INSERTs it may have in flight at once.

    Example::

        log = PostgresAuditLog("postgresql://gateway@audit-db/deltagate_audit",
                               checkpoint_secret=secret)
        receipt = await log.append(event)     # returns once committed, else AuditUnavailable
        print(receipt.chain, receipt.seq, receipt.hash)
        await log.close()                     # writes what is pending, then a checkpoint
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
        checkpoint_secret: bytes = DEVELOPMENT_SECRET,
        checkpoint_interval: float = CHECKPOINT_INTERVAL,
        gather: float = GATHER,
        chains: int = 1,
    ) -> None:
        self._dsn = dsn
        self._secret = checkpoint_secret
        self._interval = checkpoint_interval
        if chains < 1:
            raise ValueError("an audit log writes to one chain at least")
        self._chains = [_Chain(new_chain_name()) for _ in range(chains)]
        #: The names of this writer's chains.
        self.chains = tuple(chain.name for chain in self._chains)
        #: The greatest ``id`` this writer stored, and the greatest a checkpoint covers.
        self._written_id = 0
        self._covered_id = 0
        self._checkpointer: asyncio.Task[None] | None = None
        self._guards_required = guards_required
        self._on_queue = on_queue
        self._timeout = timeout
        self._max_batch = max_batch
        self._algorithm = algorithm
        self._pool: asyncpg.Pool | None = None
        self._connecting: asyncio.Lock | None = None
        self._pending: list[tuple[AuditEvent, asyncio.Future[Receipt]]] = []
        self._wake = asyncio.Event()
        self._gather = gather
        #: Operations announced (``expect``) and not settled yet.
        self._expected = 0
        #: Counts the writer's waits; an operation announced during a wait is not waited for.
        self._round = 0
        #: Of the operations running when the current wait began, those not settled yet.
        self._awaited = 0
        #: Set while the writer waits for their events; done when it should stop waiting.
        self._gathering: asyncio.Future[None] | None = None
        self._closed = False
        #: Why the last attempt to connect failed, for ``/readyz`` (None once connected).
        self.problem: str | None = None

    @property
    def chain(self) -> str:
        """This writer's first chain (its only one, unless made with more)."""
        return self._chains[0].name

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect (and check the table) now; a database that is down is retried on use."""
        self._closed = False
        try:
            await self._get_pool()
        except AuditUnavailable:
            logger.warning("audit database not reachable at start; will retry")

    async def close(self) -> None:
        """Write what is pending and a checkpoint over it, stop the writer, close the pool."""
        self._closed = True
        if self._gathering is not None:
            _release(self._gathering)
        writers = [chain.task for chain in self._chains if chain.task is not None]
        if writers:
            self._wake.set()
            _, left = await asyncio.wait(writers, timeout=self._timeout * 2)
            for task in left:
                task.cancel()
            for chain in self._chains:
                chain.task = None
        self._fail(self._pending, "the gateway is shutting down")
        self._pending = []
        if self._checkpointer is not None:
            # A checkpoint in flight is rolled back before the closing one takes its lock.
            self._checkpointer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checkpointer
            self._checkpointer = None
        if self._written_id > self._covered_id and self._pool is not None:
            try:
                await self.checkpoint()
            except Exception as exc:  # the events are stored; only their cover is missing
                logger.error("audit checkpoint at close failed: %s", _safe(exc))
        pool, self._pool = self._pool, None
        for chain in self._chains:
            connection, chain.connection = chain.connection, None
            if pool is not None and connection is not None:
                with contextlib.suppress(
                    TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError
                ):
                    await pool.release(connection, timeout=self._timeout)
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), self._timeout)
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                pool.terminate()

    async def ping(self) -> None:
        """Return if the audit database answers, else raise ``AuditUnavailable``."""
        await self._run(lambda pool: pool.fetchval(PING), "ping")

    # -- writing -----------------------------------------------------------------------------

    def expect(self) -> Expectation:
        """Announce an operation that may append an event (``AuditLog.expect``)."""
        if not self._gather:
            return NOTHING_EXPECTED
        self._expected += 1
        return Expectation(partial(self._settled, self._round))

    def _settled(self, announced_in: int) -> None:
        self._expected -= 1
        if self._gathering is not None and announced_in < self._round:
            self._awaited -= 1
            if not self._awaited:
                _release(self._gathering)

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
        if self._gathering is not None and len(self._pending) >= self._max_batch:
            _release(self._gathering)
        if self._on_queue is not None:
            self._on_queue(len(self._pending))
        for chain in self._chains:
            if chain.task is None or chain.task.done():
                chain.task = asyncio.create_task(
                    self._write_loop(chain), name=f"deltagate-audit-writer-{chain.name}"
                )
        if self._checkpointer is None or self._checkpointer.done():
            self._checkpointer = asyncio.create_task(
                self._checkpoint_loop(), name="deltagate-audit-checkpoints"
            )
        self._wake.set()
        return await future

    async def _write_loop(self, chain: _Chain) -> None:
        """Write batches to ``chain`` while the log is open; each chain has a loop of its
        own, so that a batch can be sent while another one's commit is in flight."""
        while True:
            # While another loop gathers, the events waiting are that loop's to take.
            if not self._pending or self._gathering is not None:
                if self._closed and not self._pending:
                    self._wake.set()  # the other loops see it too, and end
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            if self._expected and len(self._pending) < self._max_batch and not self._closed:
                await self._gather_events()
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            if self._pending:
                self._wake.set()  # more than one batch waits: another chain takes the rest
            if self._on_queue is not None:
                self._on_queue(len(self._pending))
            try:
                stored = await self._insert(chain, [event for event, _ in batch])
            except Exception as exc:  # every failure refuses the batch; the loop goes on
                logger.error("audit write of %d events failed: %s", len(batch), _safe(exc))
                self._fail(batch, "the audit log cannot be written")
                continue
            for (_, future), event in zip(batch, stored, strict=True):
                if not future.done():  # a request whose client went away
                    future.set_result(Receipt(event, len(batch)))

    async def _gather_events(self) -> None:
        """Wait up to ``gather`` seconds for the announced operations running now.

        Waiting trades a moment of the waiting events' latency for one commit instead of
        several: when the gateway's and the database's CPUs are busy (the only time
        operations overlap much), the commits saved are worth more than the wait.
        """
        loop = asyncio.get_running_loop()
        # Only for the operations running now: one that starts during the wait is a whole
        # operation away from its event, and at a steady load there always is one.
        self._round += 1
        self._awaited = self._expected
        gathering = self._gathering = loop.create_future()
        timer = loop.call_later(self._gather, _release, gathering)
        try:
            await gathering
        finally:
            timer.cancel()
            self._gathering = None

    async def _insert(self, chain: _Chain, events: list[AuditEvent]) -> list[StoredEvent]:
        pool = await self._get_pool()
        async with asyncio.timeout(self._timeout):
            # Each chain keeps its connection from batch to batch (taking one from the
            # pool and giving it back cost about as much as the rest of a one-event batch).
            connection = chain.connection
            if connection is None or not _open(connection):
                connection = chain.connection = await pool.acquire()
            try:
                if chain.head is None:
                    row = await connection.fetchrow(CHAIN_HEAD, chain.name)
                    chain.head = (row["seq"], row["hash"]) if row else (0, GENESIS)
                stored = link(chain.name, events, chain.head, self._algorithm)
                sql, args, listed = self._statement(stored, chain.known)
                # One statement, its own transaction: it returns once committed.
                rows = await connection.fetch(sql, *args)
            except BaseException:
                # Committed or not? Read the chain's head again before the next batch, and
                # send every list again (ON CONFLICT keeps the stored ones as they are).
                chain.head = None
                chain.known.clear()
                # And on another connection: this one may be broken, or busy still.
                chain.connection = None
                await pool.release(connection)
                raise
        chain.head = (stored[-1].seq, stored[-1].hash)
        chain.known.add(listed)
        ids = {row["seq"]: row["id"] for row in rows}
        self._written_id = max(self._written_id, *ids.values())
        for event in stored:
            # Numbered in place: these objects are this batch's own until returned (a
            # ``dataclasses.replace`` per event cost more than the rest of its receipt).
            object.__setattr__(event, "id", ids[event.seq])
        return stored

    @staticmethod
    def _statement(
        stored: Sequence[StoredEvent], known: decision_sets.KnownSets
    ) -> tuple[str, Sequence[str | bytes], Sequence[str]]:
        """The INSERT of a linked batch, its arguments, and the digests of the lists it
        stores: the events with their lists by reference, the lists not known stored."""
        made = decision_sets.batch(stored, known)
        known.saw(made.seen)
        return INSERT, [made.events, made.lists], made.new

    # -- checkpoints -------------------------------------------------------------------------

    async def _checkpoint_loop(self) -> None:
        while not self._closed:
            # Spread out, so that the writers do not all try at once.
            await asyncio.sleep(self._interval * random.uniform(0.8, 1.2))
            if self._written_id > self._covered_id:
                try:
                    await self.checkpoint(unless_recent=True)
                except Exception as exc:  # the events are stored; the next round covers them
                    logger.warning("audit checkpoint failed: %s", _safe(exc))

    async def checkpoint(self, *, unless_recent: bool = False) -> Checkpoint | None:
        """Write a checkpoint over every chain that moved since the newest one; return it
        (None if no event is left to cover, or, ``unless_recent``, if another writer
        wrote one within the interval).

        Raises:
            AuditUnavailable: the audit database cannot be reached or written.
        """
        pool = await self._get_pool()
        async with asyncio.timeout(self._timeout), pool.acquire() as connection:
            if unless_recent:
                last = await connection.fetchrow(LAST_CHECKPOINT)
                if last is not None:
                    self._covered_id = max(self._covered_id, last["through_id"])
                    age = (dt.datetime.now(dt.UTC) - last["at"]).total_seconds()
                    if self._written_id <= self._covered_id or age < self._interval / 2:
                        return None
            async with connection.transaction():
                # Waits for the INSERTs in flight, and holds new ones back until committed.
                await connection.execute(CHECKPOINT_LOCK)
                last = await connection.fetchrow(LAST_CHECKPOINT)
                through = last["through_id"] if last else 0
                newest = await connection.fetchval(NEWEST_ID)
                if newest <= through:
                    self._covered_id = max(self._covered_id, through)
                    return None
                rows = await connection.fetch(MOVED_HEADS, through, newest)
                made = seal(
                    seq=last["seq"] + 1 if last else 1,
                    at=dt.datetime.now(dt.UTC),
                    through_id=newest,
                    heads=[Head(row["chain"], row["seq"], row["hash"]) for row in rows],
                    prev_hash=last["hash"] if last else GENESIS,
                    algorithm=self._algorithm,
                    secret=self._secret,
                )
                await connection.execute(
                    INSERT_CHECKPOINT, made.seq, made.at, made.through_id, made.heads_json(),
                    made.root, made.hash_algorithm, made.prev_hash, made.hash, made.signature,
                )  # fmt: skip
        self._covered_id = max(self._covered_id, newest)
        return made

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

    async def head(self) -> Head | None:
        """The newest event (greatest ``id``); None for an empty log."""
        row = await self._run(lambda pool: pool.fetchrow(NEWEST), "read")
        return None if row is None else Head(row["chain"], row["seq"], row["hash"])

    async def verify(self, *, anchor: Head | None = None, secret_source: str = "") -> VerifyReport:
        """Walk every checkpoint and chain inside one read-only snapshot; report the
        guards' states too.

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
                return await check_log(
                    _walk(connection), _checkpoints(connection), secret=self._secret,
                    anchor=anchor, guards=guards, secret_source=secret_source,
                )  # fmt: skip

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
                    # A connection per chain, kept, and room for reads and checkpoints.
                    max_size=len(self._chains) + 3,
                    reset=_keep_session,
                    init=_jsonb_codec,
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


async def _checkpoints(
    connection: asyncpg.Connection | PoolConnectionProxy,
) -> AsyncIterator[Checkpoint]:
    async for record in connection.cursor(ALL_CHECKPOINTS, prefetch=CHUNK):
        yield stored_checkpoint(record)


async def verify(
    dsn: str, *, anchor: Head | None = None, secret: bytes = DEVELOPMENT_SECRET
) -> VerifyReport:
    """Verify the audit log in the database at ``dsn`` (``PostgresAuditLog.verify``).

    Raises:
        GatewayError: the database cannot be reached or holds no audit log.
    """
    log = PostgresAuditLog(dsn, guards_required=False, checkpoint_secret=secret)
    try:
        return await log.verify(anchor=anchor)
    finally:
        await log.close()
