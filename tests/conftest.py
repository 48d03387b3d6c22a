"""One real PostgreSQL for the whole test session, and the synthetic delta seeded on it.

The server is embedded (pgserver, data in ``DELTAGATE_TEST_PGDATA`` or a folder
under the system temp folder) unless ``DELTAGATE_TEST_DSN`` names one with the
right to create databases. Every test module that needs a database asks
for ``admin_dsn`` (and makes its own databases) or for ``seeded`` (the four
regional databases, filled once per session, and an empty audit database that
``gateway_settings`` points the gateway at).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.edge.settings import Settings
from gateway.synthetic import Dataset, SeedReport, seed_regions

#: Small enough to seed in seconds, big enough for every cross-region example.
PERSONS = 300
SEED = 20240601


@dataclass(frozen=True)
class Seeded:
    """The seeded server: its maintenance DSN, the dataset and what seeding reported."""

    dsn: str
    dataset: Dataset
    report: SeedReport


def embedded_data_dir(suffix: str = "") -> Path:
    """The data folder of an embedded test server: ``DELTAGATE_TEST_PGDATA`` plus ``suffix``.

    Under the system temp folder by default: run as root, pgserver opens every parent of its
    data dir. DELTAGATE_TEST_PGDATA lets two checkouts run their suites side by side.
    """
    base = os.environ.get("DELTAGATE_TEST_PGDATA") or str(
        Path(tempfile.gettempdir()) / "deltagate-test-pg"
    )
    return Path(base + suffix)


@pytest.fixture(scope="session")
def admin_dsn() -> Iterator[str]:
    """A DSN with the right to create databases: DELTAGATE_TEST_DSN, else an embedded server,
    stopped when the session ends (also when a test failed)."""
    configured = os.environ.get("DELTAGATE_TEST_DSN")
    if configured:
        yield configured
        return
    from gateway.edge.embedded import EmbeddedServer

    server = EmbeddedServer(embedded_data_dir())
    try:
        yield server.uri
    finally:
        server.close()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Safety net: stop any embedded server a test started and left open."""
    from gateway.edge.embedded import close_all

    close_all()


@pytest.fixture(scope="session")
def seeded(admin_dsn: str) -> Seeded:
    """The four regional databases, seeded (in worker processes) from ``Dataset(PERSONS, SEED)``,
    and the audit database, made afresh."""
    from gateway.audit import create_database
    from gateway.telemetry.span_table import init_span_table

    report = asyncio.run(seed_regions(admin_dsn, PERSONS, SEED, processes=2))
    asyncio.run(init_span_table(asyncio.run(create_database(admin_dsn, fresh=True))))
    return Seeded(admin_dsn, Dataset(PERSONS, SEED), report)


@pytest.fixture(scope="session")
def dataset() -> Dataset:
    return Dataset(PERSONS, SEED)


#: The HS256 secret of the test gateways (at least 32 bytes, as in production).
JWT_SECRET = "deltagate-tests-jwt-secret-0123456789abcdef"
MASK_SECRET = "deltagate-tests-mask-secret-0123456789abcdef"


def token(region: str, *roles: str, app: str = "test-app", subject: str | None = None) -> str:
    """A valid bearer token for a test caller."""
    from gateway.edge.auth import mint_token

    return mint_token(sub=app, region=region, roles=list(roles), secret=JWT_SECRET, subject=subject)


#: The secret the tests' gateways sign their audit checkpoints with.
AUDIT_CHECKPOINT_SECRET = "tests-audit-checkpoint-secret"


def gateway_settings(dsn: str, **changes: object) -> Settings:
    """Development settings over the seeded regional databases and the session's audit database."""
    from dataclasses import replace

    from gateway.audit import database_dsn
    from gateway.core.types import DELTA_REGIONS
    from gateway.edge.settings import Settings, local_sources
    from gateway.synthetic import region_dsn

    settings = Settings(
        jwt_secret=JWT_SECRET,
        mask_secret=MASK_SECRET,
        sources=local_sources({region: region_dsn(dsn, region) for region in DELTA_REGIONS}),
        audit_dsn=database_dsn(dsn),
        audit_checkpoint_secret=AUDIT_CHECKPOINT_SECRET,
    )
    return replace(settings, **changes).check()


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """An event loop for a module's synchronous tests (hypothesis drives them) to run on."""
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()
