"""The ``postgres`` source kind: one region's PostgreSQL database, read through its mapping.

Every statement is compiled once, when the source is made, from the region's
mapping (``gateway.sources.sql``), and each look-up sends the same SQL text with its
values as one ``text[]`` parameter. asyncpg keeps a prepared statement per SQL
text on each connection, so after the first use a batch costs one
bind/execute round trip and no parsing or planning beyond PostgreSQL's own
plan cache. Several look-ups asked together (``fetch_many``) go as one
statement (``gateway.sources.sql.combined_fetch_sql``), compiled on first use
for that set of look-ups: one round trip for a person's residences and social
insurance, or for a level's persons and credit records.

A look-up that names its columns (the fields a planned document reads) gets
a statement selecting only those, compiled on first use for that (entity,
field, columns) and kept, as are combined statements, in a bounded cache
(``STATEMENT_CACHE``): the planned documents are few, but what callers send
must not grow the gateway's memory without bound.

Connections come from an asyncpg pool, but a look-up that went well does not
give its connection back to it: the source keeps it for the next look-up
(``_Kept``). asyncpg's acquire and release (a holder, a proxy, an inactivity
timer, a shielded task per release and one more turn of the event loop) cost
more of the gateway's CPU than the query on the connection itself did. Only
a connection whose statement completed goes back to the kept ones; one whose
statement failed, timed out or was cancelled goes back through asyncpg's
release, which waits for the cancellation to be acknowledged (or terminates
the connection) and rolls back a transaction, so no connection is reused
mid-query. The kept ones go back to asyncpg's pool too when someone waits
for a connection there, after ``KEEP_USES`` look-ups (so the pool's limit of
queries per connection still applies) or ``KEEP_IDLE`` seconds unused (so
the pool's idle lifetime still closes what a burst opened), and when the
source closes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Sequence
from operator import itemgetter
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg

from gateway.core.entities import ENTITY_FIELDS
from gateway.core.errors import ConfigError, InvalidInput, SourceUnavailable
from gateway.sources.base import QueryObserver, Source
from gateway.sources.sql import SEARCH_KEYS, prefix_bounds

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    from gateway.core.types import Row
    from gateway.sources.mapping import RegionMapping

__all__ = ["PostgresSource"]

logger = logging.getLogger(__name__)

# Failures of the link rather than of the statement: logged without the SQL.
_LINK_ERRORS = (
    OSError,  # refused, unreachable, reset; TimeoutError is one too
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,  # shutting down, starting up
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections
    asyncpg.exceptions.InvalidCatalogNameError,  # database not (yet) there
    asyncpg.exceptions.InvalidAuthorizationSpecificationError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
)
_BACKEND_ERRORS = (*_LINK_ERRORS, asyncpg.PostgresError)
# Failures caused by the values sent, not by the region: SQLSTATE class 22 (data
# exceptions: 22021 a character the encoding cannot hold, 22P05, 22001 a string too long
# for its type, ...), and a value the driver cannot encode (its DataError and
# UnicodeEncodeError are ValueErrors). They are the caller's errors: the edge refuses
# such values before any SQL, and one that gets through must not count against the
# region's circuit breaker, or one caller could take a region away from every other.
_VALUE_ERRORS = (asyncpg.DataError, ValueError)


#: The most statements compiled on first use (projected and combined look-ups) a source
#: keeps; past it, the oldest is dropped (and compiled again if asked again).
STATEMENT_CACHE = 256

#: A projected look-up: (entity, field, columns).
_ProjectedKey = tuple[str, str, frozenset[str]]
#: A combined statement: each look-up's (entity, field, columns or None).
_CombinedKey = tuple[tuple[str, str, frozenset[str] | None], ...]


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Pool reset that sends nothing (see ``PostgresSource._create_pool``)."""


def _usable(connection: PoolConnectionProxy) -> bool:
    """Whether a kept connection is still open (asyncpg gives a connection that closed back
    to its pool on its own, and the proxy then refuses every call)."""
    try:
        return not connection.is_closed()
    except asyncpg.InterfaceError:
        return False


class _Split:
    """How one look-up's rows are taken from a combined statement's records."""

    __slots__ = ("get", "names")

    def __init__(self, names: tuple[str, ...], get: Callable[[Any], tuple[Any, ...]]) -> None:
        self.names = names
        self.get = get


def _one(column: int) -> Callable[[Any], tuple[Any, ...]]:
    return lambda record: (record[column],)


def _frozen(columns: Collection[str] | None) -> frozenset[str] | None:
    """Columns as a cache key (a frozenset keeps its hash, so a plan's set costs nothing)."""
    if columns is None or isinstance(columns, frozenset):
        return columns
    return frozenset(columns)


#: Look-ups a kept connection serves before it goes back through asyncpg's pool, whose own
#: bookkeeping (queries per connection) then applies.
KEEP_USES = 1000
#: Seconds a kept connection may go unused before it goes back to asyncpg's pool, whose
#: idle lifetime then closes it.
KEEP_IDLE = 60.0

#: A kept connection: the connection, when it was last used (``time.perf_counter``), and
#: how many look-ups it served since it was taken from the pool.
_Kept = tuple["PoolConnectionProxy", float, int]

K = TypeVar("K")
V = TypeVar("V")


def _remember(cache: dict[K, V], key: K, value: V) -> V:
    """Keep ``value`` under ``key``, dropping the oldest entry past ``STATEMENT_CACHE``."""
    if len(cache) >= STATEMENT_CACHE:
        del cache[next(iter(cache))]
    cache[key] = value
    return value


class PostgresSource(Source):
    """One region's PostgreSQL database, as rows of the unified vocabulary.

    ::

        source = PostgresSource("ZJ", "postgresql://gw@db-zj/zj", load_mapping("zj.toml"))
        await source.start()
        await source.fetch("person", "id_number", ["330102199001011234"])
        # [{'id_number': '330102199001011234', 'name': '张三', 'gender': 'MALE', ...}]

    The pool is made on first use and again after a failed attempt, so a
    database that is down when the gateway starts, or that comes back later,
    is picked up without a restart. Every failure to answer, whether the link
    or the statement, raises :class:`SourceUnavailable` naming the region only;
    the driver's message and the SQL go to the log. A failure caused by the
    values sent (a data exception) raises :class:`InvalidInput` instead, naming
    neither the region nor the backend.

    Attributes:
        region: the region code this database serves.
    """

    def __init__(
        self,
        region: str,
        dsn: str,
        mapping: RegionMapping,
        *,
        min_size: int = 1,
        max_size: int = 10,
        timeout: float = 5.0,
        observer: QueryObserver | None = None,
    ) -> None:
        if mapping.region != region:
            raise ConfigError(
                f"source for region {region} was given the mapping of region {mapping.region}"
                f" ({mapping.source})"
            )
        if not 0 <= min_size <= max_size or max_size < 1:
            raise ConfigError(f"source {region}: need 0 <= min_size <= max_size, max_size >= 1")
        if timeout <= 0:
            raise ConfigError(f"source {region}: timeout must be positive")
        self.region = region
        self._dsn = dsn
        self._min_size = min_size
        self._max_size = max_size
        self._timeout = timeout
        self._observer = observer
        # Every statement this source can send, compiled once so the SQL text
        # (and so asyncpg's per-connection prepared statement) is reused.
        self._fetch_sql: dict[tuple[str, str], str] = {}
        self._search_sql: dict[tuple[str, str, bool], str] = {}
        for entity in mapping.entities:
            for field in ENTITY_FIELDS[entity]:
                self._fetch_sql[entity, field] = mapping.compile_fetch(entity, field)
                if entity in SEARCH_KEYS:
                    for after in (False, True):
                        sql = mapping.compile_search(entity, field, after=after)
                        self._search_sql[entity, field, after] = sql
        self._mapping = mapping
        # Statements for projected look-ups, and for sets of look-ups asked together,
        # compiled on first use (bounded: ``_remember``). For the latter: the SQL, the
        # fields of each look-up and a getter of their columns from a record.
        self._projected: dict[_ProjectedKey, str] = {}
        self._combined: dict[_CombinedKey, tuple[str, list[_Split]]] = {}
        self._pool: asyncpg.Pool | None = None
        self._connecting: asyncio.Future[asyncpg.Pool] | None = None
        self._closed = False
        # Connections of ``_pool`` whose last statement completed, the last used on top.
        self._kept: list[_Kept] = []
        self._waiting = 0  # look-ups waiting for one of asyncpg's pool
        self._trimming: asyncio.TimerHandle | None = None
        self._handing_back: set[asyncio.Future[None]] = set()

    async def start(self) -> None:
        self._closed = False
        try:
            await self._get_pool()
        except SourceUnavailable:
            logger.warning("source %s: database not reachable at start; will retry", self.region)

    async def close(self) -> None:
        self._closed = True
        if self._connecting is not None:
            self._connecting.cancel()
            self._connecting = None
        pool, self._pool = self._pool, None
        kept, self._kept = self._kept, []
        if self._trimming is not None:
            self._trimming.cancel()
            self._trimming = None
        if pool is not None:
            for connection, _, _ in kept:
                self._hand_back(pool, connection)
            try:
                await asyncio.wait_for(pool.close(), self._timeout)
            except (TimeoutError, *_BACKEND_ERRORS):
                pool.terminate()

    async def fetch(
        self,
        entity: str,
        field: str,
        values: Sequence[str],
        *,
        columns: Collection[str] | None = None,
    ) -> list[Row]:
        sql = self._fetch_sql.get((entity, field))
        if sql is None:
            return self._unmapped(entity, field)
        keys = list(dict.fromkeys(values))  # a key asked twice is read once
        if not keys:
            return []
        if columns is not None:
            sql = self._projected_sql(entity, field, columns)
        records = await self._records(entity, field, sql, len(keys), keys)
        return [dict(record) for record in records]

    async def fetch_many(
        self,
        lookups: Sequence[tuple[str, str, Sequence[str]]],
        *,
        columns: Sequence[Collection[str] | None] | None = None,
    ) -> list[list[Row]]:
        out: list[list[Row]] = [[] for _ in lookups]
        if columns is not None and len(columns) != len(lookups):
            raise ValueError("one set of columns per look-up")
        asked: list[tuple[int, str, str, list[str], frozenset[str] | None]] = []
        for index, (entity, field, values) in enumerate(lookups):
            if (entity, field) not in self._fetch_sql:
                self._unmapped(entity, field)  # raises for an unknown field
                continue
            keys = list(dict.fromkeys(values))
            if keys:
                own = None if columns is None else columns[index]
                asked.append((index, entity, field, keys, _frozen(own)))
        if len(asked) == 1:
            index, entity, field, keys, own = asked[0]
            sql = (
                self._fetch_sql[entity, field]
                if own is None
                else self._projected_sql(entity, field, own)
            )
            records = await self._records(entity, field, sql, len(keys), keys)
            out[index] = [dict(record) for record in records]
            return out
        if not asked:
            return out
        shape = tuple((entity, field, own) for _, entity, field, _, own in asked)
        compiled = self._combined.get(shape)
        if compiled is None:
            combined = self._mapping.compile_combined(
                [(entity, field) for entity, field, _ in shape], [own for *_, own in shape]
            )
            splits = [
                _Split(names, itemgetter(*columns) if len(columns) > 1 else _one(columns[0]))
                for names, columns in zip(combined.fields, combined.columns, strict=True)
            ]
            compiled = _remember(self._combined, shape, (combined.sql, splits))
        sql, splits = compiled
        entity = "+".join(entity for entity, _, _ in shape)
        field = "+".join(field for _, field, _ in shape)
        keys_asked = sum(len(keys) for _, _, _, keys, _ in asked)
        records = await self._records(
            entity, field, sql, keys_asked, *(keys for _, _, _, keys, _ in asked)
        )
        found: list[list[Row]] = [[] for _ in asked]
        for record in records:
            number = record[0]
            split = splits[number]
            found[number].append(dict(zip(split.names, split.get(record), strict=True)))
        for (index, *_), rows in zip(asked, found, strict=True):
            out[index] = rows
        return out

    def _projected_sql(self, entity: str, field: str, columns: Collection[str]) -> str:
        """The statement of a look-up selecting only ``columns`` (and ``field``), compiled on
        first use; a look-up whose columns are every field's uses the full statement."""
        wanted = columns if isinstance(columns, frozenset) else frozenset(columns)
        key = (entity, field, wanted)
        sql = self._projected.get(key)
        if sql is None:
            sql = _remember(
                self._projected, key, self._mapping.compile_fetch(entity, field, wanted)
            )
        return sql

    async def search(
        self,
        entity: str,
        field: str,
        prefix: str,
        *,
        after: tuple[str, str] | None,
        limit: int,
    ) -> list[Row]:
        sql = self._search_sql.get((entity, field, after is not None))
        if sql is None:
            if entity in ENTITY_FIELDS and entity not in SEARCH_KEYS:
                raise ValueError(f"entity {entity!r} cannot be searched")
            return self._unmapped(entity, field)
        if limit < 1:
            return []
        lower, upper = prefix_bounds(prefix)
        args = (lower, upper, *after, limit) if after is not None else (lower, upper, limit)
        return [dict(record) for record in await self._records(entity, field, sql, 1, *args)]

    async def ping(self) -> None:
        await self._records("ping", "", "SELECT 1", 0, observed=False)

    def _unmapped(self, entity: str, field: str) -> list[Row]:
        if entity not in ENTITY_FIELDS or field not in ENTITY_FIELDS[entity]:
            raise ValueError(f"unknown field {entity}.{field}")
        return []  # the region does not hold this entity

    async def _records(
        self, entity: str, field: str, sql: str, keys: int, *args: Any, observed: bool = True
    ) -> list[asyncpg.Record]:
        """One statement's records, within the source's timeout; the observer is told of it
        (``entity``, ``field``: what it looked up, joined by ``+`` for several look-ups in
        one statement)."""
        started = time.perf_counter()
        pool = self._pool
        connection = None
        try:
            try:
                kept = self._kept
                while kept:  # the usual case: a kept connection, asyncpg's timeout on the query
                    connection, _, uses = kept.pop()
                    if _usable(connection):
                        records = await connection.fetch(sql, *args, timeout=self._timeout)
                        break
                    if pool is not None:  # closed under it: asyncpg's release cleans up
                        self._hand_back(pool, connection)
                    connection = None
                else:  # none kept: one from asyncpg's pool, within the same time
                    pool, connection, left = await self._acquire()
                    uses = 0
                    records = await connection.fetch(sql, *args, timeout=left)
            except BaseException:
                if connection is not None and pool is not None:
                    # Failed, timed out or cancelled mid-query: asyncpg's release waits for
                    # the cancellation (or terminates the connection) before reusing it.
                    self._hand_back(pool, connection)
                raise
        except _VALUE_ERRORS as exc:
            self._log_failure(exc, f"{entity}.{field}" if field else entity, None)
            raise InvalidInput("a value in the request cannot match any record") from None
        except _BACKEND_ERRORS as exc:
            self._log_failure(exc, f"{entity}.{field}" if field else entity, sql)
            raise SourceUnavailable(self.region) from None
        ended = time.perf_counter()
        self._keep(pool, connection, ended, uses + 1)
        if observed and self._observer is not None:
            self._observer(self.region, entity, field, keys, len(records), ended - started)
        return records

    async def _acquire(self) -> tuple[asyncpg.Pool, PoolConnectionProxy, float]:
        """A connection from asyncpg's pool (made first if need be) within the source's
        timeout: the pool, the connection and the seconds left of the timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        self._waiting += 1
        try:
            async with asyncio.timeout_at(deadline):
                pool = await self._get_pool()
                connection = await pool.acquire()
        finally:
            self._waiting -= 1
        return pool, connection, max(deadline - loop.time(), 0.001)

    def _keep(
        self, pool: asyncpg.Pool | None, connection: PoolConnectionProxy, now: float, uses: int
    ) -> None:
        """Keep a connection whose statement completed for the next look-up, or hand it back
        to asyncpg's pool (see the module's docstring)."""
        if (
            pool is not self._pool
            or pool is None
            or self._waiting
            or uses >= KEEP_USES
            or connection.is_in_transaction()
        ):
            if pool is not None:
                self._hand_back(pool, connection)
            return
        self._kept.append((connection, now, uses))
        if self._trimming is None:
            self._trimming = asyncio.get_running_loop().call_later(KEEP_IDLE, self._trim)

    def _trim(self) -> None:
        """Hand the connections unused for ``KEEP_IDLE`` seconds back to asyncpg's pool."""
        self._trimming = None
        kept, pool = self._kept, self._pool
        oldest = time.perf_counter() - KEEP_IDLE
        count = 0
        while count < len(kept) and kept[count][1] <= oldest:
            count += 1
        if pool is not None:
            for connection, _, _ in kept[:count]:
                self._hand_back(pool, connection)
        del kept[:count]
        if kept:
            self._trimming = asyncio.get_running_loop().call_later(KEEP_IDLE, self._trim)

    def _hand_back(self, pool: asyncpg.Pool, connection: PoolConnectionProxy) -> None:
        """Give a connection back through asyncpg's release, in the background: after a
        failure it may wait for the backend to acknowledge a cancellation (bounded by the
        timeout; then the connection is terminated), and the caller need not wait for it."""
        release = asyncio.ensure_future(pool.release(connection, timeout=self._timeout))
        self._handing_back.add(release)
        release.add_done_callback(self._handed_back)

    def _handed_back(self, release: asyncio.Future[None]) -> None:
        self._handing_back.discard(release)
        if not release.cancelled() and release.exception() is not None:
            # asyncpg terminated the connection (or its pool was closed): nothing to reuse.
            logger.debug("source %s: a connection was not reusable", self.region)

    async def _get_pool(self) -> asyncpg.Pool:
        if self._pool is not None:
            return self._pool
        if self._closed:
            raise SourceUnavailable(self.region)
        # Concurrent first uses share one attempt instead of each opening a pool.
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._create_pool())
            self._connecting.add_done_callback(self._connected)
        return await asyncio.shield(self._connecting)

    def _connected(self, attempt: asyncio.Future[asyncpg.Pool]) -> None:
        if self._connecting is attempt:
            self._connecting = None
        if attempt.cancelled() or attempt.exception() is not None:
            return  # retrieved here, so an attempt nobody awaited does not warn
        if self._closed:  # closed while this attempt was finishing
            attempt.result().terminate()
        else:
            self._pool = attempt.result()

    async def _create_pool(self) -> asyncpg.Pool:
        try:
            async with asyncio.timeout(self._timeout):
                # asyncpg's default reset sends `SELECT pg_advisory_unlock_all();
                # CLOSE ALL; UNLISTEN *; RESET ALL` whenever a connection goes
                # back to the pool: one more round trip per query. The gateway
                # keeps no session state on its connections (no SET, LISTEN,
                # cursors or advisory locks; open transactions are still rolled
                # back by asyncpg itself), so a reset that sends nothing is safe,
                # and it halved PostgreSQL's CPU per look-up in a measurement.
                return await asyncpg.create_pool(
                    self._dsn,
                    min_size=self._min_size,
                    max_size=self._max_size,
                    reset=_keep_session,
                    timeout=self._timeout,
                    # Bounds asyncpg's cancellation of a query that timed out, too.
                    command_timeout=self._timeout,
                    server_settings={"application_name": "deltagate"},
                )
        except _BACKEND_ERRORS as exc:
            self._log_failure(exc, "connect", None)
            raise SourceUnavailable(self.region) from None

    def _log_failure(self, exc: BaseException, what: str, sql: str | None) -> None:
        # Parameters are never logged (they are ID numbers); a client-side
        # encoding error (a ValueError) or a data exception would quote them, so only
        # its type (and SQLSTATE) goes out.
        detail = type(exc).__name__
        if isinstance(exc, asyncpg.PostgresError):
            detail += f" (SQLSTATE {exc.sqlstate})"
        if not isinstance(exc, _VALUE_ERRORS):
            detail += f": {exc}"
        if sql is None or isinstance(exc, _LINK_ERRORS):
            logger.warning("source %s: %s failed: %s", self.region, what, detail)
        else:
            logger.error("source %s: %s failed: %s; SQL: %s", self.region, what, detail, sql)
