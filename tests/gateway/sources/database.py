"""Helpers to make and fill test databases on the test server."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit, urlunsplit

import asyncpg


def dsn_for(admin_dsn: str, database: str) -> str:
    """The same server, another database."""
    return urlunsplit(urlsplit(admin_dsn)._replace(path=f"/{database}"))


async def execute_sql(dsn: str, sql: str) -> None:
    """Run SQL on a connection of its own (from an async test)."""
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


def run_sql(dsn: str, sql: str) -> None:
    """Run SQL from synchronous fixture code, on a loop of its own."""
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(execute_sql(dsn, sql))
    finally:
        loop.close()
