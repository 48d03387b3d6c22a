"""A real PostgreSQL for the source tests, and databases made to order on it."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.gateway.sources.database import dsn_for, run_sql


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
