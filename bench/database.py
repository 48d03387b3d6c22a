"""The benchmark's PostgreSQL: embedded, seeded once per (size, seed, generator), tuned for load.

The server is the embedded one the demo uses (``pgserver``), in a data folder
of its own, so a benchmark never touches the test suite's or the demo's data.
Seeding 100,000 persons per region takes a few minutes, so the seed is
recorded in a marker table of the ``postgres`` database and redone only when
the size, the seed or the generator's source changes (or ``--reseed``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from gateway.core.types import DELTA_REGIONS, RegionCode
from gateway.edge.embedded import EmbeddedServer
from gateway.synthetic import database_name, region_dsn, seed_regions

#: Three servers hold a pool of up to 10 connections per region each: 120, above
#: PostgreSQL's default of 100.
MAX_CONNECTIONS = 300
#: Room for the hot part of a 1,000,000-person seed (PostgreSQL's default is 128MB).
SHARED_BUFFERS = "512MB"

_MARKER = "deltagate_bench_seed"
logger = logging.getLogger("bench")


@dataclass(frozen=True)
class Database:
    """The running embedded server.

    Attributes:
        dsn: the ``postgres`` maintenance database.
        postmaster_pid: the server's main process (its children are the backends).
        server: the embedded server; it stops when this process exits.
    """

    dsn: str
    postmaster_pid: int
    server: EmbeddedServer

    @property
    def regions(self) -> dict[RegionCode, str]:
        """The DSN of each region's database."""
        return {region: region_dsn(self.dsn, region) for region in DELTA_REGIONS}


def start(data_dir: Path) -> Database:
    """Start (or reuse) the server in ``data_dir``, with the settings a load test needs.

    The settings are written with ``ALTER SYSTEM``; when they change, the server is
    restarted once so they apply. The server stops when this process exits
    (``gateway.edge.embedded``'s exit hook, which a SIGTERM'd run reaches too).
    """
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    server = EmbeddedServer(data_dir)
    if asyncio.run(_configure(server.uri)):
        logger.info("restarting PostgreSQL to apply max_connections and shared_buffers")
        server.stop()
        server.start()
        if asyncio.run(_configure(server.uri)):
            raise RuntimeError(
                f"PostgreSQL in {data_dir} kept its old settings after a restart; another"
                " process may hold it open. Stop it, or use another --data-dir."
            )
    return Database(server.uri, server.pid(), server)


async def _configure(dsn: str) -> bool:
    """Apply the settings; True if a restart is needed for them to take effect."""
    conn = await asyncpg.connect(dsn)
    try:
        wanted = {"max_connections": str(MAX_CONNECTIONS), "shared_buffers": SHARED_BUFFERS}
        restart = False
        for name, value in wanted.items():
            current = await conn.fetchval(
                "SELECT setting || coalesce(unit, '') FROM pg_settings WHERE name = $1", name
            )
            if _normalise(current) != _normalise(value):
                await conn.execute(f"ALTER SYSTEM SET {name} = '{value}'")
                restart = True
        return restart
    finally:
        await conn.close()


def _normalise(setting: str) -> str:
    # pg_settings gives shared_buffers in 8kB pages: "65536" + "8kB".
    if setting.endswith("8kB"):
        return f"{int(setting[:-3]) * 8 // 1024}MB"
    return setting


def generator_fingerprint() -> str:
    """A hash of the synthetic data generator's source: a changed generator means a new seed."""
    import gateway.synthetic

    root = Path(gateway.synthetic.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


async def ensure_seeded(dsn: str, persons: int, seed: int, *, force: bool = False) -> float | None:
    """Seed the four regional databases unless the marker says they hold this seed already.

    Returns the seconds seeding took, or None if the existing seed was kept.
    """
    fingerprint = generator_fingerprint()
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {_MARKER} (persons int NOT NULL, seed bigint NOT NULL,"
            " generator text NOT NULL, seconds real NOT NULL,"
            " seeded_at timestamptz NOT NULL DEFAULT now())"
        )
        marker = await conn.fetchrow(f"SELECT persons, seed, generator FROM {_MARKER}")
        existing = {
            row["datname"]
            for row in await conn.fetch("SELECT datname FROM pg_database WHERE NOT datistemplate")
        }
        complete = all(database_name(region) in existing for region in DELTA_REGIONS)
        if (
            not force
            and complete
            and marker is not None
            and tuple(marker) == (persons, seed, fingerprint)
        ):
            return None
        # The marker goes first: a seed interrupted half-way is never taken for a finished one.
        await conn.execute(f"DELETE FROM {_MARKER}")
    finally:
        await conn.close()
    report = await seed_regions(dsn, persons, seed)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            f"INSERT INTO {_MARKER} (persons, seed, generator, seconds) VALUES ($1, $2, $3, $4)",
            persons,
            seed,
            fingerprint,
            report.elapsed,
        )
    finally:
        await conn.close()
    return report.elapsed
