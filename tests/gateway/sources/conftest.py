"""A real PostgreSQL for the source tests, and databases made to order on it."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.gateway.sources.database import dsn_for, run_sql


@pytest.fixture(scope="session")
def admin_dsn() -> str:
    """A DSN with the right to create databases: DELTAGATE_TEST_DSN, else an embedded server."""
    configured = os.environ.get("DELTAGATE_TEST_DSN")
    if configured:
        return configured
    import pgserver

    # Under the system temp folder: run as root, pgserver opens every parent of its data dir.
    data = Path(tempfile.gettempdir()) / "deltagate-test-pg-src"
    return pgserver.get_server(data, cleanup_mode="stop").get_uri("postgres")


@pytest.fixture(scope="module")
def make_database(admin_dsn: str) -> Callable[[str, str], str]:
    """Create (afresh) a database loaded with some SQL; return its DSN."""

    def make(name: str, sql: str) -> str:
        run_sql(admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        run_sql(admin_dsn, f'CREATE DATABASE "{name}"')
        dsn = dsn_for(admin_dsn, name)
        if sql:
            run_sql(dsn, sql)
        return dsn

    return make
