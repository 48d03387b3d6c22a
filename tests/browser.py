"""What the browser tests share: a gateway served on loopback, Debian's Chromium, and a page
that can reach nothing but that gateway.

Debian's ``chromium`` (``tools/ensure-chromium.sh``, run by ``make test`` and, when it is
missing, by ``require_chromium``) is driven by Playwright for Python through
``executable_path``: Playwright's own browser download comes from outside the package
registries. Every request a page makes is recorded; one to any other
origin is refused and remembered, and so are script errors and what the page's
Content-Security-Policy blocked, for the test to assert there were none.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import uvicorn
from starlette.types import ASGIApp

if TYPE_CHECKING:
    from playwright.sync_api import Page, Request, Route

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
# Nothing of Chromium's own may go out either: no updates, sync, QUIC probes or first-run pages.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def require_chromium() -> str:
    """The Chromium to drive; installed first (``tools/ensure-chromium.sh``) when missing."""
    found = shutil.which("chromium")
    if found is None:
        # As root on Debian this installs the package; elsewhere it says what is missing.
        subprocess.run(["sh", str(ROOT / "tools" / "ensure-chromium.sh")], check=False)
        found = shutil.which("chromium")
    if found is None and not Path(CHROMIUM).exists():
        pytest.fail("no chromium: run `sh tools/ensure-chromium.sh` as root (make test does)")
    return found or CHROMIUM


@contextmanager
def serving(app: ASGIApp) -> Iterator[str]:
    """``app`` served by uvicorn on a free loopback port, in a thread of its own; its base URL.

    Stopped when the block ends, also when it raised.
    """
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(
        uvicorn.Config(app, loop="asyncio", log_level="warning", timeout_graceful_shutdown=1)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(1000):  # uvicorn offers no event for it
            if server.started or not thread.is_alive():
                break
            threading.Event().wait(0.01)
        if not server.started:
            pytest.fail("the gateway did not start")
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


#: Records, in the page, what the Content-Security-Policy blocked.
_WATCH_VIOLATIONS = (
    "window.__violations = [];"
    " document.addEventListener('securitypolicyviolation', (e) =>"
    " window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));"
)


@dataclass
class Offline:
    """A page's view of the network: only ``origin`` (and ``data:``/``blob:``) is reachable."""

    origin: str
    requested: list[str] = field(default_factory=list)
    elsewhere: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    posted: list[str] = field(default_factory=list)  # the bodies of POST requests

    def attach(self, page: Page) -> Page:
        page.route("**/*", self._only_the_gateway)
        page.add_init_script(_WATCH_VIOLATIONS)
        page.on("request", self._record)
        page.on("pageerror", lambda error: self.problems.append(str(error)))
        page.on(
            "console",
            lambda message: self.problems.append(message.text) if message.type == "error" else None,
        )
        return page

    def _record(self, request: Request) -> None:
        self.requested.append(request.url)
        if request.method == "POST":
            self.posted.append(request.post_data or "")

    def _only_the_gateway(self, route: Route) -> None:
        # Offline as on an extranet: whatever is not the gateway is refused, and remembered.
        url = route.request.url
        if url.startswith(self.origin + "/") or url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            self.elsewhere.append(url)
            route.abort()

    def violations(self, page: Page) -> list[str]:
        return list(page.evaluate("window.__violations || []"))
