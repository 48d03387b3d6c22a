"""The edge tests' shared Redis (one real ``redis-server`` for the session, stopped at its end)
and the browser tests' Chromium (one per module)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.browser import CHROMIUM_ARGS, require_chromium
from tests.redis_server import RedisServer, stop_all

if TYPE_CHECKING:
    from playwright.sync_api import Browser


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


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's headless Chromium under Playwright, for a module's browser tests; closed at its
    end, failed or not. Pages come from ``tests.browser.Offline``: nothing but the gateway."""
    chromium = require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()
