"""The edge tests' shared Redis: one real ``redis-server`` for the session, stopped at its end."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.redis_server import RedisServer, stop_all


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A running ``redis-server`` (no persistence), stopped when the session ends, failed or not.

    Tests that stop the store mid-test start a server of their own instead.
    """
    server = RedisServer()
    try:
        yield server.start()
    finally:
        server.close()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Safety net: stop any redis-server a test started and left running."""
    stop_all()
